"""The one image reader of the toolkit: every file is decoded fully, upright, into 8-bit RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ial_core.errors import DataError

_ORIENTATION = 0x0112  # the EXIF tag
_WIDE_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def open_rgb(path: str | Path, *, source: str | Path | None = None, row=None) -> Image.Image:
    """Decode an image completely into 8-bit RGB, or raise :class:`DataError` naming the file.

    Why fully and here: PIL decodes lazily, so a truncated JPEG opens fine and fails later inside a
    transform or a DataLoader worker whose traceback names no file. The image readers of the
    training and evaluation paths (builder checks, the captioner, both training stages, LLaVA
    inference, the QA backends) all go through this function, so they accept and refuse the same
    files and see the same pixels. Decisions:

    - the EXIF orientation tag is applied (``ImageOps.exif_transpose``): a phone photo stored
      sideways with orientation 6 ("rotate 90 degrees clockwise to view") reaches every model
      upright, as it is displayed, not as its pixels are stored;
    - convertible modes are converted, not refused: CMYK, palette (``P``/``PA``), grey with or
      without alpha (``L``/``LA``), RGBA... -> RGB; alpha is dropped;
    - 16- and 32-bit grey (``I;16``, ``I``, ``F``) is scaled to 0-255 first (65535 -> 255; values
      already within 0-255 are kept): PIL's own conversion clips them, turning a photo white;
    - size is not checked here: the model's preprocess resizes any size (the builder refuses
      images under ``MIN_SIDE`` pixels as not being photos);
    - anything PIL cannot decode (zero bytes, truncation, unknown format, a decompression bomb
      above PIL's pixel limit, a mode without an RGB conversion) is a DataError whose message names
      ``path``; ``source``/``row`` say where the path came from (a CSV line, a sample id).
    """
    try:
        with Image.open(path) as image:
            image.load()
            if image.getexif().get(_ORIENTATION, 1) not in (1, None):
                image = ImageOps.exif_transpose(image)
            return to_rgb(image)
    except Exception as exc:     # PIL raises many types for bad files (OSError, SyntaxError, ...)
        raise DataError(f"image {str(path)!r} cannot be decoded ({type(exc).__name__}: {exc})",
                        path=source, row=row) from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """An already decoded image in 8-bit RGB, by the rules of :func:`open_rgb`."""
    if image.mode == "RGB":
        return image.copy()
    if image.mode in _WIDE_GREY:
        values = np.asarray(image, dtype=np.float64)
        if values.size and (values.max() > 255 or values.min() < 0):
            values = np.clip(values, 0, 65535) / 257.0
        return Image.fromarray(np.rint(values).astype(np.uint8), "L").convert("RGB")
    if image.mode not in ("L", "P", "1", "CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGBA")     # modes with alpha (LA, PA, La, RGBa...) go through RGBA
    return image.convert("RGB")
