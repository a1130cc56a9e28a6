"""Decide which steps to run, run them with their output in a log, and record what finished.

A step is *up to date* when it finished (``.pipeline/STEP.done``), its product is still there, and
it finished after every step it reads from. A step that is not up to date is run; if it was started
before on the same inputs (``.pipeline/STEP.started`` newer than its inputs) it is resumed, else its
outputs are removed first so nothing stale survives. The times of every step go to
``.pipeline/STEP.done`` and ``pipeline.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ial_core.files import write_text
from ial_pipeline.steps import Paths, Step


class StepFailed(RuntimeError):
    def __init__(self, step: Step, code: int, log_path: Path):
        super().__init__(f"step {step.name} failed (exit {code}); its log: {log_path}")
        self.step, self.code, self.log_path = step, code, log_path


@dataclass
class Decision:
    action: str          # "reuse" | "resume" | "run"
    reason: str


def _mtime(path: Path) -> float | None:
    return path.stat().st_mtime if path.exists() else None


class Ledger:
    """The pipeline's records under ``ROOT/.pipeline``: when each step started and finished."""

    def __init__(self, paths: Paths):
        self.dir = paths.state

    def started(self, name: str) -> float | None:
        return _mtime(self.dir / f"{name}.started")

    def done(self, name: str) -> float | None:
        return _mtime(self.dir / f"{name}.done")

    def record(self, name: str) -> dict | None:
        path = self.dir / f"{name}.done"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def mark_started(self, name: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / f"{name}.done").unlink(missing_ok=True)
        (self.dir / f"{name}.started").write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))

    def mark_done(self, name: str, record: dict) -> None:
        write_text(self.dir / f"{name}.done", json.dumps(record, indent=1))


def decide(step: Step, ledger: Ledger, forced: bool) -> Decision:
    inputs = [ledger.done(d) for d in step.deps]
    newest_input = max((t for t in inputs if t is not None), default=0.0)
    done, started = ledger.done(step.name), ledger.started(step.name)
    if forced:
        return Decision("run", "asked for")
    if done is not None and step.product.exists() and done >= newest_input:
        return Decision("reuse", "up to date")
    if done is not None and step.product.exists():
        return Decision("run", "an input changed")
    if started is not None and started < newest_input:
        return Decision("run", "an input changed since it was started")
    if step.resumable and (started is not None or step.product.exists()):
        return Decision("resume", "continuing an unfinished run" if started else
                        "found outputs from an earlier run")
    if started is not None:
        return Decision("run", "redoing an unfinished run")
    return Decision("run", "not run yet")


def run_logged(argv: list[str], env: dict[str, str], log_path: Path) -> int:
    """Run ``argv`` with its output both on the console and in ``log_path`` (progress bars too)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(argv)}\n".encode())
        proc = subprocess.Popen(argv, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        try:
            while chunk := proc.stdout.read1(65536):
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
                log.write(chunk)
        except KeyboardInterrupt:
            proc.terminate()
            raise
        return proc.wait()


def execute(step: Step, decision: Decision, paths: Paths, ledger: Ledger) -> dict:
    """Run one step (after removing stale outputs) and record it; returns the record."""
    if decision.action == "run":
        for out in step.outputs:
            if out.exists():
                shutil.rmtree(out) if out.is_dir() else out.unlink()
    resume = decision.action == "resume"
    argv = step.command(resume)
    ledger.mark_started(step.name)
    log_path = paths.logs / f"{step.name}.log"
    print(f"\n==> {step.name}: {step.title} ({decision.reason})\n    "
          f"{' '.join(_shown(a) for a in argv)}", flush=True)
    start = time.perf_counter()
    code = run_logged(argv, step.env, log_path)
    seconds = time.perf_counter() - start
    if code != 0:
        raise StepFailed(step, code, log_path)
    if not step.product.exists():
        raise StepFailed(step, 0, log_path)
    record = {"step": step.name, "seconds": round(seconds, 1), "resumed": resume,
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "command": argv, "env": step.env,
              "log": str(log_path)}
    ledger.mark_done(step.name, record)
    return record


def _shown(arg: str) -> str:
    """An argument as the user would type it (the interpreter as ``python``)."""
    return "python" if arg == sys.executable else arg


def shown_command(step: Step) -> str:
    env = " ".join(f"{k}={v}" for k, v in step.env.items())
    return (env + " " if env else "") + " ".join(_shown(a) for a in step.command(False))
