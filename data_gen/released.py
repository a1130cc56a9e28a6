"""Convert the released AddressCLIP benchmarks (Pitts-IAL, SF-IAL) into a toolkit dataset folder.

The authors released annotations only, no code. What is read, and where it lives:

- annotation JSON per split, ``{image: [caption, verbose, canonical]}`` with field order and
  canonical form detected per entry (:mod:`data_gen.released_annotations`);
- positions, which the JSON lacks (:mod:`data_gen.released_coords`): a UTM table, the Pitts-250K
  ``.mat`` ground truth (:mod:`data_gen.released_mat`) or SF-XL file names
  (:mod:`data_gen.released_sfxl`);
- the folder is written by the shared :mod:`data_gen.writer`.

Split names. The files as distributed are ``pitts_train.json``, ``pitts_database.json`` and
``pitts_queries.json``. For stage one (AddressCLIP, closed-set address retrieval, following the paper):

- ``--train`` are the training images;
- ``--queries`` are the TEST images (the paper's test split; ``--test`` is the same thing);
- ``--database`` is the GALLERY: in image retrieval it is what queries are matched against; for
  AddressCLIP the gallery is the list of candidate addresses, so its addresses join the candidate set
  (``addresses.json``) and its entries are kept as a ``database`` split (for retrieval baselines),
  never trained or scored on. It may overlap train; an image in both database and queries is refused;
- ``--val``: when no validation file is given, a spatially separate validation split is carved from
  train with the builder's split logic (:func:`data_gen.splits.assign_splits`): whole places
  (all headings of one position), a contiguous stretch along each sub-street.

Images are not copied. ``meta.json["image_root"]`` names the folder the ``image`` paths are relative to
(``null`` when none was given); readers resolve image paths against it.

CLI::

    python -m data_gen.released --train pitts_train.json --database pitts_database.json \\
        --queries pitts_queries.json --coords pitts250k_train.mat --coords pitts250k_test.mat \\
        --utm-zone 17N --city Pittsburgh --image-root DIR --out DIR [--skip-bad]
    python -m data_gen.released --train sf_train.json --queries sf_test.json \\
        --coords sfxl-filenames --city "San Francisco" --out DIR
"""

from __future__ import annotations

import contextlib
import gc
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_gen import addresses as addr
from data_gen.released_annotations import (  # noqa: F401  (the reader's public names, re-exported)
    CANONICAL_FORMS,
    DEFAULT_ORDER,
    ROLES,
    ReleasedAnnotations,
    ReleasedRecord,
    detect_order,
    parse_canonical,
    parse_canonical_form,
    parse_field_order,
    read_released_annotations,
)
from data_gen.released_coords import (  # noqa: F401
    HEADING_NOTE,
    SFXL_FILENAMES,
    Coordinates,
    _check_utm_range,
    heading_from_name,
    lookup_coordinates,
    merge_coordinates,
    read_coordinates,
    read_utm_coordinates,
    utm_crs,
)
from data_gen.schema import SCHEMA_VERSION
from data_gen.splits import assign_splits
from data_gen.writer import check_out_dir, staging_folder, write_dataset
from ial_core.config import option, parse_config
from ial_core.errors import DataError, SkipReport, exit_2_on, skip_or_raise, tagged_error
from ial_core.paths import resolve_in_root

INPUT_SPLITS = ("train", "val", "test", "database")      # as written in the dataset folder
SPLIT_ALIASES = {"queries": "test"}                      # the released files' names
DATABASE_NOTE = ("database: the gallery; its addresses are candidates (addresses.json), its images "
                 "are neither trained nor scored on")


def _split_files(annotations: dict) -> dict:
    """``{"queries": p}`` -> ``{"test": p}``; unknown names and a split given twice are errors."""
    files = {}
    for name, path in annotations.items():
        if path is None:
            continue
        split = SPLIT_ALIASES.get(name, name)
        if split not in INPUT_SPLITS:
            raise ValueError(f"unknown split {name!r}; use train, val, test/queries, database")
        if split in files:
            raise ValueError(f"split {split!r} given twice (--test and --queries are the same split)")
        files[split] = path
    if not files:
        raise ValueError("no annotation files given; pass at least one of "
                         "--train/--val/--test/--queries/--database")
    return files


def _read_splits(files: dict, field_order, skip) -> dict:
    return {split: read_released_annotations(path, field_order=field_order, skip=skip)
            for split, path in files.items()}


