"""The names (and, where known, geometry) of one city that answers are matched against.

Three sources, one type:

- a built dataset folder (:func:`Gazetteer.from_dataset`): its streets, districts, city and the
  candidate sub-streets of ``addresses.json`` with their UTM geometry;
- a JSON file (:func:`Gazetteer.from_json`), for a city with no dataset::

      {"city": "Pittsburgh", "city_aliases": ["Pgh"], "crs": "EPSG:32617",
       "region": "Pennsylvania", "country": "US",
       "streets": ["Grant Street", {"name": "Fifth Avenue", "aliases": ["5th Ave"], "wkt": "..."}],
       "districts": ["Downtown", {"name": "Oakland"}],
       "sub_streets": [{"street": "...", "cross_street": "...", "district": "...", "wkt": "..."}]}

  (only ``city``, ``streets`` and ``districts`` are required; ``wkt`` geometry is in ``crs``;
  ``region`` is a name or ISO 3166-2 code, ``country`` a name or ISO 3166-1 code);
- an OpenStreetMap extract (:func:`Gazetteer.from_osm`): named streets with their geometry, the
  districts, and the aliases, region and country, read by :func:`data_gen.osm.read_city`.

Aliases (other official names, e.g. Helsinki's Swedish street names) map to their canonical name.
An alias two names share, or one that is another name's own name, is dropped: it cannot say which
is meant. The region and country, where known, let the parser tell "Grant Street, Texas" from
Pittsburgh's (see :mod:`eval.place_model`).

Cross-street labels of the dataset may name several streets ("A/B") or carry a repeat counter
("A (2)"); :func:`cross_street_names` reads them as the set of street names they stand for.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import shapely

from ial_core.errors import DataError

_REPEAT = re.compile(r"\s*\(\d+\)\s*$")


def cross_street_names(label: str | None) -> tuple[str, ...]:
    """``"A/B (2)"`` -> ``("A", "B")``; empty for no cross street."""
    if not label:
        return ()
    return tuple(p for p in (_REPEAT.sub("", part).strip() for part in label.split("/")) if p)


@dataclass
class SubStreet:
    """A section of a street between cross streets, in one district (a candidate address)."""

    street: str
    cross_streets: tuple[str, ...]
    district: str
    address: str = ""
    geometry: shapely.Geometry | None = None


@dataclass
class Gazetteer:
    city: str
    streets: list[str]
    districts: list[str]
    city_aliases: list[str] = field(default_factory=list)
    street_aliases: dict[str, str] = field(default_factory=dict)     # alias -> street
    district_aliases: dict[str, str] = field(default_factory=dict)   # alias -> district
    sub_streets: list[SubStreet] = field(default_factory=list)
    street_geometry: dict[str, shapely.Geometry] = field(default_factory=dict)
    crs: str | None = None                                            # CRS of every geometry
    source: str = ""
    region: str | None = None        # the city's region/state: a name or an ISO 3166-2 code
    country: str | None = None       # the city's country: a name or an ISO 3166-1 code

    # ---- sources -------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> Gazetteer:
        """A dataset folder, a ``.json`` gazetteer or an ``.osm.pbf``/``.osm`` extract."""
        path = Path(path)
        if path.is_dir():
            from data_gen.dataset import load_dataset_dir
            return cls.from_dataset(load_dataset_dir(path))
        if path.suffix.lower() == ".json":
            return cls.from_json(path)
        if path.name.lower().endswith((".osm.pbf", ".pbf", ".osm")):
            return cls.from_osm(path)
        raise DataError("expected a dataset folder, a gazetteer .json or an OSM extract "
                        "(.osm.pbf/.osm)", path=path)

    @classmethod
    def from_dataset(cls, ial) -> Gazetteer:
        """From a built dataset (:class:`data_gen.dataset.IALDataset`)."""
        subs = []
        for i, rec in enumerate(ial.sub_streets):
            if not rec.get("street") or not rec.get("district"):
                raise DataError(f"sub-street record {i} lacks a street or district",
                                path=ial.root / "addresses.json", row=i)
            geom = shapely.from_wkt(rec["geometry_wkt"]) if rec.get("geometry_wkt") else None
            subs.append(SubStreet(rec["street"], cross_street_names(rec.get("cross_street")),
                                  rec["district"], rec.get("address", ""), geom))
        streets = list(ial.addresses.get("streets") or dict.fromkeys(s.street for s in subs))
        districts = list(ial.addresses.get("districts") or dict.fromkeys(s.district for s in subs))
        doc = ial.addresses
        gaz = cls(city=ial.city, streets=streets, districts=districts, sub_streets=subs,
                  crs=doc.get("crs"), source=str(ial.root),
                  city_aliases=_alias_list(doc.get("city_aliases"), "city_aliases", ial.root),
                  street_aliases=_inverted(doc.get("street_aliases"), "street_aliases", ial.root),
                  district_aliases=_inverted(doc.get("district_aliases"), "district_aliases",
                                             ial.root),
                  region=doc.get("region_code") or doc.get("region"), country=doc.get("country"))
        gaz.street_aliases = {a: n for a, n in gaz.street_aliases.items() if n in gaz.street_names}
        gaz.district_aliases = {a: n for a, n in gaz.district_aliases.items() if n in districts}
        gaz.street_geometry = gaz._union_by_street()
        return gaz

    @classmethod
    def from_json(cls, path: str | Path) -> Gazetteer:
        path = Path(path)
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError("gazetteer file not found", path=path) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"not valid UTF-8 JSON ({exc})", path=path) from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("city"), str) or not doc["city"]:
            raise DataError('expected an object with "city", "streets" and "districts"', path=path)
        streets, street_aliases, geometry = _named_entries(doc.get("streets"), "streets", path)
        districts, district_aliases, _ = _named_entries(doc.get("districts"), "districts", path)
        subs = []
        for i, rec in enumerate(doc.get("sub_streets") or []):
            if not isinstance(rec, dict) or not rec.get("street"):
                raise DataError("sub-street needs a street", path=path, row=i)
            subs.append(SubStreet(rec["street"], cross_street_names(rec.get("cross_street")),
                                  rec.get("district", ""), rec.get("address", ""),
                                  _wkt(rec.get("wkt"), path, i)))
        aliases = _alias_list(doc.get("city_aliases"), "city_aliases", path)
        for key in ("region", "country"):
            if doc.get(key) is not None and not isinstance(doc[key], str):
                raise DataError(f'"{key}" must be a name or a code', path=path)
        gaz = cls(city=doc["city"], streets=streets, districts=districts, city_aliases=aliases,
                  street_aliases=street_aliases, district_aliases=district_aliases,
                  sub_streets=subs, street_geometry=geometry, crs=doc.get("crs"), source=str(path),
                  region=doc.get("region") or None, country=doc.get("country") or None)
        if subs and not geometry:
            gaz.street_geometry = gaz._union_by_street()
        return gaz

    @classmethod
    def from_osm(cls, path: str | Path, *, city: str | None = None) -> Gazetteer:
        """Streets (with geometry in the extract's UTM zone) and districts of an OSM extract."""
        from data_gen.osm import read_city

        cm = read_city(path, city=city)
        geometry = {s.name: shapely.MultiLineString(s.parts) for s in cm.streets}
        return cls(city=cm.city, streets=[s.name for s in cm.streets],
                   districts=[d.name for d in cm.districts], street_geometry=geometry,
                   crs=cm.projection.crs, source=str(path), city_aliases=list(cm.city_aliases),
                   street_aliases=_inverted(cm.street_aliases, "street_aliases", path),
                   district_aliases=_inverted(cm.district_aliases, "district_aliases", path),
                   region=cm.region_code or cm.region, country=cm.country)

    def to_json(self) -> dict:
        """The JSON form :func:`from_json` reads (geometry as WKT)."""
        def entries(names, aliases, geometry):
            out = []
            for name in names:
                entry = {"name": name}
                extra = [a for a, n in aliases.items() if n == name]
                if extra:
                    entry["aliases"] = extra
                if name in geometry:
                    entry["wkt"] = geometry[name].wkt
                out.append(entry)
            return out
        doc = {"city": self.city, "city_aliases": self.city_aliases, "crs": self.crs,
               "region": self.region, "country": self.country,
               "streets": entries(self.streets, self.street_aliases, self.street_geometry),
               "districts": entries(self.districts, self.district_aliases, {})}
        if self.sub_streets:
            doc["sub_streets"] = [{"street": s.street, "cross_street": "/".join(s.cross_streets),
                                   "district": s.district, "address": s.address,
                                   **({"wkt": s.geometry.wkt} if s.geometry is not None else {})}
                                  for s in self.sub_streets]
        return doc

    # ---- queries -------------------------------------------------------------------------------

    @cached_property
    def street_names(self) -> list[str]:
        """Every street name an answer may give: main streets, then cross streets."""
        cross = (c for s in self.sub_streets for c in s.cross_streets)
        return list(dict.fromkeys([*self.streets, *(s.street for s in self.sub_streets), *cross]))

    @property
    def has_geometry(self) -> bool:
        return bool(self.street_geometry) and self.crs is not None

    def location_geometry(self, street: str | None, cross: str | None,
                          district: str | None) -> shapely.Geometry | None:
        """The sub-street a (street, cross street[, district]) names, else the whole street."""
        if street is None:
            return None
        if cross is not None:
            subs = [s for s in self._subs_by_street.get(street, ()) if cross in s.cross_streets
                    and s.geometry is not None]
            in_district = [s for s in subs if s.district == district]
            subs = in_district or subs
            if subs:
                return subs[0].geometry if len(subs) == 1 else shapely.union_all(
                    [s.geometry for s in subs])
        return self.street_geometry.get(street)

    @cached_property
    def _subs_by_street(self) -> dict[str, list[SubStreet]]:
        out: dict[str, list[SubStreet]] = {}
        for s in self.sub_streets:
            out.setdefault(s.street, []).append(s)
        return out

    def _union_by_street(self) -> dict[str, shapely.Geometry]:
        return {street: shapely.union_all([s.geometry for s in subs])
                for street, subs in self._subs_by_street.items()
                if all(s.geometry is not None for s in subs)}


def _alias_list(raw, what: str, path) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
        raise DataError(f'"{what}" must be a list of names', path=path)
    return [a for a in raw if a]


def _inverted(raw, what: str, path) -> dict[str, str]:
    """``{name: [alias, ...]}`` -> ``{alias: name}``, without aliases that name two things."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise DataError(f'"{what}" must map each name to a list of aliases', path=path)
    pairs = []
    for name, aliases in raw.items():
        for alias in _alias_list(aliases, f"{what}[{name!r}]", path):
            pairs.append((alias, name))
    return _unambiguous(pairs, set(raw))


def _unambiguous(pairs, names) -> dict[str, str]:
    """alias -> name for the aliases that stand for one name only and are no name themselves."""
    from eval.normalize import compact

    own = {compact(n) for n in names}
    owners: dict[str, set] = {}
    for alias, name in pairs:
        owners.setdefault(compact(alias), set()).add(name)
    return {alias: name for alias, name in pairs
            if len(owners[compact(alias)]) == 1 and compact(alias) not in own}


def _named_entries(raw, what: str, path: Path):
    """Names, alias -> name and name -> geometry from a list of names or ``{name, aliases, wkt}``."""
    if not isinstance(raw, list) or not raw:
        raise DataError(f'"{what}" must be a non-empty list', path=path)
    names, aliases, geometry = [], {}, {}
    for i, entry in enumerate(raw):
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise DataError(f'{what} entries are names or objects with a "name"', path=path, row=i)
        names.append(entry["name"])
        for alias in _alias_list(entry.get("aliases"), f"{what}[{i}].aliases", path):
            aliases.setdefault(alias, set()).add(entry["name"])
        geom = _wkt(entry.get("wkt"), path, i)
        if geom is not None:
            geometry[entry["name"]] = geom
    pairs = [(alias, name) for alias, owners in aliases.items() for name in owners]
    return names, _unambiguous(pairs, names), geometry


def _wkt(text, path: Path, row: int):
    if not text:
        return None
    try:
        return shapely.from_wkt(text)
    except (shapely.errors.GEOSException, TypeError, ValueError) as exc:
        raise DataError(f"bad WKT geometry ({exc})", path=path, row=row) from exc
