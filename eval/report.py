"""``report.json`` (everything, per run and per item) and ``report.md`` (the side-by-side tables).

Rates are fractions 0-1 in JSON and percentages in Markdown. Each run's entry holds its metrics with
95% intervals, the per-district breakdown, counts of answer kinds and qualifiers, its problems
(the backend's failure, per-item errors with their reasons, issues such as unknown ids) and, unless
switched off, every item: answer, truth, parsed fields, what was right and metres off.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from eval.address_parser import ParsedAnswer
from eval.metrics import ItemScores, per_district, summarize
from eval.references import Reference
from eval.runner import RunRecord
from ial_core.files import write_text


def run_entry(record: RunRecord, refs: list[Reference], parsed: list[ParsedAnswer | None],
              scores: ItemScores, *, bootstrap: int, seed: int, keep_items: bool) -> dict:
    errors = [{"id": r.id, "reason": record.results[r.id].error} for r, p in zip(refs, parsed)
              if p is None]
    entry = {
        "backend": record.backend, "spec": record.spec, "failure": record.failure,
        "answers_file": record.store, "reused_answers": record.reused,
        "seconds": round(record.seconds, 3),
        "metrics": summarize(scores, bootstrap=bootstrap, seed=seed),
        "per_district": per_district(refs, scores),
        "kinds": dict(Counter(p.kind if p else "error" for p in parsed)),
        "qualifiers": dict(Counter(q for p in parsed if p for q in p.qualifiers)),
        "errors": errors, "error_reasons": _reasons(errors), "issues": record.issues,
    }
    if keep_items:
        entry["items"] = [_item(r, record.results[r.id].answer, record.results[r.id].error, p, scores, i)
                          for i, (r, p) in enumerate(zip(refs, parsed))]
    return entry


def write_reports(out_dir: Path, report: dict) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = out_dir / "report.json", out_dir / "report.md"
    write_text(paths[0], json.dumps(_finite(report), indent=1, ensure_ascii=False, allow_nan=False,
                                    default=_jsonable))
    write_text(paths[1], markdown(report))
    return paths


def markdown(report: dict) -> str:
    refs = report["references"]
    runs = report["runs"]
    lines = [f"# QA evaluation: {refs['city']}", "",
             f"{refs['n']} items from `{refs['source']}`; gazetteer `{refs['gazetteer']}`. "
             "Rates in % over all items (a missing or failed answer counts as wrong); "
             "[95% bootstrap interval].", "",
             "| run | backend | street | district | address | sub-street | street, any guess | "
             "refusal | no street | errors | ≤25 m | ≤100 m | ≤250 m | median m |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, run in runs.items():
        m, ci = run["metrics"], run["metrics"].get("ci95", {})
        cells = [name, run["backend"]]
        cells += [_pct(m.get(k), ci.get(k)) for k in ("street_acc", "district_acc", "address_acc")]
        cells += [_pct(m.get(k)) for k in ("sub_street_acc", "street_acc_any_guess",
                                           "refusal_rate", "no_street_rate",
                                           "error_rate", "within_25m", "within_100m", "within_250m")]
        cells.append("-" if m.get("median_distance_m") is None else f"{m['median_distance_m']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += _district_table(runs) + _problems(runs)
    notes = report.get("notes") or []
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _district_table(runs: dict) -> list[str]:
    districts = sorted({d for run in runs.values() for d in run["per_district"]})
    if not districts:
        return []
    names = list(runs)
    lines = ["", "## Per district: street / address accuracy %", "",
             "| district | n | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    for d in districts:
        first = next((r["per_district"][d] for r in runs.values() if d in r["per_district"]), {})
        cells = [d, str(first.get("n", 0))]
        for name in names:
            m = runs[name]["per_district"].get(d)
            cells.append("-" if m is None else f"{100 * m['street_acc']:.1f} / {100 * m['address_acc']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _problems(runs: dict) -> list[str]:
    lines = []
    for name, run in runs.items():
        rows = []
        if run.get("failure"):
            rows.append(f"- run failed: {run['failure']}")
        for reason in run["error_reasons"][:10]:
            rows.append(f"- {reason['count']} item(s): {reason['reason']} (e.g. "
                        f"{', '.join(reason['examples'])})")
        issues = run.get("issues") or []
        for issue in issues[:10]:
            where = ", ".join(f"{k} {issue[k]}" for k in ("line", "id") if k in issue)
            rows.append(f"- {where}: {issue['reason']}")
        if len(issues) > 10:
            rows.append(f"- ... {len(issues) - 10} more issues in report.json")
        if rows:
            lines += ["", f"## Problems: {name}", ""] + rows
    return lines


def _item(ref: Reference, answer: str | None, error: str | None, parsed: ParsedAnswer | None,
          s: ItemScores, i: int) -> dict:
    d = float(s.distance_m[i])
    return {"id": ref.id, "answer": answer, "error": error,
            "truth": {"street": ref.street, "cross_street": ref.cross_street,
                      "district": ref.district, "city": ref.city},
            "parsed": parsed.as_dict() if parsed else None,
            "correct": {"street": bool(s.street[i]), "street_any_guess": bool(s.street_any_guess[i]),
                        "district": bool(s.district[i]), "address": bool(s.address[i]),
                        "sub_street": bool(s.sub_street[i])},
            "distance_m": None if math.isnan(d) else round(d, 2)}


def _reasons(errors: list[dict]) -> list[dict]:
    by: dict[str, list[str]] = {}
    for e in errors:
        by.setdefault(e["reason"] or "unknown", []).append(e["id"])
    return [{"reason": r, "count": len(ids), "examples": ids[:3]}
            for r, ids in sorted(by.items(), key=lambda kv: -len(kv[1]))]


def _pct(x, ci=None) -> str:
    if x is None:
        return "-"
    text = f"{100 * x:.1f}"
    return text + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def _finite(value):
    """NaN and infinities become null (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)
