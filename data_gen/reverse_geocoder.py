"""Vectorised reverse geocoding: points -> street, sub-street, district, distance to the street.

One STRtree over the streets' individual two-point segments (tight boxes) answers one bulk
``dwithin`` query for a whole array of points: every (point, segment) pair within the cut-off. The
distance and the foot of the perpendicular are then computed for all pairs at once in numpy, the
nearest pair per point is picked with one lexsort, chainage along the street part is the segment's
start offset plus the foot's position on it, and the sub-street comes from one ``searchsorted`` over
the pieces laid end to end on a single axis. No Python loop runs per point.

The district is the district of the matched street point (precomputed per segment), not of the raw
GPS point: a photo taken on a border street belongs to that street's district, whichever side of
the centre line GPS noise put it.

Points farther than ``max_distance_m`` from every street are *unknown* (empty street, sub-street
id -1) rather than given a wrong street.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from data_gen.districts import DistrictIndex
from data_gen.osm import CityMap
from data_gen.partition import Piece

DEFAULT_MAX_DISTANCE_M = 30.0
MAX_DISTANCE_HELP = "points farther than this from every street are unknown"


@dataclass
class GeocodeResult:
    """Per point: arrays of equal length (object arrays for text; '' and -1 mean unknown)."""

    street: np.ndarray
    sub_street_id: np.ndarray
    sub_street: np.ndarray
    district: np.ndarray
    distance_m: np.ndarray
    part_id: np.ndarray       # index into ReverseGeocoder.parts, -1 if unknown
    chainage_m: np.ndarray    # distance along the matched part

    @property
    def known(self) -> np.ndarray:
        return self.part_id >= 0


class ReverseGeocoder:
    """Reverse geocoder over one city's streets and (optionally) its sub-street partition."""

    def __init__(self, city: CityMap, pieces: list[Piece] | None = None,
                 max_distance_m: float = DEFAULT_MAX_DISTANCE_M):
        self.city = city
        self.max_distance_m = float(max_distance_m)
        self.parts, keys = [], []
        for street in city.streets:
            for i, part in enumerate(street.parts):
                self.parts.append(part)
                keys.append((street.name, i))
        self._part_street = np.array([k[0] for k in keys], dtype=object)
        self._part_index = {k: i for i, k in enumerate(keys)}
        self._index_segments()
        lengths = shapely.length(np.array(self.parts, dtype=object))
        self._offset = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
        self.pieces = pieces
        if pieces:
            part_of = self._part_index
            starts = np.array([self._offset[part_of[(p.street, p.part)]] + p.start_m for p in pieces])
            order = np.argsort(starts, kind="stable")
            self._piece_starts = starts[order]
            self._piece_ids = order
            self._piece_names = np.array([p.name for p in pieces] + [""], dtype=object)
            self._piece_part = np.array([part_of[(p.street, p.part)] for p in pieces])

    def _index_segments(self) -> None:
        starts, ends, part_of, chainage_of = [], [], [], []
        for i, part in enumerate(self.parts):
            xy = shapely.get_coordinates(part)
            steps = np.hypot(*np.diff(xy, axis=0).T)
            keep = steps > 0
            starts.append(xy[:-1][keep])
            ends.append(xy[1:][keep])
            part_of.append(np.full(keep.sum(), i))
            chainage_of.append(np.concatenate([[0.0], np.cumsum(steps)[:-1]])[keep])
        starts, ends = np.concatenate(starts), np.concatenate(ends)
        self._segments = shapely.linestrings(np.stack([starts, ends], axis=1))
        self._seg_start, self._seg_vector = starts, ends - starts
        self._seg_length2 = np.einsum("ij,ij->i", self._seg_vector, self._seg_vector)
        self._segment_part = np.concatenate(part_of)
        self._segment_chainage = np.concatenate(chainage_of)
        self._tree = shapely.STRtree(self._segments)
        middle = starts + 0.5 * self._seg_vector
        self._segment_district = DistrictIndex(self.city.districts).lookup(middle[:, 0], middle[:, 1])

    def _nearest_segments(self, x: np.ndarray, y: np.ndarray, rows: np.ndarray):
        """For points ``rows``: nearest segment within the cut-off, distance, position along it."""
        pairs = self._tree.query(shapely.points(x[rows], y[rows]), predicate="dwithin",
                                 distance=self.max_distance_m)
        point, seg = rows[pairs[0]], pairs[1]
        offset = np.column_stack([x[point], y[point]]) - self._seg_start[seg]
        vector = self._seg_vector[seg]
        along = np.clip(np.einsum("ij,ij->i", offset, vector) / self._seg_length2[seg], 0, 1)
        gap = offset - along[:, None] * vector
        dist = np.hypot(gap[:, 0], gap[:, 1])
        # pairs come grouped by point (STRtree returns them in input order): nearest per group
        if len(point) and np.any(np.diff(point) < 0):
            regroup = np.argsort(point, kind="stable")
            point, seg, dist, along = point[regroup], seg[regroup], dist[regroup], along[regroup]
        starts = np.flatnonzero(np.r_[True, point[1:] != point[:-1]]) if len(point) else point
        nearest = np.minimum.reduceat(dist, starts) if len(point) else dist
        at_min = np.flatnonzero(dist == np.repeat(nearest, np.diff(np.r_[starts, len(point)])))
        first = at_min[np.r_[True, point[at_min][1:] != point[at_min][:-1]]] if len(at_min) else at_min
        keep = dist[first] <= self.max_distance_m
        first = first[keep]
        return point[first], seg[first], dist[first], along[first] * np.sqrt(self._seg_length2[seg[first]])

    def geocode_utm(self, easting, northing) -> GeocodeResult:
        x = np.asarray(easting, dtype=np.float64).ravel()
        y = np.asarray(northing, dtype=np.float64).ravel()
        n = len(x)
        part = np.full(n, -1, dtype=np.int64)
        dist = np.full(n, np.nan)
        chainage = np.full(n, np.nan)
        street = np.full(n, "", dtype=object)
        district = np.full(n, "", dtype=object)
        finite = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
        if len(finite):
            rows, seg, d, along = self._nearest_segments(x, y, finite)
            part[rows], dist[rows] = self._segment_part[seg], d
            chainage[rows] = self._segment_chainage[seg] + along
            street[rows] = self._part_street[part[rows]]
            district[rows] = self._segment_district[seg]
        known = part >= 0
        piece = np.full(n, -1, dtype=np.int64)
        if self.pieces and known.any():
            piece[known] = self.pieces_at(part[known], chainage[known])
        return GeocodeResult(street=street, sub_street_id=piece,
                             sub_street=self._piece_names[piece] if self.pieces else
                             np.full(n, "", dtype=object),
                             district=district, distance_m=dist, part_id=part, chainage_m=chainage)

    def part_id(self, street: str, part: int) -> int:
        """Index into :attr:`parts` of a street's part."""
        return self._part_index[(street, part)]

    def pieces_at(self, part_id: np.ndarray, chainage_m: np.ndarray) -> np.ndarray:
        """Index into :attr:`pieces` for points given by part and chainage (-1 where none)."""
        pos = self._offset[part_id] + chainage_m
        slot = np.clip(np.searchsorted(self._piece_starts, pos, side="right") - 1, 0, None)
        candidate = self._piece_ids[slot]
        same_part = self._piece_part[candidate] == part_id      # a dropped piece leaves a gap
        return np.where(same_part, candidate, -1)

    def geocode(self, lat, lon) -> GeocodeResult:
        """Reverse geocode WGS 84 points (degrees)."""
        lat = np.asarray(lat, dtype=np.float64).ravel()
        lon = np.asarray(lon, dtype=np.float64).ravel()
        valid = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
        x = np.full(len(lat), np.nan)
        y = np.full(len(lat), np.nan)
        if valid.any():
            x[valid], y[valid] = self.city.projection.to_utm(lon[valid], lat[valid])
        return self.geocode_utm(x, y)
