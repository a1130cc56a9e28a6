"""The world gazetteer, the city's place model and the OSM aliases: what "somewhere else" means,
and other official names scoring as their street."""

from __future__ import annotations

import json

import pytest

from eval.address_parser import AddressParser
from eval.gazetteer import Gazetteer
from eval.normalize import compact
from eval.place_model import PlaceModel
from eval.places import world_places
from ial_core.errors import DataError


@pytest.fixture(scope="module")
def helsinki_osm():
    from data_gen.osm import embedded_extract_path, read_city
    return read_city(embedded_extract_path())


def test_world_gazetteer_reads_cities_regions_and_countries():
    w = world_places()
    assert {p.country for p in w.get("lahti")} == {"FI"}
    assert any(p.kind == "region" and p.region == "US-TX" for p in w.get("texas"))
    assert any(p.kind == "country" and p.country == "FI" for p in w.get("suomi"))
    assert {p.kind for p in w.get(compact("New York"))} == {"city", "region"}
    # abbreviations live apart, by their capitals: folded, "ST" would be "street", "IN" "in"
    assert not w.get("street") and not w.get("in")
    assert {p.region for p in w.codes["PA"] if p.kind == "region"} == {"US-PA"}
    assert w.codes["FIN"][0].country == "FI"


def test_place_model_from_the_gazetteer_or_geonames():
    w = world_places()
    pitt = PlaceModel.build("Pittsburgh", [], None, None, w)          # inferred: one big Pittsburgh
    assert (pitt.country, pitt.region_codes) == ("US", {"US-PA"})
    assert PlaceModel.build("Springfield", [], None, None, w).country is None   # several: unknown
    given = PlaceModel.build("Helsinki", ["Helsingfors"], "FI-18", "Finland", w)
    assert (given.country, given.region_codes) == ("FI", {"FI-18"})
    texas, penn = w.get("texas"), w.get("pennsylvania")
    assert pitt.contradicts("texas", texas) and not pitt.contradicts("pennsylvania", penn)
    assert not pitt.contradicts("pittsburgh", w.get("pittsburgh"))
    assert given.contradicts("texas", texas) and not given.contradicts("finland", w.get("finland"))
    unknown = PlaceModel.build("Springfield", [], None, None, w)
    assert not unknown.contradicts("texas", texas)        # nothing to contradict


def test_osm_aliases_region_and_country(helsinki_osm):
    c = helsinki_osm
    assert (c.region, c.region_code, c.country, c.city_aliases) == ("Uusimaa", "FI-18", "FI",
                                                                    ["Helsingfors"])
    assert "Alexandersgatan" in c.street_aliases["Aleksanterinkatu"]
    assert c.street_aliases["Mannerheimintie"] == ["Heikinkatu", "Mannerheimvägen"]
    assert c.district_aliases["Kluuvi"] == ["Gloet"]
    named_sv = sum(any(a.endswith(("gatan", "vägen", "gata", "torget", "kajen", "gränden"))
                       for a in c.street_aliases.get(s.name, ())) for s in c.streets)
    assert named_sv >= 0.8 * len(c.streets)
    every = [a for v in c.street_aliases.values() for a in v]
    # old_name=Hakasalmenkatu is on two streets, old_name=Hallituskatu is a street of its own
    assert "Hakasalmenkatu" not in every and "Hallituskatu" not in every
    assert len(every) == len(set(every))


def test_aliases_score_as_their_street(helsinki_osm):
    gaz = Gazetteer.from_osm(helsinki_osm.source)
    parser = AddressParser(gaz)
    p = parser.parse("Alexandersgatan, Gloet, Helsingfors")
    assert (p.kind, p.street, p.district, p.city) == ("address", "Aleksanterinkatu", "Kluuvi",
                                                      "Helsinki")
    assert parser.parse("Norra Esplanaden 3").street == "Pohjoisesplanadi"


def test_gazetteer_json_region_country_and_ambiguous_aliases(tmp_path):
    path = tmp_path / "city.json"
    path.write_text(json.dumps({
        "city": "Pittsburgh", "region": "PA", "country": "United States",
        "streets": [{"name": "Grant Street", "aliases": ["Grant", "Old Road"]},
                    {"name": "Fifth Avenue", "aliases": ["Old Road", "Grant Street"]}],
        "districts": ["Downtown"]}))
    gaz = Gazetteer.load(path)
    assert (gaz.region, gaz.country) == ("PA", "United States")
    assert gaz.street_aliases == {"Grant": "Grant Street"}      # shared / own-name aliases dropped
    parser = AddressParser(gaz)
    assert parser.place.region_codes == {"US-PA"} and parser.place.country == "US"
    assert parser.parse("Old Road, Downtown").street is None
    again = tmp_path / "again.json"
    again.write_text(json.dumps(gaz.to_json()))
    assert (Gazetteer.load(again).region, Gazetteer.load(again).country) == ("PA", "United States")
    for bad, words in (({"region": 3}, "region"), ({"city_aliases": "Pgh"}, "city_aliases"),
                       ({"streets": [{"name": "A", "aliases": "B"}]}, "aliases")):
        doc = {"city": "X", "streets": ["A"], "districts": ["D"], **bad}
        path.write_text(json.dumps(doc))
        with pytest.raises(DataError, match=words):
            Gazetteer.load(path)


