"""Which open-set score tells the trained city's photos from another city's? Measured on one set of
embeddings of the demo's AddressCLIP.

For each candidate score (higher = more like the trained city), with the threshold chosen on the
trained city's *validation* photos only (``accept_rate`` of them answered, 90% by default):

- AUROC of trained-city test photos (positives) against the other city's test photos;
- the share of trained-city test photos and of other-city photos called unknown at that threshold;
- the same with the 4 views of one location averaged first (``group_by=location_id``), the
  threshold then chosen on the validation split's locations: the plain mean of the normalised
  view embeddings (what the predictor scores), and the renormalised mean (what it ranks).

Scores (:mod:`addressclip.open_set`): the calibrated top probability (the predictor's first rule),
the maximum logit, the negative energy ``T * logsumexp(logits / T)``, the cosine similarity to the
k-th nearest and the mean over the k nearest training photos (k = 1, 10, 50), and the Mahalanobis
distance to the nearest training class mean with a shared covariance (Lee et al. 2018), plain and
relative to a class-agnostic Gaussian (Ren et al. 2021).

    python benchmarks/bench_open_set.py [--model runs/helsinki/addressclip]
        [--other-data runs/othercity/data] [--cache runs/open_set_embeddings.npz] [--json out.json]

Embeddings (train, val, test of the trained city; test of the other city) are computed once and
kept in ``--cache`` (numpy ``.npz``, loaded with ``allow_pickle=False``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from common import write_results

from ial_core.config import option, parse_config
from ial_core.files import atomic_file


@dataclass
class OpenSetBenchConfig:
    model: str = option("runs/helsinki/addressclip", "trained AddressCLIP run")
    other_data: str = option("runs/othercity/data", "built dataset of another city")
    cache: str = option("runs/open_set_embeddings.npz", "embeddings, computed once and kept here")
    accept_rate: float = option(0.9, "share of the trained city's validation photos answered")
    batch: int = option(128, "images per embedding batch")
    json: str | None = option(None, "also write the table as JSON")


def embed_all(model: str, other_data: str, batch: int) -> dict[str, np.ndarray]:
    from addressclip.calibrate import split_paths
    from addressclip.config import load_run_config
    from addressclip.data import CandidateSet
    from addressclip.predict import AddressPredictor
    from data_gen.dataset import load_dataset_dir
    pred = AddressPredictor.from_pretrained(model, calibration=False)
    ial = load_dataset_dir(load_run_config(model).dataset_root)
    other = load_dataset_dir(other_data)
    cands = CandidateSet.from_dataset(ial)
    out: dict[str, np.ndarray] = {"text": pred.text_features.numpy(),
                                  "logit_scale": np.array(pred.backend.logit_scale)}
    for name, ds, split in (("train", ial, "train"), ("val", ial, "val"), ("test", ial, "test"),
                            ("other", other, "test")):
        rows, paths = split_paths(ds, split)
        t0 = time.perf_counter()
        out[f"{name}_emb"] = pred.embed(paths, batch).numpy()
        print(f"embedded {name}: {len(paths)} images in {time.perf_counter() - t0:.1f} s", flush=True)
        out[f"{name}_loc"] = np.unique(np.asarray(rows["location_id"]).astype(str),
                                       return_inverse=True)[1]
        if ds is ial:
            out[f"{name}_label"] = cands.labels(ial, split)
    return out


def grouped(emb: np.ndarray, loc: np.ndarray) -> np.ndarray:
    """The plain mean of each location's normalised view embeddings (as the predictor scores a
    group; its norm, lower when the views disagree, is part of the signal)."""
    sums = np.zeros((loc.max() + 1, emb.shape[1]))
    np.add.at(sums, loc, emb)
    return sums / np.bincount(loc)[:, None]


def main(argv: list[str] | None = None) -> None:
    a = parse_config(OpenSetBenchConfig, argv, description=__doc__.split("?")[0] + "?")
    torch.set_grad_enabled(False)
    from addressclip.calibration import fit_temperature
    from addressclip.open_set import CANDIDATE_SCORES, auroc, fit_open_set

    cache = Path(a.cache)
    if cache.is_file():
        e = dict(np.load(cache, allow_pickle=False))
    else:
        e = embed_all(a.model, a.other_data, a.batch)
        with atomic_file(cache) as tmp, open(tmp, "wb") as f:
            np.savez(f, **e)
    text, scale = e["text"], float(e["logit_scale"])
    temperature = fit_temperature(scale * e["val_emb"] @ text.T, e["val_label"])
    sets = {"single": {k: e[f"{k}_emb"] for k in ("val", "test", "other")},
            "grouped": {k: grouped(e[f"{k}_emb"], e[f"{k}_loc"]) for k in ("val", "test", "other")}}
    sets["grouped_renormalised"] = {k: v / np.linalg.norm(v, axis=1, keepdims=True)
                                    for k, v in sets["grouped"].items()}
    print(f"train {len(e['train_emb'])}, val {len(e['val_emb'])}, test {len(e['test_emb'])}, "
          f"other city {len(e['other_emb'])} photos; temperature {temperature:.3f}; "
          f"threshold answers {100 * a.accept_rate:.0f}% of validation photos")
    rows = []
    print("AUROC, unknown % of trained-city test / other-city photos: one photo | 4 views, mean "
          "embedding | 4 views, renormalised mean")
    for name in CANDIDATE_SCORES:
        t0 = time.perf_counter()
        model = fit_open_set(name, e["train_emb"], e["train_label"], text=text, logit_scale=scale,
                             temperature=temperature)
        row = {"score": name}
        for view, s in sets.items():
            val, test, other = (model(torch.from_numpy(s[k]).float()).numpy()
                                for k in ("val", "test", "other"))
            thr = float(np.quantile(val, 1 - a.accept_rate))
            row[view] = {"auroc": auroc(test, other), "threshold": thr,
                         "val_unknown": float((val < thr).mean()),
                         "test_unknown": float((test < thr).mean()),
                         "other_unknown": float((other < thr).mean())}
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        print(f"{name:<22}" + " | ".join(
            f"{r['auroc']:.3f} {100 * r['test_unknown']:5.1f} {100 * r['other_unknown']:5.1f}"
            for r in (row[v] for v in sets)), flush=True)
    if a.json:
        write_results(a.json, {"temperature": temperature, "rows": rows}, announce=False)


if __name__ == "__main__":
    main()