def _resolve_crs(coords: Coordinates, utm_zone) -> str:
    if coords.crs is not None:
        if utm_zone is not None and utm_crs(utm_zone) != coords.crs:
            raise DataError(f"--utm-zone {utm_zone} ({utm_crs(utm_zone)}) contradicts the zone the "
                            f"coordinates name ({coords.crs})", path=coords.source)
        return coords.crs
    if utm_zone is None:
        raise DataError("no UTM zone: lat/lon cannot be computed from easting/northing without it; "
                        "pass e.g. --utm-zone 17N (Pittsburgh) or 10N (San Francisco)")
    return utm_crs(utm_zone)


def _attach_positions(per_split: dict, coords: Coordinates, image_root, skip):
    """Records joined with positions, as parallel lists; an image may be in database and one other
    split, never in two of train/val/test (nor in database and test)."""
    records, splits, utm, first = [], [], [], {}
    for split, entries in per_split.items():
        for record in entries:
            try:
                seen = first.get(record.image)
                if seen is not None and (split != "database" and seen != "database"
                                         or {seen, split} == {"database", "test"}):
                    raise tagged_error(f"image is in both {seen} and {split}", "image_in_two_splits",
                                       path=entries.source, row=record.image)
                position = coords.lookup(record.image, query=split == "test")
                if position is None:
                    raise tagged_error("no coordinates for this image", "missing_coordinates",
                                       path=coords.source, row=record.image)
                east, north = position
                if not (0 < east < 1_000_000 and 0 <= north <= 10_000_000):
                    _check_utm_range(record.image, east, north, coords.source)
                if image_root is not None:
                    _check_image(image_root, record.image)
            except DataError as error:
                skip_or_raise(error, skip, "missing_image")
                continue
            first.setdefault(record.image, split)
            records.append(record)
            splits.append(split)
            utm.append(position)
    if not records:
        raise DataError("no images left to write: every entry was skipped (see the skip counts)")
    return records, np.array(splits, dtype=object), np.array(utm, dtype=np.float64)


def _check_image(image_root: Path, image: str) -> None:
    path = resolve_in_root(image_root, image, source=image_root, row=image)
    if not path.is_file():
        raise tagged_error("image file not found under the image root", "missing_image",
                           path=image_root, row=image)


def _lat_lon(records, utm: np.ndarray, coords: Coordinates, crs: str) -> tuple[np.ndarray, np.ndarray]:
    if coords.latlon is not None:
        ll = np.array([coords.latlon[r.image] for r in records], dtype=np.float64)
        return ll[:, 0], ll[:, 1]
    import pyproj

    transformer = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = (np.asarray(v, dtype=np.float64) for v in transformer.transform(utm[:, 0], utm[:, 1]))
    bad = np.flatnonzero(~(np.isfinite(lat) & np.isfinite(lon)))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"UTM {utm[i].tolist()} did not convert to lat/lon in {crs}",
                        row=records[i].image)
    return lat, lon


def location_ids(utm: np.ndarray) -> np.ndarray:
    """Images with identical UTM coordinates share a location id, numbered in first-seen order."""
    _, first, inverse = np.unique(utm, axis=0, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.reshape(-1)]


def along_street(group: np.ndarray, utm: np.ndarray) -> np.ndarray:
    """Chainage proxy per location: its position along the principal axis of its sub-street's
    locations (released data has positions, not street geometry)."""
    chainage = np.zeros(len(utm))
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.diff(group[order])) + 1
    for members in np.split(order, bounds):
        points = utm[members] - utm[members].mean(axis=0)
        if len(members) > 1:
            _, _, vt = np.linalg.svd(points, full_matrices=False)
            chainage[members] = points @ vt[0]
    return chainage


def carve_validation(split: np.ndarray, address: list[str], utm: np.ndarray, location: np.ndarray, *,
                     fraction: float, seed: int) -> np.ndarray:
    """Move a spatially separate ``fraction`` of the train places to ``val`` (see module docstring)."""
    train = np.flatnonzero(split == "train")
    if fraction <= 0 or train.size == 0:
        return split
    places, first = np.unique(location[train], return_index=True)
    rows = train[first]
    _, group = np.unique(np.array([address[i] for i in rows], dtype=object), return_inverse=True)
    chainage = along_street(group, utm[rows])
    place_split = assign_splits(group, chainage, seed=seed, val_fraction=fraction, test_fraction=0.0)
    val_places = places[place_split == "val"]
    split = split.copy()
    split[train[np.isin(location[train], val_places)]] = "val"
    return split


def candidates(records) -> list[dict]:
    """One candidate per distinct canonical address (all splits, database included), sorted."""
    parts = {r.canonical_address: (r.street, r.cross_street, r.district) for r in records}
    out = []
    for index, address in enumerate(sorted(parts)):
        street, cross, district = parts[address]
        out.append({"id": index, "street": street, "cross_street": cross,
                    "sub_street": addr.sub_street_name(street, cross), "district": district,
                    "address": address, "street_address": addr.street_address(street, district),
                    "verbose_address": addr.verbose_address(street, cross, district)})
    return out


