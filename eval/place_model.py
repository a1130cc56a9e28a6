"""Where the gazetteer's city lies: its names, region and country, to judge the places answers name.

An answer may put a street of this city somewhere else ("Grant Street, Texas", "Forbes Avenue in
Oakland, California", "Aleksanterinkatu, Lahti"). To see that, the parser needs to know which
regions and countries are this city's own:

- the city's names: the gazetteer's city and ``city_aliases`` (OSM ``name:sv`` and the like);
- its region and country: from the gazetteer (the OSM extract's tags and ISO 3166 boundary
  relations, or ``region`` / ``country`` in a gazetteer JSON, as names or ISO codes). When neither
  is given, the country (and for the US the state) of the GeoNames city of that name is used, but only
  when one such city clearly dominates (ten times the population of the next): "Pittsburgh" is
  Pennsylvania, "Springfield" stays unknown.

With the region unknown, a region in the city's country cannot contradict it; with the country
unknown, nothing can.
"""

from __future__ import annotations

from dataclasses import dataclass

from eval.normalize import compact
from eval.places import Place, WorldPlaces, code_key


@dataclass(frozen=True)
class PlaceModel:
    city: str
    city_keys: frozenset[str]               # compact keys of the city's names
    region_codes: frozenset[str]            # ISO 3166-2 codes ("US-PA", "FI-18"); empty: unknown
    region_keys: frozenset[str]             # compact keys of the region's names
    country: str | None                     # ISO 3166-1 alpha-2; None: unknown

    @classmethod
    def build(cls, city: str, aliases, region: str | None, country: str | None,
              world: WorldPlaces) -> PlaceModel:
        region_places = _resolve(region, "region", world)
        country_code = _country_code(country, world)
        if country_code is None and region_places:
            country_code = region_places[0].country
        if country_code is None and not region_places:
            guess = _dominant_city(city, world)
            if guess is not None:
                country_code = guess.country
                if guess.country == "US":
                    region_places = [p for p in world.codes.get(guess.region[3:], ())
                                     if p.kind == "region" and p.country == "US"]
        keys = {compact(city)} | {compact(a) for a in aliases}
        region_keys = {compact(p.name) for p in region_places}
        if region and not region_places:
            region_keys.add(compact(region))            # a region the world tables do not know
        return cls(city=city, city_keys=frozenset(k for k in keys if k),
                   region_codes=frozenset(p.region for p in region_places),
                   region_keys=frozenset(k for k in region_keys if k), country=country_code)

    def contradicts(self, key: str, places: tuple[Place, ...]) -> bool:
        """Does a mention with these readings put the answer outside this city's region/country?

        Only when *every* reading is elsewhere: "Georgia" (a state, a country) contradicts
        Pittsburgh, "Washington" is another city, "Pennsylvania" is Pittsburgh's own.
        """
        if not places or key in self.city_keys or key in self.region_keys:
            return False
        return all(self._elsewhere(p) for p in places)

    def _elsewhere(self, p: Place) -> bool:
        if p.kind == "city":
            return True
        if self.country is None:
            return False
        if p.country != self.country:
            return True
        if p.kind == "country":
            return False
        return bool(self.region_codes) and p.region not in self.region_codes


def _resolve(value: str | None, kind: str, world: WorldPlaces) -> list[Place]:
    """The regions a name or code ("Pennsylvania", "PA", "US-PA", "FI-18") stands for."""
    if not value:
        return []
    value = value.strip()
    found = [p for p in world.get(compact(value)) if p.kind == kind]
    found += [p for p in world.codes.get(code_key(value).upper(), ()) if p.kind == kind]
    if value.upper() in world.regions_by_code:
        found.append(world.regions_by_code[value.upper()])
    by_code = {p.region: p for p in found}
    return list(by_code.values())


def _country_code(value: str | None, world: WorldPlaces) -> str | None:
    if not value:
        return None
    value = value.strip()
    for p in world.codes.get(code_key(value).upper(), ()) + world.get(compact(value)):
        if p.kind == "country":
            return p.country
    return value.upper() if len(value) == 2 and value.isalpha() else None


def _dominant_city(city: str, world: WorldPlaces) -> Place | None:
    cities = world.cities_named(city)
    if not cities:
        return None
    if len(cities) == 1 or cities[0].population >= 10 * max(cities[1].population, 1):
        return cities[0]
    return None
