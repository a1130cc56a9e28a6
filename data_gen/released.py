"""Convert the released AddressCLIP annotation files (Pitts-IAL, SF-IAL) into a toolkit dataset folder.

The authors released annotations only, no code. Per split there is a JSON object keyed by the image's
relative path (``000/000015_pitch1_yaw1.jpg``) whose value is a list read as
``[caption, verbose_address, canonical_address]``. That field order comes from a third-party reader,
so it is treated as likely rather than known: each entry's fields are recognised by their form

- canonical: ``"{street} & {cross street}, {district}"`` or ``"{street}, {district}"``;
- verbose:   starts with ``"located in"``;
- caption:   the remaining one,

and the order that was detected (or given with ``field_order``) is recorded in the result and in
``meta.json``. GPS is not in the JSON: Pittsburgh positions come as UTM easting/northing in a separate
ground-truth table (:func:`read_utm_coordinates`), converted to lat/lon with pyproj for a given zone.

Images are not copied. ``meta.json["image_root"]`` names the folder the ``image`` paths are relative to
(``null`` when none was given); readers resolve image paths against it when present, and against the
dataset folder otherwise.

CLI::

    python -m data_gen.released --train train.json --val val.json --test test.json \\
        --coords utm.csv --utm-zone 17N --city Pittsburgh --image-root DIR --out DIR \\
        [--field-order caption,verbose,canonical] [--skip-bad]
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import math
import os
import re
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from data_gen import addresses as addr
from data_gen.errors import DataError, SkipReport, handle
from data_gen.paths import resolve_in_root, safe_relative_path
from data_gen.schema import COLUMNS, COORDINATE_COLUMNS, FEATURES, SCHEMA_VERSION, SPLITS

ROLES = ("caption", "verbose", "canonical")
DEFAULT_ORDER = ("caption", "verbose", "canonical")  # the schema's annotations/{split}.json layout
_ROLE_ALIASES = {"caption": "caption", "verbose": "verbose", "verbose_address": "verbose",
                 "canonical": "canonical", "canonical_address": "canonical", "address": "canonical"}
_VERBOSE_PREFIX = "located in"
_MAX_STREET_WORDS = 8       # detection only: longer phrases are prose, not a street or district name
_SENTENCE_END = (".", "!", "?")


# --------------------------------------------------------------------------------------------------
# Released annotation JSON
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReleasedRecord:
    """One released entry with its canonical address split into street, cross street and district."""

    image: str
    caption: str
    verbose_address: str
    canonical_address: str
    street: str
    cross_street: str
    district: str
    field_order: tuple[str, str, str] = DEFAULT_ORDER   # how this entry's list was read


class ReleasedAnnotations(list):
    """The records of one file, plus how their fields were assigned (kept for meta.json).

    ``field_order`` is the order used for most entries; ``order_counts`` counts entries per order
    (``"caption,verbose,canonical": n``); ``fallback`` counts entries whose form was ambiguous and that
    were read with the file's majority order; ``explicit`` is True when the caller gave the order.
    """

    def __init__(self, records=(), *, source=None, field_order=DEFAULT_ORDER, order_counts=None,
                 fallback=0, explicit=False):
        super().__init__(records)
        self.source = source
        self.field_order = tuple(field_order)
        self.order_counts = dict(order_counts or {})
        self.fallback = fallback
        self.explicit = explicit

    def order_info(self) -> dict:
        return {"used": ",".join(self.field_order), "explicit": self.explicit,
                "per_entry": dict(sorted(self.order_counts.items())), "fallback": self.fallback}


def _error(message: str, reason: str, *, path=None, row=None) -> DataError:
    """A DataError tagged with the skip-report reason it is counted under when skipping."""
    error = DataError(message, path=path, row=row)
    error.reason = reason
    return error


def _skip_or_raise(error: DataError, skip: SkipReport | None, default: str) -> None:
    handle(error, skip, getattr(error, "reason", default))


def _clean(text: str) -> str:
    """Collapse runs of whitespace so that labels compare equal regardless of spacing."""
    return " ".join(text.split())


def parse_canonical(text: str) -> tuple[str, str, str]:
    """Split ``"{street} & {cross}, {district}"`` (or ``"{street}, {district}"``) into its parts.

    The district is what follows the LAST comma; the cross street is what follows the first ``&``.
    Raises ValueError with the reason when the text has no such structure.
    """
    head, sep, district = text.rpartition(",")
    if not sep:
        raise ValueError("no ', {district}' part")
    district = _clean(district)
    if not district:
        raise ValueError("empty district after the last comma")
    street, amp, cross = head.partition("&")
    street, cross = _clean(street), _clean(cross)
    if not street:
        raise ValueError("empty street name")
    if amp and not cross:
        raise ValueError("empty cross street after '&'")
    return street, cross, district


def _canonical_score(text: str) -> int:
    """2: clearly ``X & Y, D``; 1: plausibly ``X, D``; 0: not a canonical address (detection only)."""
    stripped = text.strip()
    if not stripped or stripped.endswith(_SENTENCE_END) or _looks_verbose(stripped):
        return 0
    try:
        street, cross, district = parse_canonical(stripped)
    except ValueError:
        return 0
    if any(len(part.split()) > _MAX_STREET_WORDS for part in (street, cross, district)):
        return 0
    if "," in street or "," in cross:
        return 0
    return 2 if cross else 1


def _looks_verbose(text: str) -> bool:
    return text.strip().lower().startswith(_VERBOSE_PREFIX)


def detect_order(values) -> tuple[str, str, str] | None:
    """Which position holds which field, judged from the text alone; None when ambiguous."""
    verbose = [i for i, v in enumerate(values) if _looks_verbose(v)]
    scores = [0 if i in verbose else _canonical_score(v) for i, v in enumerate(values)]
    best = max(scores)
    canon = [i for i, s in enumerate(scores) if s == best and s > 0]
    if len(canon) != 1 or len(verbose) != 1:
        return None
    roles = ["caption"] * 3
    roles[canon[0]] = "canonical"
    roles[verbose[0]] = "verbose"
    return tuple(roles)


def parse_field_order(order) -> tuple[str, str, str]:
    """Accept ``"caption,verbose,canonical"`` or a sequence of the three role names (aliases allowed)."""
    items = order.split(",") if isinstance(order, str) else list(order)
    try:
        roles = tuple(_ROLE_ALIASES[str(item).strip().lower()] for item in items)
    except KeyError as exc:
        raise ValueError(f"unknown field {exc.args[0]!r} in field order {order!r}; "
                         f"use the names {', '.join(ROLES)}") from None
    if sorted(roles) != sorted(ROLES):
        raise ValueError(f"field order {order!r} must name each of {', '.join(ROLES)} exactly once")
    return roles


class _Pairs:
    """A JSON object kept as its key/value pairs, so that duplicate keys are not silently merged."""

    def __init__(self, pairs):
        self.pairs = pairs


def _first_bad_byte_line(raw: bytes) -> int | None:
    try:
        raw.decode("utf-8")
        return None
    except UnicodeDecodeError as exc:
        return raw[:exc.start].count(b"\n") + 1


def _is_unicode(text: str) -> bool:
    """False for text holding lone surrogates (undecodable bytes, or \\ud800-style JSON escapes)."""
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _load_pairs(path: Path) -> list[tuple]:
    """Read a JSON object's entries; bytes that are not UTF-8 survive as surrogates to be named per key."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read annotation file ({exc.strerror or exc})", path=path) from exc
    bad_line = _first_bad_byte_line(raw)
    text = raw.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    try:
        data = json.loads(text, object_pairs_hook=_Pairs)
    except (json.JSONDecodeError, RecursionError) as exc:
        if bad_line is not None:
            raise DataError("not valid UTF-8 (first bad byte on this line) and not readable JSON",
                            path=path, row=bad_line) from exc
        line = getattr(exc, "lineno", None)
        raise DataError(f"not valid JSON ({getattr(exc, 'msg', exc)})", path=path, row=line) from exc
    if not isinstance(data, _Pairs):
        raise DataError("expected a JSON object {image: [caption, verbose, canonical]}, "
                        f"got {type(data).__name__}", path=path)
    return data.pairs


