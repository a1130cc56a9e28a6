"""Mean and spread over seeds: ``python -m ial_pipeline.spread --roots runs/seed0 runs/seed1 runs/seed2``.

Each root is the root of one finished pipeline run (``python -m ial_pipeline --seed N --root
runs/seedN``). Reads every ``qa_eval*/report.json`` there and prints, per system and question
set, the mean, min, max and max - min of street and district accuracy and of the refusal rate (in
%), so a recipe's result is judged by its spread, not by one lucky seed. ``--json FILE`` also
writes the table as JSON.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from ial_core.config import option, parse_config
from ial_core.files import write_json
from ial_pipeline.steps import QUESTION_SETS

METRICS = (("street_acc", "street"), ("district_acc", "district"), ("refusal_rate", "refusals"))


def read_reports(root: Path) -> dict[str, dict]:
    """``{question set: report}`` of one root; the design question is ``design``."""
    folders = {"design": root / "qa_eval", **{n: root / f"qa_eval_{n}" for n in QUESTION_SETS}}
    out = {}
    for name, folder in folders.items():
        path = folder / "report.json"
        if path.is_file():
            out[name] = json.loads(path.read_text(encoding="utf-8"))
    if "design" not in out:
        raise SystemExit(f"error: {root}: no qa_eval/report.json (is it a finished pipeline root?)")
    return out


def spread(roots: list[Path]) -> list[dict]:
    """One row per (question set, system, metric) present in every root."""
    reports = [read_reports(r) for r in roots]
    rows = []
    for qset in reports[0]:
        if not all(qset in r for r in reports):
            continue
        for system in reports[0][qset]["runs"]:
            if not all(system in r[qset]["runs"] for r in reports):
                continue
            for key, label in METRICS:
                values = [100 * r[qset]["runs"][system]["metrics"][key] for r in reports]
                rows.append({"questions": qset, "system": system, "metric": label,
                             "values": [round(v, 2) for v in values],
                             "mean": round(sum(values) / len(values), 2),
                             "min": round(min(values), 2), "max": round(max(values), 2),
                             "spread": round(max(values) - min(values), 2)})
    return rows


def markdown(rows: list[dict], roots: list[Path]) -> str:
    lines = [f"Over {len(roots)} runs ({', '.join(str(r) for r in roots)}), % of test images", "",
             "| questions | system | metric | mean | min | max | max - min |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['questions']} | {r['system']} | {r['metric']} | {r['mean']:.1f} | "
                     f"{r['min']:.1f} | {r['max']:.1f} | {r['spread']:.1f} |")
    return "\n".join(lines) + "\n"


@dataclass
class SpreadConfig:
    roots: list[Path] = option(help="pipeline roots, one per seed")
    json: Path | None = option(None, "also write the rows as JSON here")


def main(argv: list[str] | None = None) -> int:
    a = parse_config(SpreadConfig, argv, prog="python -m ial_pipeline.spread",
                     description=__doc__.split("\n")[0])
    rows = spread(a.roots)
    print(markdown(rows, a.roots), end="")
    if a.json:
        write_json(a.json, rows, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
