"""Stable, process-independent randomness derived from names and numbers.

Python's ``hash()`` is salted per process, so every random choice here comes from
BLAKE2b digests of the keys instead: the same street, district or seed always gives
the same buildings, colours and weather, on any machine and in any worker.
"""

from __future__ import annotations

import hashlib
import math
import struct
from functools import lru_cache

import numpy as np

_SEP = "\x1f"
_U32 = struct.Struct("<16I")


def _digest(keys: tuple) -> bytes:
    return hashlib.blake2b(_SEP.join(map(str, keys)).encode("utf-8"), digest_size=64).digest()


def unit_floats(*keys) -> tuple[float, ...]:
    """Sixteen independent floats in [0, 1) fixed by ``keys``."""
    return tuple(v / 4294967296.0 for v in _U32.unpack(_digest(keys)))


def stable_seed(*keys) -> int:
    """A 64-bit seed fixed by ``keys`` (for ``numpy.random.default_rng``)."""
    return int.from_bytes(_digest(keys)[:8], "little")


def stable_rng(*keys) -> np.random.Generator:
    return np.random.default_rng(stable_seed(*keys))


@lru_cache(maxsize=65536)
def _knot(key: str, i: int) -> float:
    return unit_floats(key, "knot", i)[0]


def smooth_noise(key: str, x: float, scale: float) -> float:
    """1-D value noise in [0, 1]: equal ``x`` give equal values, close ``x`` close values.

    Used along a street's chainage so that nearby places look alike and far ones differ.
    """
    t = x / scale
    i = math.floor(t)
    f = t - i
    a, b = _knot(key, i), _knot(key, i + 1)
    return a + (b - a) * (f * f * (3.0 - 2.0 * f))


def pick(u: float, options: tuple, weights: tuple[float, ...] | None = None):
    """Choose one of ``options`` with the unit float ``u`` (optionally weighted)."""
    if weights is None:
        return options[min(int(u * len(options)), len(options) - 1)]
    total = sum(weights)
    acc = 0.0
    for option, w in zip(options, weights):
        acc += w / total
        if u < acc:
            return option
    return options[-1]
