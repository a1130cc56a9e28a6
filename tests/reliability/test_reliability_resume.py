"""Interruption: a training process killed with SIGKILL mid-epoch resumes with ``--resume latest``
(stage one) / ``--resume_from_checkpoint latest`` (stage two) and ends with the same weights and
metrics as an uninterrupted run; a damaged checkpoint is detected at resume, named in a warning,
and the previous complete one is used.

Tolerance: bitwise. Every run here is fp32 on CPU with one thread per process (subprocesses with
``OMP_NUM_THREADS=1``, in-process runs under ``torch_threads(1)``), and with that the reduction order
is fixed, so weights, optimizer moments, per-step losses and validation metrics are compared with
``torch.equal`` / ``==``. (Other thread counts or GPUs would need a tolerance; not claimed here.)

The kills are made deterministic by ``tests/helpers/park_training.py``, which runs the real entry point and
parks it partway through writing a mid-epoch checkpoint; the test then kills its process group.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from addressclip import checkpoint as ckpt
from addressclip import train as stage_one
from addressclip.model import CheckpointError
from helpers.synthetic import make_synthetic_dataset
from llava_ial import train as stage_two
from llava_ial.testing import cached_tiny_stack, torch_threads

PARK = Path(__file__).resolve().parents[1] / "helpers" / "park_training.py"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
PARK_TIMEOUT_S = 300

# Stage one: 128 images / batch 16 = 8 steps per epoch, 2 epochs. Checkpoints every 3 steps and at
# epoch ends (keep 2): steps 3, 6, 8, 9 are on disk when the run parks while saving step 12
# (epoch 2, batch 4 of 8); latest is step 9 (epoch 2, batch 1), itself mid-epoch.
STAGE_ONE = ["--epochs", "2", "--limit-train", "128", "--batch-size", "16", "--save-every-steps", "3",
             "--workers", "0", "--progress", "false", "--log-every", "1"]
STAGE_ONE_PARK, STAGE_ONE_LATEST, STAGE_ONE_LAST = 12, "step_000009", "step_000016"
# Stage two: 64 conversations / batch 8 = 8 steps per epoch, 2 epochs, checkpoints every 3 steps
# (keep 2): checkpoint-3 and -6 are complete when the run parks while saving step 9 (epoch 2,
# batch 1), leaving checkpoint-9 without optimizer, RNG or trainer state.
STAGE_TWO = ["--learning_rate", "1e-3", "--per_device_train_batch_size", "8", "--limit", "64",
             "--num_train_epochs", "2", "--save_steps", "3", "--logging_steps", "1",
             "--report_to", "none", "--disable_tqdm", "True", "--dataloader_num_workers", "0"]
STAGE_TWO_PARK = 9


# ---------------------------------------------------------------------------------------- helpers

def _python(args: list[str], log: Path, **kw) -> subprocess.Popen:
    """``python ARGS`` in its own process group (so a kill reaches any children), one CPU thread."""
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, *args], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **ONE_THREAD}, cwd=log.parent,
                                start_new_session=True, **kw)


def _finish(proc: subprocess.Popen, log: Path) -> str:
    rc = proc.wait(timeout=PARK_TIMEOUT_S)
    text = log.read_text()
    assert rc == 0, f"{proc.args} exited {rc}:\n{text[-3000:]}"
    return text


def _reference_and_killed(root: Path, module: str, args: list[str], out_flag: str,
                          park_step: int) -> tuple[Path, Path]:
    """An uninterrupted run and, beside it (concurrently), the same run parked while saving
    ``park_step`` and then killed with SIGKILL: the two run folders."""
    reference, killed, marker = root / "reference", root / "killed", root / "parked"
    ref = _python(["-m", module, *args, out_flag, str(reference)], root / "reference.log")
    proc = _python([str(PARK), str(marker), str(park_step), module, *args, out_flag, str(killed)],
                   root / "killed.log")
    try:
        deadline = time.monotonic() + PARK_TIMEOUT_S
        while not marker.exists():
            assert proc.poll() is None, f"exited before parking:\n{(root / 'killed.log').read_text()}"
            assert time.monotonic() < deadline, "the run never reached the checkpoint to park in"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    _finish(ref, root / "reference.log")
    return reference, killed


def _assert_same_tensors(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys(), what
    diff = max((x.float() - b[k].float()).abs().max().item() for k, x in a.items())
    assert all(torch.equal(x, b[k]) for k, x in a.items()), f"{what}: max abs diff {diff}"


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


# ------------------------------------------------------------------------------ stage one (unit)

@pytest.fixture
def saved_steps(tmp_path):
    """A run folder with checkpoints of steps 1 and 2 (a tiny module: these tests check files)."""
    model = torch.nn.Linear(8, 4)
    opt = torch.optim.AdamW(model.parameters())
    for step in (1, 2):
        ckpt.save_checkpoint(tmp_path, clip=model, model_config={"model_cfg": {}}, optimizer=opt,
                             scaler=None, step=step, epoch=0, batch_in_epoch=step)
    return tmp_path, tmp_path / "checkpoints" / "step_000002"


DAMAGE_ONE = {
    "truncated-weights": lambda d: _truncate(d / ckpt.MODEL_FILE),
    "truncated-state": lambda d: _truncate(d / ckpt.STATE_FILE),
    "missing-state": lambda d: (d / ckpt.STATE_FILE).unlink(),
    "corrupt-state-json": lambda d: (d / ckpt.META_FILE).write_text('{"step": 2'),
    "folder-gone": lambda d: shutil.rmtree(d),
}


@pytest.mark.parametrize("damage", DAMAGE_ONE)
def test_stage_one_latest_falls_back_past_a_damaged_checkpoint(saved_steps, damage, caplog):
    run, latest = saved_steps
    DAMAGE_ONE[damage](latest)
    with caplog.at_level(logging.WARNING, logger="addressclip"):
        found = ckpt.resolve_checkpoint(run, "latest", for_resume=True)
    assert found.name == "step_000001"
    assert "checkpoint step_000002 is unusable" in caplog.text and str(latest) in caplog.text
    assert "using " in caplog.text and str(found) in caplog.text


def test_stage_one_damage_is_named_and_never_silently_replaced(saved_steps, caplog):
    run, latest = saved_steps
    (latest / ckpt.STATE_FILE).unlink()
    # evaluation needs the weights only: the same checkpoint is still fine for it
    assert ckpt.resolve_checkpoint(run, "latest") == latest
    with pytest.raises(CheckpointError, match=f"{latest / ckpt.STATE_FILE}: missing; .* cannot be resumed"):
        ckpt.resolve_checkpoint(run, "step_000002", for_resume=True)    # named explicitly: no fallback
    _truncate(run / "checkpoints" / "step_000001" / ckpt.MODEL_FILE)
    with pytest.raises(CheckpointError, match="every one is damaged") as err:
        ckpt.resolve_checkpoint(run, "latest", for_resume=True)
    assert "step_000001/open_clip_model.safetensors: truncated or corrupt" in str(err.value)


def test_stage_one_unreadable_pointer_falls_back_to_the_newest_complete_step(saved_steps, caplog):
    run, latest = saved_steps
    (run / "checkpoints" / ckpt.LATEST).write_text('{"checkpoint": "step_0')     # torn by hand
    with caplog.at_level(logging.WARNING, logger="addressclip"):
        assert ckpt.resolve_checkpoint(run, "latest", for_resume=True) == latest
    assert f"{run / 'checkpoints' / ckpt.LATEST}: unreadable" in caplog.text
    (run / "checkpoints" / ckpt.LATEST).unlink()      # killed between publishing and pointing
    assert ckpt.resolve_checkpoint(run, "latest", for_resume=True) == latest


def test_stage_one_leftovers_of_interrupted_saves_are_removed(saved_steps):
    run, _ = saved_steps
    root = run / "checkpoints"
    leftovers = [root / ".step_000003.tmp.4242", root / ".step_000002.old.4242"]
    for d in leftovers:
        d.mkdir()
        (d / ckpt.MODEL_FILE).write_bytes(b"partial")
    (root / ".latest.json.4242.tmp").write_text("{")
    removed = ckpt.remove_stale_temporaries(run)
    assert len(removed) == 3 and not any(p.exists() for p in removed)
    assert sorted(p.name for p in root.iterdir()) == ["latest.json", "step_000001", "step_000002"]


def test_stage_one_torn_log_line_is_dropped_on_resume(tmp_path, caplog):
    log = tmp_path / "train_log.jsonl"
    log.write_text('{"kind": "train", "step": 1}\n{"kind": "train", "step": 2}\n{"kind": "tra')
    with caplog.at_level(logging.WARNING, logger="addressclip"):
        kept = stage_one.log_lines_until(log, 1)
    assert kept == ['{"kind": "train", "step": 1}'] and f"{log}:3: unreadable" in caplog.text


# ------------------------------------------------------------------------------- stage one (e2e)

@pytest.fixture(scope="module")
def stage_one_runs(synthetic_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("stage_one_kill")
    reference, killed = _reference_and_killed(root, "addressclip.train",
                                              ["--data", str(synthetic_dataset), *STAGE_ONE], "--out",
                                              STAGE_ONE_PARK)
    shutil.copytree(killed, root / "killed.pristine")
    return reference, killed


def _killed_run(killed: Path) -> Path:
    """The killed run folder as the kill left it. (A stage-one run cannot be resumed from another
    path: config.yaml pins --out. So each test gets the pristine copy back in place.)"""
    shutil.rmtree(killed)
    shutil.copytree(killed.with_name("killed.pristine"), killed)
    return killed


def _stage_one_matches(reference: Path, resumed: Path) -> None:
    last_a, last_b = (run / "checkpoints" / STAGE_ONE_LAST for run in (reference, resumed))
    weights_a, weights_b = (load_file(str(d / ckpt.MODEL_FILE)) for d in (last_a, last_b))
    _assert_same_tensors(weights_a, weights_b, "final weights")
    adam_a, adam_b = (torch.load(d / ckpt.STATE_FILE, weights_only=True)["optimizer"]["state"]
                      for d in (last_a, last_b))
    for pid, moments in adam_a.items():
        _assert_same_tensors(moments, adam_b[pid], f"optimizer state of parameter {pid}")
    summary_a, summary_b = (json.loads((run / "train_summary.json").read_text())
                            for run in (reference, resumed))
    assert summary_b["steps"] == summary_a["steps"] == 16 and summary_b["val"] == summary_a["val"]
    steps = [r["step"] for r in map(json.loads, (resumed / "train_log.jsonl").read_text().splitlines())
             if r["kind"] == "train"]
    assert steps == list(range(1, 17))           # no gap, no repeat


@pytest.mark.slow
def test_stage_one_kill9_mid_epoch_then_resume_latest_matches_uninterrupted(stage_one_runs, tmp_path):
    reference, killed = stage_one_runs
    run = _killed_run(killed)
    root = run / "checkpoints"
    latest = json.loads((root / ckpt.LATEST).read_text())
    assert (latest["checkpoint"], latest["epoch"], latest["batch_in_epoch"]) == (STAGE_ONE_LATEST, 1, 1)
    assert list(root.glob(".step_000012.tmp.*")) and not (root / "step_000012").exists()
    assert not (run / "train_summary.json").exists()
    log = tmp_path / "resume.log"
    text = _finish(_python(["-m", "addressclip.train", "--out", str(run), "--resume", "latest",
                            "--workers", "0", "--progress", "false"], log), log)
    assert f"resumed {root / STAGE_ONE_LATEST} at step 9 (epoch 1, batch 1)" in text
    assert "left by an interrupted save" in text and not list(root.glob(".*"))
    _stage_one_matches(reference, run)


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated-weights", "missing-state"])
def test_stage_one_resume_skips_a_damaged_latest_checkpoint(stage_one_runs, damage, caplog):
    reference, killed = stage_one_runs
    run = _killed_run(killed)
    latest = run / "checkpoints" / STAGE_ONE_LATEST
    DAMAGE_ONE[damage](latest)
    with torch_threads(1), caplog.at_level(logging.INFO, logger="addressclip"):
        assert stage_one.main(["--out", str(run), "--resume", "latest", "--workers", "0",
                               "--progress", "false"]) == 0
    named = latest / (ckpt.MODEL_FILE if damage == "truncated-weights" else ckpt.STATE_FILE)
    assert f"checkpoint {STAGE_ONE_LATEST} is unusable: {named}" in caplog.text
    assert "step_000008 at step 8 (epoch 1, batch 0)" in caplog.text
    _stage_one_matches(reference, run)


# ------------------------------------------------------------------------------ stage two (unit)

def _trainer_checkpoint(folder: Path, step: int) -> Path:
    """A folder with the files of a Trainer checkpoint (tiny contents: these tests check files)."""
    folder.mkdir(parents=True)
    save_file({"w": torch.zeros(16, 16)}, str(folder / "model.safetensors"))
    torch.save({"state": {0: {"exp_avg": torch.zeros(16, 16)}}}, folder / "optimizer.pt")
    torch.save({"python": 1}, folder / "rng_state.pth")
    (folder / "config.json").write_text("{}")
    (folder / stage_two.TRAINER_STATE).write_text(json.dumps({"global_step": step}))
    return folder


DAMAGE_TWO = {
    "truncated-weights": ("model.safetensors", _truncate),
    "truncated-optimizer": ("optimizer.pt", _truncate),
    "missing-trainer-state": ("trainer_state.json", Path.unlink),
    "corrupt-config": ("config.json", lambda p: p.write_text('{"model')),
}


@pytest.mark.parametrize("damage", DAMAGE_TWO)
def test_stage_two_latest_falls_back_past_a_damaged_checkpoint(tmp_path, damage, caplog):
    _trainer_checkpoint(tmp_path / "checkpoint-2", 2)
    newest = _trainer_checkpoint(tmp_path / "checkpoint-10", 10)     # numeric, not lexical, order
    name, hurt = DAMAGE_TWO[damage]
    hurt(newest / name)
    with caplog.at_level(logging.WARNING, logger="llava_ial"):
        assert stage_two.latest_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert f"checkpoint checkpoint-10 is unusable: {newest / name}" in caplog.text
    assert f"resuming from {tmp_path / 'checkpoint-2'}" in caplog.text


def test_stage_two_damage_is_named_and_never_silently_replaced(tmp_path):
    from llava_ial.config import parse_args
    only = _trainer_checkpoint(tmp_path / "checkpoint-4", 4)
    _truncate(only / "model.safetensors")

    def resume(value):
        *_, targs = parse_args(["--model", "M", "--conversations", "C", "--output_dir", str(tmp_path),
                                "--report_to", "none", "--resume_from_checkpoint", value])
        return stage_two.resolve_resume(targs)
    with pytest.raises(ValueError, match=f"{only}: .*{only / 'model.safetensors'}: truncated"):
        resume(str(only))                                      # named explicitly: no fallback
    with pytest.raises(ValueError, match="every one is damaged.*checkpoint-4/model.safetensors"):
        resume("latest")                                       # damaged, and nothing to fall back to
    shutil.rmtree(only)
    assert resume("latest") is None                            # no checkpoint yet: a fresh start
    sharded = _trainer_checkpoint(tmp_path / "checkpoint-5", 5)
    (sharded / "model.safetensors").rename(sharded / "model-00001-of-00002.safetensors")
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    assert stage_two.trainer_checkpoint_problem(sharded) == (f"{sharded / 'model-00002-of-00002.safetensors'}: "
                                                     "missing (listed in model.safetensors.index.json)")


# ------------------------------------------------------------------------------- stage two (e2e)

@pytest.fixture(scope="module")
def stage_two_runs(tmp_path_factory):
    _, st = cached_tiny_stack(tmp_path_factory.getbasetemp(), make_synthetic_dataset)
    root = tmp_path_factory.mktemp("stage_two_kill")
    args = ["--model", str(st.model), "--conversations", str(st.conversations / "instruct_train.json"),
            *STAGE_TWO]
    reference, killed = _reference_and_killed(root, "llava_ial.train", args, "--output_dir", STAGE_TWO_PARK)
    return args, reference, killed


def _stage_two_matches(reference: Path, resumed: Path) -> None:
    _assert_same_tensors(load_file(str(reference / "model" / "model.safetensors")),
                         load_file(str(resumed / "model" / "model.safetensors")), "final weights")
    losses_a, losses_b = ([(h["step"], h["loss"]) for h in json.loads((d / "train_summary.json").read_text())
                           ["log_history"] if "loss" in h] for d in (reference, resumed))
    assert len(losses_a) == 16 and losses_b == losses_a      # every step's loss, bit for bit


@pytest.mark.slow
def test_stage_two_kill9_mid_epoch_then_resume_latest_matches_uninterrupted(stage_two_runs, tmp_path):
    args, reference, killed = stage_two_runs
    run = tmp_path / "run"
    shutil.copytree(killed, run)
    assert (run / "checkpoint-6" / stage_two.TRAINER_STATE).is_file()
    partial = run / f"checkpoint-{STAGE_TWO_PARK}"
    assert (partial / "model.safetensors").is_file() and not (partial / stage_two.TRAINER_STATE).exists()
    log = tmp_path / "resume.log"
    text = _finish(_python(["-m", "llava_ial.train", *args, "--output_dir", str(run),
                            "--resume_from_checkpoint", "latest"], log), log)
    assert f"checkpoint checkpoint-9 is unusable: {partial / stage_two.TRAINER_STATE}: missing" in text
    assert f"resumed model weights from {run / 'checkpoint-6'}" in text
    _stage_two_matches(reference, run)


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated-weights", "missing-trainer-state"])
def test_stage_two_resume_skips_a_damaged_checkpoint(stage_two_runs, tmp_path, damage, caplog):
    args, reference, killed = stage_two_runs
    run = tmp_path / "run"
    shutil.copytree(killed, run)
    name, hurt = DAMAGE_TWO[damage]
    hurt(run / "checkpoint-6" / name)
    with torch_threads(1), caplog.at_level(logging.INFO, logger="llava_ial"):
        stage_two.train([*args, "--output_dir", str(run), "--resume_from_checkpoint", "latest"])
    assert f"checkpoint checkpoint-6 is unusable: {run / 'checkpoint-6' / name}" in caplog.text
    assert f"resumed model weights from {run / 'checkpoint-3'}" in caplog.text
    _stage_two_matches(reference, run)
