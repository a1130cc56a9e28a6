"""What the benchmarks share: the repository root, how a timed child process is started and reports
back, the machine's load, stage one's training log, and the printed tables and JSON results.

A benchmark imports it first, as ``from common import ...`` (run as a script, its own folder is
first on ``sys.path``); it puts this checkout on ``sys.path`` too, so the benchmarks time this
checkout's code also without ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
ROOT = BENCHMARKS.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULT = "RESULT "     # a child's result line: the prefix, then one JSON object

# ``addressclip.train`` flags of a timed run: no validation, a log row every step, no progress bar,
# one checkpoint kept
TRAIN_TIMING_FLAGS = ["--val-split", "none", "--log-every", "1", "--progress", "false",
                      "--keep-checkpoints", "1"]


def child_env(threads: int | None = None) -> dict[str, str]:
    """The environment of a child process: this checkout importable, and ``threads`` torch threads."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def load_average() -> str:
    """The 1, 5 and 15-minute load averages: on a shared machine they decide more than the code."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def children_cpu_s() -> float:
    """CPU seconds (user + system) of the waited-for child processes so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def own_peak_rss_mib() -> float:
    """This process's peak resident memory in MiB: ``VmHWM``, which starts afresh at exec, where
    ``ru_maxrss`` carries over the peak of the process that started it."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_result(obj) -> None:
    """A child's result, for :func:`read_result` in the parent."""
    print(RESULT + json.dumps(obj), flush=True)


def read_result(stdout: str) -> dict | None:
    """The result a child printed with :func:`print_result`, or None when it printed none."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT)]
    return json.loads(lines[0][len(RESULT):]) if lines else None


def train_log_rates(run: Path) -> list[float]:
    """The images/s of every training row of an ``addressclip.train`` run's ``train_log.jsonl``."""
    rows = [json.loads(ln) for ln in (Path(run) / "train_log.jsonl").read_text().splitlines()]
    return [r["images_per_s"] for r in rows if r["kind"] == "train"]


def p90(sorted_values: Sequence[float]) -> float:
    """The 90th percentile of sorted values (the nearest rank below)."""
    return sorted_values[int(0.9 * (len(sorted_values) - 1))]


def median_p90(values: Iterable[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), p90(ordered)


def print_table(header: Sequence[str], rows: Iterable[Sequence]) -> None:
    """A Markdown table, cells as given."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


def write_results(path: str | Path, obj, *, announce: bool = True) -> None:
    """Write the results as indented JSON, atomically (its folder created); ``announce``: say where."""
    from ial_core.files import write_json  # after this checkout is on sys.path
    write_json(path, obj, indent=2)
    if announce:
        print(f"wrote {path}")


def run_quiet(cmd: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a child in the repository root with its output captured as text."""
    return subprocess.run(list(cmd), capture_output=True, text=True, cwd=ROOT, **kwargs)


def run_fresh(module: str, function: str, *args: str) -> None:
    """Call ``function(*args)`` of the benchmark ``module`` in a fresh interpreter, so that what it
    measures (peak memory above all) is its own and not this process's (the argument parser's
    imports included). Raises when it fails."""
    code = (f"import sys\nsys.path.insert(0, sys.argv[1])\nfrom {module} import {function}\n"
            f"{function}(*sys.argv[2:])\n")
    subprocess.run([sys.executable, "-c", code, str(BENCHMARKS), *args], check=True)
