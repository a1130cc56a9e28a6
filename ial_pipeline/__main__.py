"""The main job, start to finish: ``python -m ial_pipeline`` (``make demo`` runs it).

build data -> stage one train -> stage one evaluate (zero-shot beside) -> export the vision tower
-> conversations -> stage two LM, compose, pretrain, fine-tune -> export -> QA evaluation against
baselines, then one summary table (also ``ROOT/summary.md``) and where every artefact is.

Steps already done on unchanged inputs are reused, so a second run takes seconds; an interrupted
run continues where it stopped. ``--only STEP`` runs one step alone, ``--force STEP`` redoes one and
whatever depends on it, ``--list_steps`` shows each step's state and command.
"""

from __future__ import annotations

import json
import sys
import time

from ial_core.config import parse_config
from ial_core.files import write_text
from ial_pipeline.config import PipelineConfig
from ial_pipeline.runner import Ledger, StepFailed, decide, execute, shown_command
from ial_pipeline.steps import Paths, build_steps
from ial_pipeline.summary import summary


def check_names(cfg: PipelineConfig, names: list[str]) -> None:
    unknown = sorted(set(cfg.only + cfg.force) - set(names))
    if unknown:
        raise SystemExit(f"error: unknown step(s) {unknown}; the steps are {names}")


def run(cfg: PipelineConfig) -> int:
    steps = build_steps(cfg)
    paths, names = Paths.of(cfg), [s.name for s in steps]
    check_names(cfg, names)
    ledger = Ledger(paths)
    selected = [s for s in steps if not cfg.only or s.name in cfg.only]
    if cfg.list_steps:
        for step in steps:
            d = decide(step, ledger, step.name in cfg.force or step.name in cfg.only)
            print(f"{step.name:16s} {d.action:7s} ({d.reason})\n    {shown_command(step)}")
        return 0
    actions: dict[str, str] = {}
    start = time.perf_counter()
    for step in selected:
        decision = decide(step, ledger, step.name in cfg.force or step.name in cfg.only)
        if decision.action == "reuse":
            actions[step.name] = "reused"
            print(f"==> {step.name}: reused ({step.product})", flush=True)
            continue
        try:
            record = execute(step, decision, paths, ledger)
        except StepFailed as exc:
            print(f"\nerror: {exc}\nFix the cause and run the same command again: finished steps are "
                  "reused.", file=sys.stderr)
            return 1
        actions[step.name] = "resumed" if record["resumed"] else "ran"
    records = {s.name: ledger.record(s.name) for s in steps}
    text = summary(steps, paths, records, actions)
    write_text(paths.root / "summary.md", text)
    write_text(paths.root / "pipeline.json", json.dumps(
        {"wall_s": round(time.perf_counter() - start, 1), "actions": actions,
         "steps": {s.name: {"command": shown_command(s), "record": records[s.name]} for s in steps}},
        indent=1))
    print("\n" + text)
    print(f"this run: {time.perf_counter() - start:.0f} s; summary in {paths.root / 'summary.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(PipelineConfig, argv, description=__doc__.split("\n")[0])
    return run(cfg)


if __name__ == "__main__":
    sys.exit(main())
