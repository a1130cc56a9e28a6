"""Mean and spread over seeds (python -m ial_pipeline.spread) from the roots' QA reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ial_pipeline.spread import main, spread


def _root(path: Path, street: float, district: float, heldout_street: float | None = None) -> Path:
    def report(s, d):
        return {"runs": {"llava-ial": {"metrics": {"street_acc": s, "district_acc": d,
                                                   "refusal_rate": 0.0}}}}
    (path / "qa_eval").mkdir(parents=True)
    (path / "qa_eval" / "report.json").write_text(json.dumps(report(street, district)))
    if heldout_street is not None:
        (path / "qa_eval_heldout").mkdir()
        (path / "qa_eval_heldout" / "report.json").write_text(json.dumps(report(heldout_street, 0.5)))
    return path


def test_mean_min_max_spread(tmp_path, capsys):
    roots = [_root(tmp_path / "a", 0.30, 0.90, 0.28), _root(tmp_path / "b", 0.34, 0.92, 0.30),
             _root(tmp_path / "c", 0.32, 0.91)]
    rows = {(r["questions"], r["metric"]): r for r in spread(roots)}
    street = rows[("design", "street")]
    assert street["values"] == [30.0, 34.0, 32.0]
    assert (street["mean"], street["min"], street["max"], street["spread"]) == (32.0, 30.0, 34.0, 4.0)
    assert rows[("design", "district")]["mean"] == 91.0
    assert not any(q == "heldout" for q, _ in rows)      # only in two of the three roots
    assert main(["--roots", *[str(r) for r in roots]]) == 0
    assert "| design | llava-ial | street | 32.0 | 30.0 | 34.0 | 4.0 |" in capsys.readouterr().out


def test_a_root_without_reports_is_named(tmp_path):
    with pytest.raises(SystemExit, match="nothing: no qa_eval/report.json"):
        spread([_root(tmp_path / "a", 0.3, 0.9), tmp_path / "nothing"])
