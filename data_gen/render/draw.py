"""Drawing primitives shared by both view types: camera projection, trees, lamps,
vehicles, landmarks and the street-name sign.

Objects are described in metres and drawn as a few PIL shapes anchored at a projected
ground point (``bx``, ``by``) with ``k`` pixels per metre at that depth, so the same code
draws a tree at 5 m or at 80 m.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from .colors import RGB, shade
from .nuisance import Vehicle
from .style import Landmark

SIGN_BLUE: RGB = (16, 78, 160)
WINDOW_DARK: RGB = (38, 46, 58)
TYRE: RGB = (22, 22, 24)


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: X right, Y up (metres above ground), Z depth; horizon at row ``cy``."""

    F: float
    cx: float
    cy: float
    h: float

    def x(self, X: float, Z: float) -> float:
        return self.cx + self.F * X / Z

    def y(self, Y: float, Z: float) -> float:
        return self.cy - self.F * (Y - self.h) / Z

    def k(self, Z: float) -> float:
        """Pixels per metre at depth ``Z``."""
        return self.F / Z


def _r(bx, by, k, x0, y0, x1, y1):
    """Pixel box of the metre box [x0, x1] x [y0, y1] around ground anchor (bx, by)."""
    return (bx + x0 * k, by - y1 * k, bx + x1 * k, by - y0 * k)


def tree(d: ImageDraw.ImageDraw, bx, by, k, colour: RGB, kind: str) -> None:
    trunk = (225, 222, 212) if kind == "birch" else (70, 55, 42)
    d.rectangle(_r(bx, by, k, -0.18, 0, 0.18, 3.2), fill=trunk)
    d.ellipse(_r(bx, by, k, -2.6, 2.6, 2.6, 7.8), fill=colour)
    d.ellipse(_r(bx, by, k, -1.2, 5.0, 1.9, 7.6), fill=shade(colour, 1.25))


def lamp(d: ImageDraw.ImageDraw, bx, by, k, style: str, colour: RGB, towards: int, emit=None) -> None:
    """A lamp post; ``towards`` (+1/-1) is the image direction of the road centre."""
    w = max(1, round(0.16 * k))
    d.line((bx, by, bx, by - 6.0 * k), fill=colour, width=w)
    if style == "classic":
        box = _r(bx, by, k, -0.3, 5.6, 0.3, 6.5)
        d.rectangle(box, fill=(250, 236, 170))
        d.rectangle(_r(bx, by, k, -0.4, 6.5, 0.4, 6.7), fill=colour)
    else:
        tip = bx + towards * 1.6 * k
        d.line((bx, by - 6.0 * k, tip, by - 6.2 * k), fill=colour, width=w)
        box = (min(bx + towards * 1.1 * k, tip), by - 6.3 * k, max(bx + towards * 1.1 * k, tip), by - 6.0 * k)
        d.rectangle(box, fill=(235, 235, 220))
    if emit is not None:
        emit.rectangle(box, fill=255)


def vehicle_rear(d: ImageDraw.ImageDraw, bx, by, k, v: Vehicle) -> None:
    """A vehicle seen from behind (down-the-street views)."""
    c = v.colour
    if v.kind == "car":
        d.rectangle(_r(bx, by, k, -0.75, 0.0, -0.45, 0.4), fill=TYRE)
        d.rectangle(_r(bx, by, k, 0.45, 0.0, 0.75, 0.4), fill=TYRE)
        d.rectangle(_r(bx, by, k, -0.9, 0.3, 0.9, 1.0), fill=c)
        d.polygon((_pt(bx, by, k, -0.75, 1.0), _pt(bx, by, k, 0.75, 1.0),
                   _pt(bx, by, k, 0.6, 1.45), _pt(bx, by, k, -0.6, 1.45)), fill=shade(c, 0.8))
        d.rectangle(_r(bx, by, k, -0.6, 1.05, 0.6, 1.38), fill=WINDOW_DARK)
        d.rectangle(_r(bx, by, k, -0.85, 0.65, -0.6, 0.8), fill=(200, 30, 30))
        d.rectangle(_r(bx, by, k, 0.6, 0.65, 0.85, 0.8), fill=(200, 30, 30))
        return
    half, top = {"van": (1.0, 2.3), "bus": (1.27, 3.1), "tram": (1.2, 3.5)}[v.kind]
    d.rectangle(_r(bx, by, k, -half, 0.25, half, top), fill=c)
    d.rectangle(_r(bx, by, k, -half + 0.15, top * 0.5, half - 0.15, top - 0.3), fill=WINDOW_DARK)
    if v.kind == "tram":
        d.rectangle(_r(bx, by, k, -half, top * 0.42, half, top * 0.5), fill=(230, 226, 200))
        d.line(_pt(bx, by, k, -0.6, top) + _pt(bx, by, k, 0.0, top + 1.1), fill=(30, 30, 30))
        d.line(_pt(bx, by, k, 0.6, top) + _pt(bx, by, k, 0.0, top + 1.1), fill=(30, 30, 30))
    elif v.kind == "bus":
        d.rectangle(_r(bx, by, k, -0.8, top - 0.28, 0.8, top - 0.08), fill=(240, 190, 60))
    d.rectangle(_r(bx, by, k, -half + 0.1, 0.0, -half + 0.4, 0.3), fill=TYRE)
    d.rectangle(_r(bx, by, k, half - 0.4, 0.0, half - 0.1, 0.3), fill=TYRE)


