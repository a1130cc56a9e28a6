"""The loss-ablation table over seeds: ``python -m addressclip.ablation RUNS_DIR``.

Reads ``RUNS_DIR/NAME/seedS/eval/{metrics.json,predictions.csv}`` for the rows of :data:`ROWS` (written
by ``scripts/ablate_addressclip.sh``; a single-seed ``RUNS_DIR/NAME/eval`` counts as seed 0) and
prints, per row, the mean +- standard deviation over seeds of Top-1/Top-5 SSA and SA next to the
paper's Top-1 SSA for the same loss combination on Pitts-IAL and SF-IAL-Base; then, per row against
``address`` (and ``all`` against the two-loss rows), the paired difference with a 95 % interval.

The paired difference. Runs of two rows with the same seed share that seed's initialisation and data
order, and every run is scored on the same test images, so the comparison pairs by seed and by image:
per image i, x_i is the mean over the common seeds of (row hit - reference hit). The estimate is
D = mean_i x_i (= the mean over seeds of the per-seed accuracy differences). Two sources of
uncertainty add up:

- the test images: the variance of D under a bootstrap that resamples images (the same images for
  both rows and every seed, which keeps the pairing);
- the training seed: s^2 / S, with s the standard deviation over the S seeds of the per-seed
  differences d_s.

The interval is D +- t * sqrt(v_images + v_seeds), with t the 97.5 % Student quantile at the
Welch-Satterthwaite degrees of freedom (S - 1 for the seed part, unbounded for the image part), so
with 3 seeds and a large seed spread it widens towards t(2) = 4.3 rather than pretending to 1.96.

The paper fine-tunes pretrained CLIP ViT-B/16 on real photographs for 100 epochs; these runs train
the configured model (by default the tiny CPU model from random initialisation, for a few epochs) on
the configured data. Compare the ordering of the rows, not the values. The table is also written to
``RUNS_DIR/ablation.md``. The rows are built from the loss registry
(:data:`addressclip.losses.LOSS_TERMS`, each term at its paper weight); ``--print_rows`` prints each
row's name and training flags.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from addressclip.losses import LOSS_TERMS
from ial_core.config import option, parse_config, usage_error
from ial_core.errors import exit_2_on
from ial_core.files import write_text

METRIC_KEYS = ("ssa@1", "ssa@5", "sa@1", "sa@5")   # as in addressclip.evaluate (no torch import here)

# The paper's loss combinations (terms of addressclip.losses.LOSS_TERMS) -> its Top-1 SSA on
# Pitts-IAL and SF-IAL-Base
PAPER_SSA1 = {
    ("address",): (77.66, 83.66),
    ("caption",): (69.27, 75.85),
    ("address", "caption"): (79.20, 84.86),
    ("address", "geography"): (79.27, 85.54),
    ("address", "caption", "geography"): (80.39, 86.32),
}


def _row(terms: tuple[str, ...]) -> tuple[str, str, str]:
    """Name, weights label and ``addressclip.train`` flags of the row that trains ``terms`` (each at
    its paper weight, every other term at 0)."""
    on = [t for t in LOSS_TERMS if t.name in terms]
    name = "all" if len(on) == len(LOSS_TERMS) else "+".join(t.name for t in on)
    label = ", ".join(f"{t.weight_field}={t.paper_weight:g}" for t in on)
    flags = " ".join(f"--{t.weight_field} {t.paper_weight if t in on else 0:g}" for t in LOSS_TERMS)
    return name, label, flags


_BUILT = [(_row(terms), paper) for terms, paper in PAPER_SSA1.items()]
# name -> (loss weights of the row, paper Top-1 SSA Pitts-IAL, SF-IAL-Base)
ROWS = {name: (label, *paper) for (name, label, _), paper in _BUILT}
# name -> the training flags of the row (what scripts/ablate_addressclip.sh passes)
ROW_FLAGS = {name: flags for (name, _, flags), _ in _BUILT}
REFERENCE = "address"
# the paper's claims beyond "better than address alone": all three beat each pair
EXTRA_PAIRS = (("all", "address+caption"), ("all", "address+geography"))
_SEED_DIR = re.compile(r"seed(\d+)$")


class AblationError(ValueError):
    """A run folder or predictions file that cannot be read as the ablation expects."""


@dataclass
class SeedRun:
    metrics: dict
    ids: np.ndarray                 # [N] image ids, sorted
    hits: dict[str, np.ndarray]     # metric -> bool [N], aligned with ids


@dataclass
class PairedDifference:
    estimate: float                 # percentage points
    low: float
    high: float
    seeds: list[int]
    per_seed: list[float]
    se_images: float
    se_seeds: float
    dof: float


def read_predictions(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Image ids (sorted) and per-metric hits from ``predictions.csv`` (addressclip.evaluate)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise AblationError(f"{path}: cannot read ({exc})") from exc
    missing = [f"hit_{k}" for k in METRIC_KEYS if not rows or f"hit_{k}" not in rows[0]]
    if missing:
        raise AblationError(f"{path}: no column {', '.join(missing)} (written by an older "
                            "addressclip.evaluate? evaluate the run again)")
    ids = np.array([r["image"] for r in rows])
    if len(set(ids.tolist())) != len(ids):
        raise AblationError(f"{path}: an image id appears twice")
    order = np.argsort(ids, kind="stable")
    hits = {}
    for k in METRIC_KEYS:
        col = np.array([r[f"hit_{k}"] for r in rows])
        bad = ~np.isin(col, ("0", "1"))
        if bad.any():
            line = int(np.flatnonzero(bad)[0]) + 2
            raise AblationError(f"{path}:{line}: hit_{k} is {str(col[bad][0])!r}, not 0 or 1")
        hits[k] = (col == "1")[order]
    return ids[order], hits


def load_row(runs_dir: Path, name: str) -> dict[int, SeedRun]:
    """Seed -> evaluated run, for every evaluated run of ``name``."""
    row_dir = runs_dir / name
    found: dict[int, Path] = {}
    if (row_dir / "eval" / "metrics.json").is_file():
        found[0] = row_dir / "eval"
    for d in sorted(row_dir.glob("seed*")):
        m = _SEED_DIR.search(d.name)
        if m and (d / "eval" / "metrics.json").is_file():
            found[int(m.group(1))] = d / "eval"
    out = {}
    for seed, ev in sorted(found.items()):
        metrics = json.loads((ev / "metrics.json").read_text(encoding="utf-8"))
        ids, hits = read_predictions(ev / "predictions.csv")
        out[seed] = SeedRun(metrics, ids, hits)
    return out


def paired_difference(row: dict[int, SeedRun], ref: dict[int, SeedRun], metric: str, *,
                      n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> PairedDifference:
    """``row`` minus ``ref`` in percentage points on ``metric``, paired by seed and by image."""
    from scipy import stats
    seeds = sorted(set(row) & set(ref))
    if not seeds:
        raise AblationError("no seed was run for both rows")
    for s in seeds:
        if not np.array_equal(row[s].ids, ref[s].ids):
            raise AblationError(f"seed {s}: the two runs were scored on different test images")
    diff = np.stack([row[s].hits[metric].astype(np.float64) - ref[s].hits[metric] for s in seeds])
    per_seed = 100.0 * diff.mean(axis=1)                 # [S]
    x = 100.0 * diff.mean(axis=0)                        # [N] per image, averaged over seeds
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    v_images = float(x[idx].mean(axis=1).var(ddof=1))
    n_seeds = len(seeds)
    v_seeds = float(per_seed.var(ddof=1) / n_seeds) if n_seeds > 1 else 0.0
    total = v_images + v_seeds
    if v_seeds > 0:
        dof = total ** 2 / (v_seeds ** 2 / (n_seeds - 1))
        q = float(stats.t.ppf(0.5 + level / 2, dof))
    else:
        dof = float("inf")
        q = float(stats.norm.ppf(0.5 + level / 2))
    est = float(per_seed.mean())
    half = q * np.sqrt(total)
    return PairedDifference(est, est - half, est + half, seeds, per_seed.tolist(),
                            float(np.sqrt(v_images)), float(np.sqrt(v_seeds)), dof)


def verdict(d: PairedDifference) -> str:
    """better / worse where the interval excludes 0; no verdict from one seed, whose interval
    holds only the test-image part (the training-seed spread cannot be estimated)."""
    if len(d.seeds) < 2:
        return "one seed: no verdict"
    if d.low > 0:
        return "better"
    if d.high < 0:
        return "worse"
    return "no clear difference"


def _mean_std(values: list[float]) -> str:
    v = np.asarray(values)
    return f"{v.mean():.1f} +- {v.std(ddof=1):.1f}" if v.size > 1 else f"{v.mean():.1f}"


def table(runs_dir: Path, *, n_boot: int = 2000) -> str:
    runs_dir = Path(runs_dir)
    loaded = {name: load_row(runs_dir, name) for name in ROWS}
    lines = ["| losses | weights | seeds | SSA@1 | SSA@5 | SA@1 | SA@5 | paper SSA@1 Pitts-IAL | "
             "paper SSA@1 SF-IAL-Base |", "|---|---|---|---|---|---|---|---|---|"]
    for name, (weights, pitts, sf) in ROWS.items():
        runs = loaded[name]
        if runs:
            ours = " | ".join(_mean_std([r.metrics[k] for r in runs.values()]) for k in METRIC_KEYS)
        else:
            ours = " | ".join(["(not run)"] * 4)
        lines.append(f"| {name} | {weights} | {len(runs)} | {ours} | {pitts:.2f} | {sf:.2f} |")

    pairs = [(name, REFERENCE) for name in ROWS if name != REFERENCE] + list(EXTRA_PAIRS)
    pairs = [(a, b) for a, b in pairs if loaded[a] and loaded[b] and set(loaded[a]) & set(loaded[b])]
    if pairs:
        lines += ["", "Paired difference (percentage points, same seed and same test images; 95 % "
                  "interval over seeds and a bootstrap over test images):", "",
                  "| row - reference | seeds | " + " | ".join(k.upper() for k in METRIC_KEYS) +
                  " | paper SSA@1 (Pitts / SF) | SSA@1 here |",
                  "|---|---|---|---|---|---|---|---|"]
        for a, b in pairs:
            ds = {k: paired_difference(loaded[a], loaded[b], k, n_boot=n_boot) for k in METRIC_KEYS}
            cells = " | ".join(f"{d.estimate:+.1f} [{d.low:+.1f}, {d.high:+.1f}]" for d in ds.values())
            paper = f"{ROWS[a][1] - ROWS[b][1]:+.2f} / {ROWS[a][2] - ROWS[b][2]:+.2f}"
            lines.append(f"| {a} - {b} | {len(ds['ssa@1'].seeds)} | {cells} | {paper} | "
                         f"{verdict(ds['ssa@1'])} |")
    found = [(n, s, r) for n, runs in loaded.items() for s, r in runs.items()]
    if found:
        name, seed, any_run = found[0]
        m = any_run.metrics
        notes = [f"{m['n_images']} {m['split']} images of {m['dataset']}, {m['n_candidates']} "
                 f"candidate addresses (chance SSA@1 {m['chance_ssa@1']:.2f}%)."]
        zs = m.get("zero_shot")
        if zs:
            notes.append(f"Zero-shot (the model at step 0): SSA@1 {zs['ssa@1']:.2f}, SA@1 {zs['sa@1']:.2f}.")
        run_dir = runs_dir / name / f"seed{seed}"
        cfg_path = (run_dir if run_dir.is_dir() else runs_dir / name) / "config.yaml"
        if cfg_path.is_file():
            import yaml
            cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
            notes.append(f"Model {cfg['model']['model']} (pretrained: {cfg['model']['pretrained']}), "
                         f"{cfg['optim']['epochs']} epochs, batch {cfg['optim']['batch_size']}, "
                         f"lr {cfg['optim']['lr']}; mean +- standard deviation over the seeds run.")
        notes.append("Paper: CLIP ViT-B/16 (OpenAI weights) fine-tuned on real street photos, 100 "
                     "epochs, 8 GPUs. Compare the ordering of the rows, not the values; a difference "
                     "counts only where its interval excludes 0.")
        lines += [""] + notes
    return "\n".join(lines) + "\n"


@dataclass
class AblationArgs:
    runs_dir: str | None = option(None, "folder holding one folder per loss combination, seed folders "
                                  "inside", nargs="?")
    bootstrap: int = option(2000, "bootstrap resamples of the test images")
    print_rows: bool = option(False, "print each row's name and training flags (the rows "
                              "scripts/ablate_addressclip.sh trains) and exit")


@exit_2_on(AblationError)
def main(argv: list[str] | None = None) -> int:
    a = parse_config(AblationArgs, argv, prog="python -m addressclip.ablation",
                     description=__doc__.split("\n")[0], positional=["runs_dir"])
    if a.print_rows:
        print("".join(f"{name} {flags}\n" for name, flags in ROW_FLAGS.items()), end="")
        return 0
    if a.runs_dir is None:
        usage_error("python -m addressclip.ablation", "RUNS_DIR is required")
    if not Path(a.runs_dir).is_dir():
        usage_error("python -m addressclip.ablation", f"{a.runs_dir}: no such folder")
    text = table(Path(a.runs_dir), n_boot=a.bootstrap)
    write_text(Path(a.runs_dir) / "ablation.md", text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
