"""Fit the predictor's temperature and open-set threshold, and measure them:
``python -m addressclip.calibrate --run RUN_DIR [--other-data OTHER_CITY_DATA]``.

On the run's dataset: the temperature and the threshold come from the validation split
(:mod:`addressclip.calibration`); the test split then gives SSA@1/5 and SA@1/5 of the predictor's
ranking (the same numbers as ``addressclip.evaluate``), the expected calibration error before and
after scaling, the share of test photos called unknown, and the multi-view gain: SSA@1 when the views
of one location (its ``location_id``, e.g. the 4 headings of a rendered place) are averaged with
``predict(..., group_by=...)`` against SSA@1 of single views. With ``--other-data`` (a dataset of
another city, e.g. built from the second extract in the ``pyrosm`` wheel), the share of its photos
called unknown is measured too: those should mostly be refused.

The open-set score (``--open-set-score``, default the class-conditional Mahalanobis distance, the
best of those measured by ``benchmarks/bench_open_set.py``) is fitted on the training split's
embeddings; its thresholds come from the validation split alone, one for a single photo and one for
each group size n = 2, 3, ... (the mean embedding of the first n views of each location, as
``group_by`` scores a group; the mean, hence the score, moves with n). Both it and the top
probability are reported: the share of test photos called unknown, and with ``--other-data`` the AUROC (trained-city
test photos against the other city's) and the other city's unknown rate, single and grouped.

Writes ``RUN/calibration.json`` and ``RUN/open_set.safetensors`` (read by
:class:`addressclip.predict.AddressPredictor` and copied by ``export --full``), with every figure
under ``report``; prints a summary table.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from addressclip.calibration import (
    DEFAULT_ACCEPT_RATE,
    Calibration,
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    softmax,
)
from addressclip.data import CandidateSet
from addressclip.open_set import DEFAULT_SCORE, auroc, fit_open_set, probe_image, save_open_set
from addressclip.predict import AddressPredictor, group_mean
from data_gen.dataset import load_dataset_dir
from ial_core.config import option, parse_config

log = logging.getLogger("addressclip.calibrate")


def split_paths(ial, split: str, limit: int | None = None):
    rows = ial.split(split)
    if limit is not None and limit < len(rows):
        rows = rows.select(range(limit))
    paths = [ial.image_path(p, row=i) for p, i in zip(rows["image"], rows["id"])]
    return rows, paths


def topk_hits(logits: np.ndarray, labels: np.ndarray, street_ids: np.ndarray, k: int = 5) -> dict:
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    ssa = top == labels[:, None]
    sa = street_ids[top] == street_ids[labels][:, None]
    pct = lambda x: float(100 * x.mean())  # noqa: E731
    return {"ssa@1": pct(ssa[:, 0]), "ssa@5": pct(ssa.any(1)), "sa@1": pct(sa[:, 0]),
            "sa@5": pct(sa.any(1)), "n": int(len(labels))}


def first_views_mean(embeddings: torch.Tensor, keys, n: int) -> torch.Tensor:
    """Plain mean embeddings of the first ``n`` views (in row order) of every key with at least ``n``."""
    keys = np.unique(np.asarray(keys).astype(str), return_inverse=True)[1]
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    start = np.r_[0, np.flatnonzero(np.diff(sorted_keys)) + 1]
    position = np.arange(len(keys)) - np.repeat(start, np.diff(np.r_[start, len(keys)]))
    rank = np.empty_like(position)
    rank[order] = position
    keep = (rank < n) & (np.bincount(keys)[keys] >= n)
    if not keep.any():
        return embeddings[:0]
    return group_mean(embeddings[torch.from_numpy(keep)], list(keys[keep]), normalize=False)[1]


def calibrate_run(run_dir: str | Path, *, data: str | None = None, other_data: str | None = None,
                  accept_rate: float = DEFAULT_ACCEPT_RATE, checkpoint: str = "latest",
                  other_limit: int | None = None, batch_size: int = 128, bins: int = 15,
                  open_set_score: str = DEFAULT_SCORE, save: bool = True) -> Calibration:
    run_dir = Path(run_dir)
    predictor = AddressPredictor.from_pretrained(run_dir, checkpoint=checkpoint, data=data,
                                                 calibration=False)
    from addressclip.config import load_run_config
    ial = load_dataset_dir(data or load_run_config(run_dir).dataset_root)
    cands = CandidateSet.from_dataset(ial)
    if cands.addresses != [c.address for c in predictor.candidates]:
        raise ValueError("predictor candidates differ from the dataset's candidate set")

    def logits_of(dataset, split, limit=None):
        rows, paths = split_paths(dataset, split, limit)
        t0 = time.perf_counter()
        emb = predictor.embed(paths, batch_size)
        log.info("%s/%s: %d images embedded in %.1f s", dataset.root.name, split, len(paths),
                 time.perf_counter() - t0)
        return rows, emb, predictor.logits(emb).numpy()

    val_rows, val_emb, val_logits = logits_of(ial, "val")
    val_labels = cands.labels(ial, "val")
    temperature = fit_temperature(val_logits, val_labels)
    val_top = softmax(val_logits, temperature).max(1)
    threshold = choose_threshold(val_top, accept_rate)

    rows, test_emb, test_logits = logits_of(ial, "test")
    labels = cands.labels(ial, "test")
    report = {"test": topk_hits(test_logits, labels, cands.street_ids)}
    correct = test_logits.argmax(1) == labels
    for name, t in (("before", 1.0), ("after", temperature)):
        probs = softmax(test_logits, t)
        report[f"ece_{name}"] = expected_calibration_error(probs.max(1), correct, bins)
        report[f"test_nll_{name}"] = float(-np.log(probs[np.arange(len(labels)), labels] + 1e-12).mean())
    report["test_unknown_rate"] = float((softmax(test_logits, temperature).max(1) < threshold).mean())

    keys, mean, counts = group_mean(test_emb, list(rows["location_id"]))
    first = {k: i for i, k in reversed(list(enumerate(rows["location_id"])))}
    group_labels = labels[[first[k] for k in keys]]
    group_logits = predictor.logits(mean).numpy()
    report["multi_view"] = {"views_per_location": float(counts.mean()), "locations": len(keys),
                            "single_view": report["test"],
                            "grouped": topk_hits(group_logits, group_labels, cands.street_ids)}
    report["multi_view"]["ssa@1_gain"] = (report["multi_view"]["grouped"]["ssa@1"]
                                          - report["test"]["ssa@1"])
    if other_data:
        other = load_dataset_dir(other_data)
        other_rows, other_emb, other_logits = logits_of(other, "test", other_limit)
        top = softmax(other_logits, temperature).max(1)
        report["other_city"] = {"data": str(other.root), "city": other.city, "n": int(len(top)),
                                "unknown_rate": float((top < threshold).mean()),
                                "median_top_probability": float(np.median(top))}
    report["val_median_top_probability"] = float(np.median(val_top))

    # open set: the top probability and the chosen score, each thresholded on validation only
    scores = {"top_probability": lambda emb: softmax(predictor.logits(emb).numpy(), temperature).max(1)}
    open_set, fitted = {}, None
    if open_set_score != "top_probability":
        train_rows, train_emb, _ = logits_of(ial, "train")
        fitted = fit_open_set(open_set_score, train_emb.numpy(), cands.labels(ial, "train"),
                              text=predictor.text_features, logit_scale=predictor.backend.logit_scale,
                              temperature=temperature).eval()
        scores[open_set_score] = lambda emb: fitted(emb).numpy()
    views = {"val": (val_emb, list(val_rows["location_id"])),
             "test": (test_emb, list(rows["location_id"]))}
    if other_data:
        views["other"] = (other_emb, list(other_rows["location_id"]))
    # groups of n = 2 .. (views per validation location) views: the mean moves with n, so each n
    # gets its own threshold
    max_views = int(group_mean(*views["val"])[2].max())
    kinds = {"single": {k: e for k, (e, _) in views.items()}}
    for n in range(2, max_views + 1):
        kinds[f"grouped_{n}"] = {k: first_views_mean(e, loc, n) for k, (e, loc) in views.items()}
    report["open_set"] = {}
    for name, fn in scores.items():
        r = {}
        for kind, data in kinds.items():
            s = {k: fn(v) for k, v in data.items() if len(v)}
            if "val" not in s:
                continue
            thr = choose_threshold(s["val"], accept_rate)
            r[kind] = {"threshold": float(thr), "n_val": len(s["val"])}
            if "test" in s:
                r[kind]["test_unknown_rate"] = float((s["test"] < thr).mean())
            if "other" in s and "test" in s:
                r[kind] |= {"other_unknown_rate": float((s["other"] < thr).mean()),
                            "auroc": auroc(s["test"], s["other"])}
        report["open_set"][name] = r
    if fitted is not None:
        chosen = report["open_set"][open_set_score]
        open_set = {"score": open_set_score, "threshold": chosen["single"]["threshold"],
                    "grouped_thresholds": {k.split("_")[1]: v["threshold"] for k, v in chosen.items()
                                           if k.startswith("grouped_")},
                    "file": "open_set.safetensors", "n_train": int(len(train_emb))}
        report["test_unknown_rate"] = chosen["single"]["test_unknown_rate"]
        if other_data:
            report["other_city"]["unknown_rate"] = chosen["single"]["other_unknown_rate"]
    cal = Calibration(temperature=temperature, threshold=threshold, accept_rate=accept_rate,
                      fitted_on=f"{ial.root} [val], {len(val_labels)} images", report=report,
                      open_set=open_set)
    if save:
        if fitted is not None:
            save_open_set(fitted, run_dir, probe=predictor.embed([probe_image()]),
                          info={"score": open_set_score, "dataset": str(ial.root), "split": "train",
                                "n_train": open_set["n_train"]})
        else:
            (run_dir / "open_set.safetensors").unlink(missing_ok=True)
        cal.save(run_dir)
    return cal


def summary(cal: Calibration) -> str:
    r = cal.report
    t = r["test"]
    mv = r["multi_view"]
    lines = [f"temperature {cal.temperature:.3f}, unknown below p={cal.threshold:.4f} "
             f"(answers {100 * cal.accept_rate:.0f}% of validation photos)",
             f"test ({t['n']} images): SSA@1 {t['ssa@1']:.1f}  SSA@5 {t['ssa@5']:.1f}  "
             f"SA@1 {t['sa@1']:.1f}  SA@5 {t['sa@5']:.1f}",
             f"ECE (top-1, {15} bins): before {100 * r['ece_before']:.1f}%, "
             f"after {100 * r['ece_after']:.1f}%",
             f"unknown: {100 * r['test_unknown_rate']:.1f}% of the trained city's test photos "
             f"(one photo at a time)",
             f"multi-view ({mv['views_per_location']:.0f} views x {mv['locations']} locations): "
             f"SSA@1 {mv['grouped']['ssa@1']:.1f} vs {t['ssa@1']:.1f} single view "
             f"({mv['ssa@1_gain']:+.1f}), SA@1 {mv['grouped']['sa@1']:.1f} vs {t['sa@1']:.1f}"]
    if "other_city" in r:
        o = r["other_city"]
        lines.append(f"unknown: {100 * o['unknown_rate']:.1f}% of {o['n']} photos of {o['city']!r} "
                     f"(another city)")
    lines.append(f"open set (decides unknown: {cal.open_set_score}); unknown % of the trained city's "
                 f"test photos / the other city's, AUROC:")
    for name, by_kind in r.get("open_set", {}).items():
        cells = []
        for kind, x in by_kind.items():
            if "test_unknown_rate" not in x:
                continue
            cell = f"{kind} {100 * x['test_unknown_rate']:.1f}%"
            if "auroc" in x:
                cell += f" / {100 * x['other_unknown_rate']:.1f}%, AUROC {x['auroc']:.3f}"
            cells.append(cell)
        lines.append(f"  {name:<22} " + "; ".join(cells))
    return "\n".join(lines)


@dataclass
class CalibrateArgs:
    run: str = option(help="run directory written by addressclip.train")
    data: str | None = option(None, "dataset folder (default: the run's)")
    other_data: str | None = option(None, "a dataset of another city: measure its unknown rate")
    other_limit: int | None = option(None, "use only the first N test photos of --other_data")
    accept_rate: float = option(DEFAULT_ACCEPT_RATE,
                                "share of validation photos answered (sets the unknown threshold)")
    open_set_score: str = option(DEFAULT_SCORE,
                                 "score that decides 'unknown' (addressclip.open_set.CANDIDATE_SCORES, "
                                 "or knn_kth@K / knn_mean@K); top_probability keeps the plain rule")
    checkpoint: str = option("latest", "latest, init, step_NNNNNN or a directory")
    batch_size: int = option(128, "images per forward pass")


def main(argv: list[str] | None = None) -> int:
    a = parse_config(CalibrateArgs, argv, prog="python -m addressclip.calibrate",
                     description=__doc__.split("\n")[0])
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("addressclip").setLevel(logging.INFO)
    torch.set_grad_enabled(False)
    cal = calibrate_run(a.run, data=a.data, other_data=a.other_data, accept_rate=a.accept_rate,
                        checkpoint=a.checkpoint, other_limit=a.other_limit, batch_size=a.batch_size,
                        open_set_score=a.open_set_score)
    print(summary(cal))
    print(f"wrote {Path(a.run) / 'calibration.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
