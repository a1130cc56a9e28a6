"""The OSM reader on the real Helsinki extract, and its errors on bad extracts."""

from __future__ import annotations

import pytest

from data_gen.osm import read_city
from ial_core.errors import DataError

OSM_XML = """<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6" generator="test">
 <node id="1" lat="60.1700" lon="24.9400" version="1"/>
 <node id="2" lat="60.1700" lon="24.9420" version="1"/>
 <node id="3" lat="60.1710" lon="24.9410" version="1"/>
 <way id="10" version="1"><nd ref="1"/><nd ref="2"/>{tags}</way>
</osm>
"""


def test_reads_real_streets_in_metres(helsinki):
    assert helsinki.city == "Helsinki"
    assert helsinki.projection.crs == "EPSG:32635"        # UTM 35N for central Helsinki
    names = {s.name for s in helsinki.streets}
    assert {"Aleksanterinkatu", "Mannerheimintie", "Unioninkatu", "Fabianinkatu"} <= names
    assert 50 <= len(helsinki.streets) <= 100
    total_km = sum(s.length_m for s in helsinki.streets) / 1000
    assert 18 < total_km < 30


def test_pedestrian_areas_and_parallel_carriageways_do_not_double_streets(helsinki):
    # Aleksanterinkatu is ~700 m long in the extract; its pedestrian *area* outlines (closed rings
    # of 1.0-1.1 km) once made it a loop of twice that length.
    street = helsinki.street("Aleksanterinkatu")
    assert len(street.parts) == 1
    assert 600 < street.length_m < 800
    for s in helsinki.streets:
        for part in s.parts:
            assert not part.is_closed or part.length < 200, s.name


def test_intersections_are_shared_nodes_of_two_named_streets(helsinki):
    pairs = {frozenset(i.streets) for i in helsinki.intersections}
    assert frozenset({"Aleksanterinkatu", "Fabianinkatu"}) in pairs
    assert frozenset({"Aleksanterinkatu", "Unioninkatu"}) in pairs
    for node in helsinki.intersections:
        assert len(node.streets) >= 2


def test_districts_from_clipped_boundaries(helsinki):
    names = {d.name for d in helsinki.districts}
    assert names == {"Kaartinkaupunki", "Kallio", "Kamppi", "Kluuvi", "Kruununhaka", "Punavuori"}
    assert {d.source for d in helsinki.districts} == {"partial-boundary"}


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_city(tmp_path / "nope.osm.pbf")


def test_corrupt_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.osm.pbf"
    bad.write_bytes(b"\x00\x01 this is not a pbf" * 10)
    with pytest.raises(DataError, match="bad.osm.pbf"):
        read_city(bad)


def test_extract_without_named_streets_is_a_clear_error(tmp_path):
    path = tmp_path / "unnamed.osm"
    path.write_text(OSM_XML.format(tags='<tag k="highway" v="residential"/>'))
    with pytest.raises(DataError, match="no named streets"):
        read_city(path)


def test_small_xml_extract_reads(tmp_path):
    path = tmp_path / "one.osm"
    path.write_text(OSM_XML.format(tags='<tag k="highway" v="residential"/><tag k="name" v="Testikatu"/>'))
    city = read_city(path, city="Testila")
    assert [s.name for s in city.streets] == ["Testikatu"]
    assert city.city == "Testila"
    # 0.002 degrees of longitude at 60 N is ~111 m, not the ~222 m of a degree of latitude
    assert city.streets[0].length_m == pytest.approx(111.4, abs=1.0)


def test_alias_tags_are_read_split_and_kept_only_when_unambiguous(tmp_path):
    xml = """<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6" generator="test">
 <node id="1" lat="60.1700" lon="24.9400" version="1"/>
 <node id="2" lat="60.1700" lon="24.9420" version="1"/>
 <node id="3" lat="60.1710" lon="24.9410" version="1"/>
 <node id="4" lat="60.1720" lon="24.9410" version="1"/>
 <node id="9" lat="60.1705" lon="24.9405" version="1"><tag k="place" v="city"/>
  <tag k="name" v="Testila"/><tag k="name:sv" v="Testby"/><tag k="is_in:country_code" v="FI"/>
  <tag k="is_in:iso_3166_2" v="FI-18"/></node>
 <way id="10" version="1"><nd ref="1"/><nd ref="2"/><tag k="highway" v="residential"/>
  <tag k="name" v="Testikatu"/><tag k="name:sv" v="Testgatan"/>
  <tag k="alt_name" v="Vanha tie;Kolmas nimi"/><tag k="old_name" v="Yhteinen"/></way>
 <way id="11" version="1"><nd ref="2"/><nd ref="3"/><tag k="highway" v="residential"/>
  <tag k="name" v="Toinenkatu"/><tag k="old_name" v="Yhteinen"/>
  <tag k="short_name" v="Testikatu"/></way>
 <way id="12" version="1"><nd ref="3"/><nd ref="4"/><tag k="highway" v="service"/>
  <tag k="name" v="Testikatu"/><tag k="official_name" v="Testikatu virallinen"/></way>
</osm>
"""
    path = tmp_path / "aliases.osm"
    path.write_text(xml)
    city = read_city(path)
    assert city.city == "Testila" and city.city_aliases == ["Testby"]
    assert (city.country, city.region_code) == ("FI", "FI-18")
    # ";" separates names; a name on two streets ("Yhteinen") or another street's own name
    # ("Testikatu" as Toinenkatu's short_name) says nothing; every way of a street counts
    assert city.street_aliases == {"Testikatu": ["Kolmas nimi", "Testgatan", "Testikatu virallinen",
                                                 "Vanha tie"]}
    assert city.place_names()["street_aliases"] is city.street_aliases
