"""The drawing surface of one render: colour image, material labels and emissive mask.

A render alternates PIL shapes (polygons are cheap there) with numpy passes (textures,
window grids, weather); ``Canvas`` keeps the three layers in step across those switches.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .atmosphere import snow_ground
from .textures import GROUND_LABELS, apply_textures


class Canvas:
    def __init__(self, background: np.ndarray, night: bool):
        self.size = background.shape[0]
        self.img = Image.fromarray(background)
        self.d = ImageDraw.Draw(self.img)
        self.labels = Image.new("L", (self.size, self.size), 0)
        self.ld = ImageDraw.Draw(self.labels)
        self.emit_img = Image.new("L", (self.size, self.size), 0) if night else None
        self.emit = ImageDraw.Draw(self.emit_img) if night else None

    def polygon(self, pts, fill, label: int = 0) -> None:
        self.d.polygon(pts, fill=fill)
        if label:
            self.ld.polygon(pts, fill=label)

    def rect(self, box, fill, label: int = 0) -> None:
        x0, y0, x1, y1 = box
        box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        self.d.rectangle(box, fill=fill)
        if label:
            self.ld.rectangle(box, fill=label)

    def mark(self, box, label: int) -> None:
        """Draw ``box`` into the label layer only (visibility probes)."""
        x0, y0, x1, y1 = box
        self.ld.rectangle((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), fill=label)

    def visible_pixels(self, label: int) -> int:
        """How many pixels of ``label`` are left uncovered so far."""
        return int(np.count_nonzero(np.asarray(self.labels) == label))

    def texture(self, snowy: bool) -> np.ndarray:
        """Apply material textures (and snow on the ground); returns the writable uint8 array."""
        labels = np.asarray(self.labels)
        img = apply_textures(np.asarray(self.img), labels)
        if snowy:
            snow_ground(img, labels, GROUND_LABELS)
        np.clip(img, 0, 255, out=img)
        return img.astype(np.uint8)

    def resume(self, arr: np.ndarray) -> None:
        """Continue drawing with PIL on ``arr`` (after a numpy pass)."""
        self.img = Image.fromarray(arr)
        self.d = ImageDraw.Draw(self.img)

    def set_emissive(self, mask: np.ndarray) -> None:
        """Replace the emissive layer with a uint8 mask (after a numpy pass)."""
        self.emit_img = Image.fromarray(mask)
        self.emit = ImageDraw.Draw(self.emit_img)

    def emissive(self) -> np.ndarray | None:
        if self.emit_img is None:
            return None
        return np.asarray(self.emit_img, dtype=np.float32) * (1.0 / 255.0)
