"""Checks on an uploaded photo before anything decodes it fully: size, format, pixel count.

Why here and not only PIL's own guard: PIL warns (and only errors at twice its limit) on
decompression bombs, and Gradio hands the app any file a browser sends. Every refusal is an
:class:`UploadError` whose message says what was wrong, in words shown to the user as they are.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ial_core.images import to_rgb

MAX_UPLOAD_BYTES = 20 * 1024 * 1024    # a phone photo is 2-10 MB
MAX_PIXELS = 40_000_000                # 40 megapixels; street photos are far smaller


class UploadError(ValueError):
    """An upload the app refuses; the message is for the user."""


def read_upload(path: str | Path, *, max_bytes: int = MAX_UPLOAD_BYTES,
                max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The upload as 8-bit RGB, or :class:`UploadError` saying why not."""
    path = Path(path)
    name = path.name
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UploadError(f"{name}: the upload could not be read ({exc.strerror})") from exc
    if size == 0:
        raise UploadError(f"{name}: the file is empty")
    if size > max_bytes:
        raise UploadError(f"{name}: the file is {size / 2**20:.1f} MB; the limit is "
                          f"{max_bytes / 2**20:.0f} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:      # reads the header only
                width, height = image.size
                if width * height > max_pixels:
                    raise UploadError(
                        f"{name}: the image claims {width} x {height} pixels "
                        f"({width * height / 1e6:.0f} megapixels), over the limit of "
                        f"{max_pixels / 1e6:.0f}; refused without decoding (a decompression bomb?)")
                image.load()
                return to_rgb(image)
    except UploadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise UploadError(f"{name}: not an image file (JPEG, PNG, WebP, ...)") from exc
        raise UploadError(f"{name}: too many pixels to decode safely ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - truncated data, bad modes: PIL raises many types
        raise UploadError(f"{name}: the image is damaged or unsupported "
                          f"({type(exc).__name__}: {exc})") from exc
