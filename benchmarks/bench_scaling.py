"""How stage one scales: ``python benchmarks/bench_scaling.py --data D --data-4x D4``.

1. Training against data size. ``addressclip.train`` (default recipe: tiny model, batch 64, all
   three losses) on the embedded city and on a 4x denser build of it (``python -m data_gen.build
   --spacing-m 3``), one process each, interleaved over ``--repeats`` rounds. Each run trains
   ``--steps`` steps (``--stop-at-step``); reported: steady-state seconds per step (median, warm-up
   steps dropped), steps per epoch, the epoch time they give, and the process's peak resident memory
   (its own and its loader workers'). Linear time per epoch means seconds per step do not grow with
   the data; flat memory means the peak does not either. ``--cpu-time`` times steps on a shared
   machine by CPU seconds instead (one thread, data loading in the process, runs of ``--steps-short``
   and ``--steps`` steps differenced; see ``bench_vs_open_clip.py --cpu-time``).
2. Evaluation against the number of candidate addresses (default 190, 1000, 4000; SF-IAL-Large has
   about 3.6k). The real candidates are padded with synthetic ones, "street & cross street,
   district" built from the city's own names, and a trained run (``--run``) encodes them and ranks
   ``--queries`` test images against them: candidate encoding time, ms per query (batched, 128) and
   the share of it spent on the similarity + top-k.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN_LAUNCHER = """
