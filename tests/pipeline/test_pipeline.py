"""The main job (``python -m ial_pipeline``): which steps run, reuse, resume, and the whole chain on a
small build of the embedded city."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
import yaml

from ial_pipeline.__main__ import main, run
from ial_pipeline.config import PipelineConfig
from ial_pipeline.runner import Ledger, StepFailed, decide, execute
from ial_pipeline.steps import Paths, Step, build_steps


def _touch_step(paths: Paths, name: str, deps: tuple[str, ...] = (), code: int = 0) -> Step:
    """A step whose command writes its product (or fails with ``code``)."""
    product = paths.root / name / "done.txt"
    script = (f"import pathlib, sys; p = pathlib.Path({str(product)!r}); "
              f"p.parent.mkdir(parents=True, exist_ok=True); p.write_text('x'); sys.exit({code})")
    return Step(name, name, deps, product, (product.parent,),
                lambda resume: [sys.executable, "-c", script])


def test_reuse_rerun_after_input_change_and_forced(tmp_path):
    paths = Paths(tmp_path, tmp_path / "data")
    ledger = Ledger(paths)
    a, b = _touch_step(paths, "a"), _touch_step(paths, "b", deps=("a",))
    assert decide(a, ledger, False).action == "run"
    execute(a, decide(a, ledger, False), paths, ledger)
    execute(b, decide(b, ledger, False), paths, ledger)
    assert decide(a, ledger, False).action == decide(b, ledger, False).action == "reuse"
    time.sleep(0.02)
    execute(a, decide(a, ledger, True), paths, ledger)           # a redone: b is out of date
    assert decide(b, ledger, False).action == "run"
    assert decide(b, ledger, False).reason == "an input changed"
    b.product.unlink()                                           # a product deleted by hand
    assert decide(b, ledger, False).action == "run"
    assert ledger.record("a")["seconds"] >= 0 and ledger.record("a")["command"][0] == sys.executable


def test_unfinished_step_is_resumed_only_on_unchanged_inputs(tmp_path):
    paths = Paths(tmp_path, tmp_path / "data")
    ledger = Ledger(paths)
    a = _touch_step(paths, "a")
    execute(a, decide(a, ledger, False), paths, ledger)
    b = Step("b", "b", ("a",), tmp_path / "b" / "done.txt", (tmp_path / "b",),
             lambda resume: [sys.executable, "-c", "raise SystemExit(3)"], resumable=True)
    with pytest.raises(StepFailed, match="step b failed .exit 3.; its log: .*b.log"):
        execute(b, decide(b, ledger, False), paths, ledger)
    assert "raise SystemExit(3)" in (paths.logs / "b.log").read_text()
    assert decide(b, ledger, False).action == "resume"           # interrupted on the same inputs
    time.sleep(0.02)
    execute(a, decide(a, ledger, True), paths, ledger)
    assert decide(b, ledger, False) .action == "run"             # ... but not after a changed


def test_a_step_without_its_product_fails(tmp_path):
    paths = Paths(tmp_path, tmp_path / "data")
    ledger = Ledger(paths)
    step = Step("x", "x", (), tmp_path / "never", (), lambda resume: [sys.executable, "-c", "pass"])
    with pytest.raises(StepFailed):
        execute(step, decide(step, ledger, False), paths, ledger)
    assert ledger.done("x") is None


def test_steps_and_unknown_step_names(tmp_path, capsys):
    names = [s.name for s in build_steps(PipelineConfig(root=tmp_path))]
    assert names == ["data", "stage1_train", "stage1_eval", "stage1_export", "stage1_candidates",
                     "conversations",
                     "stage2_lm", "stage2_compose", "stage2_pretrain", "stage2_finetune",
                     "stage2_export", "qa_eval", "qa_poster", "qa_heldout",
                     "qa_heldout_unanswerable"]
    plain = build_steps(PipelineConfig(root=tmp_path, candidates=0))
    assert "stage1_candidates" not in [s.name for s in plain]
    assert all("--candidates" not in s.command(False) for s in plain)
    given = build_steps(PipelineConfig(root=tmp_path, data=tmp_path / "mine"))
    assert "data" not in [s.name for s in given]
    assert all("data" not in s.deps for s in given)
    untuned = build_steps(PipelineConfig(root=tmp_path, untuned_baseline=True))
    assert [s.name for s in untuned if s.name.startswith("untuned")] == [
        "untuned_compose", "untuned_pretrain", "untuned_finetune", "untuned_export"]
    compose = next(s for s in untuned if s.name == "untuned_compose").command(False)
    assert compose[compose.index("--random_vision_init") + 1] == "True"
    qa = next(s for s in untuned if s.name == "qa_eval")
    assert "untuned_export" in qa.deps and f"llava-ial-untuned=hf:{tmp_path}/llava_ial/untuned/export" \
        in qa.command(False)
    heldout = next(s for s in untuned if s.name == "qa_heldout").command(False)
    assert heldout[heldout.index("--prompts") + 1] == "heldout"
    with pytest.raises(SystemExit, match="unknown step"):
        run(PipelineConfig(root=tmp_path, only=["stage3"]))
    assert main(["--root", str(tmp_path), "--list_steps"]) == 0
    out = capsys.readouterr().out
    assert "qa_eval          run" in out and "python -m eval.qa_eval" in out


# ---- the whole chain, small -------------------------------------------------------------------

def _write_yaml(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def small_settings(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("settings")
    data = _write_yaml(d / "data.yaml", {"spacing_m": 80.0, "headings": 1, "image_size": 32,
                                         "workers": 1})
    stage1 = _write_yaml(d / "stage1.yaml", {"data": {"workers": 0}, "optim": {
        "epochs": 2, "batch_size": 32}, "run": {"progress": False}})
    common = {"num_train_epochs": 1, "per_device_train_batch_size": 8, "logging_steps": 2,
              "dataloader_num_workers": 0, "disable_tqdm": True, "limit": 96}
    pre = _write_yaml(d / "pre.yaml", {**common, "stage": "pretrain", "learning_rate": 1e-3,
                                      "save_strategy": "no"})
    fine = _write_yaml(d / "fine.yaml", {**common, "stage": "finetune", "learning_rate": 3e-3,
                                        "save_strategy": "epoch", "save_total_limit": 1})
    return ["--data_config", str(data), "--stage1_config", str(stage1), "--pretrain_config",
            str(pre), "--finetune_config", str(fine), "--nproc", "1", "--qa_limit", "8"]


@pytest.fixture(scope="module")
def first_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("first") / "runs"


QA_FOLDERS = ("qa_eval", "qa_eval_poster", "qa_eval_heldout", "qa_eval_heldout_unanswerable")


@pytest.mark.slow
def test_whole_chain_then_reuse_then_one_step_alone(first_root, small_settings, capsys):
    root = first_root
    assert main(["--root", str(root), *small_settings]) == 0
    first = json.loads((root / "pipeline.json").read_text())
    assert set(first["actions"].values()) == {"ran"} and len(first["actions"]) == 15
    metrics = json.loads((root / "addressclip" / "eval" / "metrics.json").read_text())
    assert "zero_shot" in metrics
    report = json.loads((root / "qa_eval" / "report.json").read_text())
    assert list(report["runs"]) == ["llava-ial", "addressclip", "baseline-majority",
                                    "baseline-random"]
    assert report["references"]["n"] == 8
    assert all(r["failure"] is None and not r["errors"] for r in report["runs"].values())
    meta = json.loads((root / "llava_ial" / "export" / "llava_ial.json").read_text())
    assert meta["kind"] == "full"
    summary = (root / "summary.md").read_text()
    for text in ("| AddressCLIP |", "| zero-shot (untrained) |", "| llava-ial |",
                 "| baseline-majority |", "| qa_eval | ran |", "LLaVA-IAL, servable HF folder",
                 "| address phrasings training never sees | 8 |", "| qa_heldout | ran |"):
        assert text in summary, text
    assert summary in capsys.readouterr().out

    start = time.perf_counter()                                  # everything reused
    assert main(["--root", str(root), *small_settings]) == 0
    assert time.perf_counter() - start < 30
    second = json.loads((root / "pipeline.json").read_text())
    assert set(second["actions"].values()) == {"reused"}
    assert (root / "summary.md").read_text().split("Steps")[0] == summary.split("Steps")[0]

    mtime = os.stat(root / "qa_eval" / "report.json").st_mtime    # one step alone
    assert main(["--root", str(root), *small_settings, "--only", "stage1_eval"]) == 0
    assert json.loads((root / "pipeline.json").read_text())["actions"] == {"stage1_eval": "ran"}
    assert os.stat(root / "qa_eval" / "report.json").st_mtime == mtime
    # stage one's evaluation feeds nothing downstream: a full run now reuses every step
    assert main(["--root", str(root), *small_settings]) == 0
    assert set(json.loads((root / "pipeline.json").read_text())["actions"].values()) == {"reused"}


@pytest.mark.slow
def test_same_seed_gives_identical_qa_metrics(first_root, small_settings, tmp_path):
    """A second run from scratch with the same seed on this machine: the same answers and metrics."""
    if not (first_root / "qa_eval" / "report.json").is_file():
        pytest.skip("needs the whole-chain test's run")
    again = tmp_path / "again"
    assert main(["--root", str(again), *small_settings]) == 0
    for folder in QA_FOLDERS:
        first, second = (json.loads((r / folder / "report.json").read_text())
                         for r in (first_root, again))
        assert first["runs"].keys() == second["runs"].keys()
        for name in first["runs"]:
            assert first["runs"][name]["metrics"] == second["runs"][name]["metrics"], (folder, name)
        answers = [(r / folder / "runs" / "llava-ial.jsonl").read_text().splitlines()
                   for r in (first_root, again)]
        assert sorted(answers[0]) == sorted(answers[1]) and answers[0], folder
