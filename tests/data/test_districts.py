"""District assignment: real polygons, the clipped-boundary fallback, and nearest centres."""

from __future__ import annotations

import numpy as np
import shapely

from data_gen.districts import District, DistrictIndex, _faces_from_partial_borders, choose_admin_level


def test_osm_place_nodes_fall_in_their_own_district(helsinki):
    # place=suburb nodes are independent of the boundary ways the regions were built from
    index = DistrictIndex(helsinki.districts)
    places = {"Kluuvi": (24.9473293, 60.1707783), "Kaartinkaupunki": (24.9472225, 60.1652138),
              "Kallio": (24.9497427, 60.1781579)}          # the Siltasaari node lies in Kallio
    lon, lat = np.array(list(places.values())).T
    x, y = helsinki.projection.to_utm(lon, lat)
    assert index.lookup(x, y).tolist() == list(places)


def test_partial_borders_split_the_frame_between_neighbours():
    # A 100 x 100 frame cut by a border way between A and B that stops 5 m short of the frame's
    # edges (its loose ends are extended to the frame), plus a way of A's alone on the west edge.
    frame = shapely.box(0, 0, 100, 100)
    border = {1: shapely.LineString([(50, 5), (50, 95)]), 2: shapely.LineString([(0, 20), (0, 80)])}
    regions = _faces_from_partial_borders(border, {1: ["A", "B"], 2: ["A"]}, frame)
    assert regions["A"].contains(shapely.Point(25, 50))
    assert not regions["A"].contains(shapely.Point(75, 50))


def test_points_outside_every_region_take_the_nearest_centre():
    districts = [District("West", shapely.box(0, 0, 10, 10), (5, 5), "boundary"),
                 District("East", None, (100, 5), "place")]
    names = DistrictIndex(districts).lookup(np.array([5.0, 60.0, 90.0]), np.array([5.0, 5.0, 5.0]))
    assert names.tolist() == ["West", "East", "East"]


def test_admin_level_choice_prefers_the_most_common_finer_level():
    assert choose_admin_level([8, 9, 10, 10, 10, 11, 11]) == 10
    assert choose_admin_level([2, 4, 8]) is None
