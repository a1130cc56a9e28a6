"""The answer parser on realistic answer styles: the answers general models gave in the AddressCLIP
authors' poster (Pittsburgh photos) against a small Pittsburgh gazetteer, LLaVA-IAL's own style,
and the embedded Helsinki city's names."""

from __future__ import annotations

import pytest

from eval.address_parser import AddressParser, ParserConfig
from eval.gazetteer import Gazetteer, cross_street_names
from eval.normalize import compact, normalize, ordinal_words
from helpers.qa import PITTSBURGH


@pytest.fixture(scope="module")
def pitt(pittsburgh_json):
    return AddressParser(Gazetteer.load(pittsburgh_json))


@pytest.fixture(scope="module")
def helsinki_gazetteer():
    names = ["Aleksanterinkatu", "Mannerheimintie", "Unioninkatu", "Yrjö-Koskisen katu",
             "Pohjoisesplanadi", "Töölönlahdenkatu", "Kaisaniemenkatu", "Kaisaniemenranta",
             "Pieni Roobertinkatu", "Fredrikinkatu"]
    return Gazetteer(city="Helsinki", streets=names,
                     districts=["Kluuvi", "Kamppi", "Kallio", "Punavuori", "Kaartinkaupunki"])


@pytest.fixture(scope="module")
def hel(helsinki_gazetteer):
    return AddressParser(helsinki_gazetteer)


# ---- the answers printed in the AddressCLIP authors' poster ----------------------------------------

def test_llava_ial_answers_give_street_district_and_city(pitt):
    p = pitt.parse("The address of this photo might be Grant Street, Downtown, Pittsburgh, PA, USA.")
    assert (p.kind, p.street, p.district, p.city, p.city_in_gazetteer) == (
        "address", "Grant Street", "Downtown", "Pittsburgh", True)
    p = pitt.parse("The address of this photo might be Fifth Avenue, Downtown, Pittsburgh, PA, USA.")
    assert (p.street, p.district) == ("Fifth Avenue", "Downtown")


POSTER_AS_PRINTED = [      # the poster's answer boxes, line breaks as printed
    ("The address of this photo might be Grant\nStreet, Downtown, Pittsburgh, PA, USA.",
     ("address", "Grant Street", "Downtown", "Pittsburgh")),
    ("The address of this photo might be Fifth Av-\nenue, Downtown, Pittsburgh, PA, USA.",
     ("address", "Fifth Avenue", "Downtown", "Pittsburgh")),
    ("This photo was taken in Peavey Plaza in\nMinneapolis, Minnesota, USA, on the corner\n"
     "of Nicollet Mall and 11th Street.", ("other_city", None, None, "Minneapolis")),
    ("This photo was taken on the Rose Fitzger-\nald Kennedy Greenway in Boston, Mas-\n"
     "sachusetts.", ("other_city", None, None, "Boston")),
    ("This photo appears to have been taken on a\ncity street, possibly in a downtown area or\n"
     "commercial district.", ("vague", None, None, None)),
    ("This photo was taken at 400 Fifth Avenue in\nPittsburgh, Pennsylvania.",
     ("address", "Fifth Avenue", None, "Pittsburgh")),
    ("The photo was taken on Fifth Avenue in\nPittsburgh, Pennsylvania.",
     ("address", "Fifth Avenue", None, "Pittsburgh")),
    ("This photo appears to have been taken on\nFifth Avenue in Pittsburgh, Pennsylvania,\n"
     "USA. The street sign in the image confirms\nthis location.",
     ("address", "Fifth Avenue", None, "Pittsburgh")),
]


@pytest.mark.parametrize("answer, expected", POSTER_AS_PRINTED)
def test_poster_answers_with_their_line_breaks(pitt, answer, expected):
    p = pitt.parse(answer)
    assert (p.kind, p.street, p.district, p.city) == expected