def vehicle_side(d: ImageDraw.ImageDraw, bx, by, k, v: Vehicle) -> None:
    """A vehicle seen from the side (facade views); (bx, by) is its front-bottom centre."""
    c = v.colour
    length, top = {"car": (4.4, 1.0), "van": (5.0, 2.3), "bus": (12.0, 3.1), "tram": (27.0, 3.5)}[v.kind]
    x0 = -length / 2
    if v.kind == "car":
        d.polygon((_pt(bx, by, k, x0 + 1.0, 1.0), _pt(bx, by, k, x0 + 3.4, 1.0),
                   _pt(bx, by, k, x0 + 2.9, 1.5), _pt(bx, by, k, x0 + 1.5, 1.5)), fill=WINDOW_DARK)
        d.rectangle(_r(bx, by, k, x0, 0.3, -x0, top), fill=c)
        wheels = (x0 + 0.9, -x0 - 0.9)
    else:
        d.rectangle(_r(bx, by, k, x0, 0.25, -x0, top), fill=c)
        d.rectangle(_r(bx, by, k, x0 + 0.3, top * 0.5, -x0 - 0.3, top - 0.35), fill=WINDOW_DARK)
        if v.kind == "tram":
            d.rectangle(_r(bx, by, k, x0, top * 0.42, -x0, top * 0.5), fill=(230, 226, 200))
        step = 2.2 if v.kind != "van" else 1.6
        xs = x0 + step
        while xs < -x0 - 0.5:
            d.line(_pt(bx, by, k, xs, top * 0.5) + _pt(bx, by, k, xs, top - 0.35), fill=c, width=max(1, round(0.2 * k)))
            xs += step
        wheels = (x0 + 1.5, -x0 - 1.5) if v.kind != "tram" else (x0 + 2.0, x0 + 4.0, -x0 - 4.0, -x0 - 2.0)
    for wx in wheels:
        d.ellipse(_r(bx, by, k, wx - 0.35, 0.0, wx + 0.35, 0.7), fill=TYRE)


def _pt(bx, by, k, x, y):
    return (bx + x * k, by - y * k)


