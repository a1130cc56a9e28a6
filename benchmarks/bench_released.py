"""Converting a released benchmark at Pitts-IAL scale: entries/s and peak memory.

Writes a synthetic Pitts-IAL-like annotation file (default 250,000 entries: places of 24 views,
about 430 sub-streets, both canonical forms, some ``./`` keys) and its Pitts-250K ``.mat`` ground
truth (a 2 x N UTM matrix of places), then times ``released_to_dataset`` on it in a child process
(so the peak RSS is the converter's alone, not the generator's) with a per-step breakdown.

    python benchmarks/bench_released.py [--entries 250000] [--profile true]

The targets and the measured figures are in ``docs/released-datasets.md``. On a shared machine wall
time depends on the load; the CPU seconds of the converting process are reported beside it.
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import run_fresh

from ial_core.config import option, parse_config

VIEWS = 24     # Pitts-250K: 2 pitches x 12 yaws per place


@dataclass
class ReleasedBenchConfig:
    entries: int = option(250_000, "annotation entries of the synthetic input")
    profile: bool = option(False, "print the conversion's cProfile (30 functions by own time)")


def make_files(root: Path, entries: int, seed: int = 0) -> tuple[Path, Path]:
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    places = -(-entries // VIEWS)
    n_subs = 430
    sub = np.sort(rng.integers(0, n_subs, places))
    districts = [f"District {d}" for d in range(40)]
    streets = [f"Street {s}" for s in range(160)]
    east = 585_000 + (sub % 20) * 300 + rng.uniform(0, 200, places)
    north = 4_475_000 + (sub // 20) * 300 + rng.uniform(0, 200, places)
    savemat(root / "utm.mat", {"Cdb": np.stack([east, north])})
    words = ["a", "street", "with", "parked", "cars", "trees", "brick", "houses", "and", "a", "bus"]
    data = {}
    for i in range(entries):
        place, view = divmod(i, VIEWS)
        s = int(sub[place])
        street, cross, district = streets[s % 160], f"Cross {s}", districts[s % 40]
        image = f"{place // 1000:03d}/{place:06d}_pitch{view // 12 + 1}_yaw{view % 12 + 1}.jpg"
        canonical = (f"{street} & {cross}, {district}" if s % 2 else f"{street}, {district} ({cross})")
        caption = " ".join(words[(i + k) % len(words)] for k in range(12))
        verbose = f"located in {district}, specifically on a section of {street} that meets {cross}"
        data[("./" if i % 5 == 0 else "") + image] = [caption, verbose, canonical]
    path = root / "pitts_train.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path, root / "utm.mat"


def convert(train: str | Path, coords: str | Path, out: str | Path, profile: str = "false") -> None:
    """The conversion alone (run by :func:`common.run_fresh`; ``profile`` "true" or "false")."""
    from data_gen import released
    train, coords, out, profile = Path(train), Path(coords), Path(out), profile == "true"

    steps, peaks = {}, {}
    wrap = {"read_released_annotations": "read annotations", "read_coordinates": "read coordinates",
            "write_dataset": "write dataset"}
    for name, label in wrap.items():
        fn = getattr(released, name)

        def timed(*a, _fn=fn, _label=label, **k):
            start = time.process_time()
            try:
                return _fn(*a, **k)
            finally:
                steps[_label] = steps.get(_label, 0.0) + time.process_time() - start
                peaks[_label] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        setattr(released, name, timed)
    start, cpu = time.perf_counter(), time.process_time()
    if profile:
        import cProfile
        import pstats
        prof = cProfile.Profile(time.process_time)
        prof.enable()
    meta = released.released_to_dataset({"train": train}, coords, city="Pittsburgh", utm_zone="17N",
                                        image_root=None, out_dir=out)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    if profile:
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = meta["counts"]["images"]
    print(json.dumps({"entries": n, "seconds": round(wall, 2), "entries_per_s": round(n / wall),
                      "cpu_seconds": round(cpu, 2), "entries_per_cpu_s": round(n / cpu),
                      "peak_rss_mib": round(peak), "steps_cpu_s": {k: round(v, 2) for k, v in steps.items()},
                      "peak_rss_mib_after": peaks,
                      "splits": meta["counts"]["splits"], "sub_streets": meta["counts"]["sub_streets"]}))


def main(argv: list[str] | None = None) -> None:
    args = parse_config(ReleasedBenchConfig, argv, description=__doc__.split("\n")[0])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        train, coords = make_files(root, args.entries)
        size = train.stat().st_size / 2**20
        print(f"synthetic input: {args.entries} entries, {size:.0f} MiB JSON "
              f"({time.perf_counter() - start:.1f} s to generate)")
        run_fresh("bench_released", "convert", str(train), str(coords), str(root / "ds"),
                  str(args.profile).lower())


if __name__ == "__main__":
    main()
