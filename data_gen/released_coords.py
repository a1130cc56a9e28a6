"""Positions for released annotation entries: the Pitts-250K / SF-XL ground truth.

The released JSON holds no GPS. Positions come from

- a table of UTM easting/northing (CSV, TSV or whitespace), per image or per place index;
- the Pitts-250K MATLAB ground truth (:mod:`data_gen.released_mat`): a plain 2 x N UTM matrix of
  places, or the ``dbStruct`` of ``pitts250k_{train,val,test}.mat``;
- SF-XL file names, which carry UTM, zone and lat/lon (:mod:`data_gen.released_sfxl`).

All of them give a :class:`Coordinates`: UTM per image path (or per place index, matched to the
number that starts a Pitts-250K file name) and, where the source says it, the CRS and lat/lon.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ial_core.errors import DataError, SkipReport, handle
from ial_core.errors import tagged_error as _error

_IMAGE_NAMES = {"image", "images", "path", "file", "filename", "file_name", "image_path", "img", "name",
                "imagefn", "image_fn", "dbimagefns", "qimagefns"}
_INDEX_NAMES = {"index", "idx", "place", "place_id", "location", "location_id", "row"}
_EASTING_NAMES = {"easting", "utm_easting", "utm_e", "east", "e", "x", "utm_x"}
_NORTHING_NAMES = {"northing", "utm_northing", "utm_n", "north", "n", "y", "utm_y"}


def _split_line(line: str, sep: str | None) -> list[str]:
    if sep is None:
        return line.split()
    return [field.strip() for field in next(csv.reader([line], delimiter=sep))]


def _sniff_separator(line: str) -> str | None:
    """Comma, then tab, else any whitespace (None), judged from the first content line."""
    if "," in line:
        return ","
    if "\t" in line:
        return "\t"
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


@dataclass(frozen=True)
class _Layout:
    """Column positions in the coordinate table: key column (None: row order), easting, northing."""

    key: int | None
    easting: int
    northing: int


def _layout_from_header(names: list[str]) -> _Layout:
    lowered = [n.strip().lower() for n in names]

    def find(options):
        return next((i for i, n in enumerate(lowered) if n in options), None)

    east, north = find(_EASTING_NAMES), find(_NORTHING_NAMES)
    key = find(_IMAGE_NAMES)
    key = find(_INDEX_NAMES) if key is None else key
    if east is None or north is None:
        return _layout_from_width(len(names))
    if key is None:
        others = [i for i in range(len(names)) if i not in (east, north)]
        key = others[0] if others else None
    return _Layout(key, east, north)


def _layout_from_width(width: int) -> _Layout:
    return _Layout(None, 0, 1) if width == 2 else _Layout(0, 1, 2)


def _coordinate_key(text: str, layout: _Layout, row_index: int):
    """Image path (normalised) or integer place index; row order when there is no key column."""
    if layout.key is None:
        return row_index
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    return normalise_key(text)


def normalise_key(text: str) -> str:
    """An image path as the annotation reader writes it: POSIX separators, no leading ``./``."""
    key = text.strip().replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    return key


def _parse_coordinate_row(fields, layout: _Layout, path: Path, line_no: int, row_index: int):
    needed = max(i for i in (layout.key, layout.easting, layout.northing) if i is not None) + 1
    if len(fields) < needed:
        raise DataError(f"expected at least {needed} fields, got {len(fields)}", path=path, row=line_no)
    values = []
    for name, index in (("easting", layout.easting), ("northing", layout.northing)):
        try:
            value = float(fields[index])
        except ValueError:
            raise DataError(f"{name} {fields[index]!r} is not a number", path=path, row=line_no) from None
        if not math.isfinite(value):
            raise DataError(f"{name} is {fields[index]!r}; coordinates must be finite",
                            path=path, row=line_no)
        values.append(value)
    key = _coordinate_key(fields[layout.key] if layout.key is not None else "", layout, row_index)
    if key == "":
        raise DataError("empty image path", path=path, row=line_no)
    return key, (values[0], values[1])


def _content_lines(path: Path):
    """(line number, text) of non-blank, non-comment lines; undecodable lines are reported by number."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read coordinate file ({exc.strerror or exc})", path=path) from exc
    for line_no, line in enumerate(raw.splitlines(), start=1):
        if line_no == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            yield line_no, None
            continue
        if text.strip() and not text.lstrip().startswith("#"):
            yield line_no, text


def read_utm_coordinates(path, *, skip: SkipReport | None = None) -> dict:
    """Read UTM easting/northing per image from a CSV, TSV or whitespace-separated table.

    Accepted rows: ``image, easting, northing`` (a header naming the columns is optional), or just
    ``easting, northing``, in which case rows are numbered from 0 and matched to the place number that
    starts Pitts-250K file names (``000015_pitch1_yaw1.jpg`` is row 15). An all-digit key column is
    read the same way. Returns ``{image path or place index: (easting, northing)}``.
    """
    path = Path(path)
    coords: dict = {}
    layout, sep, row_index = None, None, 0
    for line_no, text in _content_lines(path):
        try:
            if text is None:
                raise DataError("line is not valid UTF-8", path=path, row=line_no)
            if layout is None:
                sep = _sniff_separator(text)
                fields = _split_line(text, sep)
                if len(fields) >= 2 and not (_is_number(fields[-1]) or _is_number(fields[-2])):
                    layout = _layout_from_header(fields)
                    continue
                layout = _layout_from_width(len(fields))
            key, value = _parse_coordinate_row(_split_line(text, sep), layout, path, line_no, row_index)
            row_index += 1
            if key in coords and coords[key] != value:
                raise DataError(f"{key!r} listed twice with different coordinates", path=path, row=line_no)
            coords[key] = value
        except (DataError, csv.Error) as error:
            if not isinstance(error, DataError):
                error = DataError(f"unreadable row ({error})", path=path, row=line_no)
            handle(error, skip, "bad_coordinates")
    if not coords:
        raise DataError("no coordinate rows found", path=path)
    return coords


