"""AddressCLIP training and evaluation throughput: ``python benchmarks/bench_addressclip.py``.

For each model (default: the tiny CPU config and ViT-B-32), in its own process so peak memory is its
own, it measures with the real training step (``addressclip.train.batch_losses``, all three losses,
AdamW) and the real DataLoader:

- the machine's fp32 matmul peak (a large square matmul, best of several, same process, same threads);
- model FLOPs per training step, counted by ``torch.utils.flop_counter.FlopCounterMode`` over one
  forward + backward (matmuls, convolutions and attention; the optimizer is not counted);
- compute-only step time (one batch held in memory), end-to-end step time (batches from the
  DataLoader with the configured workers), and loader-only images/s; training images/s and model-FLOP
  utilisation (MFU = FLOPs per step / step time / matmul peak); the loader is "not limiting" when it
  delivers several times the images/s the step consumes and the end-to-end step is no slower than
  the compute-only one;
- peak resident memory (``ru_maxrss``) on CPU, or ``max_memory_allocated`` on CUDA;
- evaluation: candidate encoding once, then images/s and ms/query for batched queries (128) and for
  single-image queries.

Data: ``--data DIR`` (a built dataset), else ``runs/helsinki/data`` when it exists, else a synthetic
dataset written to a temporary folder. Results are printed as a table and written as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import ROOT, child_env, print_result, print_table, read_result, run_quiet, write_results

from ial_core.config import option, parse_config

DEFAULT_BATCH = {"AddressCLIP-Tiny": 64, "ViT-B-32": 32}


@dataclass
class AddressCLIPBenchConfig:
    models: str = option("AddressCLIP-Tiny,ViT-B-32", "comma-separated model names")
    data: str | None = option(None, "built dataset (default: runs/helsinki/data, else a synthetic one)")
    steps: int = option(0, "timed steps (default: 8 tiny, 3 others)")
    batch: int = option(0, "batch (default per model)")
    workers: int = option(1, "DataLoader workers")
    out: str = option("runs/bench/bench_addressclip.json", "JSON results")
    one: str | None = option(None, argparse.SUPPRESS)   # child mode: one model, its result on stdout


def matmul_peak_gflops(n: int = 2048, repeats: int = 8) -> float:
    import torch
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def bench_one(model_name: str, data: str, batch: int, steps: int, workers: int) -> dict:
    import open_clip
    import torch
    from torch.utils.data import default_collate
    from torch.utils.flop_counter import FlopCounterMode

    from addressclip.config import parse_args
    from addressclip.data import CandidateSet, EpochBatchSampler, IALImageDataset, train_loader
    from addressclip.evaluate import encode_texts
    from addressclip.losses import AddressCLIPLoss, LossWeights
    from addressclip.model import AddressCLIP, count_parameters, create_clip
    from addressclip.train import batch_losses, make_optimizer
    from data_gen.dataset import load_dataset_dir

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    peak = matmul_peak_gflops() if device.type == "cpu" else float("nan")
    torch.manual_seed(0)
    ial = load_dataset_dir(data)
    cands = CandidateSet.from_dataset(ial)
    clip, mcfg = create_clip(model_name, device=device)
    tok = open_clip.get_tokenizer(model_name)
    model = AddressCLIP(clip).to(device)
    cfg, _ = parse_args(["--model", model_name, "--batch-size", str(batch)])
    opt = make_optimizer(model, cfg, device)
    loss_fn = AddressCLIPLoss(LossWeights())
    cand_tokens = cands.tokens(tok).to(device)
    ds = IALImageDataset(ial, "train", cands, preprocess_cfg=mcfg["preprocess_cfg"], train=True,
                         tokenizer=tok)
    sampler = EpochBatchSampler(len(ds), batch, seed=0)
    fixed = default_collate([ds[k] for k in next(iter(sampler))])

    def step(b):
        losses = batch_losses(model, loss_fn, b, cand_tokens, device)
        losses["total"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()

    step(fixed)  # warm-up (allocations, kernel selection)
    with FlopCounterMode(display=False) as fc:
        batch_losses(model, loss_fn, fixed, cand_tokens, device)["total"].backward()
    opt.zero_grad(set_to_none=True)
    flops = fc.get_total_flops()

    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step(fixed)
        times.append(time.perf_counter() - t)
    compute_s = statistics.median(times)

    loader = train_loader(ds, sampler, workers, pin_memory=device.type == "cuda")
    it = iter(loader)
    next(it)  # workers started, queue filling
    e2e = []
    for _ in range(steps):
        t = time.perf_counter()
        step(next(it))
        e2e.append(time.perf_counter() - t)
    e2e_s = statistics.median(e2e)
    del it
    sampler.set_epoch(1)
    it = iter(train_loader(ds, sampler, workers, pin_memory=False))
    next(it)
    n_load = min(len(sampler) - 1, max(4, 2 * steps))
    t = time.perf_counter()
    for _ in range(n_load):
        next(it)
    loader_ips = n_load * batch / (time.perf_counter() - t)
    del it

    # evaluation: candidates once, then batched and single-image queries
    test = IALImageDataset(ial, "test", cands, preprocess_cfg=mcfg["preprocess_cfg"], train=False)
    t = time.perf_counter()
    text = encode_texts(model, cand_tokens, device)
    cand_s = time.perf_counter() - t
    imgs = default_collate([test[i] for i in range(min(128, len(test)))])["image"].to(device)
    with torch.no_grad():
        model.eval()
        (model.encode_image(imgs) @ text.t()).topk(5)
        t = time.perf_counter()
        reps = 3
        for _ in range(reps):
            (model.encode_image(imgs) @ text.t()).topk(5)
        batched_s = (time.perf_counter() - t) / (reps * imgs.shape[0])
        singles = []
        for i in range(min(32, imgs.shape[0])):
            t = time.perf_counter()
            (model.encode_image(imgs[i:i + 1]) @ text.t()).topk(5)
            singles.append(time.perf_counter() - t)
    if device.type == "cuda":
        mem_mb = torch.cuda.max_memory_allocated() / 2 ** 20
    else:
        mem_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    params = count_parameters(clip)
    return {
        "model": model_name, "device": str(device), "threads": torch.get_num_threads(),
        "params_m": params["total"] / 1e6, "batch": batch, "image_size": mcfg["preprocess_cfg"]["size"],
        "matmul_peak_gflops": peak, "gflops_per_step": flops / 1e9,
        "compute_step_s": compute_s, "e2e_step_s": e2e_s,
        "train_images_per_s": batch / e2e_s, "compute_images_per_s": batch / compute_s,
        "loader_images_per_s": loader_ips, "workers": workers,
        "mfu_compute": flops / compute_s / 1e9 / peak, "mfu_e2e": flops / e2e_s / 1e9 / peak,
        "peak_memory_mb": mem_mb, "n_candidates": len(cands), "candidates_encode_s": cand_s,
        "eval_queries_per_s": 1 / batched_s, "eval_ms_per_query_batched": 1000 * batched_s,
        "eval_ms_per_query_single": 1000 * statistics.median(singles),
    }


def find_data(arg: str | None) -> str:
    if arg:
        return arg
    default = ROOT / "runs" / "helsinki" / "data"
    if (default / "meta.json").is_file():
        return str(default)
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers.synthetic import make_synthetic_dataset
    tmp = Path(tempfile.mkdtemp(prefix="bench_addressclip_"))
    print(f"no dataset given and none at {default}: using a synthetic one in {tmp}")
    return str(make_synthetic_dataset(tmp / "data", n_districts=4, streets_per_district=3,
                                      locations_per_sub=12, image_size=128))


def main(argv: list[str] | None = None) -> int:
    a = parse_config(AddressCLIPBenchConfig, argv, description=__doc__.split("\n")[0])
    if a.one:
        print_result(bench_one(a.one, a.data, a.batch, a.steps, a.workers))
        return 0
    data = find_data(a.data)
    results = []
    for name in a.models.split(","):
        batch = a.batch or DEFAULT_BATCH.get(name, 32)
        steps = a.steps or (8 if batch >= 64 else 3)
        print(f"benchmarking {name} (batch {batch}, {steps} timed steps) ...", flush=True)
        cmd = [sys.executable, __file__, "--one", name, "--data", data, "--batch", str(batch),
               "--steps", str(steps), "--workers", str(a.workers)]
        proc = run_quiet(cmd, env=child_env())
        result = read_result(proc.stdout)
        if proc.returncode != 0 or result is None:
            print(proc.stdout[-2000:], proc.stderr[-4000:])
            return 1
        results.append(result)
    rows = [("model", "model"), ("params (M)", "params_m"), ("batch", "batch"),
            ("matmul peak GFLOP/s", "matmul_peak_gflops"), ("GFLOP / step", "gflops_per_step"),
            ("compute step (s)", "compute_step_s"), ("end-to-end step (s)", "e2e_step_s"),
            ("train images/s", "train_images_per_s"), ("loader images/s", "loader_images_per_s"),
            ("MFU compute-only", "mfu_compute"), ("MFU end-to-end", "mfu_e2e"),
            ("peak memory (MB)", "peak_memory_mb"), ("eval queries/s (batch 128)", "eval_queries_per_s"),
            ("eval ms/query (batch 128)", "eval_ms_per_query_batched"),
            ("eval ms/query (single)", "eval_ms_per_query_single")]

    def cell(key, v):
        if key.startswith("mfu"):
            return f"{100 * v:.1f}%"
        return f"{v:.3g}" if isinstance(v, float) else str(v)
    print()
    print_table(["metric", *(r["model"] for r in results)],
                ([label, *(cell(key, r[key]) for r in results)] for label, key in rows[1:]))
    for r in results:
        limited = r["loader_images_per_s"] < 2 * r["train_images_per_s"] or \
            r["e2e_step_s"] > 1.15 * r["compute_step_s"]
        print(f"{r['model']}: data loading {'MAY LIMIT' if limited else 'does not limit'} training "
              f"(loader {r['loader_images_per_s']:.0f} img/s vs step {r['train_images_per_s']:.0f} img/s)")
    write_results(a.out, {"data": data, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
