"""Users' own photos: the GPS table that names them, and checks that every image decodes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from data_gen.csvtable import number_in_range, read_rows
from data_gen.errors import DataError, SkipReport, handle
from data_gen.paths import resolve_in_root, safe_relative_path

REQUIRED_COLUMNS = ("image", "lat", "lon")


@dataclass
class PhotoTable:
    image: list[str]
    lat: np.ndarray
    lon: np.ndarray
    heading: np.ndarray        # NaN where the table gives none
    row: np.ndarray            # 1-based CSV line of each entry (header is line 1)


def read_gps_csv(path: str | Path, *, skip: SkipReport | None = None) -> PhotoTable:
    """Read ``image,lat,lon[,heading]`` rows (image relative to the photo folder)."""
    path = Path(path)
    _, records = read_rows(path, REQUIRED_COLUMNS, "GPS table")
    images, lats, lons, headings, rows, seen = [], [], [], [], [], set()
    for line, record in records:
        try:
            if isinstance(record, DataError):
                raise record
            if None in record or any(record.get(c) in (None, "") for c in REQUIRED_COLUMNS):
                raise DataError("row has missing or extra fields", path=path, row=line)
            image = safe_relative_path(record["image"], source=path, row=line)
            if image in seen:
                raise DataError(f"image {image!r} is listed twice", path=path, row=line)
            lat = number_in_range(record["lat"], "lat", -90.0, 90.0, path, line)
            lon = number_in_range(record["lon"], "lon", -180.0, 180.0, path, line)
            heading = record.get("heading")
            heading = (number_in_range(heading, "heading", -360.0, 360.0, path, line) % 360.0
                       if heading else math.nan)
        except DataError as exc:
            handle(exc, skip, "bad_gps_row")
            continue
        seen.add(image)
        images.append(image), lats.append(lat), lons.append(lon), headings.append(heading), rows.append(line)
    if not images:
        raise DataError("no usable rows", path=path)
    return PhotoTable(images, np.array(lats), np.array(lons), np.array(headings), np.array(rows))


MIN_SIDE = 8          # pixels; smaller "photos" are thumbnails or icons, not street views
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
            return _to_rgb(image)
    except Exception as exc:     # PIL raises many types for bad files (OSError, SyntaxError, ...)
        raise DataError(f"image {str(path)!r} cannot be decoded ({type(exc).__name__}: {exc})",
                        path=source, row=row) from exc


def _to_rgb(image: Image.Image) -> Image.Image:
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


def check_image(root: Path, relpath: str, source: Path, row: int) -> None:
    """Fully decode one image that a GPS table names (see :func:`open_rgb`) and check its size."""
    path = resolve_in_root(root, relpath, source=source, row=row)
    if not path.is_file():
        raise DataError(f"image {relpath!r} not found under {root}", path=source, row=row)
    image = open_rgb(path, source=source, row=row)
    if image.width < MIN_SIDE or image.height < MIN_SIDE:
        raise DataError(f"image {relpath!r} is only {image.width}x{image.height} pixels",
                        path=source, row=row)
