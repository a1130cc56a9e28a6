"""The parser never crashes and keeps its contract on any input: hypothesis properties and a seeded
fuzz run over answer-like garbage (names, connectors, numbers, list markers, JSON fragments)."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eval.address_parser import KINDS, AddressParser
from eval.gazetteer import Gazetteer
from helpers.qa import PITTSBURGH

GAZ = Gazetteer(city=PITTSBURGH["city"], streets=PITTSBURGH["streets"] + ["Aleksanterinkatu",
                                                                          "Yrjö-Koskisen katu"],
                districts=PITTSBURGH["districts"] + ["Kluuvi"], city_aliases=["Pgh"])
PARSER = AddressParser(GAZ)
PIECES = GAZ.streets + GAZ.districts + [
    "Pittsburgh", "Minneapolis, Minnesota", "PA", "USA", "&", "and", "or", "near", "corner of",
    "at", "400", "5th", "St.", "Ave", "katu", "I cannot determine", "1.", "2)", "-", "\n", ",",
    ".", "{", "}", "[", "]", '"street":', '"district":', ":", "```json", "```", "é", "ß", "’s",
    "\u0301", "\x00", "🙂", "的", "  ", "(2)", "/", "@", "downtown", "DOWNTOWN", "null", "0" * 30,
]
settings.register_profile("qa", max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("qa")


def _check(answer) -> None:
    p = PARSER.parse(answer)
    assert p.kind in KINDS and p.kind != "error", (answer, p)
    assert p.street is None or p.street in GAZ.street_names
    assert p.cross_street is None or p.cross_street in GAZ.street_names
    assert p.district is None or p.district in GAZ.districts
    if p.kind in ("empty", "refusal", "vague", "other_city"):
        assert p.street is None and p.district is None
    json.dumps(p.as_dict())                          # always serialisable


@given(st.text(max_size=400))
def test_any_unicode_text(answer):
    _check(answer)


@given(st.lists(st.sampled_from(PIECES), max_size=40), st.sampled_from([" ", "", ", ", "\n"]))
def test_answer_like_token_soup(pieces, sep):
    _check(sep.join(pieces))


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) |
                    st.text(max_size=30) | st.sampled_from(PIECES),
                    lambda inner: st.lists(inner, max_size=4) |
                    st.dictionaries(st.sampled_from(["street", "district", "city", "address",
                                                     "cross_street", "number", "x"]) | st.text(max_size=8),
                                    inner, max_size=4), max_leaves=12))
def test_any_json_value(value):
    _check(json.dumps(value))
    _check("Answer: " + json.dumps(value) + " (I think)")


@given(st.sampled_from(GAZ.streets), st.sampled_from(GAZ.districts),
       st.sampled_from(["The photo was taken on {s}, {d}.", "{s}, {d}, Pittsburgh, PA",
                        "Probably {s} ({d})", "I think it's {s} in {d}", '{{"street": "{s}", '
                        '"district": "{d}"}}']),
       st.sampled_from([str, str.upper, str.lower]))
def test_a_named_street_and_district_are_found(street, district, template, case):
    p = PARSER.parse(case(template.format(s=street, d=district)))
    assert p.street == street
    assert p.district == district


def test_parsing_is_deterministic():
    answer = "1. Grant St & 5th Ave, Downtown\n2. Forbes Ave, Oakland"
    assert PARSER.parse(answer) == PARSER.parse(answer)


@pytest.mark.slow
def test_fuzz_run():
    """10k seeded random answers built from names, glue and noise: no crash, contract holds."""
    rng = random.Random(1234)
    alphabet = "abcdefghijklmnopqrstuvwxyzÄÖäöéß0123456789 ,.;:!?&/@-()[]{}\"'\n\t\\#*•"
    for _ in range(10_000):
        parts = []
        for _ in range(rng.randint(0, 12)):
            r = rng.random()
            if r < 0.5:
                parts.append(rng.choice(PIECES))
            elif r < 0.8:
                parts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))))
            else:
                parts.append(chr(rng.randint(0, 0x2FFFF)))
        _check(rng.choice([" ", "", "\n"]).join(parts))
