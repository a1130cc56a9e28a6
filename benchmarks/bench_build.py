"""The embedded dataset build: wall time, time per step, images/s, and peak memory.

Builds the default Helsinki dataset into a temporary folder (``--overwrite`` semantics, nothing
reused) in a fresh process and reports the builder's own peak resident memory and the largest of its
workers'.

    python benchmarks/bench_build.py [--workers 0] [--spacing-m 12] [--headings 4]
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from common import own_peak_rss_mib, run_fresh

from data_gen.build import BuildConfig, DatasetBuilder
from ial_core.config import option, parse_config


@dataclass
class BuildBenchConfig:
    workers: int = option(0, "processes for images (0: all cores)")
    spacing_m: float = option(BuildConfig.spacing_m, "metres between sampled locations")
    headings: int = option(BuildConfig.headings, "views per location")


def measure(settings: str) -> None:
    """Build with ``settings`` (a JSON object of :class:`BuildBenchConfig`) and print the figures
    (run by :func:`common.run_fresh`)."""
    args = BuildBenchConfig(**json.loads(settings))
    with tempfile.TemporaryDirectory() as tmp:
        config = BuildConfig(out=Path(tmp) / "data", workers=args.workers,
                             spacing_m=args.spacing_m, headings=args.headings)
        builder = DatasetBuilder(config)
        start = time.perf_counter()
        out = builder.run()
        wall = time.perf_counter() - start
        images = sum(1 for _ in (out / "images").rglob("*.jpg"))
    self_mb = own_peak_rss_mib()
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"build: {images} images in {wall:.1f} s ({images / wall:.0f} images/s overall, "
          f"{builder.workers} worker processes)")
    print("steps (s): " + ", ".join(f"{k} {v}" for k, v in builder.timings.items()))
    print(f"peak RSS: builder {self_mb:.0f} MiB, largest worker {child_mb:.0f} MiB")


def main(argv: list[str] | None = None) -> None:
    args = parse_config(BuildBenchConfig, argv, description=__doc__.split("\n")[0])
    run_fresh("bench_build", "measure", json.dumps(asdict(args)))


if __name__ == "__main__":
    main()
