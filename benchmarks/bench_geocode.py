"""Reverse geocoding throughput: the vectorised geocoder against a plain per-point loop.

All run in the same process on the same points (uniform over the embedded Helsinki extract's
street bounding box, so many fall beyond the cut-off, as off-street GPS would), one thread.
Two baselines:
- plain loop: for each point, the distance to every street part, keep the nearest (no index);
- indexed loop: for each point, shapely's ``STRtree.nearest`` over the parts (a strong baseline:
  the same index, but one query per point).
Prints points/s for each, the speed-ups, and how often the loops agree with the vectorised result.

    python benchmarks/bench_geocode.py [--points 200000] [--loop-points 3000] [--osm EXTRACT]

The plain loop's cost grows with the number of streets, the vectorised one's barely: run it with
``--osm`` on a real city extract to see the ratio at that scale.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import shapely

from data_gen.osm import embedded_extract_path, read_city
from data_gen.partition import initial_pieces
from data_gen.reverse_geocoder import ReverseGeocoder
from ial_core.config import option, parse_config


@dataclass
class GeocodeBenchConfig:
    points: int = option(200_000, "points for the vectorised geocoder")
    loop_points: int = option(3_000, "points for the per-point loops (the first of the same points)")
    repeats: int = option(3, "vectorised runs (the best is reported)")
    osm: str | None = option(None, "extract to use (default: embedded Helsinki)")


def plain_loop(geocoder: ReverseGeocoder, x: np.ndarray, y: np.ndarray) -> list[str]:
    streets = []
    for xi, yi in zip(x, y):
        point = shapely.Point(xi, yi)
        distances = [part.distance(point) for part in geocoder.parts]
        i = int(np.argmin(distances))
        if distances[i] > geocoder.max_distance_m:
            streets.append("")
            continue
        geocoder.parts[i].project(point)          # chainage, as the vectorised path computes
        streets.append(str(geocoder._part_street[i]))
    return streets


def indexed_loop(geocoder: ReverseGeocoder, x: np.ndarray, y: np.ndarray) -> list[str]:
    tree = shapely.STRtree(geocoder.parts)
    streets = []
    for xi, yi in zip(x, y):
        point = shapely.Point(xi, yi)
        i = tree.nearest(point)
        part = geocoder.parts[i]
        if part.distance(point) > geocoder.max_distance_m:
            streets.append("")
            continue
        part.project(point)
        streets.append(str(geocoder._part_street[i]))
    return streets


def _loop_rate(fn, geocoder, x, y, reference) -> tuple[float, float]:
    start = time.perf_counter()
    streets = fn(geocoder, x, y)
    rate = len(x) / (time.perf_counter() - start)
    return rate, float(np.mean(np.array(streets, dtype=object) == reference))


def main(argv: list[str] | None = None) -> None:
    args = parse_config(GeocodeBenchConfig, argv, description=__doc__.split("\n")[0])

    city = read_city(args.osm or embedded_extract_path())
    geocoder = ReverseGeocoder(city, initial_pieces(city))
    x0, y0, x1, y1 = shapely.bounds(shapely.union_all(geocoder.parts))
    rng = np.random.default_rng(0)
    x = rng.uniform(x0, x1, args.points)
    y = rng.uniform(y0, y1, args.points)

    best = np.inf
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = geocoder.geocode_utm(x, y)
        best = min(best, time.perf_counter() - start)
    vector_rate = args.points / best

    n = args.loop_points
    print(f"vectorised: {vector_rate:,.0f} points/s ({args.points:,} points, best of {args.repeats}, "
          f"{result.known.mean():.0%} within {geocoder.max_distance_m:.0f} m of a street, "
          f"{len(geocoder.parts)} street parts)")
    for name, fn in (("plain per-point loop", plain_loop), ("indexed per-point loop", indexed_loop)):
        rate, agree = _loop_rate(fn, geocoder, x[:n], y[:n], result.street[:n])
        print(f"{name}: {rate:,.0f} points/s ({n:,} points); vectorised is "
              f"{vector_rate / rate:.0f}x faster; same street {agree:.2%}")


if __name__ == "__main__":
    main()