def streets(subs: list[dict]) -> list[dict]:
    keys = sorted({(c["street"], c["district"]) for c in subs}, key=lambda k: (k[1], k[0]))
    return [{"id": i, "street": s, "district": d, "street_address": addr.street_address(s, d)}
            for i, (s, d) in enumerate(keys)]


def _columns(records, split, utm, lat, lon, location, coords: Coordinates, city: str, ids: dict) -> dict:
    heading = coords.heading or {}
    images = [r.image for r in records]
    # one sub-street and street-address string per address, shared by its rows
    derived = {r.canonical_address: (addr.sub_street_name(r.street, r.cross_street),
                                     addr.street_address(r.street, r.district)) for r in records}
    return {
        "id": images, "image": images, "split": split.tolist(), "location_id": location,
        "heading": np.array([heading[im] if im in heading else heading_from_name(im)
                             for im in images], dtype=np.float32),
        "lat": lat, "lon": lon, "utm_easting": utm[:, 0], "utm_northing": utm[:, 1],
        "street": [r.street for r in records], "cross_street": [r.cross_street for r in records],
        "sub_street": [derived[r.canonical_address][0] for r in records],
        "sub_street_id": np.array([ids[r.canonical_address] for r in records], dtype=np.int32),
        "district": [r.district for r in records], "city": [city] * len(records),
        "address": [r.canonical_address for r in records],
        "street_address": [derived[r.canonical_address][1] for r in records],
        "verbose_address": [r.verbose_address for r in records],
        "caption": [r.caption for r in records],
        "distance_m": np.zeros(len(records), dtype=np.float32),
    }


