"""Closed-set address prediction and its metrics: ``python -m addressclip.evaluate --run RUN_DIR``.

Every candidate address (``addresses.json``) is encoded once with the text tower (cached on disk per
checkpoint and candidate list); an image's prediction is the candidate with the highest cosine
similarity to its embedding, ranked once at k=5 and scored at every k from that ranking:

- SSA@k (sub-street accuracy): the true canonical address is among the top k;
- SA@k (street accuracy): a top-k candidate lies on the true *street* (its ``street`` name equals the
  true one; cross street and district ignored), so SA@k >= SSA@k;
- per district (of the true address): number of images, SSA@1 and SA@1.

The zero-shot baseline is the same architecture before training: ``checkpoints/init``, which the
trainer saves at step 0 (random initialisation for the tiny model; real zero-shot CLIP when training
started from pretrained weights). Outputs in ``--out`` (default ``RUN_DIR/eval``): ``metrics.json``
(``ssa@1``, ``ssa@5``, ``sa@1``, ``sa@5`` in percent, the same under ``zero_shot``), ``metrics.md``,
``predictions.csv`` (one row per image: top-1 prediction, and 0/1 columns ``hit_ssa@1``, ``hit_ssa@5``,
``hit_sa@1``, ``hit_sa@5``, so that runs can be compared image by image, e.g. the paired bootstrap of
:mod:`addressclip.ablation`) and ``map.png`` (correct and wrong top-1 predictions at their UTM positions).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
from safetensors.torch import load_file, save_file

from addressclip import checkpoint as ckpt
from addressclip.config import load_run_config
from addressclip.data import CandidateSet, IALImageDataset, eval_loader
from addressclip.distributed import resolve_device
from addressclip.model import AddressCLIP, load_clip_dir
from addressclip.precision import autocast, resolve_precision
from data_gen.dataset import load_dataset_dir
from ial_core.config import option, parse_config
from ial_core.files import atomic_file, write_text

log = logging.getLogger("addressclip.evaluate")
METRIC_KEYS = ("ssa@1", "ssa@5", "sa@1", "sa@5")


@torch.no_grad()
def encode_texts(model: AddressCLIP, tokens: torch.Tensor, device, precision="fp32",
                 batch_size: int = 256) -> torch.Tensor:
    model.eval()
    out = []
    for i in range(0, tokens.shape[0], batch_size):
        with autocast(device, precision):
            out.append(model.encode_text(tokens[i:i + batch_size].to(device)).float())
    return torch.cat(out)


def cached_candidate_features(model: AddressCLIP, candidates: CandidateSet, tokenizer, device,
                              precision: str, cache_dir: Path | None, weights: Path | None):
    """Candidate text embeddings, read from ``cache_dir`` when this checkpoint already made them."""
    path = None
    if cache_dir is not None and weights is not None:
        st = weights.stat()
        key = hashlib.sha256(json.dumps([str(weights.resolve()), st.st_size, st.st_mtime_ns,
                                         precision, candidates.addresses]).encode()).hexdigest()[:20]
        path = cache_dir / f"candidates-{key}.safetensors"
        if path.is_file():
            log.info("candidate embeddings from cache %s", path)
            return load_file(str(path))["features"].to(device), True
    feats = encode_texts(model, candidates.tokens(tokenizer), device, precision)
    if path is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        save_file({"features": feats.cpu().contiguous()}, str(path))
    return feats, False


@torch.no_grad()
def predict(model: AddressCLIP, loader, text_features: torch.Tensor, device, precision="fp32",
            k: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k candidate indices [N, k], their similarities [N, k] and true labels [N]."""
    model.eval()
    k = min(k, text_features.shape[0])
    tops, sims, labels = [], [], []
    for batch in loader:
        with autocast(device, precision):
            img = model.encode_image(batch["image"].to(device, non_blocking=True)).float()
        s, idx = (img @ text_features.t()).topk(k, dim=1)
        tops.append(idx.cpu())
        sims.append(s.cpu())
        labels.append(batch["label"])
    return torch.cat(tops).numpy(), torch.cat(sims).numpy(), torch.cat(labels).numpy()


def hits(top: np.ndarray, labels: np.ndarray, candidates: CandidateSet) -> dict[str, np.ndarray]:
    """Per image, whether it counts as correct for each metric of METRIC_KEYS (bool [N] each)."""
    hit_ssa = top == labels[:, None]
    hit_sa = candidates.street_ids[top] == candidates.street_ids[labels][:, None]
    return {"ssa@1": hit_ssa[:, 0], "ssa@5": hit_ssa[:, :5].any(1),
            "sa@1": hit_sa[:, 0], "sa@5": hit_sa[:, :5].any(1)}


