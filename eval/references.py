"""The items an evaluation scores: id, true street / cross street / district / city, image, position.

From a built dataset split (:func:`from_dataset`), or from a JSONL file (:func:`from_jsonl`), one
object per line::

    {"id": "img_001", "street": "Grant Street", "district": "Downtown", "city": "Pittsburgh",
     "cross_street": "Fifth Avenue", "lat": 40.4406, "lon": -79.9959, "image": "photos/001.jpg"}

where ``cross_street``, ``lat``/``lon`` (WGS 84; projected to the gazetteer's CRS for distances) and
``image`` (relative to the file's folder, which it may not leave: no absolute paths, no ``..``;
needed by the model backends) are optional.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ial_core.errors import DataError
from ial_core.paths import resolve_in_root, safe_relative_path


@dataclass(frozen=True)
class Reference:
    id: str
    street: str
    district: str
    city: str
    cross_street: str = ""
    image: Path | None = None
    utm: tuple[float, float] | None = None    # in the gazetteer's CRS


@dataclass
class References:
    items: list[Reference]
    source: str
    # Street / district frequencies a majority baseline may use without seeing the scored items:
    # the training split of a dataset; None for a references file (the baseline then fits on the
    # scored items themselves, and says so).
    prior_streets: Counter | None = None
    prior_districts: Counter | None = None

    def __len__(self) -> int:
        return len(self.items)


def subsample(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Indices of a seeded random subset of ``limit`` items (all when ``limit`` is None), in order."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max(0, limit), replace=False))


def from_dataset(ial, split: str, *, limit: int | None = None, seed: int = 0,
                 prior_split: str = "train") -> References:
    """A split of a built dataset (:class:`data_gen.dataset.IALDataset`)."""
    rows = ial.split(split)
    keep = subsample(len(rows), limit, seed)
    cols = rows.select_columns(["id", "image", "street", "cross_street", "district", "city",
                                "utm_easting", "utm_northing"]).to_dict()
    items = [Reference(id=str(cols["id"][i]), street=cols["street"][i],
                       district=cols["district"][i], city=cols["city"][i] or ial.city,
                       cross_street=cols["cross_street"][i] or "",
                       image=ial.image_path(cols["image"][i], row=str(cols["id"][i])),
                       utm=(float(cols["utm_easting"][i]), float(cols["utm_northing"][i])))
             for i in keep.tolist()]
    prior_s = prior_d = None
    if prior_split in ial.splits and prior_split != split and len(ial.splits[prior_split]):
        train = ial.splits[prior_split]
        prior = train.select_columns(["street", "district"]).to_dict()
        prior_s, prior_d = Counter(prior["street"]), Counter(prior["district"])
    return References(items, f"{ial.root} [{split}]", prior_s, prior_d)


def from_jsonl(path: str | Path, *, crs: str | None = None, limit: int | None = None,
               seed: int = 0) -> References:
    """A references file; ``crs`` (the gazetteer's) turns lat/lon into metres.

    Every bad line is a :class:`DataError` naming the file and line: not UTF-8, not a JSON object,
    a missing field, a repeated id, lat/lon that are not finite numbers within range, or an image
    path that is absolute or climbs out of the file's folder with ``..``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("references file not found", path=path)
    records, seen = [], set()
    for n, line in _lines(path):
        rec = _reference_record(line, path, n)
        if rec is None:
            continue
        if str(rec["id"]) in seen:
            raise DataError(f"duplicate id {rec['id']!r}", path=path, row=n)
        seen.add(str(rec["id"]))
        records.append((n, rec))
    if not records:
        raise DataError("no references", path=path)
    records = [records[i] for i in subsample(len(records), limit, seed).tolist()]
    utm = _project([r for _, r in records], crs, path)
    items = []
    for (n, rec), xy in zip(records, utm):
        image = rec.get("image")
        items.append(Reference(
            id=str(rec["id"]), street=str(rec["street"]), district=str(rec["district"]),
            city=str(rec["city"]), cross_street=str(rec.get("cross_street") or ""),
            image=(resolve_in_root(path.parent, image, source=path, row=n)
                   if isinstance(image, str) and image else None), utm=xy))
    return References(items, str(path))


def _lines(path: Path):
    """(line number, text) of a UTF-8 file; the first line that is not UTF-8 is a DataError."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError("not UTF-8 text", path=path, row=raw[:exc.start].count(b"\n") + 1) from None
    return enumerate(text.splitlines(), start=1)


def _reference_record(line: str, path: Path, n: int) -> dict | None:
    """One checked reference object, or None for a blank line."""
    if not line.strip():
        return None
    try:
        rec = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise DataError(f"not JSON ({getattr(exc, 'msg', exc)})", path=path, row=n) from None
    if not isinstance(rec, dict):
        raise DataError("expected an object", path=path, row=n)
    for key in ("id", "street", "district", "city"):
        value = rec.get(key)
        if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
            raise DataError(f'missing "{key}"', path=path, row=n)
    for key, low, high in (("lat", -90.0, 90.0), ("lon", -180.0, 180.0)):
        value = rec.get(key)
        if value is None:
            continue
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not low <= value <= high or not math.isfinite(value)):   # NaN fails both
            raise DataError(f"{key} {value!r} is not a number in [{low}, {high}]", path=path, row=n)
    image = rec.get("image")
    if image is not None and not isinstance(image, str):
        raise DataError(f'"image" must be a path, got {type(image).__name__}', path=path, row=n)
    if image:
        safe_relative_path(image, source=path, row=n)
    return rec


def _project(records: list[dict], crs: str | None, path: Path) -> list[tuple[float, float] | None]:
    has = [isinstance(r.get("lat"), (int, float)) and isinstance(r.get("lon"), (int, float))
           for r in records]
    if crs is None or not any(has):
        return [None] * len(records)
    from pyproj import Transformer

    to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    lon = np.array([r["lon"] if h else np.nan for r, h in zip(records, has)], dtype=float)
    lat = np.array([r["lat"] if h else np.nan for r, h in zip(records, has)], dtype=float)
    x, y = to_crs.transform(lon, lat)
    return [(float(a), float(b)) if h and np.isfinite(a) and np.isfinite(b) else None
            for a, b, h in zip(np.asarray(x), np.asarray(y), has)]