@contextlib.contextmanager
def _bulk_load():
    """No cyclic garbage collection while millions of small acyclic objects (JSON lists, records)
    are alive: each full collection would walk all of them, a third of the conversion's CPU time
    at 250k entries. Reference counting still frees everything; the collector is restored after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def released_to_dataset(annotations: dict, coordinates, **options) -> dict:
    """Write a toolkit dataset folder from released annotation files; see :func:`_convert`."""
    with _bulk_load():
        return _convert(annotations, coordinates, **options)


def _convert(annotations: dict, coordinates, *, city: str, utm_zone: str | None,
             image_root, out_dir, field_order=None, skip: SkipReport | None = None,
             val_fraction: float = 0.1, seed: int = 0) -> dict:
    """Write a toolkit dataset folder (see :mod:`data_gen.schema`) from released annotation files.

    ``annotations`` maps split names (train, val, test or queries, database) to files;
    ``coordinates`` is a path, a list of paths (merged) or ``"sfxl-filenames"``. Every image needs
    a position: an image without one raises (or is skipped and counted with ``skip``). The folder
    is written into a temporary sibling and renamed into place at the end. Returns ``meta.json``.
    """
    out = Path(out_dir)
    if coordinates is None or coordinates == []:
        raise DataError("no coordinates: every image needs a GPS position (the released JSON has "
                        "none); pass the ground truth with --coords (.mat, CSV or sfxl-filenames)")
    specs = [coordinates] if isinstance(coordinates, (str, Path)) else list(coordinates)
    root = None if image_root is None else Path(image_root).resolve()
    if root is not None and not root.is_dir():
        raise DataError("image root is not a folder", path=root)
    if utm_zone is not None:
        utm_crs(utm_zone)            # a malformed zone fails before any file is read
    check_out_dir(out)
    files = _split_files(annotations)

    per_split = _read_splits(files, field_order, skip)
    images = [r.image for entries in per_split.values() for r in entries]
    coords = merge_coordinates([read_coordinates(spec, images=images, skip=skip) for spec in specs])
    crs = _resolve_crs(coords, utm_zone)
    records, split, utm = _attach_positions(per_split, coords, root, skip)
    lat, lon = _lat_lon(records, utm, coords, crs)
    location = location_ids(utm)
    val = "given" if "val" in files else "none"
    if "val" not in files and "train" in files and val_fraction > 0:
        split = carve_validation(split, [r.canonical_address for r in records], utm, location,
                                 fraction=val_fraction, seed=seed)
        val = f"carved from train: {val_fraction:.0%} of each sub-street's places, seed {seed}"
    subs = candidates(records)
    ids = {c["address"]: c["id"] for c in subs}
    columns = _columns(records, split, utm, lat, lon, location, coords, city, ids)
    counts = {s: int((split == s).sum()) for s in INPUT_SPLITS}
    counts = {s: n for s, n in counts.items() if s in files or n}
    names = [s for s, n in counts.items() if n]     # an empty split is not written (it cannot be loaded)
    street_list = streets(subs)
    meta = {
        "schema_version": SCHEMA_VERSION, "source": "released", "city": city, "crs": crs,
        "utm_zone": None if utm_zone is None else str(utm_zone),
        "image_root": None if root is None else str(root),
        "field_order": {s: entries.order_info() for s, entries in per_split.items()},
        "canonical_form": {s: dict(sorted(entries.form_counts.items()))
                           for s, entries in per_split.items()},
        "heading": HEADING_NOTE if not coords.heading else "heading from the SF-XL file name",
        "splits": {"val": val, "database": DATABASE_NOTE, "test": "the test queries"},
        "inputs": {"annotations": {s: str(Path(p)) for s, p in files.items()},
                   "coordinates": {"kind": coords.kind, "files": coords.files or [coords.source]}},
        "counts": {"images": len(records), "splits": counts,
                   "locations": int(len(np.unique(location))), "sub_streets": len(subs),
                   "streets": len(street_list), "districts": len({c["district"] for c in subs}),
                   "skipped": 0 if skip is None else skip.total},
    }
    # "streets" holds names, as build writes it and the QA gazetteer reads it; the street-level
    # addresses (one per street and district) are listed apart
    addresses = {"city": city, "crs": crs, "sub_streets": subs,
                 "streets": sorted({c["street"] for c in subs}), "street_addresses": street_list,
                 "districts": sorted({c["district"] for c in subs})}
    with staging_folder(out) as tmp:
        write_dataset(tmp, columns, splits=names, addresses=addresses, meta=meta, skip=skip)
    return meta


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------

@dataclass
class ReleasedConfig:
    coords: list[str] = option(
        help="positions: Pitts-250K .mat (dbStruct or a 2 x N UTM matrix), a UTM table "
             "(image,easting,northing CSV/TSV), or 'sfxl-filenames'; may be repeated",
        action="extend")
    city: str = option(help="city name of every address")
    out: Path = option(help="dataset folder to write")
    train: Path | None = option(None, "training annotations (pitts_train.json)")
    val: Path | None = option(None, "validation annotations; without it a spatially separate val "
                                    "split is carved from train")
    test: Path | None = option(None, "test queries (pitts_queries.json)", aliases=["--queries"])
    database: Path | None = option(None, "the gallery (pitts_database.json): its addresses join "
                                         "the candidate set, its images are not trained on")
    utm_zone: str | None = option(None, "e.g. 17N (Pittsburgh); not needed for sfxl-filenames")
    image_root: Path | None = option(None, "folder the image paths are relative to")
    field_order: str | None = option(None, "override detection, e.g. caption,verbose,canonical")
    val_fraction: float = option(0.1, "share of each sub-street's train places carved out as val "
                                      "when no --val")
    seed: int = option(0, "seed of the val carve-out")
    skip_bad: bool = option(False, "skip and count bad entries instead of stopping at the first")


@exit_2_on(DataError, ValueError)
def main(argv=None) -> int:
    args = parse_config(ReleasedConfig, argv, prog="python -m data_gen.released",
                        description="Convert released AddressCLIP annotations (Pitts-IAL, SF-IAL) "
                                    "into a toolkit dataset folder.")
    annotations = {s: getattr(args, s) for s in INPUT_SPLITS if getattr(args, s) is not None}
    skip = SkipReport() if args.skip_bad else None
    meta = released_to_dataset(annotations, args.coords, city=args.city, utm_zone=args.utm_zone,
                               image_root=args.image_root, out_dir=args.out,
                               field_order=args.field_order, skip=skip,
                               val_fraction=args.val_fraction, seed=args.seed)
    counts = meta["counts"]
    print(f"wrote {args.out}: {counts['images']} images "
          f"({', '.join(f'{s} {n}' for s, n in counts['splits'].items())}), "
          f"{counts['locations']} locations, {counts['sub_streets']} sub-streets, "
          f"{counts['streets']} streets, {counts['districts']} districts")
    for split, info in meta["field_order"].items():
        how = "given" if info["explicit"] else "detected"
        print(f"  {split}: field order {info['used']} ({how}; per entry {info['per_entry']}, "
              f"ambiguous {info['fallback']}); canonical forms {meta['canonical_form'][split]}")
    print(f"  val: {meta['splits']['val']}")
    if skip is not None:
        print(f"  skipped {skip.total}: {dict(sorted(skip.counts.items()))} "
              f"(details in {args.out / 'build_report.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
