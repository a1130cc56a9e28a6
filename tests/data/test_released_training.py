"""Stage one trains on released benchmarks converted from each distributed form (a few steps)."""

from __future__ import annotations

import json

import pytest

from addressclip import train as train_mod
from data_gen.released import released_to_dataset
from helpers.released import AMP, PAREN, make_pitts, make_sf

pytestmark = pytest.mark.slow

ARGS = ["--epochs", "1", "--batch-size", "8", "--workers", "0", "--progress", "false", "--log-every", "1"]


def _train(data, run) -> list[dict]:
    assert train_mod.main(["--data", str(data), "--out", str(run), *ARGS]) == 0
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("form,coords", [(AMP, "dbstruct"), (PAREN, "matrix")])
def test_stage_one_trains_on_converted_pitts(tmp_path, form, coords):
    files = make_pitts(tmp_path / "p", train_form=form, query_form=PAREN if form == AMP else AMP)
    released_to_dataset({"train": files["train"], "database": files["database"],
                         "queries": files["queries"]}, files[coords], city="Pittsburgh",
                        utm_zone="17N", image_root=files["images"], out_dir=tmp_path / "ds")
    log = _train(tmp_path / "ds", tmp_path / "run")
    steps = [r for r in log if r["kind"] == "train"]
    assert steps and all(r["loss_total"] == r["loss_total"] for r in steps)      # finite, no NaN
    assert [r for r in log if r["kind"] == "val"], "the carved-out val split was validated"


def test_stage_one_trains_on_converted_sfxl(tmp_path):
    files = make_sf(tmp_path / "sf")
    released_to_dataset({"train": files["train"], "test": files["test"]}, "sfxl-filenames",
                        city="San Francisco", utm_zone=None, image_root=files["images"],
                        out_dir=tmp_path / "ds")
    log = _train(tmp_path / "ds", tmp_path / "run")
    assert [r for r in log if r["kind"] == "train"]