def score(top: np.ndarray, labels: np.ndarray, candidates: CandidateSet) -> dict:
    """SSA@1/5 and SA@1/5 in percent, chance level, and per-district SSA@1/SA@1."""
    h = hits(top, labels, candidates)
    hit_ssa, hit_sa = h["ssa@1"][:, None], h["sa@1"][:, None]
    pct = lambda x: float(100.0 * x.mean()) if x.size else 0.0  # noqa: E731
    out = {**{k: pct(v) for k, v in h.items()},
           "n_images": int(labels.size), "n_candidates": len(candidates),
           "chance_ssa@1": 100.0 / len(candidates)}
    dist = candidates.district_ids[labels]
    out["per_district"] = {
        name: {"n": int((dist == d).sum()), "ssa@1": pct(hit_ssa[dist == d, 0]),
               "sa@1": pct(hit_sa[dist == d, 0])}
        for d, name in enumerate(candidates.district_names) if (dist == d).any()}
    return out


def evaluate_model(model: AddressCLIP, ds: IALImageDataset, candidates: CandidateSet, tokenizer, *,
                   device, precision="fp32", batch_size=128, workers=0, cache_dir=None,
                   weights=None) -> tuple[dict, dict]:
    t0 = time.perf_counter()
    text, cached = cached_candidate_features(model, candidates, tokenizer, device, precision,
                                             cache_dir, weights)
    t1 = time.perf_counter()
    loader = eval_loader(ds, batch_size, workers, pin_memory=device.type == "cuda")
    top, sims, labels = predict(model, loader, text, device, precision)
    t2 = time.perf_counter()
    metrics = score(top, labels, candidates)
    metrics["timing"] = {"candidates_s": t1 - t0, "candidates_cached": cached,
                         "images_s": t2 - t1, "ms_per_query": 1000 * (t2 - t1) / max(1, len(ds))}
    return metrics, {"top": top, "sims": sims, "labels": labels}


def write_markdown(path: Path, metrics: dict, title: str) -> None:
    zs = metrics.get("zero_shot", {})
    lines = [f"# {title}", "",
             f"{metrics['n_images']} images, {metrics['n_candidates']} candidate addresses "
             f"(chance SSA@1 {metrics['chance_ssa@1']:.2f}%).", "",
             "| model | SSA@1 | SSA@5 | SA@1 | SA@5 |", "|---|---|---|---|---|"]
    for name, m in (("zero-shot (step 0)", zs), ("AddressCLIP", metrics)):
        if m:
            lines.append(f"| {name} | " + " | ".join(f"{m[k]:.2f}" for k in METRIC_KEYS) + " |")
    lines += ["", "## Per district (top-1)", "", "| district | images | SSA@1 | SA@1 |",
              "|---|---|---|---|"]
    for d, m in metrics["per_district"].items():
        lines.append(f"| {d} | {m['n']} | {m['ssa@1']:.2f} | {m['sa@1']:.2f} |")
    write_text(path, "\n".join(lines) + "\n")


def write_predictions(path: Path, ds: IALImageDataset, candidates: CandidateSet, preds: dict,
                      per_image: dict[str, np.ndarray]) -> None:
    """One row per image (atomically: a temporary file renamed into place)."""
    addresses = np.asarray(candidates.addresses, dtype=object)
    cols = zip(ds.ids, addresses[preds["labels"]], addresses[preds["top"][:, 0]],
               per_image["ssa@1"].astype(int), np.char.mod("%.4f", preds["sims"][:, 0]),
               ds.utm[:, 0], ds.utm[:, 1], *(per_image[k].astype(int) for k in METRIC_KEYS))
    with atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["image", "true_address", "predicted_address", "correct", "similarity",
                    "utm_easting", "utm_northing", *(f"hit_{k}" for k in METRIC_KEYS)])
        w.writerows(cols)


