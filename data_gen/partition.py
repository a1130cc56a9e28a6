"""Semantic address partition (AddressCLIP, section 3): streets cut into sub-streets at cross streets.

1. Cut each street part at the nodes it shares with other named streets.
2. Drop cuts closer than ``min_gap_m`` to the previous kept cut; cuts that close to an end of the
   part only label that end (a T-junction at the start of a street names it, but makes no stub).
3. Name each piece ``"{street} & {cross street}"`` after the cross street at its start, else at its
   end; when that name is already used on the street (a street that starts with no junction, or a
   cross street met twice), the other end's name, and failing both, both names joined by a slash.
   A street with no junctions is a single piece named by the street alone.
4. After image locations are counted per piece (:func:`merge_small`), pieces holding fewer than
   ``min_locations`` merge into their smaller neighbour on the same part, smallest first, keeping
   the name of the larger side; pieces with no location at all are dropped from the candidates.

Each sub-street's district is the district at its midpoint, so one sub-street has one address.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field, replace

import numpy as np
import shapely
import shapely.ops

from data_gen.addresses import sub_street_name
from data_gen.osm import CARRIAGEWAY_GAP_M, CityMap
from ial_core.config import option

# Junctions on a dropped parallel carriageway still cut the kept centre line.
JUNCTION_TOLERANCE_M = CARRIAGEWAY_GAP_M


@dataclass(frozen=True)
class PartitionConfig:
    min_gap_m: float = option(30.0, "intersections closer than this along a street make one cut")
    min_locations: int = option(5, "sub-streets with fewer locations merge into a neighbour")


@dataclass
class Piece:
    """A stretch [start_m, end_m] of one street part, between two cuts (or a cut and an end)."""

    street: str
    part: int
    start_m: float
    end_m: float
    start_label: str = ""      # cross street at the start boundary ("" = street end, no junction)
    end_label: str = ""
    cross_street: str = ""
    district: str = ""
    locations: int = 0
    geometry: shapely.LineString | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return sub_street_name(self.street, self.cross_street)

    @property
    def length_m(self) -> float:
        return self.end_m - self.start_m


def _cuts_for_part(part: shapely.LineString, junctions: list[tuple[float, float, str]],
                   min_gap_m: float) -> tuple[list[tuple[float, str]], str, str]:
    """Kept interior cuts (chainage, cross street) and the labels of the two ends."""
    if not junctions:
        return [], "", ""
    points = shapely.points([(x, y) for x, y, _ in junctions])
    near = shapely.distance(part, points) <= JUNCTION_TOLERANCE_M
    chainage = shapely.line_locate_point(part, points)
    found = sorted((float(c), j[2]) for c, j, ok in zip(chainage, junctions, near) if ok)
    length = part.length
    start_label = next((n for c, n in found if c < min_gap_m), "")
    end_label = next((n for c, n in reversed(found) if c > length - min_gap_m), "")
    kept, last = [], 0.0
    for c, name in found:
        if c < min_gap_m or c > length - min_gap_m or c - last < min_gap_m:
            continue
        kept.append((c, name))
        last = c
    return kept, start_label, end_label


def _cross_street_at(node_streets: tuple[str, ...], street: str, lengths: dict[str, float]) -> str:
    """Of the streets meeting at a node, the longest other one (the most recognisable name)."""
    others = [s for s in node_streets if s != street]
    return max(others, key=lambda s: (lengths.get(s, 0.0), s))


def _name_pieces(pieces: list[Piece]) -> None:
    used: set[str] = set()
    for piece in pieces:
        options = [n for n in (piece.start_label, piece.end_label) if n]
        fresh = [n for n in options if n not in used]
        if fresh:
            piece.cross_street = fresh[0]
        elif options:
            piece.cross_street = "/".join(dict.fromkeys(options))
        used.add(piece.cross_street)


def initial_pieces(city: CityMap, config: PartitionConfig = PartitionConfig()) -> list[Piece]:
    """Every street part cut at its cross streets (before merging by location counts)."""
    junctions_of: dict[str, list] = collections.defaultdict(list)
    for node in city.intersections:
        for street in node.streets:
            cross = _cross_street_at(node.streets, street, city.street_lengths)
            junctions_of[street].append((node.x, node.y, cross))
    pieces = []
    for street in city.streets:
        street_pieces = []
        for part_index, part in enumerate(street.parts):
            cuts, start_label, end_label = _cuts_for_part(part, junctions_of[street.name],
                                                          config.min_gap_m)
            bounds = [0.0] + [c for c, _ in cuts] + [part.length]
            labels = [start_label] + [n for _, n in cuts] + [end_label]
            for i in range(len(bounds) - 1):
                street_pieces.append(Piece(street.name, part_index, bounds[i], bounds[i + 1],
                                           labels[i], labels[i + 1]))
        _name_pieces(street_pieces)
        pieces.extend(street_pieces)
    return pieces


def merge_small(pieces: list[Piece], counts: np.ndarray, min_locations: int) -> tuple[list[Piece], np.ndarray]:
    """Merge pieces with fewer than ``min_locations`` locations into a neighbour on the same part.

    Returns the surviving pieces (with ``locations`` set) and, for each input piece, the index of
    the surviving piece that absorbed it (-1 when dropped for having no location).
    """
    pieces = [replace(p, locations=int(c)) for p, c in zip(pieces, counts)]
    owner = np.arange(len(pieces))
    groups = collections.defaultdict(list)
    for i, p in enumerate(pieces):
        groups[(p.street, p.part)].append(i)
    alive = np.ones(len(pieces), dtype=bool)
    for members in groups.values():
        order = list(members)                      # contiguous along the part, in chainage order
        while len(order) > 1:
            small = [k for k, i in enumerate(order) if pieces[i].locations < min_locations]
            if not small:
                break
            k = min(small, key=lambda k: (pieces[order[k]].locations, k))
            neighbours = [j for j in (k - 1, k + 1) if 0 <= j < len(order)]
            j = min(neighbours, key=lambda j: (pieces[order[j]].locations, j))
            a, b = sorted((k, j))
            keep, gone = order[a], order[b]
            big = order[j] if pieces[order[j]].locations >= pieces[order[k]].locations else order[k]
            merged = replace(pieces[big], start_m=pieces[keep].start_m, end_m=pieces[gone].end_m,
                             start_label=pieces[keep].start_label, end_label=pieces[gone].end_label,
                             locations=pieces[keep].locations + pieces[gone].locations)
            pieces[keep] = merged
            alive[gone] = False
            owner[owner == gone] = keep
            order.pop(b)
    has_images = np.array([p.locations > 0 for p in pieces])
    survivors = np.flatnonzero(alive & has_images)
    new_index = np.full(len(pieces), -1)
    new_index[survivors] = np.arange(len(survivors))
    return [pieces[i] for i in survivors], new_index[owner]


def finalise(pieces: list[Piece], city: CityMap) -> list[Piece]:
    """Attach geometry and the midpoint district, and make sub-street names unique per district."""
    from data_gen.districts import DistrictIndex

    parts = {(s.name, i): part for s in city.streets for i, part in enumerate(s.parts)}
    for p in pieces:
        p.geometry = shapely.ops.substring(parts[(p.street, p.part)], p.start_m, p.end_m)
    mids = shapely.line_interpolate_point([p.geometry for p in pieces], 0.5, normalized=True)
    names = DistrictIndex(city.districts).lookup(shapely.get_x(mids), shapely.get_y(mids))
    for p, district in zip(pieces, names):
        p.district = str(district)
    seen = collections.Counter()
    for p in pieces:                   # last resort: a number keeps every address unique
        seen[(p.name, p.district)] += 1
        if seen[(p.name, p.district)] > 1:
            p.cross_street = f"{p.cross_street} ({seen[(p.name, p.district)]})"
    return pieces
