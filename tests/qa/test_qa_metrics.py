"""Metric definitions, metres to the named (sub-)street, bootstrap intervals and the reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely

from eval.address_parser import AddressParser
from eval.gazetteer import Gazetteer, SubStreet, cross_street_names
from eval.metrics import bootstrap_ci, per_district, score_items, summarize
from eval.references import Reference


@pytest.fixture(scope="module")
def grid():
    """Two parallel east-west streets 100 m apart, each cut in two sub-streets by a north-south
    street at x=100; district West for x<100, East beyond."""
    def sub(street, cross, district, x0, x1, y):
        return SubStreet(street, cross_street_names(cross), district, f"{street} & {cross}, {district}",
                         shapely.LineString([(x0, y), (x1, y)]))
    subs = [sub("Alpha Street", "Cross Street", "West", 0, 100, 0),
            sub("Alpha Street", "Far Street/Other Street", "East", 100, 200, 0),
            sub("Beta Street", "Cross Street", "West", 0, 100, 100),
            sub("Beta Street", "Far Street", "East", 100, 200, 100),
            SubStreet("Cross Street", (), "West", "Cross Street, West",
                      shapely.LineString([(100, -50), (100, 150)]))]
    gaz = Gazetteer(city="Gridtown", streets=["Alpha Street", "Beta Street", "Cross Street"],
                    districts=["West", "East"], sub_streets=subs, crs="EPSG:32635")
    gaz.street_geometry = gaz._union_by_street()
    return gaz


def _ref(i, street, cross, district, xy):
    return Reference(id=str(i), street=street, district=district, city="Gridtown",
                     cross_street=cross, utm=xy)


def test_rates_count_every_item_and_errors_are_wrong(grid):
    parser = AddressParser(grid)
    refs = [_ref(0, "Alpha Street", "Cross Street", "West", (50, 3)),
            _ref(1, "Alpha Street", "Far Street/Other Street", "East", (150, 0)),
            _ref(2, "Beta Street", "Far Street", "East", (150, 100)),
            _ref(3, "Cross Street", "", "West", (100, 50)),
            _ref(4, "Beta Street", "Cross Street", "West", (20, 100))]
    answers = ["Alpha Street & Cross Street, West",          # all right
               "Alpha Street near Other Street, West",        # street right, cross right, district wrong
               "I cannot determine this.",                    # refusal
               "Cross Street, West",                          # no cross street exists: sub-street right
               None]                                          # backend error
    parsed = [parser.parse(a) if a is not None else None for a in answers]
    s = score_items(refs, parsed, grid)
    assert s.street.tolist() == [True, True, False, True, False]
    assert s.district.tolist() == [True, False, False, True, False]
    assert s.address.tolist() == [True, False, False, True, False]
    assert s.sub_street.tolist() == [True, True, False, True, False]
    assert s.refusal.tolist() == [False, False, True, False, False]
    assert s.error.tolist() == [False, False, False, False, True]
    m = summarize(s, bootstrap=200, seed=0)
    assert m["n"] == 5 and m["street_acc"] == pytest.approx(0.6) and m["address_acc"] == 0.4
    assert m["refusal_rate"] == 0.2 and m["error_rate"] == 0.2 and m["no_street_rate"] == 0.4
    assert m["cross_street_given_rate"] == 0.4 and m["sub_street_acc_when_given"] == 1.0
    for k, (lo, hi) in m["ci95"].items():
        assert 0 <= lo <= hi <= 1, k
    assert m["ci95"]["street_acc"][0] <= m["street_acc"] <= m["ci95"]["street_acc"][1]
    json.dumps(m)


def test_distances_use_the_named_sub_street_else_the_street(grid):
    parser = AddressParser(grid)
    refs = [_ref(0, "Alpha Street", "Cross Street", "West", (50, 10)),
            _ref(1, "Alpha Street", "Cross Street", "West", (50, 10)),
            _ref(2, "Alpha Street", "Cross Street", "West", (50, 10)),
            _ref(3, "Alpha Street", "Cross Street", "West", (50, 10)),
            Reference("4", "Alpha Street", "West", "Gridtown")]          # no position
    answers = ["Beta Street", "Alpha Street & Far Street", "Alpha Street", "no idea", "Alpha Street"]
    s = score_items(refs, [parser.parse(a) for a in answers], grid)
    assert s.distance_m[0] == pytest.approx(90)           # to Beta Street (y=100)
    assert s.distance_m[1] == pytest.approx(np.hypot(50, 10))   # to the eastern Alpha section
    assert s.distance_m[2] == pytest.approx(10)           # the whole of Alpha Street
    assert np.isnan(s.distance_m[3]) and np.isnan(s.distance_m[4])
    m = summarize(s, bootstrap=0)
    assert m["n_positioned"] == 4
    assert m["within_25m"] == 0.25 and m["within_100m"] == 0.75 and m["within_250m"] == 0.75
    assert m["median_distance_m"] == pytest.approx(np.hypot(50, 10))
    assert m["ci95"] == {}


def test_no_geometry_means_no_distance_metrics():
    gaz = Gazetteer(city="X", streets=["Alpha Street"], districts=["West"])
    refs = [_ref(0, "Alpha Street", "", "West", (0, 0))]
    m = summarize(score_items(refs, [AddressParser(gaz).parse("Alpha Street")], gaz), bootstrap=50)
    assert m["street_acc"] == 1.0 and m["within_25m"] is None and m["median_distance_m"] is None


def test_bootstrap_is_seeded_vectorised_and_matches_a_plain_loop():
    rng = np.random.default_rng(5)
    values = rng.random((300, 3)) < np.array([0.2, 0.5, 0.9])
    values = values.astype(float)
    values[::7, 2] = np.nan                                # a column with inapplicable items
    ci = bootstrap_ci(values, ["a", "b", "c"], 500, seed=11)
    assert ci == bootstrap_ci(values, ["a", "b", "c"], 500, seed=11)
    assert ci != bootstrap_ci(values, ["a", "b", "c"], 500, seed=12)
    # the same resamples, one at a time
    draws = np.random.default_rng(11).multinomial(300, np.full(300, 1 / 300), size=500)
    loop = []
    for counts in draws:
        idx = np.repeat(np.arange(300), counts)
        loop.append([np.nanmean(values[idx, j]) for j in range(3)])
    loop = np.array(loop)
    for j, name in enumerate("abc"):
        assert ci[name] == pytest.approx([np.percentile(loop[:, j], 2.5),
                                          np.percentile(loop[:, j], 97.5)])
        assert ci[name][0] < np.nanmean(values[:, j]) < ci[name][1]


def test_per_district_breakdown(grid):
    parser = AddressParser(grid)
    refs = [_ref(0, "Alpha Street", "", "West", None), _ref(1, "Beta Street", "", "West", None),
            _ref(2, "Beta Street", "", "East", None)]
    s = score_items(refs, [parser.parse(a) for a in ("Alpha Street, West", "Alpha Street",
                                                     "Beta Street, East")], grid)
    d = per_district(refs, s)
    assert d["West"] == {"n": 2, "street_acc": 0.5, "district_acc": 0.5, "address_acc": 0.5,
                         "refusal_rate": 0.0}
    assert d["East"]["address_acc"] == 1.0


def test_any_guess_credits_a_later_guess_only_in_its_own_metric(grid):
    """``street_acc`` scores the first guess; ``street_acc_any_guess`` any guess (lists, "or")."""
    parser = AddressParser(grid)
    refs = [_ref(i, "Beta Street", "Far Street", "East", (150, 100)) for i in range(4)]
    answers = ["1. Alpha Street, East\n2. Beta Street, East",     # second guess right
               "Alpha Street or Beta Street, East",               # alternative right
               "Beta Street, East",                               # first guess right
               "Alpha Street, East"]                              # wrong, no other guess
    s = score_items(refs, [parser.parse(a) for a in answers], grid)
    assert s.street.tolist() == [False, False, True, False]
    assert s.street_any_guess.tolist() == [True, True, True, False]
    m = summarize(s, bootstrap=0)
    assert (m["street_acc"], m["street_acc_any_guess"]) == (0.25, 0.75)
