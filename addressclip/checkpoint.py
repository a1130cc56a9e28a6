"""Atomic checkpoints of a run, loadable without executing pickled code.

Layout of a run directory::

    config.yaml                     the resolved configuration (``--config`` reproduces the run)
    checkpoints/init/               the model before training (step 0): the zero-shot baseline
    checkpoints/step_000123/        open_clip_config.json + open_clip_model.safetensors (the model;
                                    also loads with ``open_clip.create_model('local-dir:DIR')``),
                                    training_state.pt (optimizer, scaler, RNG states: plain tensors
                                    and numbers, read with ``torch.load(weights_only=True)``),
                                    state.json (step, epoch, position in the epoch; human-readable)
    checkpoints/latest.json         {"checkpoint": "step_000123", ...}: what ``--resume latest`` loads
    tensorboard/, train_log.jsonl   scalars

Atomicity: a checkpoint directory is written under a temporary name, its files are flushed to disk
(``fsync``), and it is renamed into place with ``os.replace``; only then is ``latest.json`` rewritten
(temporary file + ``os.replace``). A crash at any moment, the process killed or the power lost,
leaves ``latest.json`` pointing at a complete checkpoint.

Validation: damage can still happen after the fact (a disk that filled up while a file was copied, a
truncated copy between machines, a file deleted by hand). ``resolve_checkpoint(..., "latest")``
therefore checks the checkpoint it is about to return (safetensors header against the file size,
the training state's zip directory, the JSON files) and, when it is damaged, logs a warning naming
the file and falls back to the previous complete checkpoint. A checkpoint named explicitly is checked
too, but never replaced by another one.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from addressclip.model import CheckpointError
from ial_core.checkpoints import file_problem
from ial_core.files import atomic_dir, write_text

CHECKPOINTS = "checkpoints"
INIT = "init"
LATEST = "latest.json"
MODEL_FILE = "open_clip_model.safetensors"
CONFIG_FILE = "open_clip_config.json"
STATE_FILE = "training_state.pt"
META_FILE = "state.json"
STEP_DIR = re.compile(r"^step_(\d+)$")
# What an interrupted save leaves beside the checkpoints (:mod:`ial_core.files` names):
# ``.step_000012.tmp.PID-ID`` (a directory being written), ``.step_000012.old.PID-ID`` (the copy
# being replaced), ``.latest.json.tmp.PID-ID``; runs of earlier versions left ``.latest.json.PID.tmp``.
TEMPORARY = re.compile(r"^\.(.+)\.(tmp|old)\.[0-9a-f-]+$|^\.latest\.json\.\d+\.tmp$")

log = logging.getLogger("addressclip.checkpoint")


def write_model_files(directory: Path, clip: torch.nn.Module, config: dict) -> None:
    """The open_clip model as ``open_clip_config.json`` + ``open_clip_model.safetensors``."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in clip.state_dict().items()}
    save_file(state, str(directory / MODEL_FILE), metadata={"format": "pt"})
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=list), encoding="utf-8")


def save_model_dir(path: str | Path, clip: torch.nn.Module, config: dict) -> Path:
    """Atomically write a model-only checkpoint directory (used for ``init``)."""
    final = Path(path)
    with atomic_dir(final, durable=True) as tmp:
        write_model_files(tmp, clip, config)
    return final


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "python_version": random.getstate()[0], "python_gauss": random.getstate()[2],
             "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
             "numpy_pos": int(np_state[2]), "numpy_has_gauss": int(np_state[3]),
             "numpy_gauss": float(np_state[4])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: str | Path, *, clip: torch.nn.Module, model_config: dict,
                    optimizer: torch.optim.Optimizer, scaler, step: int, epoch: int,
                    batch_in_epoch: int, keep: int = 2, extra: dict | None = None) -> Path:
    """Write ``checkpoints/step_{step}`` atomically, point ``latest.json`` at it, prune old ones."""
    ckpt_root = Path(run_dir) / CHECKPOINTS
    ckpt_root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:06d}"
    final = ckpt_root / name
    meta = {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, **(extra or {})}
    with atomic_dir(final, durable=True) as tmp:
        write_model_files(tmp, clip, model_config)
        torch.save({"optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict() if scaler is not None else {},
                    "rng": rng_state(), **meta}, tmp / STATE_FILE)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    write_text(ckpt_root / LATEST, json.dumps({"checkpoint": name, **meta}, indent=2), durable=True)
    steps = sorted(p for p in ckpt_root.glob("step_*") if p.is_dir())
    for old in steps[:-keep] if keep > 0 else []:
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_problem(path: str | Path, *, training_state: bool) -> str | None:
    """Why the checkpoint directory ``path`` cannot be used, naming the file; None if it can.

    Reads headers only (cheap enough to run on every resolve). ``training_state`` also requires what
    a resume needs besides the weights (``training_state.pt``, ``state.json``); ``init`` and exported
    model directories hold weights only and are fine for evaluation.
    """
    path = Path(path)
    if not path.is_dir():
        return f"{path}: no such checkpoint directory"
    if not (path / MODEL_FILE).is_file():
        return f"{path}: not a checkpoint directory (no {MODEL_FILE})"
    required = [MODEL_FILE, CONFIG_FILE] + ([STATE_FILE, META_FILE] if training_state else [])
    for name in required:
        file = path / name
        if not file.is_file():
            return f"{file}: missing" + (f"; {path} cannot be resumed from (model weights only)"
                                         if name == STATE_FILE else "")
        problem = file_problem(file)
        if problem:
            return problem
    return None


