"""Districts of a city: boundary polygons when the extract holds them whole, a fallback when not.

Extracts are cut out of the planet by a bounding box, so district boundary relations are usually
clipped: most of their member ways are missing and osmium assembles no area (the embedded Helsinki
extract is like that). Districts are therefore built in three tiers, and each says which it used:

1. ``boundary``: every member way is present and the ways close into polygons -> the real polygon.
2. ``partial-boundary``: the member ways that *are* present are the real borders between
   neighbouring districts. Their loose ends are extended straight on to the extract's bounding box,
   the lines are noded and polygonised into faces, and each face goes to the district whose
   boundary ways run along most of its edge (a border way between A and B counts for both, so a face
   hemmed in by A|B and A|C borders is A's).
3. ``place``: no usable boundary; the district is only a centre point (a ``place=suburb/quarter/
   neighbourhood`` node), and points take the nearest centre (a Voronoi split of the extract).

Points inside no polygon fall back to the nearest district centre, so every point gets a district.
The district level is ``admin_level`` 10 style by default: the finer-than-city level with the most
boundary relations, overridable with ``admin_level``.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np
import shapely

from data_gen.geo import UTMProjection

CITY_ADMIN_LEVEL = 8


@dataclass
class District:
    name: str
    geometry: shapely.Geometry | None     # region inside the extract, UTM metres
    centre: tuple[float, float]           # UTM metres
    source: str                           # "boundary" | "partial-boundary" | "place"


def choose_admin_level(levels: list[int]) -> int | None:
    """The finer-than-city admin level with the most relations (ties: the finer one)."""
    counts = collections.Counter(level for level in levels if level > CITY_ADMIN_LEVEL)
    if not counts:
        return None
    return max(counts, key=lambda level: (counts[level], level))


def _extend_loose_ends(lines: list[shapely.LineString], frame: shapely.Polygon) -> list:
    """Straight extensions from each line end that touches no other line, up to the frame."""
    ends = collections.Counter()
    for line in lines:
        coords = np.asarray(line.coords)
        ends[tuple(np.round(coords[0], 2))] += 1
        ends[tuple(np.round(coords[-1], 2))] += 1
    reach = 2.0 * shapely.length(frame.exterior)
    extensions = []
    for line in lines:
        coords = np.asarray(line.coords)
        for end, before in ((coords[-1], coords[-2]), (coords[0], coords[1])):
            if ends[tuple(np.round(end, 2))] > 1:
                continue
            direction = end - before
            norm = np.hypot(*direction)
            if norm == 0:
                continue
            ray = shapely.LineString([end, end + direction / norm * reach])
            hit = shapely.intersection(ray, frame.exterior)
            if hit.is_empty:
                continue
            hits = shapely.get_coordinates(hit)
            nearest = hits[np.argmin(np.hypot(*(hits - end).T))]
            extensions.append(shapely.LineString([end, nearest]))
    return extensions


def _faces_from_partial_borders(ways: dict[int, shapely.LineString], members: dict[int, list[str]],
                                frame: shapely.Polygon) -> dict[str, shapely.Geometry]:
    lines = list(ways.values())
    noded = shapely.union_all(lines + _extend_loose_ends(lines, frame) + [frame.exterior])
    faces = [f for f in shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
             if f.area > 1.0]
    regions: dict[str, list] = collections.defaultdict(list)
    for face in faces:
        edge = face.boundary.buffer(0.05)
        score = collections.Counter()
        for way_id, line in ways.items():
            shared = shapely.intersection(edge, line).length
            if shared > 0:
                for name in members[way_id]:
                    score[name] += shared
        if score:
            regions[max(score, key=lambda n: (score[n], n))].append(face)
    return {name: shapely.union_all(parts) for name, parts in regions.items()}


def build_districts(relations, boundary_ways, places, bounds, proj: UTMProjection, *,
                    admin_level: int | None = None) -> list[District]:
    """Districts from boundary relations (name, level, way ids), their ways and place nodes."""
    level = admin_level if admin_level is not None else choose_admin_level([r[1] for r in relations])
    chosen = [r for r in relations if r[1] == level]
    x0, y0 = proj.to_utm([bounds[0], bounds[2]], [bounds[1], bounds[3]])
    frame = shapely.box(x0[0] - 1.0, y0[0] - 1.0, x0[1] + 1.0, y0[1] + 1.0)
    place_centres = {}
    for _, name, lon, lat in places:
        x, y = proj.to_utm([lon], [lat])
        place_centres.setdefault(name, (float(x[0]), float(y[0])))

    ways, members, complete = {}, collections.defaultdict(list), {}
    for name, _, way_ids in chosen:
        found = [w for w in way_ids if w in boundary_ways]
        for w in found:
            if w not in ways:
                lonlat = boundary_ways[w]
                x, y = proj.to_utm(lonlat[:, 0], lonlat[:, 1])
                ways[w] = shapely.LineString(np.column_stack([x, y]))
            members[w].append(name)
        if found and len(found) == len(way_ids):
            polygon = shapely.union_all(shapely.get_parts(
                shapely.polygonize([ways[w] for w in found])))
            if not polygon.is_empty:
                complete[name] = shapely.intersection(polygon, frame)
    partial = _faces_from_partial_borders(ways, members, frame) if ways else {}

    districts = []
    for name in sorted({r[0] for r in chosen}):
        if name in complete and not complete[name].is_empty:
            geometry, source = complete[name], "boundary"
        elif name in partial:
            geometry, source = shapely.difference(partial[name], shapely.union_all(
                list(complete.values()))) if complete else partial[name], "partial-boundary"
        else:
            geometry, source = None, "place"
        if name in place_centres:
            centre = place_centres[name]
        elif geometry is not None and not geometry.is_empty:
            point = geometry.representative_point()
            centre = (point.x, point.y)
        else:
            continue       # neither a region nor a point: nothing to assign with
        districts.append(District(name, geometry, centre, source))
    if not districts:      # no boundary relations at all: place nodes alone
        districts = [District(name, None, xy, "place") for name, xy in sorted(place_centres.items())]
    return districts


class DistrictIndex:
    """Vectorised point -> district: inside a region first, else the nearest district centre."""

    def __init__(self, districts: list[District]):
        if not districts:
            raise ValueError("no districts: the extract has neither boundaries nor place nodes")
        self.names = np.array([d.name for d in districts], dtype=object)
        self._region_ids = np.array([i for i, d in enumerate(districts)
                                     if d.geometry is not None and not d.geometry.is_empty])
        self._regions = shapely.STRtree([districts[i].geometry for i in self._region_ids])
        self._centres = shapely.STRtree(shapely.points([d.centre for d in districts]))

    def lookup(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """District name for each point (object array)."""
        points = shapely.points(np.column_stack([x, y]))
        index = np.full(len(points), -1, dtype=np.int64)
        if len(self._region_ids):
            point_i, region_i = self._regions.query(points, predicate="within")
            index[point_i] = self._region_ids[region_i]       # a point on a shared edge: last wins
        missing = np.flatnonzero(index < 0)
        if len(missing):
            _, centre_i = self._centres.query_nearest(points[missing], all_matches=False)
            index[missing] = centre_i
        return self.names[index]