import json, resource, sys, time
t0 = time.time()
from addressclip.train import main
rc = main(sys.argv[1:])
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print("RESULT " + json.dumps({"rc": rc, "start": t0, "peak_rss_mb": own, "worker_peak_rss_mb": kids}))
"""


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def children_cpu_s() -> float:
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def train_run_cpu(data: str, short: int, steps: int, work: Path, tag: str, extra: list[str]) -> dict:
    """CPU seconds per step from a ``short`` and a ``steps`` run (1 thread, 0 workers), peak memory."""
    env_extra = ["--workers", "0"]
    cpu, res = {}, None
    for n in (short, steps):
        c0 = children_cpu_s()
        res = train_run(data, n, 0, work, f"{tag}-{n}", [*env_extra, *extra], threads=1)
        cpu[n] = children_cpu_s() - c0
    step_s = (cpu[steps] - cpu[short]) / (steps - short)
    return {**res, "step_s": step_s, "epoch_s": res["steps_per_epoch"] * step_s, "cpu_s": cpu}


def train_run(data: str, steps: int, skip: int, work: Path, tag: str, extra: list[str],
              threads: int | None = None) -> dict:
    out = work / tag
    launcher = work / "train_launcher.py"
    launcher.write_text(TRAIN_LAUNCHER)
    cmd = [sys.executable, str(launcher), "--data", data, "--out", str(out), "--stop-at-step",
           str(steps), "--log-every", "1", "--progress", "false", "--val-split", "none", "--seed", "0",
           "--keep-checkpoints", "1", *extra]
    before = load()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"training on {data} failed:\n{proc.stderr[-3000:]}")
    res = json.loads(line[0][len("RESULT "):])
    log = [json.loads(ln) for ln in (out / "train_log.jsonl").read_text().splitlines()]
    log = [r for r in log if r["kind"] == "train"]
    batch = int(next(ln.split("global batch ")[1].split()[0] for ln in proc.stderr.splitlines()
                     if "global batch" in ln))
    spe = int(next(ln.split(" steps/epoch")[0].rsplit(" ", 1)[1] for ln in proc.stderr.splitlines()
                   if "steps/epoch" in ln))
    n_images = int(next(ln.split(" train images")[0].rsplit(" ", 1)[1] for ln in proc.stderr.splitlines()
                        if " train images" in ln))
    step_s = statistics.median(batch / r["images_per_s"] for r in log[skip:])
    subprocess.run(["rm", "-rf", str(out)], check=False)
    return {"train_images": n_images, "steps_per_epoch": spe, "step_s": step_s,
            "epoch_s": spe * step_s, "peak_rss_mb": res["peak_rss_mb"],
            "worker_peak_rss_mb": res["worker_peak_rss_mb"], "load_before": before,
            "load_after": load()}


def synthetic_candidates(real: list[str], n: int, seed: int = 0) -> list[str]:
    """``real`` plus made-up "street & cross, district" addresses from the same names, to ``n``."""
    import numpy as np
    parts = [a.split(", ")[0].split(" & ") for a in real]
    streets = sorted({p[0] for p in parts} | {p[1] for p in parts if len(p) > 1})
    districts = sorted({a.rsplit(", ", 1)[-1] for a in real})
    rng = np.random.default_rng(seed)
    out, seen = list(real), set(real)
    while len(out) < n:
        a, b = rng.choice(len(streets), 2, replace=False)
        text = f"{streets[a]} & {streets[b]}, {districts[rng.integers(len(districts))]}"
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out[:n]


def eval_scaling(run: str, data: str, sizes: list[int], queries: int, cpu_time: bool = False) -> list[dict]:
    import open_clip
    import torch
    clock = time.perf_counter
    if cpu_time:   # one thread, timed by this process's CPU seconds
        torch.set_num_threads(1)
        clock = time.process_time
    from torch.utils.data import default_collate

    from addressclip import checkpoint as ckpt
    from addressclip.config import load_run_config
    from addressclip.data import CandidateSet, IALImageDataset
    from addressclip.evaluate import encode_texts
    from addressclip.model import AddressCLIP, load_clip_dir
    from data_gen.dataset import load_dataset_dir

    ial = load_dataset_dir(data)
    cands = CandidateSet.from_dataset(ial)
    clip, mcfg = load_clip_dir(ckpt.resolve_checkpoint(Path(run), "latest"))
    model = AddressCLIP(clip).eval()
    tok = open_clip.get_tokenizer(load_run_config(Path(run)).model.model)
    test = IALImageDataset(ial, "test", cands, preprocess_cfg=mcfg["preprocess_cfg"], train=False)
    imgs = default_collate([test[i] for i in range(min(queries, len(test)))])["image"]
    rows = []
    for n in sizes:
        texts = synthetic_candidates(list(cands.addresses), n)
        tokens = tok(texts)
        t = clock()
        feats = encode_texts(model, tokens, torch.device("cpu"))
        enc_s = clock() - t
        with torch.no_grad():
            reps = 3
            img_t, rank_t = [], []
            for _ in range(reps):
                for i in range(0, imgs.shape[0], 128):
                    t = clock()
                    q = model.encode_image(imgs[i:i + 128])
                    t1 = clock()
                    (q @ feats.t()).topk(5, dim=1)
                    t2 = clock()
                    img_t.append(t1 - t)
                    rank_t.append(t2 - t1)
        per_q = (sum(img_t) + sum(rank_t)) / (reps * imgs.shape[0])
        rows.append({"candidates": n, "encode_candidates_s": enc_s, "ms_per_query": 1000 * per_q,
                     "rank_ms_per_query": 1000 * sum(rank_t) / (reps * imgs.shape[0]),
                     "candidate_matrix_mb": feats.numel() * 4 / 2 ** 20, "load": load()})
        print(f"  {n:5d} candidates: encode {enc_s:.2f} s, {rows[-1]['ms_per_query']:.3f} ms/query "
              f"({rows[-1]['rank_ms_per_query']:.4f} ms of it ranking)", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(ROOT / "runs" / "helsinki" / "data"))
    p.add_argument("--data-4x", default=str(ROOT / "runs" / "helsinki4x" / "data"))
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--skip", type=int, default=5)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--run", default=str(ROOT / "runs" / "helsinki" / "addressclip"),
                   help="trained run for the evaluation part")
    p.add_argument("--candidates", default="190,1000,4000")
    p.add_argument("--queries", type=int, default=256)
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--cpu-time", action="store_true", help="time steps by CPU seconds (1 thread)")
    p.add_argument("--steps-short", type=int, default=5)
    p.add_argument("--skip-eval", action="store_true")
    p.add_argument("--train-args", default="", help="extra addressclip.train flags")
    p.add_argument("--out", default="runs/bench/bench_scaling.json")
    a = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    result: dict = {}
    if not a.skip_train:
        runs: dict[str, list[dict]] = {"1x": [], "4x": []}
        with tempfile.TemporaryDirectory(prefix="bench_scaling_") as tmp:
            for r in range(a.repeats):
                for name, data in (("1x", a.data), ("4x", a.data_4x)):
                    if a.cpu_time:
                        res = train_run_cpu(data, a.steps_short, a.steps, Path(tmp), f"{name}-{r}",
                                            a.train_args.split())
                    else:
                        res = train_run(data, a.steps, a.skip, Path(tmp), f"{name}-{r}",
                                        a.train_args.split())
                    runs[name].append(res)
                    print(f"  round {r + 1} {name}: {res['train_images']} images, {res['steps_per_epoch']} "
                          f"steps/epoch, {res['step_s']:.3f} s/step -> {res['epoch_s']:.0f} s/epoch, peak "
                          f"{res['peak_rss_mb']:.0f} MB (+ loader {res['worker_peak_rss_mb']:.0f} MB) "
                          f"(load {res['load_before']} -> {res['load_after']})", flush=True)
        result["train"] = runs
        unit = "CPU-s" if a.cpu_time else "s"
        print(f"\n| data | train images | steps/epoch | {unit}/step (median of rounds) | epoch ({unit}) | "
              "peak memory (MB) | loader peak (MB) |\n|---|---|---|---|---|---|---|")
        for name, rs in runs.items():
            step = statistics.median(x["step_s"] for x in rs)
            print(f"| {name} | {rs[0]['train_images']} | {rs[0]['steps_per_epoch']} | {step:.3f} | "
                  f"{rs[0]['steps_per_epoch'] * step:.0f} | {max(x['peak_rss_mb'] for x in rs):.0f} | "
                  f"{max(x['worker_peak_rss_mb'] for x in rs):.0f} |")
    if not a.skip_eval:
        print(f"evaluation against candidates (run {a.run}, {a.queries} test queries):")
        rows = eval_scaling(a.run, a.data, [int(x) for x in a.candidates.split(",")], a.queries,
                            a.cpu_time)
        result["eval"] = rows
        print("\n| candidates | encode candidates (s) | ms per query (batch 128) | of it ranking (ms) | "
              "candidate matrix (MB) |\n|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['candidates']} | {r['encode_candidates_s']:.2f} | {r['ms_per_query']:.3f} | "
                  f"{r['rank_ms_per_query']:.4f} | {r['candidate_matrix_mb']:.2f} |")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