def _check_value(path: Path, key, value) -> list[str]:
    """The entry's value must be a list of exactly three strings of valid text."""
    if not _is_unicode(key):
        raise _error("image key is not valid UTF-8 text", "not_utf8", path=path, row=key)
    if not isinstance(value, list):
        kind = "object" if isinstance(value, _Pairs) else type(value).__name__
        raise _error(f"value must be a list [caption, verbose, canonical], got {kind}",
                     "bad_value", path=path, row=key)
    if len(value) != 3 or not all(isinstance(v, str) for v in value):
        raise _error(f"value must be a list of 3 strings, got {_describe(value)}",
                     "bad_value", path=path, row=key)
    if not all(_is_unicode(v) for v in value):
        raise _error("value holds text that is not valid UTF-8", "not_utf8", path=path, row=key)
    return value


def _describe(value: list) -> str:
    kinds = ", ".join("object" if isinstance(v, _Pairs) else type(v).__name__ for v in value[:5])
    return f"{len(value)} item(s) [{kinds}{', ...' if len(value) > 5 else ''}]"


def _safe_image(path: Path, key: str) -> str:
    """The normalised relative image path; anything that could leave the image root is refused."""
    try:
        image = safe_relative_path(key, source=path, row=key)
    except DataError as error:
        error.reason = "unsafe_path"
        raise
    if image in (".", "") or key.replace("\\", "/").endswith("/"):
        raise _error(f"image path {key!r} names a folder, not a file", "unsafe_path",
                     path=path, row=key)
    return image