def test_house_number_on_the_right_street(pitt):
    p = pitt.parse("This photo was taken at 400 Fifth Avenue in Pittsburgh, Pennsylvania.")
    assert (p.kind, p.street, p.house_number, p.city) == ("address", "Fifth Avenue", "400", "Pittsburgh")
    assert "house_number" in p.qualifiers and p.district is None


@pytest.mark.parametrize("answer", [
    "The photo was taken on Fifth Avenue in Pittsburgh, Pennsylvania.",
    "This photo appears to have been taken on Fifth Avenue in Pittsburgh, Pennsylvania, USA. "
    "The street sign in the image confirms this location.",
])
def test_general_models_right_street(pitt, answer):
    p = pitt.parse(answer)
    assert (p.kind, p.street, p.city, p.district) == ("address", "Fifth Avenue", "Pittsburgh", None)


def test_landmark_in_another_city_names_no_pittsburgh_street(pitt):
    p = pitt.parse("This photo was taken in Peavey Plaza in Minneapolis, Minnesota, USA, on the corner "
                   "of Nicollet Mall and 11th Street.")
    assert p.kind == "other_city"
    assert p.city == "Minneapolis" and p.city_in_gazetteer is False
    assert p.street is None and p.cross_street is None and p.district is None
    assert "corner" in p.qualifiers
    p = pitt.parse("This photo was taken on the Rose Fitzgerald Kennedy Greenway in Boston, "
                   "Massachusetts.")
    assert (p.kind, p.city, p.street) == ("other_city", "Boston", None)


def test_a_pittsburgh_street_name_in_another_city_does_not_count(pitt):
    for answer in ("Fifth Avenue, New York", "It is Penn Avenue in Philadelphia, Pennsylvania"):
        p = pitt.parse(answer)
        assert p.kind == "other_city" and p.street is None, answer
        assert p.note and "not Pittsburgh" in p.note


def test_only_a_place_name_before_a_region_is_a_city(pitt):
    p = pitt.parse("Main Street, Springfield, Illinois")
    assert (p.kind, p.city) == ("other_city", "Springfield")
    p = pitt.parse("Some Unknown Road, Pennsylvania")          # a street, not a city; no refusal
    assert (p.kind, p.city) == ("vague", None)
    p = pitt.parse("Grant Street, Downtown Pittsburgh, Pennsylvania")
    assert (p.street, p.district, p.city) == ("Grant Street", "Downtown", "Pittsburgh")


def test_generic_downtown_is_not_the_district(pitt):
    """Decision: a district counts only when written as a name (capitalised) unless the answer has no
    case at all. "possibly in a downtown area" uses the common noun; "Downtown" names the district."""
    p = pitt.parse("This photo appears to have been taken on a city street, possibly in a downtown "
                   "area or commercial district.")
    assert (p.kind, p.street, p.district, p.city) == ("vague", None, None, None)
    assert pitt.parse("Somewhere in Downtown.").district == "Downtown"
    assert pitt.parse("grant street, downtown, pittsburgh").district == "Downtown"   # no case at all
    assert pitt.parse("GRANT STREET, DOWNTOWN").district == "Downtown"


# ---- answer styles -------------------------------------------------------------------------------

@pytest.mark.parametrize("answer, street, cross", [
    ("Forbes Ave & Craig St, Oakland", "Forbes Avenue", "Craig Street"),
    ("On the corner of Forbes Avenue and Craig Street in Oakland.", "Forbes Avenue", "Craig Street"),
    ("at the intersection of Grant St. and Fifth Ave.", "Grant Street", "Fifth Avenue"),
    ("Grant St/5th Ave", "Grant Street", "Fifth Avenue"),
    ("Liberty Avenue near Smithfield Street", "Liberty Avenue", "Smithfield Street"),
    ("located in Downtown, specifically on a section of Grant Street that meets Fifth Avenue",
     "Grant Street", "Fifth Avenue"),
    ("Grant Street or Smithfield Street, Downtown", "Grant Street", None),
    ("Grant Street. Fifth Avenue is nearby.", "Grant Street", None),
])
def test_cross_streets_need_a_connector(pitt, answer, street, cross):
    p = pitt.parse(answer)
    assert (p.street, p.cross_street) == (street, cross)


