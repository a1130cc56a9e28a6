"""The end-of-run summary: stage one's retrieval accuracy, the QA table, step times, artefacts.

Everything is read back from the files the steps wrote (``addressclip/eval/metrics.json``,
``qa_eval/report.json``, ``.pipeline/*.done``), so a second run that reuses every step prints the
same table.
"""

from __future__ import annotations

import json
from pathlib import Path

from ial_pipeline.steps import QUESTION_SETS, Paths, Step


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _pct(value, ci=None) -> str:
    if value is None:
        return "-"
    text = f"{100 * value:.1f}"
    if ci and ci[0] is not None:
        text += f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    return text


def stage_one_table(metrics: dict) -> list[str]:
    keys = ("ssa@1", "ssa@5", "sa@1", "sa@5")
    lines = [f"Stage one, AddressCLIP: closed-set retrieval over {metrics['n_candidates']} sub-street "
             f"addresses, {metrics['n_images']} {metrics['split']} images (chance SSA@1 "
             f"{metrics['chance_ssa@1']:.2f}%)", "",
             "| model | SSA@1 | SSA@5 | SA@1 | SA@5 |", "|---|---|---|---|---|"]
    zs = metrics.get("zero_shot")
    if zs:
        lines.append("| zero-shot (untrained) | " + " | ".join(f"{zs[k]:.1f}" for k in keys) + " |")
    lines.append("| AddressCLIP | " + " | ".join(f"{metrics[k]:.1f}" for k in keys) + " |")
    return lines


def qa_table(report: dict) -> list[str]:
    refs = report["references"]
    with_candidates = (" (each question preceded by AddressCLIP's top streets for the image)"
                       if report.get("questions", {}).get("candidates") else "")
    lines = [f"Question answering: free-form answers to \"{report['config']['prompt']}\"{with_candidates} "
             f"parsed into street and district, {refs['n']} images (% correct, 95% bootstrap interval)", "",
             "| system | street | district | street + district | refusals |", "|---|---|---|---|---|"]
    for name, run in report["runs"].items():
        m, ci = run["metrics"], run["metrics"].get("ci95", {})
        lines.append(f"| {name} | {_pct(m['street_acc'], ci.get('street_acc'))} | "
                     f"{_pct(m['district_acc'], ci.get('district_acc'))} | "
                     f"{_pct(m['address_acc'], ci.get('address_acc'))} | {_pct(m['refusal_rate'])} |")
    return lines


def questions_table(p: Paths) -> list[str]:
    """LLaVA-IAL on the design question and on each other question set, one row each."""
    rows = []
    design = _read(p.qa / "report.json")
    if design and "llava-ial" in design["runs"]:
        rows.append(("design question (above)", design["references"]["n"], 1,
                     design["runs"]["llava-ial"]["metrics"]))
    for name, what in QUESTION_SETS.items():
        report = _read(p.qa_questions(name) / "report.json")
        if report and "llava-ial" in report["runs"]:
            n_phrasings = len(report.get("questions", {}).get("phrasings", [])) or 1
            rows.append((what, report["references"]["n"], n_phrasings,
                         report["runs"]["llava-ial"]["metrics"]))
    if len(rows) < 2:
        return []
    lines = ["LLaVA-IAL by question wording (% of test images; held-out phrasings are never in "
             "training; on unanswerable questions a refusal is the right answer)", "",
             "| questions | images | phrasings | street | district | refusals |",
             "|---|---|---|---|---|---|"]
    for what, n, k, m in rows:
        ci = m.get("ci95", {})
        lines.append(f"| {what} | {n} | {k} | {_pct(m['street_acc'], ci.get('street_acc'))} | "
                     f"{_pct(m['district_acc'], ci.get('district_acc'))} | "
                     f"{_pct(m['refusal_rate'], ci.get('refusal_rate'))} |")
    return lines


def steps_table(steps: list[Step], records: dict[str, dict], actions: dict[str, str]) -> list[str]:
    lines = ["| step | this run | seconds (when last run) |", "|---|---|---|"]
    total = 0.0
    for step in steps:
        record = records.get(step.name) or {}
        seconds = record.get("seconds")
        total += seconds or 0.0
        lines.append(f"| {step.name} | {actions.get(step.name, '-')} | "
                     f"{'-' if seconds is None else f'{seconds:.0f}'} |")
    lines.append(f"| total | | {total:.0f} |")
    return lines


def artefacts(p: Paths) -> list[str]:
    rows = [("dataset (card, map)", p.data / "README.md"),
            ("stage one run (checkpoints, TensorBoard)", p.stage1),
            ("stage one metrics + map of predictions", p.stage1_eval / "metrics.md"),
            ("vision tower (HF CLIPVisionModel)", p.vision),
            ("conversations (LLaVA JSON)", p.conversations),
            ("LLaVA-IAL, servable HF folder", p.export),
            ("QA report", p.qa / "report.md"),
            *((f"QA report, {what}", p.qa_questions(name) / "report.md")
              for name, what in QUESTION_SETS.items()),
            ("logs of every step", p.logs)]
    return [f"- {what}: {path}" for what, path in rows if path.exists()]


def summary(steps: list[Step], p: Paths, records: dict[str, dict], actions: dict[str, str]) -> str:
    lines = [f"# IAL pipeline: {p.root}", ""]
    metrics = _read(p.stage1_eval / "metrics.json")
    if metrics:
        lines += stage_one_table(metrics) + [""]
    report = _read(p.qa / "report.json")
    if report:
        lines += qa_table(report) + [""]
    wording = questions_table(p)
    if wording:
        lines += wording + [""]
    lines += ["Steps (each can be run alone: python -m ial_pipeline --only STEP, or the command in "
              f"{p.root / 'pipeline.json'})", ""]
    lines += steps_table(steps, records, actions) + ["", "Artefacts", ""] + artefacts(p)
    return "\n".join(lines) + "\n"