def _majority(counter: collections.Counter) -> tuple[str, str, str]:
    if not counter:
        return DEFAULT_ORDER
    # most common first; ties broken towards the schema's default order, then alphabetically
    return min(counter, key=lambda order: (-counter[order], order != DEFAULT_ORDER, order))


def _build_record(path: Path, image: str, values: list[str], order) -> ReleasedRecord:
    fields = dict(zip(order, values))
    canonical = fields["canonical"]
    try:
        street, cross, district = parse_canonical(canonical)
    except ValueError as exc:
        raise DataError(f"canonical address {canonical!r} (field {order.index('canonical') + 1} "
                        f"under order {','.join(order)}) is not '{{street}} & {{cross}}, "
                        f"{{district}}': {exc}", path=path, row=image) from None
    return ReleasedRecord(image=image, caption=fields["caption"].strip(),
                          verbose_address=fields["verbose"].strip(),
                          canonical_address=addr.canonical_address(street, cross, district),
                          street=street, cross_street=cross, district=district,
                          field_order=tuple(order))


def read_released_annotations(json_path, *, field_order=None,
                              skip: SkipReport | None = None) -> ReleasedAnnotations:
    """Read one released split file into records, detecting each entry's field order.

    Bad entries raise :class:`DataError` naming the file and key, or are counted in ``skip``. A file
    that cannot be read at all (not JSON, not an object) raises, or with ``skip`` yields no records
    and is counted under ``unreadable_file``. Entries whose form is ambiguous are read with the order
    most entries of the file have (or ``field_order`` when given, which overrides detection).
    """
    path = Path(json_path)
    explicit = None if field_order is None else parse_field_order(field_order)
    try:
        pairs = _load_pairs(path)
    except DataError as error:
        handle(error, skip, "unreadable_file")
        return ReleasedAnnotations(source=path, field_order=explicit or DEFAULT_ORDER,
                                   explicit=explicit is not None)

    entries, seen = [], {}
    for key, value in pairs:
        try:
            values = _check_value(path, key, value)
            image = _safe_image(path, key)
            if image in seen:
                raise _error(f"duplicate image (also listed as {seen[image]!r})", "duplicate_image",
                             path=path, row=key)
            seen[image] = key
        except DataError as error:
            _skip_or_raise(error, skip, "bad_value")
            continue
        entries.append((image, values, explicit or detect_order(values)))

    detected = collections.Counter(order for _, _, order in entries if order is not None)
    fallback_order = explicit or _majority(detected)
    records, used = [], collections.Counter()
    for image, values, order in entries:
        order = order or fallback_order
        try:
            record = _build_record(path, image, values, order)
        except DataError as error:
            handle(error, skip, "bad_address")
            continue
        records.append(record)
        used[",".join(order)] += 1
    fallback = 0 if explicit else sum(1 for _, _, order in entries if order is None)
    return ReleasedAnnotations(records, source=path, field_order=fallback_order, order_counts=used,
                               fallback=fallback, explicit=explicit is not None)


# --------------------------------------------------------------------------------------------------
# UTM ground truth
# --------------------------------------------------------------------------------------------------

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
    key = text.replace("\\", "/")
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


