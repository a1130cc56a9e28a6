"""One training with all threads, or two at once with one thread each? ``python
benchmarks/bench_ablation_parallel.py`` answers it for ``scripts/ablate_addressclip.sh`` (``JOBS``).

Alternates, over ``--rounds``: (S) one ``addressclip.train`` run with ``--threads`` threads, alone;
(P) two runs at once with one thread each. Every run trains ``--steps`` steps of the default recipe
(tiny model, batch 64, all losses; ``--stop-at-step``, no validation). Throughput is the median
steady-state images/s of each run's ``train_log.jsonl`` (first ``--skip`` steps dropped), summed
over the two runs of a P round. The load average is printed beside each round, since on a shared
machine it decides more than the threads do.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start(data: str, out: Path, seed: int, threads: int, steps: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "addressclip.train", "--data", data, "--out", str(out), "--seed",
           str(seed), "--stop-at-step", str(steps), "--val-split", "none", "--log-every", "1",
           "--progress", "false", "--keep-checkpoints", "1"]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def rate(out: Path, skip: int) -> float:
    rows = [json.loads(ln) for ln in (out / "train_log.jsonl").read_text().splitlines()]
    return statistics.median([r["images_per_s"] for r in rows if r["kind"] == "train"][skip:])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(ROOT / "runs" / "helsinki" / "data"))
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--skip", type=int, default=5)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    a = p.parse_args(argv)
    results = {"serial": [], "parallel": []}
    with tempfile.TemporaryDirectory(prefix="bench_ablation_parallel_") as tmp:
        for r in range(a.rounds):
            for mode in ("serial", "parallel"):
                load = " ".join(f"{x:.2f}" for x in os.getloadavg())
                outs = [Path(tmp) / f"{mode}-{r}-{k}" for k in range(1 if mode == "serial" else 2)]
                procs = [start(a.data, o, k, a.threads if mode == "serial" else 1, a.steps)
                         for k, o in enumerate(outs)]
                for proc in procs:
                    _, err = proc.communicate()
                    if proc.returncode != 0:
                        print(err[-3000:], file=sys.stderr)
                        return 1
                ips = sum(rate(o, a.skip) for o in outs)
                results[mode].append(ips)
                print(f"round {r + 1} {mode:8s}: {ips:7.1f} images/s "
                      f"({'1 run x ' + str(a.threads) if mode == 'serial' else '2 runs x 1'} threads; "
                      f"load {load})", flush=True)
    s, q = statistics.median(results["serial"]), statistics.median(results["parallel"])
    print(f"median: one run {s:.1f} images/s, two runs at once {q:.1f} images/s ({q / s:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
