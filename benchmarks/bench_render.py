"""Throughput of the procedural street-view renderer (data_gen.render), single process.

Renders N views spread over streets, districts, highway classes, chainages, headings and
seeds, checks once that a repeated render is byte-identical, and prints one summary line:

    python benchmarks/bench_render.py --size 128 --n 2000
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from data_gen.render import ViewSpec, render_view
from ial_core.config import option, parse_config

DISTRICTS = ("Kluuvi", "Kaartinkaupunki", "Kruununhaka", "Punavuori", "Kamppi", "Etu-Töölö",
             "Ullanlinna", "Katajanokka", "Eira", "Kallio")
HIGHWAYS = ("primary", "secondary", "tertiary", "residential", "unclassified", "pedestrian",
            "living_street", "service")
STREETS = ("Aleksanterinkatu", "Mikonkatu", "Mannerheimintie", "Bulevardi", "Iso Roobertinkatu",
           "Liisankatu", "Fredrikinkatu", "Annankatu", "Uudenmaankatu", "Lönnrotinkatu",
           "Albertinkatu", "Yrjönkatu", "Pohjoisesplanadi", "Eteläesplanadi", "Unioninkatu",
           "Kasarmikatu", "Korkeavuorenkatu", "Runeberginkatu", "Töölönkatu", "Satamakatu",
           "Luotsikatu", "Kristianinkatu", "Hämeentie", "Porthaninkatu")


@dataclass
class RenderBenchConfig:
    size: int = option(128, "image side in pixels")
    n: int = option(2000, "number of views to render")
    warmup: int = option(50, "untimed renders first (fills caches)")


def make_specs(n: int, seed: int = 0) -> list[ViewSpec]:
    rng = np.random.default_rng(seed)
    specs = []
    for _ in range(n):
        j = int(rng.integers(len(STREETS)))
        length = 200.0 + 100.0 * (j % 9)
        specs.append(ViewSpec(
            street=STREETS[j], district=DISTRICTS[j % len(DISTRICTS)], highway=HIGHWAYS[j % len(HIGHWAYS)],
            easting=385000.0 + rng.uniform(0, 3000), northing=6671000.0 + rng.uniform(0, 3000),
            chainage_m=float(rng.uniform(0, length)), street_length_m=length,
            heading=float(rng.choice([0.0, 90.0, 180.0, 270.0]) + rng.normal(0, 8)),
            seed=int(rng.integers(1 << 31))))
    return specs


def main(argv: list[str] | None = None) -> None:
    args = parse_config(RenderBenchConfig, argv, description=__doc__.splitlines()[0])

    specs = make_specs(args.n)
    a, b = render_view(specs[0], args.size), render_view(specs[0], args.size)
    deterministic = a.image.tobytes() == b.image.tobytes() and a.caption == b.caption
    for spec in make_specs(args.warmup, seed=1):
        render_view(spec, args.size)
    t0 = time.perf_counter()
    for spec in specs:
        render_view(spec, args.size)
    dt = time.perf_counter() - t0
    print(f"render_view {args.size}px x{args.n}: {args.n / dt:.0f} images/s, "
          f"{1000 * dt / args.n:.2f} ms/image (1 process), deterministic={deterministic}")
    if not deterministic:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
