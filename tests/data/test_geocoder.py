"""Vectorised reverse geocoding on the real Helsinki streets."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from data_gen.reverse_geocoder import ReverseGeocoder


@pytest.fixture(scope="module")
def geocoder(helsinki, helsinki_pieces):
    return ReverseGeocoder(helsinki, helsinki_pieces)


def _centre_line_samples(city, spacing=7.0, clear_of_junctions=20.0):
    junctions = shapely.points([(i.x, i.y) for i in city.intersections])
    tree = shapely.STRtree(junctions)
    xs, ys, names = [], [], []
    for street in city.streets:
        for part in street.parts:
            points = shapely.line_interpolate_point(part, np.arange(1.0, part.length - 1.0, spacing))
            near = tree.query(points, predicate="dwithin", distance=clear_of_junctions)[0]
            keep = np.setdiff1d(np.arange(len(points)), near)
            xs.append(shapely.get_x(points[keep]))
            ys.append(shapely.get_y(points[keep]))
            names += [street.name] * len(keep)
    return np.concatenate(xs), np.concatenate(ys), np.array(names, dtype=object)


def test_points_on_a_centre_line_come_back_as_that_street(helsinki, geocoder):
    x, y, names = _centre_line_samples(helsinki)
    assert len(x) > 1500
    result = geocoder.geocode_utm(x, y)
    assert (result.street == names).mean() == 1.0
    assert np.nanmax(result.distance_m) < 1e-6
    assert (result.sub_street_id >= 0).all()


def test_lat_lon_input_matches_utm_input(helsinki, geocoder):
    x, y, names = _centre_line_samples(helsinki, spacing=50.0)
    lon, lat = helsinki.projection.to_lonlat(x, y)
    assert (geocoder.geocode(lat, lon).street == names).all()


def test_point_100m_off_any_street_is_unknown(helsinki, geocoder):
    streets = shapely.union_all([p for s in helsinki.streets for p in s.parts])
    x0, y0, x1, y1 = streets.bounds
    grid = shapely.points(np.stack(np.meshgrid(np.linspace(x0, x1, 60),
                                               np.linspace(y0, y1, 60)), -1).reshape(-1, 2))
    far = grid[shapely.distance(streets, grid) >= 100.0]
    assert len(far) > 0, "the extract should have open ground (parks, water) 100 m from streets"
    result = geocoder.geocode_utm(shapely.get_x(far), shapely.get_y(far))
    assert (result.street == "").all()
    assert (result.sub_street_id == -1).all()
    assert (result.district == "").all()


def test_cut_off_is_respected_both_ways(helsinki):
    street = helsinki.street("Fabianinkatu").parts[0]
    mid = street.interpolate(0.5, normalized=True)
    ahead = street.interpolate(0.5 + 1.0 / street.length, normalized=True)
    dx, dy = ahead.x - mid.x, ahead.y - mid.y
    nx, ny = -dy / np.hypot(dx, dy), dx / np.hypot(dx, dy)     # unit normal to the street
    geocoder = ReverseGeocoder(helsinki, max_distance_m=10.0)
    result = geocoder.geocode_utm([mid.x + 4 * nx, mid.x + 40 * nx], [mid.y + 4 * ny, mid.y + 40 * ny])
    assert result.street[0] == "Fabianinkatu"
    assert result.distance_m[0] == pytest.approx(4.0, abs=0.01)
    assert result.street[1] == ""


def test_invalid_coordinates_are_unknown_not_errors(geocoder):
    result = geocoder.geocode([np.nan, 95.0, 60.17], [24.94, 24.94, np.inf])
    assert (result.street == "").all()
    assert (result.part_id == -1).all()
