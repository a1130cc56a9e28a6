"""CSV tables of points and images: opened once, rows numbered as a text editor shows them."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Iterator

from data_gen.errors import DataError


def read_rows(path: Path, required: tuple[str, ...], what: str) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """The header and ``(line, record)`` pairs of a UTF-8 CSV (line 1 is the header).

    Raises :class:`DataError` naming the file when it is missing, not UTF-8, or lacks a column of
    ``required``; a record with more fields than the header has ``None`` among its keys.
    """
    if not path.is_file():
        raise DataError(f"{what} not found", path=path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc})", path=path) from exc
    reader = csv.DictReader(text.splitlines())
    header = list(reader.fieldnames or [])
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"missing column(s) {missing}; found {header}", path=path, row=1)
    return header, enumerate(reader, start=2)


def number_in_range(text, name: str, low: float, high: float, path: Path, line: int) -> float:
    """A finite float within [low, high], or a DataError naming the file, line and field."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise DataError(f"{name} {text!r} is not a number", path=path, row=line) from None
    if not math.isfinite(value) or not low <= value <= high:
        raise DataError(f"{name} {value} is outside [{low}, {high}]", path=path, row=line)
    return value
