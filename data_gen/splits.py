"""Spatially sensible train/val/test splits.

All headings of a location go to one split, and each split takes *contiguous* stretches of every
sub-street: along each sub-street, locations ordered by chainage give one stretch of
``round(n * test_fraction)`` test locations at a seeded position, the next ``round(n * val_fraction)``
become val, the rest train. So test places neighbour training places only at the two ends of their stretch (as in
Pitts-IAL, every test sub-street is also a training sub-street), and a sub-street with fewer than
three locations stays entirely in train.
"""

from __future__ import annotations

import numpy as np


def assign_splits(sub_street: np.ndarray, chainage: np.ndarray, *, seed: int,
                  val_fraction: float = 0.1, test_fraction: float = 0.1) -> np.ndarray:
    """Split name per location ('train'/'val'/'test'), object array."""
    if not (0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction < 1):
        raise ValueError("val_fraction and test_fraction must be >= 0 and sum to < 1")
    rng = np.random.default_rng(seed)
    split = np.full(len(sub_street), "train", dtype=object)
    order = np.lexsort((chainage, sub_street))
    groups = np.split(order, np.flatnonzero(np.diff(sub_street[order])) + 1)
    for members in groups:
        n = len(members)
        if n < 3:
            continue
        n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
        n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
        start = int(rng.integers(n - n_test - n_val + 1))
        split[members[start:start + n_test]] = "test"
        split[members[start + n_test:start + n_test + n_val]] = "val"
    return split
