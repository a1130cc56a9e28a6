"""Surface materials as multiplicative brightness patterns, applied through a label image.

Facades and ground are drawn twice: in colour, and as a material id into an 8-bit label
image. One gather from a cached (material, pixel) table then textures every surface at
once (brick courses, stone blocks, glass mullions, paving ...) without per-shape work.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .hashing import stable_rng

# label ids: 0 = untextured; facade materials follow style.MATERIALS order
LABELS = ("none", "brick", "plaster", "stone", "glass", "wood", "concrete",
          "asphalt", "paving", "pavement", "roof", "landmark0", "landmark1", "landmark2", "landmark3")
LABEL_ID = {name: i for i, name in enumerate(LABELS)}
GROUND_LABELS = (LABEL_ID["asphalt"], LABEL_ID["paving"], LABEL_ID["pavement"])
# tall landmarks are also drawn as these labels: what survives the facades is visible
LANDMARK_LABELS = tuple(LABEL_ID[f"landmark{i}"] for i in range(4))


def _blocks(rng, size, bh, bw, stagger, joint, spread):
    """Running-bond blocks of bh x bw px with darker joints and per-block tone."""
    yy = np.arange(size)[:, None]
    xx = np.arange(size)[None, :]
    row = yy // bh
    shift = (row % 2) * (bw // 2) if stagger else 0
    col = (xx + shift) // bw
    tone = rng.uniform(1 - spread, 1 + spread, size=(size // bh + 2, size // bw + 3))
    t = tone[row, col]
    joints = ((yy % bh) == 0) | (((xx + shift) % bw) == 0)
    return np.where(joints, joint, t)


def _mottle(rng, size, cells, amp):
    small = rng.uniform(1 - amp, 1 + amp, size=(cells, cells))
    rep = -(-size // cells)
    return np.kron(small, np.ones((rep, rep)))[:size, :size]


@lru_cache(maxsize=16)
def texture_table(size: int) -> np.ndarray:
    """float32 (len(LABELS), size*size) brightness factors, about 1.0."""
    rng = stable_rng("textures", size)
    k = max(1, round(size / 128))
    t = np.ones((len(LABELS), size, size), dtype=np.float64)
    t[LABEL_ID["brick"]] = _blocks(rng, size, 2 * k, 5 * k, True, 1.18, 0.07)
    t[LABEL_ID["plaster"]] = _mottle(rng, size, 12, 0.04) * _mottle(rng, size, 40, 0.02)
    t[LABEL_ID["stone"]] = _blocks(rng, size, 4 * k, 9 * k, True, 0.8, 0.06)
    xx = np.arange(size)[None, :]
    yy = np.arange(size)[:, None]
    glass = 1.0 + 0.12 * np.sin(xx / (3.0 * k) + yy / (9.0 * k))
    t[LABEL_ID["glass"]] = np.where(((xx % (6 * k)) == 0) | ((yy % (5 * k)) == 0), 0.72, glass)
    planks = np.repeat(rng.uniform(0.9, 1.08, size=size // (3 * k) + 2), 3 * k)[:size][None, :]
    t[LABEL_ID["wood"]] = np.where((xx % (3 * k)) == 0, 0.75, planks * np.ones((size, 1)))
    t[LABEL_ID["concrete"]] = np.where(((xx % (11 * k)) == 0) | ((yy % (9 * k)) == 0), 0.85,
                                       _mottle(rng, size, 64, 0.05))
    t[LABEL_ID["asphalt"]] = rng.uniform(0.93, 1.07, size=(size, size))
    t[LABEL_ID["paving"]] = _blocks(rng, size, 2 * k, 3 * k, True, 0.82, 0.08)
    t[LABEL_ID["pavement"]] = _blocks(rng, size, 3 * k, 7 * k, False, 0.88, 0.03)
    t[LABEL_ID["roof"]] = np.where((yy % (2 * k)) == 0, 0.8, 1.0) * np.ones((1, size))
    return t.reshape(len(LABELS), -1).astype(np.float32)


def apply_textures(arr: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """float32 image = ``arr`` (uint8 HxWx3) times each pixel's material pattern."""
    size = arr.shape[0]
    table = texture_table(size)
    flat = labels.reshape(-1)
    factor = table[flat, _arange(size * size)]
    return arr.astype(np.float32) * factor.reshape(size, size, 1)


@lru_cache(maxsize=16)
def _arange(n: int) -> np.ndarray:
    return np.arange(n)
