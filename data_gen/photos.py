"""Users' own photos: the GPS table that names them, and checks that every image decodes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_gen.csvtable import number_in_range, read_rows
from ial_core.errors import DataError, SkipReport, handle
from ial_core.images import open_rgb
from ial_core.paths import resolve_in_root, safe_relative_path

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


def check_image(root: Path, relpath: str, source: Path, row: int) -> None:
    """Fully decode one image that a GPS table names (see :func:`ial_core.images.open_rgb`) and check its size."""
    path = resolve_in_root(root, relpath, source=source, row=row)
    if not path.is_file():
        raise DataError(f"image {relpath!r} not found under {root}", path=source, row=row)
    image = open_rgb(path, source=source, row=row)
    if image.width < MIN_SIDE or image.height < MIN_SIDE:
        raise DataError(f"image {relpath!r} is only {image.width}x{image.height} pixels",
                        path=source, row=row)