@pytest.fixture(scope="module")
def pitt():
    return AddressParser(Gazetteer(
        city="Pittsburgh", streets=["Grant Street", "Fifth Avenue", "Forbes Avenue", "Main Street",
                                    "Wood Street",
                                    "Smithfield Street", "Craig Street", "Market Square"],
        districts=["Downtown", "Oakland"], region="Pennsylvania", country="US"))


@pytest.mark.parametrize("answer, kind, other", [
    ("New York's Fifth Avenue", "other_city", "New York's"),
    ("this looks like fifth avenue in new york city.", "other_city", "new york city"),
    ("Grant Street, Texas", "other_city", "Texas"),
    ("Forbes Avenue in Oakland, California", "other_city", "California"),
    ("Forbes Avenue in Oakland, CA", "other_city", "CA"),
    ("Forbes Avenue in Oakland, Pittsburgh, PA", "address", None),
    ("Grant Street, Pittsburgh, Pennsylvania, USA", "address", None),
    ("Main Street, Springfield", "other_city", "Springfield"),
    ('{"street": "Grant Street", "state": "Texas"}', "other_city", "Texas"),
    ('{"street": "Grant Street"} (this is in Boston)', "other_city", "Boston"),
    ("Fifth Avenue, NYC", "other_city", "NYC"),
    ("Grant Street in the USA.", "address", None),
    ("I CAN'T be sure, but Grant Street", "address", None),       # "CAN" is no Canada here
    ("Grant Street near Boston Street", "address", None),        # a street, not the city
    ("The Rose Fitzgerald Kennedy Greenway", "vague", None),     # part of a name, not the city
    ("Nice view of Grant Street", "address", None),              # a word, not the city
    ("Forbes Avenue near Carnegie Mellon University", "address", None),   # part of a longer name
    ("Grant Street. Similar streets exist in Chicago.", "address", None),   # a comparison
    ("Wood Street; the architecture is typical of London.", "address", None),
    ("It resembles Fifth Avenue in New York.", "other_city", "New York"),   # the street compared too
])
def test_other_places(pitt, answer, kind, other):
    p = pitt.parse(answer)
    assert (p.kind, p.other_place) == (kind, other)
    if kind == "other_city":
        assert p.street is None and p.district is None


@pytest.mark.parametrize("answer, street", [
    ("It is not Grant Street.", None),
    ("Not Grant Street but Fifth Avenue", "Fifth Avenue"),
    ("Fifth Avenue rather than Grant Street", "Fifth Avenue"),
    ("Not far from Grant Street", "Grant Street"),
    ("I'm not sure, but Grant Street", "Grant Street"),
    ("Grant Street? No, Smithfield Street.", "Smithfield Street"),
    ("The sign reads Craig. Street view of houses.", None),        # no match across a sentence end
    ("Grant St. Downtown", "Grant Street"),                        # an abbreviation's dot
    ("A main street with a market square.", None),                 # common phrases
    ("Main Street, Downtown", "Main Street"),
    ("main street, downtown", "Main Street"),                      # no case at all: a name
    ("Main street vibes everywhere.", None),
])
def test_negation_sentences_and_common_phrases(pitt, answer, street):
    assert pitt.parse(answer).street == street


def test_json_read_whole(pitt):
    p = pitt.parse('Sure! {"location": {"address": {"road": "Grant St", "suburb": "Downtown"}, '
                   '"city": "Pittsburgh"}, "confidence": 0.7}')
    assert (p.street, p.district, p.city) == ("Grant Street", "Downtown", "Pittsburgh")
    p = pitt.parse('{"street": ["Forbes Avenue", "Fifth Avenue"], "neighborhood": "Oakland"}')
    assert (p.street, p.guesses) == ("Forbes Avenue", ["Forbes Avenue", "Fifth Avenue"])
    p = pitt.parse('{"guesses": [{"street": "Broadway"}, {"street": "Grant Street"}]}')
    assert (p.street, p.guesses) == (None, ["Grant Street"])
    p = pitt.parse('{"street": "Fifth Avenue", "country": "Canada"}')
    assert p.kind == "other_city"
    p = pitt.parse('{"city": "unknown", "street": "Grant Street"}')
    assert (p.kind, p.street) == ("address", "Grant Street")