_PLACE_NUMBER = re.compile(r"^(\d+)(?=[_.]|$)")


def lookup_coordinates(coords: dict, image: str):
    """The (easting, northing) of an image: by its path, else by the Pitts-250K place number."""
    if image in coords:
        return coords[image]
    match = _PLACE_NUMBER.match(PurePosixPath(image).name)
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


# --------------------------------------------------------------------------------------------------
# Dataset folder
# --------------------------------------------------------------------------------------------------

_YAW = re.compile(r"yaw(\d+(?:\.\d+)?)", re.IGNORECASE)
HEADING_NOTE = ("heading from 'yawK' in the file name: K in 1..12 is the Pitts-250K view index, "
                "(K-1)*30 degrees from the panorama's reference direction (not necessarily true "
                "north); larger K is read as degrees; 0 when the name has no yaw")


def heading_from_name(image: str) -> float:
    """Nominal heading in degrees from a ``yawK`` tag (see HEADING_NOTE); 0 when absent."""
    match = _YAW.search(PurePosixPath(image).name)
    if not match:
        return 0.0
    value = float(match.group(1))
    if value.is_integer() and 1 <= value <= 12:
        return (value - 1) * 30.0
    return value % 360.0


@dataclass
class _Row:
    split: str
    record: ReleasedRecord
    easting: float
    northing: float
    lat: float = math.nan
    lon: float = math.nan


def _check_out_dir(out: Path) -> None:
    """Refuse to replace anything but an empty folder or a previously written dataset folder."""
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError("output path exists and is not a folder", path=out)
    if any(out.iterdir()) and not (out / "meta.json").is_file():
        raise DataError("output folder exists, is not empty and is not a dataset folder; "
                        "refusing to overwrite it", path=out)


def _publish(tmp: Path, out: Path) -> None:
    """Move the finished temporary folder into place; an older dataset there is swapped out."""
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        old.rmdir()
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def _read_splits(annotations: dict, field_order, skip) -> tuple[dict, dict]:
    unknown = sorted(set(annotations) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; use {', '.join(SPLITS)}")
    per_split, orders = {}, {}
    for split in SPLITS:
        if split in annotations and annotations[split] is not None:
            per_split[split] = read_released_annotations(annotations[split], field_order=field_order,
                                                         skip=skip)
            orders[split] = per_split[split].order_info()
    if not per_split:
        raise ValueError("no annotation files given; pass at least one of --train/--val/--test")
    return per_split, orders


def _attach_positions(per_split, coords, crs, image_root, coord_path, skip) -> list[_Row]:
    """Join records with coordinates (and check images exist when an image root is given)."""
    rows, first_split = [], {}
    for split, records in per_split.items():
        for record in records:
            try:
                if record.image in first_split:
                    raise _error(f"image is in both {first_split[record.image]} and {split}",
                                 "image_in_two_splits", path=records.source, row=record.image)
                position = lookup_coordinates(coords, record.image)
                if position is None:
                    raise _error("no coordinates for this image", "missing_coordinates",
                                 path=coord_path, row=record.image)
                _check_utm_range(record.image, *position, coord_path)
                if image_root is not None:
                    _check_image(image_root, record.image)
            except DataError as error:
                _skip_or_raise(error, skip, "missing_image")
                continue
            first_split[record.image] = split
            rows.append(_Row(split, record, *position))
    if not rows:
        raise DataError("no images left to write: every entry was skipped (see the skip counts)")
    _to_latlon(rows, crs)
    return rows


def _check_image(image_root: Path, image: str) -> None:
    path = resolve_in_root(image_root, image, source=image_root, row=image)
    if not path.is_file():
        raise _error("image file not found under the image root", "missing_image",
                     path=image_root, row=image)


def _to_latlon(rows: list[_Row], crs: str) -> None:
    import pyproj

    transformer = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = transformer.transform([r.easting for r in rows], [r.northing for r in rows])
    for row, la, lo in zip(rows, lat, lon):
        if not (math.isfinite(la) and math.isfinite(lo)):
            raise DataError(f"UTM {row.easting}, {row.northing} did not convert to lat/lon in {crs}",
                            row=row.record.image)
        row.lat, row.lon = float(la), float(lo)


def _candidates(rows: list[_Row]) -> list[dict]:
    """One candidate per distinct canonical address, sorted by the address text."""
    parts = {r.record.canonical_address: (r.record.street, r.record.cross_street, r.record.district)
             for r in rows}
    out = []
    for index, address in enumerate(sorted(parts)):
        street, cross, district = parts[address]
        out.append({"id": index, "street": street, "cross_street": cross,
                    "sub_street": addr.sub_street_name(street, cross), "district": district,
                    "address": address, "street_address": addr.street_address(street, district),
                    "verbose_address": addr.verbose_address(street, cross, district)})
    return out


def _streets(candidates: list[dict]) -> list[dict]:
    keys = sorted({(c["street"], c["district"]) for c in candidates}, key=lambda k: (k[1], k[0]))
    return [{"id": i, "street": s, "district": d, "street_address": addr.street_address(s, d)}
            for i, (s, d) in enumerate(keys)]


def _location_ids(rows: list[_Row]) -> list[int]:
    """Images with identical UTM coordinates share a location id, numbered in first-seen order."""
    ids: dict = {}
    return [ids.setdefault((r.easting, r.northing), len(ids)) for r in rows]


def _columns(rows: list[_Row], city: str, candidate_ids: dict, location_ids: list[int]) -> dict:
    by_split: dict[str, dict[str, list]] = {}
    for row, location in zip(rows, location_ids):
        rec = row.record
        values = {
            "id": rec.image, "image": rec.image, "split": row.split, "location_id": location,
            "heading": heading_from_name(rec.image), "lat": row.lat, "lon": row.lon,
            "utm_easting": row.easting, "utm_northing": row.northing, "street": rec.street,
            "cross_street": rec.cross_street,
            "sub_street": addr.sub_street_name(rec.street, rec.cross_street),
            "sub_street_id": candidate_ids[rec.canonical_address], "district": rec.district,
            "city": city, "address": rec.canonical_address,
            "street_address": addr.street_address(rec.street, rec.district),
            "verbose_address": rec.verbose_address, "caption": rec.caption, "distance_m": 0.0,
        }
        columns = by_split.setdefault(row.split, {name: [] for name in COLUMNS})
        for name in COLUMNS:
            columns[name].append(values[name])
    return by_split


def _write_json(path: Path, data, *, indent=2) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=indent) + "\n", encoding="utf-8")