def test_abbreviations_ordinals_and_directions(pitt):
    assert pitt.parse("E Carson St, South Side Flats").street == "East Carson Street"
    assert pitt.parse("5th Ave in Oakland").street == "Fifth Avenue"
    assert pitt.parse("somewhere on FIFTH AVENUE").street == "Fifth Avenue"


def test_misspellings_match_fuzzily_above_the_cutoff(pitt):
    p = pitt.parse("Smithfeild Street, Downtown")
    assert p.street == "Smithfield Street" and p.street_score < 100
    assert pitt.parse("Pittsburg, PA: Grant Street").city == "Pittsburgh"
    strict = AddressParser(pitt.gazetteer, ParserConfig(fuzzy_cutoff=101))
    assert strict.parse("Smithfeild Street, Downtown").street is None


def test_words_that_only_resemble_names_do_not_match(pitt):
    for answer in ("A street with shops and a bus stop.", "Grand street view, sunny day",
                   "The craig is steep here", "penn", "Forbes"):
        p = pitt.parse(answer)
        assert p.street is None, (answer, p)


def test_near_and_landmark_phrases_are_reported(pitt):
    p = pitt.parse("E Carson St near the Birmingham Bridge, South Side Flats")
    assert (p.street, p.district, p.near) == ("East Carson Street", "South Side Flats",
                                              "the Birmingham Bridge")
    assert "near" in p.qualifiers


def test_json_answers(pitt):
    p = pitt.parse('```json\n{"street": "Liberty Ave", "neighborhood": "Strip District", '
                   '"city": "Pittsburgh"}\n```')
    assert (p.street, p.district, p.city, p.kind) == ("Liberty Avenue", "Strip District",
                                                       "Pittsburgh", "address")
    assert "json" in p.qualifiers
    p = pitt.parse('[{"address": "400 Fifth Avenue, Downtown, Pittsburgh"}, {"address": "Grant St"}]')
    assert (p.street, p.district, p.house_number) == ("Fifth Avenue", "Downtown", "400")
    p = pitt.parse('{"Street Name": "Penn Avenue", "Cross-Street": "Craig St", "Area": "Oakland"}')
    assert (p.street, p.cross_street, p.district) == ("Penn Avenue", "Craig Street", "Oakland")
    p = pitt.parse('{"city": "Boston", "street": "Fifth Avenue"}')
    assert (p.kind, p.street, p.city) == ("other_city", None, "Boston")
    p = pitt.parse('Answer: {"street": "Grant Street", "district": "Downtown"')   # broken JSON
    assert (p.street, p.district) == ("Grant Street", "Downtown")


def test_lists_of_guesses_take_the_first(pitt):
    p = pitt.parse("Possible locations in Pittsburgh:\n1. Smithfield Street, Downtown\n"
                   "2. Forbes Avenue, Oakland\n3. Penn Avenue, Strip District")
    assert (p.street, p.district, p.city) == ("Smithfield Street", "Downtown", "Pittsburgh")
    assert "list" in p.qualifiers
    # The first guess is the answer even when it names no street here; the others are kept.
    p = pitt.parse("- a bridge somewhere\n- Craig Street, Oakland\n- Grant Street, Downtown")
    assert (p.kind, p.street, p.guesses) == ("vague", None, ["Craig Street", "Grant Street"])
    p = pitt.parse("Here is what I see:\n- Craig Street, Oakland\n- Grant Street, Downtown")
    assert (p.street, p.district, p.guesses) == ("Craig Street", "Oakland",
                                                 ["Craig Street", "Grant Street"])
    p = pitt.parse("1. Main Street, Springfield\n2. Grant Street, Pittsburgh")
    assert (p.kind, p.street, p.guesses) == ("other_city", None, ["Grant Street"])
    p = pitt.parse("Guesses: 1. Liberty Avenue 2. Penn Avenue")
    assert p.street == "Liberty Avenue"


