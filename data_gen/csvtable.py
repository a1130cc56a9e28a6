"""CSV tables of points and images: opened once, rows numbered as a text editor shows them."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path

from ial_core.errors import DataError


def read_rows(path: Path, required: tuple[str, ...],
              what: str) -> tuple[list[str], Iterator[tuple[int, dict | DataError]]]:
    """The header and ``(line, record)`` pairs of a UTF-8 CSV (line 1 is the header).

    Raises :class:`DataError` naming the file (and the line of the first bad byte) when it is
    missing, not UTF-8, or lacks a column of ``required``; a record with more fields than the header
    has ``None`` among its keys. A row the csv module itself cannot read (e.g. a field over its size
    limit) comes as a DataError in place of the record, so that callers skip or raise it like any
    other bad row instead of a bare ``csv.Error`` ending the whole read.
    """
    if not path.is_file():
        raise DataError(f"{what} not found", path=path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise DataError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=path,
                        row=line) from None
    reader = csv.DictReader(text.splitlines())
    try:
        header = list(reader.fieldnames or [])
    except csv.Error as exc:
        raise DataError(f"unreadable header ({exc})", path=path, row=1) from None
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"missing column(s) {missing}; found {header}", path=path, row=1)
    return header, _records(reader, path)


def _records(reader: csv.DictReader, path: Path) -> Iterator[tuple[int, dict | DataError]]:
    line = 1
    while True:
        line += 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:              # the reader goes on with the next row afterwards
            record = DataError(f"unreadable CSV row ({exc})", path=path, row=line)
        yield line, record


def number_in_range(text, name: str, low: float, high: float, path: Path, line: int) -> float:
    """A finite float within [low, high], or a DataError naming the file, line and field."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise DataError(f"{name} {text!r} is not a number", path=path, row=line) from None
    if not math.isfinite(value) or not low <= value <= high:
        raise DataError(f"{name} {value} is outside [{low}, {high}]", path=path, row=line)
    return value
