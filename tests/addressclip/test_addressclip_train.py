"""End to end on the synthetic city: train -> evaluate -> export, resume, and bad inputs."""

from __future__ import annotations

import csv
import json
import logging

import pytest
import torch
from safetensors.torch import load_file

from addressclip import train as train_mod
from addressclip.evaluate import evaluate_run
from addressclip.export import export_run
from addressclip.model import CheckpointError
from helpers.synthetic import make_synthetic_dataset

pytestmark = pytest.mark.slow

COMMON = ["--batch-size", "32", "--progress", "false", "--log-every", "1"]


@pytest.fixture(scope="module")
def trained(synthetic_dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "addressclip"
    rc = train_mod.main(["--data", str(synthetic_dataset), "--out", str(run), "--epochs", "5",
                         "--workers", "1", *COMMON])
    assert rc == 0
    return run


def _log(run, kind):
    return [r for r in map(json.loads, (run / "train_log.jsonl").read_text().splitlines())
            if r["kind"] == kind]


def test_training_lowers_every_loss_and_learns(trained):
    train_log = _log(trained, "train")
    first, last = train_log[0], train_log[-1]
    assert first["step"] == 1 and last["step"] == 30  # 192 images / 32 = 6 steps x 5 epochs
    for k in ("loss_address", "loss_caption", "loss_geography", "loss_total"):
        assert last[k] < first[k], k
    assert first["lr"] < last["lr"] or last["lr"] < max(r["lr"] for r in train_log)  # warm-up, decay
    val = _log(trained, "val")
    assert len(val) == 5 and val[-1]["ssa@1"] > 3 * 100 / 12  # far above chance (8.3%)
    assert (trained / "tensorboard").is_dir() and list((trained / "tensorboard").iterdir())
    assert (trained / "checkpoints" / "init" / "open_clip_model.safetensors").is_file()


def test_evaluate_beats_zero_shot_and_writes_reports(trained, tmp_path, caplog):
    out = tmp_path / "eval"
    m = evaluate_run(trained, out=out)
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("ssa@1", "ssa@5", "sa@1", "sa@5"):
        assert 0 <= saved[key] <= 100 and key in saved["zero_shot"]
    assert saved["sa@1"] >= saved["ssa@1"] and saved["ssa@5"] >= saved["ssa@1"]
    assert m["ssa@1"] > 3 * m["chance_ssa@1"]
    assert m["ssa@1"] > m["zero_shot"]["ssa@1"] + 15 and m["sa@1"] > m["zero_shot"]["sa@1"] + 15
    assert m["zero_shot"]["step"] == 0 and m["step"] == 30
    assert set(m["per_district"]) == {"Kallio", "Kamppi", "Toolo"}
    assert (out / "map.png").stat().st_size > 1000 and "SSA@1" in (out / "metrics.md").read_text()
    assert len((out / "predictions.csv").read_text().splitlines()) == 1 + m["n_images"]
    with open(out / "predictions.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))           # per-image hits, for paired comparisons of runs
    for key in ("ssa@1", "ssa@5", "sa@1", "sa@5"):
        assert 100 * sum(int(r[f"hit_{key}"]) for r in rows) / len(rows) == pytest.approx(m[key])
    assert all(r["hit_ssa@1"] == r["correct"] == str(int(r["predicted_address"] == r["true_address"]))
               for r in rows)
    assert all(r["hit_sa@1"] >= r["hit_ssa@1"] and r["hit_ssa@5"] >= r["hit_ssa@1"] for r in rows)
    assert m["timing"]["candidates_cached"] is False
    with caplog.at_level(logging.INFO, logger="addressclip"):
        again = evaluate_run(trained, out=out, zero_shot=False)
    assert again["timing"]["candidates_cached"] is True and again["ssa@1"] == m["ssa@1"]


def test_export_of_the_trained_tower_matches_open_clip(trained, tmp_path):
    from transformers import CLIPVisionModel
    report = export_run(trained, tmp_path / "hf")
    assert report["parity"]["max_abs_diff"] <= 1e-4 and report["parity"]["n_hidden_states"] == 5
    hf = CLIPVisionModel.from_pretrained(tmp_path / "hf")
    assert hf.config.num_hidden_layers == 4 and report["provenance"]["step"] == 30


def test_resume_continues_the_same_run_exactly(synthetic_dataset, tmp_path):
    args = ["--data", str(synthetic_dataset), "--epochs", "2", "--val-split", "none", *COMMON,
            "--limit-train", "96", "--batch-size", "16"]  # 6 steps per epoch
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train_mod.main([*args, "--out", str(straight), "--workers", "0"]) == 0
    # interrupted mid-epoch 1 (step 4 of 6), then resumed with a different number of workers
    assert train_mod.main([*args, "--out", str(split), "--workers", "0", "--stop-at-step", "4"]) == 0
    latest = json.loads((split / "checkpoints" / "latest.json").read_text())
    assert (latest["step"], latest["epoch"], latest["batch_in_epoch"]) == (4, 0, 4)
    assert train_mod.main(["--out", str(split), "--resume", "latest", "--workers", "1",
                           "--progress", "false"]) == 0
    a = load_file(str(straight / "checkpoints" / "step_000012" / "open_clip_model.safetensors"))
    b = load_file(str(split / "checkpoints" / "step_000012" / "open_clip_model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sa = torch.load(straight / "checkpoints" / "step_000012" / "training_state.pt", weights_only=True)
    sb = torch.load(split / "checkpoints" / "step_000012" / "training_state.pt", weights_only=True)
    for pid, st in sa["optimizer"]["state"].items():
        assert torch.equal(st["exp_avg_sq"], sb["optimizer"]["state"][pid]["exp_avg_sq"])
    # the logged steps continue without a gap or a repeat
    steps = [r["step"] for r in _log(split, "train")]
    assert steps == list(range(1, 13))


def test_refuses_to_overwrite_or_change_a_run(synthetic_dataset, tmp_path, caplog):
    run = tmp_path / "run"
    args = ["--data", str(synthetic_dataset), "--out", str(run), "--epochs", "1", "--workers", "0",
            "--val-split", "none", *COMMON, "--limit-train", "64"]  # 2 steps
    assert train_mod.main(args) == 0
    with caplog.at_level(logging.ERROR, logger="addressclip"):
        assert train_mod.main(args) == 2
    assert "already holds a run" in caplog.text
    with caplog.at_level(logging.ERROR, logger="addressclip"):
        assert train_mod.main(["--out", str(run), "--resume", "latest", "--lr", "1"]) == 2
    assert "cannot change lr when resuming" in caplog.text
    # a checkpoint whose weights belong to another architecture
    other = {k: v[..., :1].contiguous() if v.ndim else v for k, v in
             load_file(str(run / "checkpoints" / "step_000002" / "open_clip_model.safetensors")).items()}
    from safetensors.torch import save_file
    save_file(other, str(run / "checkpoints" / "step_000002" / "open_clip_model.safetensors"))
    with pytest.raises(CheckpointError, match="does not fit"):
        evaluate_run(run, out=tmp_path / "e", zero_shot=False)


def test_dataset_with_unknown_address_stops_training(tmp_path, caplog):
    data = make_synthetic_dataset(tmp_path / "d", n_districts=1, drop_candidate=True)
    with caplog.at_level(logging.ERROR, logger="addressclip"):
        rc = train_mod.main(["--data", str(data), "--out", str(tmp_path / "r"), "--epochs", "1",
                             "--workers", "0", *COMMON])
    assert rc == 2 and "missing from the candidate addresses" in caplog.text