def write_map(path: Path, utm: np.ndarray, correct: np.ndarray, street_ok: np.ndarray,
              title: str) -> None:
    """Top-1 outcome at each image's UTM position: wrong street, right street only, right sub-street
    (drawn in that order, so the four headings of a place show its best outcome on top)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 7), dpi=110)
    groups = ((~street_ok, "tab:red", "x", "wrong street"),
              (street_ok & ~correct, "tab:orange", "o", "right street, wrong sub-street"),
              (correct, "tab:green", "o", "right sub-street"))
    for mask, colour, marker, label in groups:
        ax.scatter(utm[mask, 0], utm[mask, 1], s=12, c=colour, marker=marker,
                   label=f"{label} ({int(mask.sum())})")
    ax.set_xlabel("utm_easting (m)")
    ax.set_ylabel("utm_northing (m)")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def evaluate_run(run_dir: str | Path, *, out: str | Path | None = None, split: str = "test",
                 checkpoint: str = "latest", data: str | None = None, batch_size: int = 128,
                 workers: int = 0, device: str = "auto", precision: str = "auto",
                 zero_shot: bool = True) -> dict:
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    out = Path(out) if out is not None else run_dir / "eval"
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    ial = load_dataset_dir(data or cfg.dataset_root)
    candidates = CandidateSet.from_dataset(ial)
    tokenizer = open_clip.get_tokenizer(cfg.model.model)

    def run(which: str):
        path = ckpt.resolve_checkpoint(run_dir, which)
        clip, mcfg = load_clip_dir(path, device=dev)
        ds = IALImageDataset(ial, split, candidates, preprocess_cfg=mcfg["preprocess_cfg"], train=False)
        m, p = evaluate_model(AddressCLIP(clip), ds, candidates, tokenizer, device=dev, precision=prec,
                              batch_size=batch_size, workers=workers, cache_dir=out / "cache",
                              weights=path / ckpt.MODEL_FILE)
        m["checkpoint"] = str(path)
        state = path / "state.json"
        m["step"] = json.loads(state.read_text())["step"] if state.is_file() else 0
        return m, p, ds

    metrics, preds, ds = run(checkpoint)
    metrics["split"] = split
    metrics["dataset"] = str(ial.root)
    if zero_shot:
        zs, _, _ = run(ckpt.INIT)
        metrics["zero_shot"] = {k: zs[k] for k in (*METRIC_KEYS, "per_district", "step", "checkpoint")}
    write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    write_markdown(out / "metrics.md", metrics, f"AddressCLIP on {ial.root.name} / {split}")
    per_image = hits(preds["top"], preds["labels"], candidates)
    correct, street_ok = per_image["ssa@1"], per_image["sa@1"]
    write_predictions(out / "predictions.csv", ds, candidates, preds, per_image)
    write_map(out / "map.png", ds.utm, correct, street_ok,
              f"{split}: top-1 SSA {metrics['ssa@1']:.1f}%, SA {metrics['sa@1']:.1f}%")
    return metrics


@dataclass
class EvaluateArgs:
    run: str = option(help="run directory written by addressclip.train")
    out: str | None = option(None, "output folder (default RUN/eval)")
    split: str = option("test", "split to evaluate")
    checkpoint: str = option("latest", "latest, init, step_NNNNNN or a directory")
    data: str | None = option(None, "dataset folder (default: the run's dataset)")
    batch_size: int = option(128, "images per forward pass")
    workers: int = option(0, "DataLoader worker processes")
    device: str = option("auto", "auto | cpu | cuda")
    precision: str = option("auto", "auto | fp32 | bf16 | fp16")
    zero_shot: bool = option(True, "also score the step-0 (untrained) baseline")


def main(argv: list[str] | None = None) -> int:
    a = parse_config(EvaluateArgs, argv, prog="python -m addressclip.evaluate",
                     description=__doc__.split("\n")[0])
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("addressclip").setLevel(logging.INFO)
    m = evaluate_run(a.run, out=a.out, split=a.split, checkpoint=a.checkpoint, data=a.data,
                     batch_size=a.batch_size, workers=a.workers, device=a.device,
                     precision=a.precision, zero_shot=a.zero_shot)
    zs = m.get("zero_shot")
    print(f"{m['split']}: {m['n_images']} images, {m['n_candidates']} candidates "
          f"(chance {m['chance_ssa@1']:.2f}%)")
    print("             " + "  ".join(f"{k:>6}" for k in METRIC_KEYS))
    if zs:
        print("zero-shot    " + "  ".join(f"{zs[k]:6.2f}" for k in METRIC_KEYS))
    print("AddressCLIP  " + "  ".join(f"{m[k]:6.2f}" for k in METRIC_KEYS))
    print(f"wrote {Path(a.out) if a.out else Path(a.run) / 'eval'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
