"""Colour helpers and the small vocabulary used to name drawn colours in captions."""

from __future__ import annotations

import colorsys
from functools import lru_cache

RGB = tuple[int, int, int]

# Names a caption may use for a drawn colour; the nearest entry (in a weighted RGB
# distance) names any colour, so captions describe what is actually on the image.
NAMED_COLOURS: dict[str, RGB] = {
    "white": (236, 236, 232), "cream": (238, 226, 190), "pale yellow": (236, 222, 150),
    "yellow": (222, 190, 60), "ochre": (196, 146, 62), "orange": (222, 130, 50),
    "terracotta": (186, 96, 64), "red": (190, 45, 40), "dark red": (120, 35, 35),
    "brown": (132, 88, 56), "dark brown": (80, 58, 42), "pink": (226, 160, 176),
    "salmon": (226, 140, 118), "lilac": (176, 150, 196), "purple": (110, 60, 130),
    "pale blue": (160, 190, 220), "blue": (50, 90, 170), "navy": (30, 40, 90),
    "teal": (50, 120, 126), "mint": (170, 220, 190), "sage green": (140, 160, 120),
    "green": (60, 130, 70), "dark green": (34, 76, 44), "olive": (128, 126, 60),
    "beige": (214, 198, 166), "sand": (200, 178, 130), "grey": (132, 132, 132),
    "light grey": (190, 190, 188), "dark grey": (72, 72, 74), "black": (28, 28, 30),
    "rose": (196, 112, 118), "steel blue": (84, 140, 180), "khaki": (176, 164, 104),
    "rust": (158, 78, 48), "peach": (240, 190, 150), "turquoise": (80, 180, 180),
    "silver": (160, 162, 166),
}
_NAMES = tuple(NAMED_COLOURS)
_VALUES = tuple(NAMED_COLOURS.values())


@lru_cache(maxsize=8192)
def colour_name(rgb: RGB) -> str:
    """The nearest vocabulary name for ``rgb`` (redmean-weighted distance)."""
    r, g, b = rgb
    best, best_d = _NAMES[0], float("inf")
    for name, (r2, g2, b2) in zip(_NAMES, _VALUES):
        rm = (r + r2) / 2.0
        d = (2 + rm / 256) * (r - r2) ** 2 + 4 * (g - g2) ** 2 + (2 + (255 - rm) / 256) * (b - b2) ** 2
        if d < best_d:
            best, best_d = name, d
    return best


def hsv(h: float, s: float, v: float) -> RGB:
    """HSV (h in degrees, s and v in [0, 1]) to an 8-bit RGB tuple."""
    r, g, b = colorsys.hsv_to_rgb((h % 360.0) / 360.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (int(r * 255 + 0.5), int(g * 255 + 0.5), int(b * 255 + 0.5))


def shade(rgb: RGB, factor: float) -> RGB:
    """Scale brightness (factor < 1 darker, > 1 lighter, clipped)."""
    return tuple(min(255, max(0, int(c * factor + 0.5))) for c in rgb)  # type: ignore[return-value]


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """Linear blend from ``a`` (t=0) to ``b`` (t=1)."""
    return tuple(int(x + (y - x) * t + 0.5) for x, y in zip(a, b))  # type: ignore[return-value]
