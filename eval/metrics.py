"""Score parsed answers against references: accuracies, refusals, metres off, bootstrap intervals.

Every rate is over *all* scored items: an item whose answer is missing or failed counts as wrong (and
in ``error_rate``), so a run cannot look better by answering less. Definitions:

- ``street_acc``: the answer's street is the true street; ``district_acc`` likewise;
  ``street_acc_any_guess``: the true street is any of the answer's guesses (a list of guesses, or
  streets offered as alternatives "A or B"), for studying list-style answers; ``street_acc`` only
  credits the first guess.
  ``address_acc``: both (the street-level address "{street}, {district}").
- ``sub_street_acc``: the street is right and so is the cross street (any street of a "A/B" label);
  when the true location has no cross street, the right street suffices.
  ``sub_street_acc_when_given``: the same over the answers that name a cross street
  (``cross_street_given_rate`` of them).
- ``refusal_rate``: explicit refusals; ``no_street_rate``: answers naming no street of this city
  (refusals, vague answers, other cities, errors); ``other_city_rate``, ``error_rate``.
- distances, when the gazetteer has geometry and the references a position: metres from the true
  UTM position to the named sub-street (street + cross street) or else the whole street;
  ``within_{25,100,250}m`` over the positioned items (no street = not within),
  ``median_distance_m`` over those that name a street with geometry.
- 95% intervals: percentile bootstrap over items. Resamples are drawn as multinomial counts with a
  seeded generator and applied to all metrics at once as one matrix product per chunk; the same
  seed and item count give the same resamples for every run, so runs are compared on paired samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from eval.address_parser import ParsedAnswer
from eval.gazetteer import Gazetteer, cross_street_names
from eval.normalize import compact
from eval.references import Reference

RADII_M = (25, 100, 250)
CI_METRICS = ("street_acc", "district_acc", "address_acc", "sub_street_acc", "refusal_rate",
              *(f"within_{r}m" for r in RADII_M))
_CHUNK_CELLS = 4_000_000     # resamples x items per matrix product (~32 MB of float64)


@dataclass
class ItemScores:
    """Per-item outcomes, one array entry per reference (same order)."""

    street: np.ndarray
    street_any_guess: np.ndarray
    district: np.ndarray
    address: np.ndarray
    sub_street: np.ndarray
    cross_given: np.ndarray
    refusal: np.ndarray
    no_street: np.ndarray
    other_city: np.ndarray
    error: np.ndarray
    distance_m: np.ndarray     # NaN: no position, no street or no geometry
    positioned: np.ndarray     # the reference has a true position and the gazetteer has geometry

    def __len__(self) -> int:
        return len(self.street)


def score_items(refs: list[Reference], parsed: list[ParsedAnswer | None],
                gazetteer: Gazetteer) -> ItemScores:
    """``parsed[i]`` is None when item i has no answer (its error counts as wrong)."""
    n = len(refs)
    key = _Keys()

    def flags(values) -> np.ndarray:
        return np.fromiter(values, dtype=bool, count=n)

    pred_street = [key(p.street) if p else None for p in parsed]
    pred_cross = [key(p.cross_street) if p else None for p in parsed]
    street = flags(ps is not None and ps == key(r.street) for ps, r in zip(pred_street, refs))
    district = flags(p is not None and p.district is not None and key(p.district) == key(r.district)
                     for p, r in zip(parsed, refs))
    true_cross = [{key(c) for c in cross_street_names(r.cross_street)} for r in refs]
    cross_ok = flags(not tc or pc in tc for pc, tc in zip(pred_cross, true_cross))
    kinds = [p.kind if p else "error" for p in parsed]
    distance, positioned = _distances(refs, parsed, gazetteer)
    any_guess = flags(p is not None and key(r.street) in {key(g) for g in (p.guesses or [p.street])}
                      for p, r in zip(parsed, refs))
    return ItemScores(
        street=street, street_any_guess=any_guess | street, district=district, address=street & district,
        sub_street=street & cross_ok,
        cross_given=flags(pc is not None for pc in pred_cross),
        refusal=flags(k == "refusal" for k in kinds), no_street=flags(ps is None for ps in pred_street),
        other_city=flags(k == "other_city" for k in kinds), error=flags(p is None for p in parsed),
        distance_m=distance, positioned=positioned)


def summarize(s: ItemScores, *, bootstrap: int = 1000, seed: int = 0) -> dict:
    """Rates (fractions 0-1) with 95% intervals, counts and distance statistics."""
    n = len(s)
    rate = (lambda x: float(x.mean()) if n else None)  # noqa: E731
    out = {"n": n, "street_acc": rate(s.street), "street_acc_any_guess": rate(s.street_any_guess),
           "district_acc": rate(s.district),
           "address_acc": rate(s.address), "sub_street_acc": rate(s.sub_street),
           "cross_street_given_rate": rate(s.cross_given),
           "sub_street_acc_when_given": float(s.sub_street[s.cross_given].mean())
           if s.cross_given.any() else None,
           "refusal_rate": rate(s.refusal), "no_street_rate": rate(s.no_street),
           "other_city_rate": rate(s.other_city), "error_rate": rate(s.error),
           "n_positioned": int(s.positioned.sum())}
    within = _within(s)
    for r in RADII_M:
        col = within[:, RADII_M.index(r)]
        out[f"within_{r}m"] = float(np.nanmean(col)) if s.positioned.any() else None
    named = s.distance_m[np.isfinite(s.distance_m)]
    out["median_distance_m"] = float(np.median(named)) if named.size else None
    out["ci95"] = bootstrap_ci(_metric_matrix(s, within), CI_METRICS, bootstrap, seed) if n else {}
    return out


def per_district(refs: list[Reference], s: ItemScores) -> dict[str, dict]:
    """Counts and rates by true district."""
    names = np.array([r.district for r in refs], dtype=object)
    out = {}
    for d in sorted(set(names.tolist())):
        m = names == d
        out[d] = {"n": int(m.sum()), "street_acc": float(s.street[m].mean()),
                  "district_acc": float(s.district[m].mean()),
                  "address_acc": float(s.address[m].mean()),
                  "refusal_rate": float(s.refusal[m].mean())}
    return out


def bootstrap_ci(values: np.ndarray, names, n_boot: int, seed: int) -> dict[str, list[float] | None]:
    """Percentile 95% intervals of the column means of ``values`` [N, M] (NaN: not applicable)."""
    n, m = values.shape
    if n_boot <= 0 or n == 0:
        return {}
    valid = np.isfinite(values)
    filled = np.where(valid, values, 0.0)
    rng = np.random.default_rng(seed)
    stats = np.empty((n_boot, m))
    chunk = max(1, _CHUNK_CELLS // n)
    for lo in range(0, n_boot, chunk):
        b = min(chunk, n_boot - lo)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(np.float64)   # [b, N]
        with np.errstate(invalid="ignore", divide="ignore"):
            stats[lo:lo + b] = (counts @ filled) / (counts @ valid)
    out = {}
    for j, name in enumerate(names):
        col = stats[:, j]
        col = col[np.isfinite(col)]
        out[name] = [float(np.percentile(col, 2.5)), float(np.percentile(col, 97.5))] \
            if col.size else None
    return out


def _within(s: ItemScores) -> np.ndarray:
    """[N, len(RADII_M)]: 1 within, 0 not (or no street), NaN for unpositioned items."""
    d = np.where(np.isfinite(s.distance_m), s.distance_m, np.inf)
    w = (d[:, None] <= np.asarray(RADII_M, dtype=float)[None, :]).astype(float)
    w[~s.positioned] = np.nan
    return w


def _metric_matrix(s: ItemScores, within: np.ndarray) -> np.ndarray:
    cols = [s.street, s.district, s.address, s.sub_street, s.refusal]
    return np.column_stack([np.asarray(c, dtype=float) for c in cols] + [within])


def _distances(refs: list[Reference], parsed: list[ParsedAnswer | None],
               gazetteer: Gazetteer) -> tuple[np.ndarray, np.ndarray]:
    n = len(refs)
    positioned = np.fromiter((gazetteer.has_geometry and r.utm is not None for r in refs),
                             dtype=bool, count=n)
    if not positioned.any():
        return np.full(n, np.nan), positioned
    cache: dict[tuple, shapely.Geometry | None] = {}
    geoms = np.empty(n, dtype=object)
    for i, p in enumerate(parsed):
        if not positioned[i] or p is None or p.street is None:
            continue
        k = (p.street, p.cross_street, p.district)
        if k not in cache:
            cache[k] = gazetteer.location_geometry(*k)
        geoms[i] = cache[k]
    xy = np.array([r.utm if r.utm is not None else (np.nan, np.nan) for r in refs], dtype=float)
    points = shapely.points(xy)
    distance = shapely.distance(points, geoms)        # NaN where the geometry is None
    distance = np.where(positioned, distance, np.nan)
    return distance.astype(float), positioned


class _Keys:
    """Comparison keys (compact normalised names), memoised: many items share a few names."""

    def __init__(self):
        self._memo: dict[str, str] = {}

    def __call__(self, name: str | None) -> str | None:
        if not name:
            return None
        k = self._memo.get(name)
        if k is None:
            k = self._memo[name] = compact(name)
        return k
