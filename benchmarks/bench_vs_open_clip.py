"""AddressCLIP's trainer against open_clip's own: ``python benchmarks/bench_vs_open_clip.py``.

What a user would run instead of AddressCLIP is ``open_clip_train.main`` (in the open_clip_torch
wheel) on the same images with their address texts. This runs, one process per system, on the same
machine in the same invocation:

- ``open_clip``: ``python -m open_clip_train.main`` on a CSV dataset (its ``--dataset-type csv``
  format: image path, address text) of the first N training images, plain CLIP loss;
- ``addressclip-address``: ``python -m addressclip.train`` on the same N images (``--limit-train``),
  address loss only (alpha=1, beta=0, gamma=0);
- ``addressclip-all``: the same with all three losses (alpha=1, beta=0.2, gamma=0.8);
- ``addressclip-address-grouped``, ``addressclip-all-grouped``: the same with ``--text-length-groups``
  (each batch's texts in groups of similar length, see ``addressclip.model.length_groups``).

Same model (random initialisation, no downloads; the tiny config is registered for open_clip by
importing ``addressclip.model`` in a two-line launcher), same batch, same torch threads
(``OMP_NUM_THREADS``), same DataLoader workers, fp32, one epoch, no validation. Both trainers time a
step the same way, from fetching the batch to the optimizer step: open_clip's ``Batch (t)`` log line
with ``--log-every-n-steps 1``, AddressCLIP's ``images_per_s`` in ``train_log.jsonl`` with
``--log-every 1``. The first ``--skip`` steps of each run (warm-up, allocation) are dropped and the
median of the rest is the run's images/s. The systems are interleaved (A B C A B C ...) over
``--repeats`` rounds so that load drift on a shared machine hits all alike; the load average is
printed before and after every run. Results: a table and ``--out`` JSON.

``--cpu-time`` measures what load on a shared machine cannot distort: each system runs with one
thread and ``--workers 0`` (data loading in the training process), twice, on ``--steps-short`` and
``--steps-long`` steps' worth of images, and the CPU seconds the process tree used (``getrusage``
of the waited-for children) are differenced, which cancels start-up, model building, the first
steps and the final checkpoint. The result is images per CPU-second of steady-state training: the
images/s of one otherwise idle core. Waiting for a core does not count, so a machine shared with
other jobs gives the same figure as an idle one (up to cache and memory-bandwidth contention).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = ("open_clip", "addressclip-address", "addressclip-all", "addressclip-address-grouped",
           "addressclip-all-grouped")
WEIGHTS = {"addressclip-address": ["--alpha", "1", "--beta", "0", "--gamma", "0"],
           "addressclip-all": ["--alpha", "1", "--beta", "0.2", "--gamma", "0.8"]}
WEIGHTS["addressclip-address-grouped"] = WEIGHTS["addressclip-address"] + ["--text-length-groups"]
WEIGHTS["addressclip-all-grouped"] = WEIGHTS["addressclip-all"] + ["--text-length-groups"]
DEFAULT_IMAGES = {"AddressCLIP-Tiny": 1024, "ViT-B-32": 256}
OPEN_CLIP_LAUNCHER = ("import sys, addressclip.model  # registers AddressCLIP-Tiny with open_clip\n"
                      "from open_clip_train.main import main\nmain(sys.argv[1:])\n")
_BATCH_LINE = re.compile(r"Batch \(t\): [\d.]+, ([\d.]+)/s")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def write_csv(data: str, n: int, path: Path) -> int:
    """The first ``n`` training images (the images ``--limit-train n`` trains on) with their address
    text, the text AddressCLIP's address loss uses, in open_clip's CSV format."""
    from addressclip.data import CandidateSet, IALImageDataset
    from data_gen.dataset import load_dataset_dir
    ial = load_dataset_dir(data)
    cands = CandidateSet.from_dataset(ial)
    ds = IALImageDataset(ial, "train", cands, preprocess_cfg={"size": 224, "mean": (0, 0, 0),
                                                              "std": (1, 1, 1)},
                         train=True, limit=n)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["filepath", "title"])
        w.writerows((p, cands.addresses[int(lab)]) for p, lab in zip(ds.paths, ds.labels))
    return len(ds.paths)


def children_cpu_s() -> float:
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_open_clip(model: str, csv_path: Path, batch: int, workers: int, env: dict, work: Path,
                  tag: str) -> list[float]:
    launcher = work / "open_clip_launcher.py"
    launcher.write_text(OPEN_CLIP_LAUNCHER)
    cmd = [sys.executable, str(launcher), "--train-data", str(csv_path), "--dataset-type", "csv",
           "--csv-separator", ",", "--csv-img-key", "filepath", "--csv-caption-key", "title",
           "--model", model, "--batch-size", str(batch), "--workers", str(workers), "--epochs", "1",
           "--precision", "fp32", "--lr", "1e-3", "--wd", "0.1", "--warmup", "2",
           "--save-frequency", "0", "--zeroshot-frequency", "0", "--val-frequency", "0",
           "--report-to", "", "--log-every-n-steps", "1", "--logs", str(work / "open_clip_logs"),
           "--name", tag, "--seed", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    log_text = proc.stdout + proc.stderr
    log_file = work / "open_clip_logs" / tag / "out.log"
    if log_file.is_file():
        log_text = log_file.read_text(encoding="utf-8")
    rates = [float(m.group(1)) for m in _BATCH_LINE.finditer(log_text)]
    if proc.returncode != 0 or not rates:
        raise RuntimeError(f"open_clip_train failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return rates


def run_addressclip(system: str, model: str, data: str, n: int, batch: int, workers: int, env: dict,
                    work: Path, tag: str) -> list[float]:
    out = work / tag
    cmd = [sys.executable, "-m", "addressclip.train", "--data", data, "--model", model,
           "--batch-size", str(batch), "--workers", str(workers), "--limit-train", str(n),
           "--epochs", "1", "--precision", "fp32", "--lr", "1e-3", "--warmup-steps", "2",
           "--val-split", "none", "--log-every", "1", "--progress", "false", "--seed", "0",
           "--keep-checkpoints", "1", "--out", str(out), *WEIGHTS[system]]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    log = out / "train_log.jsonl"
    if proc.returncode != 0 or not log.is_file():
        raise RuntimeError(f"addressclip.train failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    rates = [json.loads(ln)["images_per_s"] for ln in log.read_text().splitlines()
             if json.loads(ln)["kind"] == "train"]
    subprocess.run(["rm", "-rf", str(out)], check=False)   # checkpoints are large (ViT-B-32)
    return rates


def bench_model(model: str, data: str, n: int, batch: int, workers: int, threads: int, repeats: int,
                skip: int, work: Path, systems: tuple[str, ...] = SYSTEMS) -> dict:
    csv_path = work / f"train-{model}.csv"
    n = write_csv(data, n, csv_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    runs: dict[str, list[dict]] = {s: [] for s in systems}
    for r in range(repeats):
        for system in systems:
            tag = f"{model}-{system}-{r}-{time.time_ns()}"
            before = load()
            t = time.perf_counter()
            if system == "open_clip":
                rates = run_open_clip(model, csv_path, batch, workers, env, work, tag)
            else:
                rates = run_addressclip(system, model, data, n, batch, workers, env, work, tag)
            wall = time.perf_counter() - t
            steady = rates[skip:] or rates[-1:]
            ips = statistics.median(steady)
            runs[system].append({"images_per_s": ips, "steps": len(rates), "timed_steps": len(steady),
                                 "wall_s": wall, "load_before": before, "load_after": load()})
            print(f"  {model} round {r + 1} {system:20s} {ips:8.2f} images/s over {len(steady)} steps "
                  f"(load {before} -> {runs[system][-1]['load_after']}, {wall:.0f} s)", flush=True)
    result = {"model": model, "images": n, "batch": batch, "threads": threads, "workers": workers,
              "runs": runs}
    for system in systems:
        result[system] = statistics.median(x["images_per_s"] for x in runs[system])
    base = result["open_clip"]
    for system in systems[1:]:
        # per-round ratios: both systems ran back to back, under the same load
        per_round = [a["images_per_s"] / b["images_per_s"] for a, b in zip(runs[system], runs["open_clip"])]
        result[f"{system}_ratio"] = result[system] / base
        result[f"{system}_ratio_rounds"] = per_round
    return result


def bench_cpu_time(model: str, data: str, batch: int, short: int, long: int, repeats: int,
                   work: Path, systems: tuple[str, ...]) -> dict:
    """Images per CPU-second of each system, from runs of ``short`` and ``long`` steps (1 thread)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    csvs = {}
    for steps in (short, long):
        csvs[steps] = work / f"train-{model}-{steps}.csv"
        write_csv(data, steps * batch, csvs[steps])
    runs: dict[str, list[dict]] = {s: [] for s in systems}
    for r in range(repeats):
        for system in systems:
            cpu = {}
            for steps in (short, long):
                tag = f"{model}-{system}-{steps}-{r}-{time.time_ns()}"
                c0 = children_cpu_s()
                if system == "open_clip":
                    rates = run_open_clip(model, csvs[steps], batch, 0, env, work, tag)
                else:
                    rates = run_addressclip(system, model, data, steps * batch, batch, 0, env, work, tag)
                if len(rates) != steps:
                    raise RuntimeError(f"{system}: {len(rates)} steps logged, expected {steps}")
                cpu[steps] = children_cpu_s() - c0
            ips = (long - short) * batch / (cpu[long] - cpu[short])
            runs[system].append({"images_per_cpu_s": ips, "cpu_s": cpu, "load": load()})
            print(f"  {model} round {r + 1} {system:28s} {ips:8.2f} images per CPU-second "
                  f"(CPU {cpu[short]:.0f} s for {short} steps, {cpu[long]:.0f} s for {long}; load "
                  f"{load()})", flush=True)
    result = {"model": model, "batch": batch, "threads": 1, "workers": 0, "steps": [short, long],
              "runs": runs}
    for system in systems:
        result[system] = statistics.median(x["images_per_cpu_s"] for x in runs[system])
    for system in systems[1:]:
        result[f"{system}_ratio"] = result[system] / result["open_clip"]
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="AddressCLIP-Tiny,ViT-B-32")
    p.add_argument("--data", default=str(ROOT / "runs" / "helsinki" / "data"))
    p.add_argument("--images", type=int, default=0,
                   help="training images per run (default 1024 tiny, 256 ViT-B-32)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--skip", type=int, default=2, help="warm-up steps dropped from each run")
    p.add_argument("--systems", default=",".join(SYSTEMS), help="open_clip first")
    p.add_argument("--cpu-time", action="store_true",
                   help="images per CPU-second, 1 thread (robust to a shared machine's load)")
    p.add_argument("--steps-short", type=int, default=2)
    p.add_argument("--steps-long", type=int, default=6)
    p.add_argument("--out", default="runs/bench/bench_vs_open_clip.json")
    a = p.parse_args(argv)
    systems = tuple(a.systems.split(","))
    if systems[0] != "open_clip" or not set(systems) <= set(SYSTEMS):
        print(f"--systems: open_clip first, then any of {', '.join(SYSTEMS[1:])}", file=sys.stderr)
        return 2
    if not (Path(a.data) / "meta.json").is_file():
        print(f"no dataset at {a.data}: build one with python -m data_gen.build", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_vs_open_clip_") as tmp:
        for model in a.models.split(","):
            n = a.images or DEFAULT_IMAGES.get(model, 256)
            if a.cpu_time:
                print(f"{model}: batch {a.batch}, 1 thread, 0 workers, {a.steps_short} and "
                      f"{a.steps_long} steps, {a.repeats} rounds", flush=True)
                results.append(bench_cpu_time(model, a.data, a.batch, a.steps_short, a.steps_long,
                                              a.repeats, Path(tmp), systems))
                continue
            print(f"{model}: {n} images, batch {a.batch}, {a.threads} threads, {a.workers} workers, "
                  f"{a.repeats} rounds", flush=True)
            results.append(bench_model(model, a.data, n, a.batch, a.workers, a.threads, a.repeats,
                                       a.skip, Path(tmp), systems))
    print()
    unit = "images per CPU-s" if a.cpu_time else "images/s"
    print("| model | " + " | ".join(f"{s} {unit}" + ("" if s == "open_clip" else " (ratio)")
                                  for s in systems) + " |")
    print("|---|" + "---|" * len(systems))
    for r in results:
        cells = [f"{r['open_clip']:.2f}"] + [f"{r[s]:.2f} ({r[s + '_ratio']:.2f}x)" for s in systems[1:]]
        print(f"| {r['model']} | " + " | ".join(cells) + " |")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": a.data, "results": results}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
