"""Sky, distant skyline, daylight, weather and sensor noise: the look that is not place.

Sky gradients, skyline silhouettes, rain/snow masks and noise are computed once per
(condition, size) and cached; per image only slicing and a few array blends remain.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from .hashing import stable_rng
from .style import district_style

# time of day -> (sky top, sky at horizon, light multiplier RGB)
_TIME = {
    "morning": ((120, 160, 215), (242, 205, 170), (1.02, 0.97, 0.9)),
    "noon": ((70, 130, 212), (185, 212, 236), (1.06, 1.06, 1.06)),
    "afternoon": ((92, 142, 205), (222, 216, 200), (1.0, 0.98, 0.94)),
    "evening": ((62, 72, 132), (242, 142, 92), (0.8, 0.66, 0.58)),
    "night": ((10, 14, 36), (42, 48, 74), (0.32, 0.34, 0.45)),
}
# weather -> (sky top, sky horizon) replacing clear sky (then lit by time), or None
_WEATHER_SKY = {
    "overcast": ((150, 154, 160), (196, 198, 202)),
    "foggy": ((196, 198, 200), (206, 208, 210)),
    "rainy": ((108, 114, 122), (150, 155, 162)),
    "snowy": ((184, 188, 196), (220, 222, 226)),
}
FOG_COLOUR = np.array([205, 207, 210], dtype=np.float32)


@lru_cache(maxsize=128)
def _sky_column(time_of_day: str, weather: str, size: int) -> np.ndarray:
    """uint8 (2*size, 3): sky colour by row, the horizon at row ``size``."""
    top, bottom, light = _TIME[time_of_day]
    if weather in _WEATHER_SKY:
        top, bottom = _WEATHER_SKY[weather]
        if time_of_day in ("evening", "night"):
            top = tuple(c * m for c, m in zip(top, light))
            bottom = tuple(c * m for c, m in zip(bottom, light))
    above = size - np.arange(2 * size, dtype=np.float32)          # rows above the horizon
    t = np.clip(1.0 - above / (0.6 * size), 0.0, 1.0)[:, None]
    col = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    return col.astype(np.uint8)


def sky_gradient(time_of_day: str, weather: str, size: int, horizon: int) -> np.ndarray:
    """A new uint8 (size, size, 3) sky fading from the top colour to the horizon colour."""
    start = min(max(size - horizon, 0), size)
    col = _sky_column(time_of_day, weather, size)[start:start + size]
    return np.ascontiguousarray(np.broadcast_to(col[:, None, :], (size, size, 3)))


@lru_cache(maxsize=1024)
def skyline_mask(district: str, size: int) -> np.ndarray:
    """bool (size, 2*size): the district's distant skyline, bottom row = horizon.

    Twice as wide as the image so camera shifts can slide a window over it.
    """
    ds = district_style(district)
    h, w = size, 2 * size
    img = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(img)
    rng = stable_rng("skyline", district)
    base = h - 1
    unit = size / 128.0
    x = 0.0
    while x < w:
        bw = rng.uniform(8, 22) * unit
        bh = rng.uniform(4, 14) * unit
        d.rectangle((x, base - bh, x + bw, base), fill=255)
        kind = ds.skyline
        cx = x + bw * rng.uniform(0.2, 0.8)
        if kind == "chimneys" and rng.random() < 0.7:
            d.rectangle((cx, base - bh - 4 * unit, cx + 1.5 * unit, base - bh), fill=255)
        elif kind == "towers" and rng.random() < 0.35:
            th = rng.uniform(14, 30) * unit
            d.rectangle((cx - 2 * unit, base - th, cx + 2 * unit, base), fill=255)
            d.polygon(((cx - 2 * unit, base - th), (cx + 2 * unit, base - th), (cx, base - th - 6 * unit)), fill=255)
        elif kind == "cranes" and rng.random() < 0.25:
            th = rng.uniform(20, 34) * unit
            d.line((cx, base, cx, base - th), fill=255, width=max(1, round(unit)))
            d.line((cx - 6 * unit, base - th, cx + 14 * unit, base - th), fill=255, width=max(1, round(unit)))
        elif kind == "domes" and rng.random() < 0.3:
            r = rng.uniform(3, 6) * unit
            d.ellipse((cx - r, base - bh - r, cx + r, base - bh + r), fill=255)
        x += bw + rng.uniform(0, 6) * unit
    return np.asarray(img) > 0


def paint_skyline(arr: np.ndarray, district: str, horizon: int, shift: int, colour) -> None:
    """Paint the skyline silhouette (hazy) with its bottom on row ``horizon``."""
    size = arr.shape[0]
    mask = skyline_mask(district, size)
    x0 = (size // 2 + shift) % size
    top = horizon - size + 1
    m = mask[max(0, -top):, x0:x0 + size]
    y0 = max(0, top)
    m = m[: size - y0]
    if m.size:
        region = arr[y0:y0 + m.shape[0]]
        region[m] = colour


def light_factor(time_of_day: str, weather: str) -> np.ndarray:
    light = np.asarray(_TIME[time_of_day][2], np.float32)
    if weather in ("overcast", "rainy"):
        light = light * (0.82 if weather == "overcast" else 0.72)
    return light


@lru_cache(maxsize=16)
def _noise_tile(size: int) -> np.ndarray:
    rng = stable_rng("noise", size)
    return rng.integers(-5, 6, size=(2 * size, 2 * size, 3)).astype(np.float32)


@lru_cache(maxsize=16)
def _streaks(size: int, kind: str) -> np.ndarray:
    """bool (2*size, 2*size) rain streaks or snow flakes."""
    img = Image.new("L", (2 * size, 2 * size), 0)
    d = ImageDraw.Draw(img)
    rng = stable_rng("weather", kind, size)
    unit = size / 128.0
    n = int(220 if kind == "rainy" else 320)
    for _ in range(n):
        x, y = rng.uniform(0, 2 * size, 2)
        if kind == "rainy":
            d.line((x, y, x - 2 * unit, y + 7 * unit), fill=255)
        else:
            r = rng.uniform(0.4, 1.2) * unit
            d.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return np.asarray(img) > 0


def finish(img: np.ndarray, time_of_day: str, weather: str, horizon: int,
           noise_xy: tuple[int, int], emissive: np.ndarray | None) -> np.ndarray:
    """Daylight, weather overlay and sensor noise on a float32 HxWx3 image; returns uint8."""
    size = img.shape[0]
    light = light_factor(time_of_day, weather)
    if emissive is not None:
        e = emissive[..., None]
        img = img * (light + (1.0 - light) * e)
    else:
        img = img * light
    if weather == "overcast":
        img = img * 0.85 + img.mean(axis=2, keepdims=True) * 0.15
    elif weather == "foggy":
        rows = np.arange(size, dtype=np.float32)
        w = 0.42 + 0.33 * np.exp(-(((rows - horizon) / (0.22 * size)) ** 2))
        w = w[:, None, None]
        img = img * (1 - w) + FOG_COLOUR * light * w
    elif weather in ("rainy", "snowy"):
        ox, oy = noise_xy[0] % size, noise_xy[1] % size
        m = _streaks(size, weather)[oy:oy + size, ox:ox + size]
        target = 200.0 if weather == "rainy" else 245.0
        a = 0.45 if weather == "rainy" else 0.85
        img[m] = img[m] * (1 - a) + target * a
    ox, oy = noise_xy[0] % size, (noise_xy[1] // 7) % size
    img += _noise_tile(size)[oy:oy + size, ox:ox + size]
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)


def roll_and_zoom(img: Image.Image, roll_deg: float) -> Image.Image:
    """Rotate by ``roll_deg`` about the centre, zoomed just enough to hide the corners."""
    if roll_deg == 0.0:
        return img
    size = img.size[0]
    a = math.radians(roll_deg)
    s = 1.0 / (abs(math.cos(a)) + abs(math.sin(a)))   # output->input scale that keeps corners inside
    ca, sa = math.cos(a) * s, math.sin(a) * s
    c = size / 2.0
    coeffs = (ca, -sa, c - ca * c + sa * c, sa, ca, c - sa * c - ca * c)
    return img.transform(img.size, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)


def snow_ground(img: np.ndarray, labels: np.ndarray, ground_ids) -> None:
    """Whiten the ground surfaces (in place) for snowy weather."""
    m = np.isin(labels, ground_ids)
    img[m] = img[m] * 0.4 + 230.0 * 0.6