@pytest.mark.parametrize("answer", [
    "I cannot determine the location from this image.",
    "I'm sorry, but I can't tell where this photo was taken.",
    "There is not enough information in the image to identify the address.",
    "It is impossible to say exactly.",
    "Unknown",
])
def test_refusals(pitt, answer):
    p = pitt.parse(answer)
    assert p.kind == "refusal" and p.street is None


def test_hedged_guess_is_an_address_not_a_refusal(pitt):
    p = pitt.parse("I can't be certain, but it might be Penn Ave in the Strip District.")
    assert (p.kind, p.street, p.district) == ("address", "Penn Avenue", "Strip District")
    assert "hedged" in p.qualifiers


def test_empty_and_odd_inputs(pitt):
    assert pitt.parse("").kind == "empty"
    assert pitt.parse("   \n").kind == "empty"
    assert pitt.parse(None).kind == "empty"
    assert pitt.parse(12345).kind == "vague"
    assert pitt.parse("[[[[[[[[" * 2000).kind in ("vague", "refusal")
    long = "Grant Street, Downtown. " + "blah " * 5000
    p = pitt.parse(long)
    assert p.street == "Grant Street" and "truncated" in p.qualifiers


def test_district_inside_a_street_name_is_not_a_district():
    gaz = Gazetteer(city="Pittsburgh", streets=["Oakland Avenue", "Forbes Avenue"],
                    districts=["Oakland", "Downtown"])
    p = AddressParser(gaz).parse("Oakland Avenue, Downtown")
    assert (p.street, p.district) == ("Oakland Avenue", "Downtown")


# ---- Finnish names -------------------------------------------------------------------------------

@pytest.mark.parametrize("answer, street", [
    ("The address of this photo might be Aleksanterinkatu, Kluuvi, Helsinki, Finland.",
     "Aleksanterinkatu"),
    ("Aleksanterin katu, Kluuvi", "Aleksanterinkatu"),
    ("aleksanterin-katu", "Aleksanterinkatu"),
    ("Mannerheimin tie 5, Helsinki", "Mannerheimintie"),
    ("Yrjö Koskisen katu", "Yrjö-Koskisen katu"),
    ("Yrjo-Koskisenkatu", "Yrjö-Koskisen katu"),
    ("Toolonlahdenkatu", "Töölönlahdenkatu"),
    ("Pieni Roobertinkatu, Punavuori", "Pieni Roobertinkatu"),
])
def test_finnish_compounds_accents_and_spacing(hel, answer, street):
    assert hel.parse(answer).street == street


def test_finnish_house_number_after_the_street(hel):
    p = hel.parse("Unioninkatu 25, 00170 Helsinki")
    assert (p.street, p.house_number, p.city) == ("Unioninkatu", "25", "Helsinki")
    assert hel.parse("Unioninkatu 25 m from the corner").house_number is None


def test_near_names_stay_apart(hel):
    assert hel.parse("Kaisaniemenranta, Kallio").street == "Kaisaniemenranta"
    assert hel.parse("Kaisaniemenkatu, Kluuvi").street == "Kaisaniemenkatu"


# ---- building blocks -----------------------------------------------------------------------------

def test_normalisation():
    assert normalize("Aleksanterin  katu") == "aleksanterinkatu"
    assert normalize("Grant St. & 5th Ave") == "grant street and fifth avenue"
    assert normalize("Straße") == "strasse"
    assert compact("Yrjö-Koskisen katu") == compact("yrjo koskisenkatu")
    assert ordinal_words(21) == ["twenty", "first"] and ordinal_words(11) == ["eleventh"]
    assert ordinal_words(40) == ["fortieth"] and ordinal_words(112) == ["one", "hundred", "twelfth"]
    assert normalize("New York's Fifth Avenue") == "new york fifth avenue"      # possessive
    assert normalize("can't") == "cant"
    # Finnish cases back to the nominative names use; other words untouched
    assert normalize("Aleksanterinkadulla Mannerheimintien Senaatintorilla") == (
        "aleksanterinkatu mannerheimintie senaatintori")
    assert normalize("Aleksanterin kadun") == "aleksanterinkatu"
    assert normalize("Helsingissä tiedän") == "helsingissa tiedan"