def _write_coordinates(path: Path, rows: list[_Row]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle_:
        writer = csv.writer(handle_)
        writer.writerow(COORDINATE_COLUMNS)
        for r in rows:
            writer.writerow([r.record.image, r.split, repr(r.easting), repr(r.northing), repr(r.lat),
                             repr(r.lon), repr(heading_from_name(r.record.image))])


def _write_annotations(folder: Path, rows: list[_Row]) -> None:
    """The kept entries in the released layout, normalised to [caption, verbose, canonical]."""
    folder.mkdir()
    by_split: dict[str, dict] = {}
    for r in rows:
        by_split.setdefault(r.split, {})[r.record.image] = [
            r.record.caption, r.record.verbose_address, r.record.canonical_address]
    for split, data in by_split.items():
        _write_json(folder / f"{split}.json", data, indent=None)


def _write_folder(tmp: Path, rows, columns, candidates, meta, crs, city, skip) -> None:
    import datasets

    splits = datasets.DatasetDict({split: datasets.Dataset.from_dict(cols, features=FEATURES)
                                   for split, cols in columns.items()})
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # a bar per tiny shard is noise next to the printed counts
    try:
        splits.save_to_disk(str(tmp / "hf"))
    finally:
        if bars:
            datasets.enable_progress_bars()
    _write_json(tmp / "addresses.json", {
        "city": city, "crs": crs, "sub_streets": candidates, "streets": _streets(candidates),
        "districts": sorted({c["district"] for c in candidates})})
    _write_annotations(tmp / "annotations", rows)
    _write_coordinates(tmp / "coordinates.csv", rows)
    _write_json(tmp / "meta.json", meta)
    if skip is not None:
        _write_json(tmp / "build_report.json", skip.as_dict())


def released_to_dataset(annotations: dict, coordinates, *, city: str, utm_zone: str | None,
                        image_root, out_dir, field_order=None, skip: SkipReport | None = None) -> dict:
    """Write a toolkit dataset folder (see :mod:`data_gen.schema`) from released annotation files.

    Every image needs a position, so ``coordinates`` and ``utm_zone`` are required; an image without
    coordinates raises (or is skipped and counted with ``skip``). The folder is built in a temporary
    sibling and renamed into place at the end, so a failed run leaves nothing half-written.
    Returns the ``meta.json`` contents.
    """
    out = Path(out_dir)
    if coordinates is None:
        raise DataError("no coordinate file: every image needs a GPS position (the released JSON "
                        "has none); pass the UTM ground truth with --coords")
    if utm_zone is None:
        raise DataError("no UTM zone: lat/lon cannot be computed from easting/northing without it; "
                        "pass e.g. --utm-zone 17N (Pittsburgh) or 10N (San Francisco)")
    crs = utm_crs(utm_zone)
    root = None if image_root is None else Path(image_root).resolve()
    if root is not None and not root.is_dir():
        raise DataError("image root is not a folder", path=root)
    _check_out_dir(out)

    per_split, orders = _read_splits(annotations, field_order, skip)
    coords = read_utm_coordinates(coordinates, skip=skip)
    rows = _attach_positions(per_split, coords, crs, root, Path(coordinates), skip)
    candidates = _candidates(rows)
    candidate_ids = {c["address"]: c["id"] for c in candidates}
    location_ids = _location_ids(rows)
    columns = _columns(rows, city, candidate_ids, location_ids)
    split_counts = {split: len(columns.get(split, {}).get("id", [])) for split in per_split}
    meta = {
        "schema_version": SCHEMA_VERSION, "source": "released", "city": city, "crs": crs,
        "utm_zone": str(utm_zone), "image_root": None if root is None else str(root),
        "field_order": orders, "heading": HEADING_NOTE,
        "inputs": {"annotations": {s: str(Path(p)) for s, p in annotations.items() if p},
                   "coordinates": str(Path(coordinates))},
        "counts": {"images": len(rows), "splits": split_counts, "locations": len(set(location_ids)),
                   "sub_streets": len(candidates), "streets": len(_streets(candidates)),
                   "districts": len({c["district"] for c in candidates}),
                   "skipped": 0 if skip is None else skip.total},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()  # (not mkdtemp: the folder should get the usual permissions, not 0700)
    try:
        _write_folder(tmp, rows, columns, candidates, meta, crs, city, skip)
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data_gen.released",
                                description="Convert released AddressCLIP annotations (Pitts-IAL, "
                                            "SF-IAL) into a toolkit dataset folder.")
    for split in SPLITS:
        p.add_argument(f"--{split}", type=Path, help=f"{split} annotation JSON")
    p.add_argument("--coords", type=Path, required=True,
                   help="UTM ground truth: image,easting,northing (CSV/TSV/whitespace)")
    p.add_argument("--utm-zone", required=True, help="e.g. 17N (Pittsburgh), 10N (San Francisco)")
    p.add_argument("--city", required=True)
    p.add_argument("--image-root", type=Path, help="folder the image paths are relative to")
    p.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    p.add_argument("--field-order", help="override detection, e.g. caption,verbose,canonical")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip and count bad entries instead of stopping at the first")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    annotations = {s: getattr(args, s) for s in SPLITS if getattr(args, s) is not None}
    skip = SkipReport() if args.skip_bad else None
    try:
        meta = released_to_dataset(annotations, args.coords, city=args.city, utm_zone=args.utm_zone,
                                   image_root=args.image_root, out_dir=args.out,
                                   field_order=args.field_order, skip=skip)
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = meta["counts"]
    print(f"wrote {args.out}: {counts['images']} images "
          f"({', '.join(f'{s} {n}' for s, n in counts['splits'].items())}), "
          f"{counts['locations']} locations, {counts['sub_streets']} sub-streets, "
          f"{counts['streets']} streets, {counts['districts']} districts")
    for split, info in meta["field_order"].items():
        how = "given" if info["explicit"] else "detected"
        print(f"  {split}: field order {info['used']} ({how}; per entry {info['per_entry']}, "
              f"ambiguous {info['fallback']})")
    if skip is not None:
        print(f"  skipped {skip.total}: {dict(sorted(skip.counts.items()))} "
              f"(details in {args.out / 'build_report.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