@dataclass
class Coordinates:
    """UTM positions keyed by image path or place index, with what the source says beyond that.

    ``queries`` holds positions of query images kept apart (a ``dbStruct`` names database and query
    images alike, ``000/000000_pitch1_yaw1.jpg``, in different folders); the test split looks there
    first. ``crs`` is set when the source names its zone, ``latlon``/``heading`` when it gives them.
    """

    positions: dict
    source: str
    kind: str
    queries: dict = field(default_factory=dict)
    crs: str | None = None
    latlon: dict | None = None
    heading: dict | None = None
    files: list = field(default_factory=list)

    def lookup(self, image: str, *, query: bool = False):
        """(easting, northing) of ``image``, None when the source has none."""
        tables = (self.queries, self.positions) if query else (self.positions, self.queries)
        for table in tables:
            found = table.get(image)
            if found is not None:
                return found
        for table in tables:
            if table:
                found = lookup_coordinates(table, image)
                if found is not None:
                    return found
        return None


def merge_coordinates(parts: list[Coordinates]) -> Coordinates:
    """One table from several ground-truth files (e.g. the train, val and test ``.mat``); an image
    given two different positions is an error naming it and both files."""
    if len(parts) == 1:
        return parts[0]
    merged = Coordinates({}, " + ".join(p.source for p in parts), "+".join(sorted({p.kind for p in parts})))
    owner: dict = {}
    for part in parts:
        for name in ("positions", "queries"):
            into, table = getattr(merged, name), getattr(part, name)
            for key, value in table.items():
                if key in into and into[key] != value:
                    raise DataError(f"{key!r} has position {into[key]} in {owner[name, key]} and "
                                    f"{value} here", path=part.source)
                into[key] = value
                owner[name, key] = part.source
        merged.files.extend(part.files or [part.source])
    return merged


_PLACE_NUMBER = re.compile(r"^(\d+)(?=[_.]|$)")


def lookup_coordinates(coords: dict, image: str):
    """The (easting, northing) of an image: by its path, else by the Pitts-250K place number."""
    if image in coords:
        return coords[image]
    match = _PLACE_NUMBER.match(image.rpartition("/")[2])
    return coords.get(int(match.group(1))) if match else None


def utm_crs(utm_zone: str) -> str:
    """``"17N"`` -> ``"EPSG:32617"``; ``"10S"`` -> ``"EPSG:32710"``; an ``EPSG:326xx/327xx`` code passes."""
    text = str(utm_zone).strip().upper()
    match = re.fullmatch(r"EPSG:(32[67])(\d\d)", text)
    if match and 1 <= int(match.group(2)) <= 60:
        return text
    match = re.fullmatch(r"(\d{1,2})\s*([NS])", text)
    if not match or not 1 <= int(match.group(1)) <= 60:
        raise ValueError(f"UTM zone {utm_zone!r} not understood; write it as zone number and "
                         "hemisphere, e.g. 17N (Pittsburgh) or 10N (San Francisco)")
    return f"EPSG:{(32600 if match.group(2) == 'N' else 32700) + int(match.group(1))}"


def _check_utm_range(image: str, easting: float, northing: float, source) -> None:
    """Catch swapped or non-UTM columns before they turn into plausible-looking wrong positions."""
    if not (0 < easting < 1_000_000 and 0 <= northing <= 10_000_000):
        raise _error(f"easting {easting} / northing {northing} are outside the UTM range "
                     "(easting 0-1,000,000 m, northing 0-10,000,000 m); are the columns swapped?",
                     "bad_coordinates", path=source, row=image)


_YAW = re.compile(r"yaw(\d+(?:\.\d+)?)", re.IGNORECASE)
HEADING_NOTE = ("heading from 'yawK' in the file name: K in 1..12 is the Pitts-250K view index, "
                "(K-1)*30 degrees from the panorama's reference direction (not necessarily true "
                "north); larger K is read as degrees; 0 when the name has no yaw")


def heading_from_name(image: str) -> float:
    """Nominal heading in degrees from a ``yawK`` tag (see HEADING_NOTE); 0 when absent."""
    match = _YAW.search(image.rpartition("/")[2])
    if not match:
        return 0.0
    value = float(match.group(1))
    if value.is_integer() and 1 <= value <= 12:
        return (value - 1) * 30.0
    return value % 360.0


SFXL_FILENAMES = "sfxl-filenames"


def read_coordinates(spec, *, images=(), skip: SkipReport | None = None) -> Coordinates:
    """Dispatch on what ``--coords`` names: ``sfxl-filenames`` (positions from ``images``' names),
    a ``.mat`` file (Pitts-250K ground truth) or a CSV/TSV/whitespace table."""
    if str(spec) == SFXL_FILENAMES:
        from data_gen.released_sfxl import read_sfxl_names

        return read_sfxl_names(images, skip=skip)
    path = Path(spec)
    if path.suffix.lower() == ".mat":
        from data_gen.released_mat import read_mat_coordinates

        return read_mat_coordinates(path, skip=skip)
    return Coordinates(read_utm_coordinates(path, skip=skip), str(path), "table", files=[str(path)])