def test_cross_street_labels():
    assert cross_street_names("A/B (2)") == ("A", "B")
    assert cross_street_names("Alvar Aallon katu (3)") == ("Alvar Aallon katu",)
    assert cross_street_names("") == ()


def test_gazetteer_json_round_trip(tmp_path, pittsburgh_json):
    gaz = Gazetteer.load(pittsburgh_json)
    assert gaz.city == "Pittsburgh" and len(gaz.streets) == len(PITTSBURGH["streets"])
    again = tmp_path / "again.json"
    import json
    again.write_text(json.dumps(gaz.to_json()))
    assert Gazetteer.load(again).streets == gaz.streets


def test_bad_gazetteer_files_name_the_problem(tmp_path):
    from ial_core.errors import DataError
    bad = tmp_path / "bad.json"
    for text, words in (("{", "JSON"), ('{"city": "X"}', "streets"),
                        ('{"city": "X", "streets": ["a"], "districts": [3]}', "districts")):
        bad.write_text(text)
        with pytest.raises(DataError, match=words):
            Gazetteer.load(bad)
    with pytest.raises(DataError, match="expected"):
        Gazetteer.load(tmp_path / "city.txt")


def test_gazetteer_from_the_osm_extract():
    from data_gen.osm import embedded_extract_path
    gaz = Gazetteer.from_osm(embedded_extract_path())
    assert gaz.city == "Helsinki" and "Aleksanterinkatu" in gaz.streets and gaz.has_geometry
    p = AddressParser(gaz).parse("Aleksanterin katu, Kluuvi, Helsinki")
    assert (p.street, p.district) == ("Aleksanterinkatu", "Kluuvi")


@pytest.mark.slow
def test_every_candidate_address_of_the_embedded_city_parses_back(small_dataset):
    """Each sub-street of the built Helsinki dataset, in the canonical and verbose forms and in every
    answer form stage two is trained on, parses back to its own street, cross street and district."""
    from data_gen.addresses import full_address
    from data_gen.conversations import ADDRESS_ANSWERS, UNANSWERABLE
    from data_gen.dataset import load_dataset_dir
    ial = load_dataset_dir(small_dataset)
    parser = AddressParser(Gazetteer.from_dataset(ial))
    for rec in ial.sub_streets:
        cross = cross_street_names(rec["cross_street"])
        for text in (f"{rec['address']}, {ial.city}", rec["verbose_address"]):
            p = parser.parse(text)
            assert (p.street, p.district) == (rec["street"], rec["district"]), text
            assert (p.cross_street in cross) if cross else p.cross_street is None, text
        for template in ADDRESS_ANSWERS:          # stage two's training answers
            p = parser.parse(template.format(address=full_address(
                rec["street"], rec["district"], ial.city, "Finland")))
            assert (p.street, p.district, p.city) == (rec["street"], rec["district"], "Helsinki")
    for _, refusal in UNANSWERABLE:                 # and its trained refusals
        assert parser.parse(refusal).kind == "refusal", refusal
    # addresses.json carries the OSM aliases, region and country, and the gazetteer reads them
    assert "Alexandersgatan" in ial.addresses["street_aliases"]["Aleksanterinkatu"]
    assert (ial.addresses["region_code"], ial.addresses["country"]) == ("FI-18", "FI")
    p = parser.parse("Alexandersgatan, Helsingfors")
    assert (p.street, p.city) == ("Aleksanterinkatu", "Helsinki")
    assert parser.parse("Aleksanterinkatu, Turku").kind == "other_city"
