"""Trivial baselines scored on the same items, so every table shows what "no model" reaches.

- ``majority``: always the most frequent street and the most frequent district of the training split
  (of the scored items themselves when there is no dataset, which flatters it; the report says so);
- ``random``: a uniformly random candidate sub-street (a random street and district when the
  gazetteer lists no sub-streets), seeded per item id so that subsets and reruns agree.

They answer in words, like a model, and go through the same parser.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np

from eval.backends.base import Backend, Item, Result
from eval.gazetteer import Gazetteer
from eval.references import References


class MajorityBaseline(Backend):
    kind = "majority"
    cacheable = False

    def __init__(self, street: str, district: str, city: str, fitted_on: str):
        self.answer = f"{street}, {district}, {city}"
        self.fitted_on = fitted_on

    def fingerprint(self) -> dict:
        return {"kind": self.kind, "answer": self.answer, "fitted_on": self.fitted_on}

    def generate(self, items: Sequence[Item]) -> Iterator[Result]:
        for item in items:
            yield Result(item.id, answer=self.answer)


class RandomBaseline(Backend):
    kind = "random"
    cacheable = False

    def __init__(self, choices: list[tuple[str, str, str]], city: str, seed: int):
        """``choices``: (street, cross street or "", district) triples drawn uniformly."""
        self.choices, self.city, self.seed = choices, city, seed

    def fingerprint(self) -> dict:
        return {"kind": self.kind, "seed": self.seed, "choices": len(self.choices)}

    def generate(self, items: Sequence[Item]) -> Iterator[Result]:
        for item in items:
            rng = np.random.default_rng([self.seed, zlib.crc32(item.id.encode("utf-8"))])
            street, cross, district = self.choices[int(rng.integers(len(self.choices)))]
            place = f"{street} & {cross}" if cross else street
            yield Result(item.id, answer=f"{place}, {district}, {self.city}")


def baselines(refs: References, gazetteer: Gazetteer, seed: int) -> dict[str, Backend]:
    if refs.prior_streets:
        streets, districts, fitted = refs.prior_streets, refs.prior_districts, "training split"
    else:
        streets = Counter(r.street for r in refs.items)
        districts = Counter(r.district for r in refs.items)
        fitted = "the scored items (no training split)"
    majority = MajorityBaseline(_most_common(streets), _most_common(districts), gazetteer.city, fitted)
    if gazetteer.sub_streets:
        choices = [(s.street, "/".join(s.cross_streets), s.district) for s in gazetteer.sub_streets]
    else:
        rng = np.random.default_rng(seed)
        choices = [(s, "", gazetteer.districts[int(rng.integers(len(gazetteer.districts)))])
                   for s in gazetteer.streets]
    return {"majority": majority, "random": RandomBaseline(choices, gazetteer.city, seed)}


def _most_common(counts: Counter) -> str:
    """The most frequent key; ties go to the alphabetically first, so the choice is reproducible."""
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
