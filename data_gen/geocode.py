"""Batch reverse geocoding of your own points:
``python -m data_gen.geocode --osm EXTRACT --in points.csv --out addresses.csv``.

The input needs ``lat`` and ``lon`` columns; every other column is kept. The output adds ``street``,
``sub_street``, ``district``, ``city`` and ``distance_m``. A point farther than ``--max-distance-m``
from every street gets an empty street, sub-street and district (never a wrong street), and a row
whose coordinates are not numbers in range is an error naming its line (or, with ``--skip-bad``,
is written with empty fields and counted).

Sub-streets follow the paper's partition, with the merge of small sub-streets counted over the
points in the file (``--min-locations 0`` turns the merge off); the district is that of the point.
"""

from __future__ import annotations

import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_gen.csvtable import number_in_range, read_rows
from data_gen.osm import embedded_extract_path, read_city
from data_gen.partition import PartitionConfig, finalise, initial_pieces, merge_small
from data_gen.reverse_geocoder import DEFAULT_MAX_DISTANCE_M, MAX_DISTANCE_HELP, ReverseGeocoder
from ial_core.config import option, option_from, parse_config
from ial_core.errors import DataError, SkipReport, exit_2_on, handle
from ial_core.files import atomic_file

OUTPUT_COLUMNS = ("street", "sub_street", "district", "city", "distance_m")


@dataclass
class GeocodeConfig:
    input: Path = option(help="CSV with lat,lon columns", aliases=["--in"])
    out: Path = option(help="CSV to write (the input's columns plus the address)")
    osm: Path | None = option(None, "OpenStreetMap extract; default: the embedded Helsinki extract")
    city: str | None = option(None, "city name (default: from the extract)")
    max_distance_m: float = option(DEFAULT_MAX_DISTANCE_M, MAX_DISTANCE_HELP)
    min_gap_m: float = option_from(PartitionConfig, "min_gap_m")
    min_locations: int = option_from(PartitionConfig, "min_locations")
    skip_bad: bool = option(False, "write bad rows unlabelled and count them")


def _read_points(path: Path, skip: SkipReport | None):
    header, rows = read_rows(path, ("lat", "lon"), "input CSV")
    clash = [c for c in OUTPUT_COLUMNS if c in header]
    if clash:
        raise DataError(f"already has output column(s) {clash}", path=path, row=1)
    records, lat, lon = [], [], []
    for line, record in rows:
        try:
            if isinstance(record, DataError):        # the csv module could not read the row
                error, record = record, dict.fromkeys(header, "")
                raise error
            if None in record:
                raise DataError("row has more fields than the header", path=path, row=line)
            values = [number_in_range(record["lat"], "lat", -90, 90, path, line),
                      number_in_range(record["lon"], "lon", -180, 180, path, line)]
        except DataError as exc:
            handle(exc, skip, "bad_row")
            values = [math.nan, math.nan]
        records.append(record)
        lat.append(values[0])
        lon.append(values[1])
    return header, records, np.array(lat), np.array(lon)


def geocode_file(config: GeocodeConfig) -> dict:
    """Geocode ``config.input`` into ``config.out`` (written atomically); returns counts."""
    skip = SkipReport() if config.skip_bad else None
    header, records, lat, lon = _read_points(Path(config.input), skip)
    city = read_city(config.osm or embedded_extract_path(), city=config.city)
    pieces = initial_pieces(city, PartitionConfig(config.min_gap_m, config.min_locations))
    first = ReverseGeocoder(city, pieces, max_distance_m=config.max_distance_m).geocode(lat, lon)
    known = first.sub_street_id >= 0
    counts = np.bincount(first.sub_street_id[known], minlength=len(pieces))
    final, remap = merge_small(pieces, counts, config.min_locations)
    final = finalise(final, city)
    sub_id = np.where(known, remap[np.maximum(first.sub_street_id, 0)], -1)
    with atomic_file(config.out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header + list(OUTPUT_COLUMNS))
        for i, record in enumerate(records):
            ok = sub_id[i] >= 0
            writer.writerow([record[k] for k in header] + [
                first.street[i], final[sub_id[i]].name if ok else "",
                first.district[i] if ok else "", city.city if ok else "",
                f"{first.distance_m[i]:.2f}" if ok else ""])
    return {"points": len(records), "known": int((sub_id >= 0).sum()),
            "unknown": int((sub_id < 0).sum()), "skipped": 0 if skip is None else skip.total}


@exit_2_on(DataError)
def main(argv: list[str] | None = None) -> int:
    config = parse_config(GeocodeConfig, argv, description=__doc__.split("\n")[0])
    counts = geocode_file(config)
    print(f"{config.out}: {counts['points']} points, {counts['known']} on a street, "
          f"{counts['unknown']} unknown (farther than {config.max_distance_m} m or invalid)"
          + (f", {counts['skipped']} bad rows" if counts["skipped"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
