"""Answer-parsing throughput: answers parsed per second, overall and per answer style.

Answers are generated (seeded) from the gazetteer in the styles the parser meets: LLaVA-IAL's
sentence, the canonical sub-street address, general-model prose with a house number or another
city, misspellings, JSON, numbered lists, refusals and vague answers. One thread, tables built once
(their build time is printed separately; the world gazetteer of :mod:`eval.places` is built on
first use, once per process, and counted in the first table build); the matcher's per-span fuzzy
memo starts empty and warms during the run, as it does in an evaluation. ``--extra-streets N`` adds
N synthetic street names (and N/20 districts) to show how the cost grows with a city's size (a large
city such as Pittsburgh has a few thousand named streets).

    python benchmarks/bench_qa_parse.py [--answers 20000] [--gazetteer PATH] [--extra-streets 3000]

The gazetteer defaults to the embedded Helsinki extract (streets and districts read from OSM).
"""

from __future__ import annotations

import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass

os.environ.setdefault("OMP_NUM_THREADS", "1")

from eval.address_parser import AddressParser, ParserConfig
from eval.gazetteer import Gazetteer
from ial_core.config import option, parse_config

STYLES = {
    "llava": lambda s, c, d, city, r: f"The address of this photo might be {s}, {d}, {city}.",
    "canonical": lambda s, c, d, city, r: f"{s} & {c}, {d}",
    "prose": lambda s, c, d, city, r: (f"This photo was taken at {r.randint(1, 400)} {s} in {city}; "
                                       f"the street sign in the image confirms this location."),
    "other_city": lambda s, c, d, city, r: ("This photo was taken in Peavey Plaza in Minneapolis, "
                                            "Minnesota, USA, on the corner of Nicollet Mall and "
                                            "11th Street."),
    "misspelt": lambda s, c, d, city, r: f"Probably {_typo(s, r)} near {c}, {d}",
    "json": lambda s, c, d, city, r: f'{{"street": "{s}", "district": "{d}", "city": "{city}"}}',
    "list": lambda s, c, d, city, r: f"Possible locations:\n1. {s}, {d}\n2. {c}, {d}\n3. {city}",
    "refusal": lambda s, c, d, city, r: "I'm sorry, I cannot determine where this photo was taken.",
    "vague": lambda s, c, d, city, r: ("This photo appears to have been taken on a city street, "
                                       "possibly in a downtown area or commercial district."),
}


@dataclass
class QAParseBenchConfig:
    answers: int = option(20_000, "answers parsed per run")
    gazetteer: str | None = option(None, "dataset folder, city.json or OSM extract (default: embedded)")
    extra_streets: int = option(3000, "also run with this many synthetic streets added (0: skip)")
    seed: int = option(0, "seed of the generated answers and streets")


def _typo(name: str, rng: random.Random) -> str:
    i = rng.randrange(1, max(2, len(name) - 1))
    return name[:i] + name[i + 1] + name[i] + name[i + 2:] if i + 1 < len(name) else name


def make_answers(gaz: Gazetteer, n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    styles = list(STYLES)
    out = []
    for i in range(n):
        style = styles[i % len(styles)]
        s, c = rng.choice(gaz.streets), rng.choice(gaz.streets)
        out.append((style, STYLES[style](s, c, rng.choice(gaz.districts), gaz.city, rng)))
    return out


def with_extra(gaz: Gazetteer, n: int, seed: int) -> Gazetteer:
    rng = random.Random(seed)
    syll = ["ka", "lo", "mi", "ra", "ten", "vuo", "sil", "nie", "ber", "gat", "ho", "lin", "tor"]
    types = ["katu", "tie", " Street", " Avenue", "kuja", " Road"]
    extra = {"".join(rng.choice(syll) for _ in range(rng.randint(2, 4))).capitalize()
             + rng.choice(types) for _ in range(n)}
    districts = {"".join(rng.choice(syll) for _ in range(3)).capitalize() for _ in range(n // 20)}
    return Gazetteer(city=gaz.city, streets=gaz.streets + sorted(extra),
                     districts=gaz.districts + sorted(districts))


def bench(gaz: Gazetteer, answers: list[tuple[str, str]], config: ParserConfig, label: str) -> None:
    t0 = time.perf_counter()
    parser = AddressParser(gaz, config)
    build_s = time.perf_counter() - t0
    per_style: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    t_all, cpu_all = time.perf_counter(), time.process_time()
    for style, text in answers:
        t = time.perf_counter()
        parser.parse(text)
        per_style[style] += time.perf_counter() - t
        counts[style] += 1
    total, cpu = time.perf_counter() - t_all, time.process_time() - cpu_all
    print(f"{label}: {len(gaz.street_names)} street names, {len(gaz.districts)} districts; tables "
          f"built in {build_s * 1000:.0f} ms")
    print(f"  {len(answers) / total:,.0f} answers/s overall ({len(answers)} answers, {total:.2f} s); "
          f"{len(answers) / cpu:,.0f}/s of CPU time (the figure to read on a shared machine)")
    print("  " + ", ".join(f"{s} {counts[s] / per_style[s]:,.0f}/s" for s in STYLES))


def main(argv: list[str] | None = None) -> None:
    a = parse_config(QAParseBenchConfig, argv, description=__doc__.split("\n")[0])
    if a.gazetteer:
        gaz = Gazetteer.load(a.gazetteer)
    else:
        from data_gen.osm import embedded_extract_path
        gaz = Gazetteer.from_osm(embedded_extract_path())
    answers = make_answers(gaz, a.answers, a.seed)
    bench(gaz, answers, ParserConfig(), f"{gaz.city} (fuzzy on)")
    bench(gaz, answers, ParserConfig(fuzzy_cutoff=101), f"{gaz.city} (fuzzy off)")
    if a.extra_streets:
        big = with_extra(gaz, a.extra_streets, a.seed)
        bench(big, make_answers(big, a.answers, a.seed), ParserConfig(),
              f"{gaz.city} + {a.extra_streets} synthetic streets (fuzzy on)")


if __name__ == "__main__":
    main()
