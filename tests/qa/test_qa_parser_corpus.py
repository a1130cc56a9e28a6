"""Street precision and recall of the answer parser on a labelled corpus of realistic answers
(``tests/helpers/qa_corpus.py``: 300+ answers, a third of them traps) for a Pittsburgh gazetteer and the
embedded Helsinki city. Precision: of the answers given a street, how many got the right one;
recall: of the answers that claim a street here, how many got it. Both are printed (``pytest -s``).
"""

from __future__ import annotations

import json

import pytest

from eval.address_parser import AddressParser
from eval.gazetteer import Gazetteer
from helpers.qa_corpus import HELSINKI, PITTSBURGH, PITTSBURGH_GAZETTEER

MIN_PRECISION, MIN_RECALL = 0.995, 0.97


@pytest.fixture(scope="module")
def parsers(tmp_path_factory):
    from data_gen.osm import embedded_extract_path

    path = tmp_path_factory.mktemp("corpus") / "pittsburgh.json"
    path.write_text(json.dumps(PITTSBURGH_GAZETTEER), encoding="utf-8")
    return {"pittsburgh": AddressParser(Gazetteer.load(path)),
            "helsinki": AddressParser(Gazetteer.from_osm(embedded_extract_path()))}


def _outcomes(parsers):
    rows = []
    for city, corpus in (("pittsburgh", PITTSBURGH), ("helsinki", HELSINKI)):
        for answer, street, cross, district, kind, trap in corpus:
            rows.append((city, answer, (street, cross, district, kind), trap,
                         parsers[city].parse(answer)))
    return rows


def street_precision_recall(rows) -> tuple[float, float, list, list]:
    given = [r for r in rows if r[4].street is not None]
    wrong = [r for r in given if r[4].street != r[2][0]]
    claims = [r for r in rows if r[2][0] is not None]
    missed = [r for r in claims if r[4].street != r[2][0]]
    return (1 - len(wrong) / len(given), 1 - len(missed) / len(claims), wrong, missed)


def test_corpus_is_big_and_a_third_traps():
    entries = PITTSBURGH + HELSINKI
    assert len(entries) >= 300
    assert sum(e[5] for e in entries) >= len(entries) / 3
    assert len({e[0] for e in entries}) == len(entries), "duplicate answers"


def test_street_precision_and_recall_on_the_corpus(parsers):
    rows = _outcomes(parsers)
    precision, recall, wrong, missed = street_precision_recall(rows)
    traps = [r for r in rows if r[3]]
    trap_p, trap_r, _, _ = street_precision_recall(traps)
    print(f"\nQA parser corpus: {len(rows)} answers ({len(traps)} traps); street precision "
          f"{precision:.2%}, recall {recall:.2%}; on traps: precision {trap_p:.2%}, "
          f"recall {trap_r:.2%}")
    for city, answer, truth, _, p in wrong:
        print(f"  WRONG  [{city}] {answer!r}: {p.street!r}, expected {truth[0]!r}")
    for city, answer, truth, _, p in missed:
        print(f"  MISSED [{city}] {answer!r}: {p.street!r} ({p.kind}), expected {truth[0]!r}")
    assert precision >= MIN_PRECISION and recall >= MIN_RECALL


def test_kind_district_and_cross_street_on_the_corpus(parsers):
    """The other labels: the answer kind, the district and the cross street."""
    rows = _outcomes(parsers)
    fields = {"kind": [], "district": [], "cross_street": []}
    for city, answer, (street, cross, district, kind), _, p in rows:
        fields["kind"].append((p.kind == kind, city, answer, p.kind, kind))
        fields["district"].append((p.district == district, city, answer, p.district, district))
        if street is not None and p.street == street:
            fields["cross_street"].append((p.cross_street == cross, city, answer, p.cross_street,
                                           cross))
    rates = {k: sum(ok for ok, *_ in v) / len(v) for k, v in fields.items()}
    print("\nQA parser corpus: " + ", ".join(f"{k} {v:.1%}" for k, v in rates.items()))
    for k, v in fields.items():
        for ok, city, answer, got, want in v:
            if not ok:
                print(f"  {k}: [{city}] {answer!r}: {got!r}, expected {want!r}")
    assert rates["kind"] >= 0.97 and rates["district"] >= 0.97 and rates["cross_street"] >= 0.97


def test_held_out_answers(parsers):
    """Answers written after the rules were settled: the same targets must hold on them."""
    from helpers.qa_corpus import HELD_OUT_HELSINKI, HELD_OUT_PITTSBURGH
    rows = [("pittsburgh", a, (s, c, d, k), t, parsers["pittsburgh"].parse(a))
            for a, s, c, d, k, t in HELD_OUT_PITTSBURGH]
    rows += [("helsinki", a, (s, c, d, k), t, parsers["helsinki"].parse(a))
             for a, s, c, d, k, t in HELD_OUT_HELSINKI]
    precision, recall, wrong, missed = street_precision_recall(rows)
    print(f"\nQA parser held-out answers: {len(rows)}; street precision {precision:.2%}, "
          f"recall {recall:.2%}")
    for city, answer, truth, _, p in wrong + missed:
        print(f"  [{city}] {answer!r}: {p.street!r} ({p.kind}), expected {truth[0]!r}")
    assert precision >= MIN_PRECISION and recall >= MIN_RECALL