def _step_of(path: Path) -> int:
    return int(STEP_DIR.match(path.name).group(1))


def _latest_candidates(ckpt_root: Path) -> list[Path]:
    """Checkpoints to try for ``latest``, best first: the one ``latest.json`` names, then the older
    step checkpoints, newest first. A step directory newer than the pointer is not trusted (it may
    belong to a branch abandoned by an explicit ``--resume step_N``). Without a readable pointer
    (a first save interrupted between publishing and pointing, or a damaged pointer): every step
    checkpoint, newest first."""
    steps = sorted((p for p in ckpt_root.glob("step_*") if p.is_dir() and STEP_DIR.match(p.name)),
                   key=_step_of, reverse=True)
    pointer = ckpt_root / LATEST
    if not pointer.is_file():
        return steps
    try:
        named = ckpt_root / json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
        newest = _step_of(named)
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        log.warning("%s: unreadable (%s); looking for the newest complete step checkpoint instead",
                    pointer, exc)
        return steps
    return [named, *(p for p in steps if _step_of(p) < newest)]


def _latest_complete(ckpt_root: Path, training_state: bool) -> Path:
    """The newest usable checkpoint; every damaged one skipped on the way is logged with its file."""
    candidates = _latest_candidates(ckpt_root)
    if not candidates:
        raise CheckpointError(f"{ckpt_root / LATEST}: no checkpoint to resume from (no training step "
                              "has been saved in this run directory yet)")
    problems = []
    for path in candidates:
        problem = checkpoint_problem(path, training_state=training_state)
        if problem is None:
            if problems:
                log.warning("using %s, the newest complete checkpoint", path)
            return path
        problems.append(problem)
        log.warning("checkpoint %s is unusable: %s; trying the previous one", path.name, problem)
    raise CheckpointError(f"{ckpt_root}: no checkpoint to resume from: every one is damaged: "
                          + "; ".join(problems))


def resolve_checkpoint(run_dir: str | Path, which: str, *, for_resume: bool = False) -> Path:
    """``latest``, ``init``, a name under ``checkpoints/`` or a directory path -> checkpoint dir.

    ``latest`` falls back past damaged checkpoints (see the module docstring); an explicitly named
    checkpoint that is damaged is an error. ``for_resume`` also requires the training state.
    """
    ckpt_root = Path(run_dir) / CHECKPOINTS
    if which == "latest":
        return _latest_complete(ckpt_root, for_resume)
    path = ckpt_root / which if (ckpt_root / which).is_dir() else Path(which)
    problem = checkpoint_problem(path, training_state=for_resume)
    if problem:
        raise CheckpointError(problem)
    return path


def remove_stale_temporaries(run_dir: str | Path) -> list[Path]:
    """Delete what interrupted saves left in ``checkpoints/`` (hidden ``.tmp``/``.old`` entries).

    They are never read (hidden names, never pointed at), but each can be as large as a checkpoint.
    Call only from the process that writes checkpoints, before it writes any.
    """
    ckpt_root = Path(run_dir) / CHECKPOINTS
    removed = [p for p in ckpt_root.glob(".*") if TEMPORARY.match(p.name)] if ckpt_root.is_dir() else []
    for path in removed:
        log.info("removing %s, left by an interrupted save", path)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return removed


def load_training_state(ckpt_dir: str | Path) -> dict:
    path = Path(ckpt_dir) / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; {ckpt_dir} holds model weights only and cannot be "
                              "resumed from")
    return torch.load(path, map_location="cpu", weights_only=True)