def landmark(d: ImageDraw.ImageDraw, bx, by, k, lm: Landmark, top_m: float) -> tuple:
    """Draw ``lm`` standing at (bx, by); tall kinds rise to ``top_m`` metres. Returns its box."""
    c = lm.colour
    if lm.kind == "church tower":
        box = _r(bx, by, k, -3.3, 0, 3.3, top_m + 3.0)
        body_top = max(top_m - 9.0, 8.0)
        d.rectangle(_r(bx, by, k, -3.0, 0, 3.0, body_top), fill=c)
        d.rectangle(_r(bx, by, k, -1.0, body_top - 4.0, 1.0, body_top - 1.2), fill=(30, 30, 34))
        d.ellipse(_r(bx, by, k, -1.2, body_top - 7.8, 1.2, body_top - 5.4), fill=(240, 236, 220))
        d.polygon((_pt(bx, by, k, -3.3, body_top), _pt(bx, by, k, 3.3, body_top),
                   _pt(bx, by, k, 0.0, top_m + 3.0)), fill=(60, 120, 100))
    elif lm.kind == "dome":
        drum_top = max(top_m - 6.0, 6.0)
        box = _r(bx, by, k, -5.0, 0, 5.0, drum_top + 7.0)
        d.rectangle(_r(bx, by, k, -4.5, 0, 4.5, drum_top), fill=(225, 220, 205))
        d.pieslice(_r(bx, by, k, -5.0, drum_top - 5.0, 5.0, drum_top + 5.0), 180, 360, fill=c)
        d.rectangle(_r(bx, by, k, -0.4, drum_top + 5.0, 0.4, drum_top + 7.0), fill=shade(c, 0.8))
    elif lm.kind == "statue":
        box = _r(bx, by, k, -1.1, 0, 1.3, 5.6)
        d.rectangle(_r(bx, by, k, -1.1, 0, 1.1, 2.2), fill=(176, 174, 166))
        d.rectangle(_r(bx, by, k, -0.5, 2.2, 0.5, 4.6), fill=c)
        d.ellipse(_r(bx, by, k, -0.36, 4.5, 0.36, 5.3), fill=c)
        d.line(_pt(bx, by, k, 0.4, 4.2) + _pt(bx, by, k, 1.2, 5.6), fill=c, width=max(1, round(0.35 * k)))
    elif lm.kind == "clock":
        box = _r(bx, by, k, -0.85, 0, 0.85, 4.9)
        d.rectangle(_r(bx, by, k, -0.12, 0, 0.12, 3.6), fill=c)
        d.ellipse(_r(bx, by, k, -0.85, 3.2, 0.85, 4.9), fill=c)
        d.ellipse(_r(bx, by, k, -0.7, 3.35, 0.7, 4.75), fill=(245, 245, 238))
        d.line(_pt(bx, by, k, 0, 4.05) + _pt(bx, by, k, 0, 4.6), fill=(20, 20, 20))
        d.line(_pt(bx, by, k, 0, 4.05) + _pt(bx, by, k, 0.4, 4.05), fill=(20, 20, 20))
    else:  # kiosk
        box = _r(bx, by, k, -2.0, 0, 2.0, 3.4)
        d.rectangle(_r(bx, by, k, -1.6, 0, 1.6, 2.5), fill=c)
        d.rectangle(_r(bx, by, k, -1.3, 1.2, 1.3, 2.1), fill=(230, 226, 210))
        d.polygon((_pt(bx, by, k, -2.0, 2.5), _pt(bx, by, k, 2.0, 2.5), _pt(bx, by, k, 0.0, 3.4)),
                  fill=shade(c, 0.6))
    return box


@lru_cache(maxsize=16)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=px)
    except Exception:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


@lru_cache(maxsize=4096)
def sign_plate(text: str, size: int, max_width: int) -> Image.Image:
    """A blue Helsinki-style street-name plate with white text, clipped to ``max_width``."""
    px = max(7, round(size * 0.08))
    font = _font(px)
    left, top, right, bottom = font.getbbox(text)
    pad = max(2, px // 3)
    w = min(max_width, right - left + 2 * pad)
    h = bottom - top + 2 * pad
    plate = Image.new("RGB", (w, h), SIGN_BLUE)
    d = ImageDraw.Draw(plate)
    d.text((pad - left, pad - top), text, fill=(255, 255, 255), font=font)
    d.rectangle((0, 0, w - 1, h - 1), outline=(235, 235, 235))
    return plate


def street_sign(img: Image.Image, d: ImageDraw.ImageDraw, text: str, side: int,
                height_u: float, ground_y: float) -> tuple[int, int, int, int]:
    """Paste a street sign on a post near the ``side`` edge; returns the plate box."""
    size = img.size[0]
    plate = sign_plate(text, size, int(size * 0.62))
    w, h = plate.size
    x = int(size * 0.04) if side < 0 else size - w - int(size * 0.04)
    y = int(size * (0.22 + 0.2 * height_u))
    post_x = x + w // 2
    d.line((post_x, y + h, post_x, max(ground_y, y + h)), fill=(90, 92, 96), width=max(1, size // 96))
    img.paste(plate, (x, y))
    return (x, y, x + w, y + h)

