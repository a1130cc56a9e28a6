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

Atomicity: a checkpoint directory is written under a temporary name and renamed into place with
``os.replace``; only then is ``latest.json`` rewritten (temporary file + ``os.replace``). A crash at
any moment leaves ``latest.json`` pointing at a complete checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from addressclip.model import CheckpointError

CHECKPOINTS = "checkpoints"
INIT = "init"
LATEST = "latest.json"
MODEL_FILE = "open_clip_model.safetensors"
CONFIG_FILE = "open_clip_config.json"
STATE_FILE = "training_state.pt"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_model_files(directory: Path, clip: torch.nn.Module, config: dict) -> None:
    """The open_clip model as ``open_clip_config.json`` + ``open_clip_model.safetensors``."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in clip.state_dict().items()}
    save_file(state, str(directory / MODEL_FILE), metadata={"format": "pt"})
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=list), encoding="utf-8")


def _publish(tmp: Path, final: Path) -> None:
    if final.exists():  # re-saving the same step (e.g. after a resume): swap, then delete the old one
        old = final.with_name(f".{final.name}.old.{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def save_model_dir(path: str | Path, clip: torch.nn.Module, config: dict) -> Path:
    """Atomically write a model-only checkpoint directory (used for ``init``)."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_model_files(tmp, clip, config)
    _publish(tmp, final)
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
    tmp = ckpt_root / f".{name}.tmp.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    write_model_files(tmp, clip, model_config)
    meta = {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, **(extra or {})}
    torch.save({"optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else {},
                "rng": rng_state(), **meta}, tmp / STATE_FILE)
    (tmp / "state.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    _publish(tmp, final)
    _atomic_write_text(ckpt_root / LATEST, json.dumps({"checkpoint": name, **meta}, indent=2))
    steps = sorted(p for p in ckpt_root.glob("step_*") if p.is_dir())
    for old in steps[:-keep] if keep > 0 else []:
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def resolve_checkpoint(run_dir: str | Path, which: str) -> Path:
    """``latest``, ``init``, a name under ``checkpoints/`` or a directory path -> checkpoint dir."""
    ckpt_root = Path(run_dir) / CHECKPOINTS
    if which == "latest":
        pointer = ckpt_root / LATEST
        if not pointer.is_file():
            raise CheckpointError(f"{pointer}: no checkpoint to resume from (no training step has "
                                  "been saved in this run directory yet)")
        path = ckpt_root / json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
    elif (ckpt_root / which).is_dir():
        path = ckpt_root / which
    else:
        path = Path(which)
    if not (path / MODEL_FILE).is_file():
        raise CheckpointError(f"{path}: not a checkpoint directory (no {MODEL_FILE})")
    return path


def load_training_state(ckpt_dir: str | Path) -> dict:
    path = Path(ckpt_dir) / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; {ckpt_dir} holds model weights only and cannot be "
                              "resumed from")
    return torch.load(path, map_location="cpu", weights_only=True)
