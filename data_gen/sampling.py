"""Image locations along the streets: evenly spaced, each with its street direction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from data_gen.osm import CityMap


@dataclass
class Locations:
    """Parallel arrays, one entry per location (ordered by street name, part, chainage)."""

    street: np.ndarray          # object
    highway: np.ndarray         # object
    part: np.ndarray            # int
    chainage_m: np.ndarray      # along the part
    street_chainage_m: np.ndarray  # along the whole street (parts laid end to end)
    x: np.ndarray
    y: np.ndarray
    bearing: np.ndarray         # street direction at the point, degrees clockwise from north

    def __len__(self) -> int:
        return len(self.x)


def sample_along_streets(city: CityMap, spacing_m: float) -> Locations:
    """One location every ``spacing_m`` metres along every street part (at least one per part)."""
    if spacing_m <= 0:
        raise ValueError(f"spacing_m must be positive, got {spacing_m}")
    cols = {k: [] for k in ("street", "highway", "part", "chainage", "street_chainage", "x", "y",
                            "bearing")}
    for street in city.streets:
        offset = 0.0
        for i, part in enumerate(street.parts):
            length = part.length
            d = np.arange(spacing_m / 2.0, length, spacing_m) if length > spacing_m else np.array([length / 2.0])
            at = shapely.line_interpolate_point(part, d)
            ahead = shapely.line_interpolate_point(part, np.minimum(d + 1.0, length))
            behind = shapely.line_interpolate_point(part, np.maximum(d - 1.0, 0.0))
            dx = shapely.get_x(ahead) - shapely.get_x(behind)
            dy = shapely.get_y(ahead) - shapely.get_y(behind)
            cols["street"].append(np.full(len(d), street.name, dtype=object))
            cols["highway"].append(np.full(len(d), street.highway, dtype=object))
            cols["part"].append(np.full(len(d), i))
            cols["chainage"].append(d)
            cols["street_chainage"].append(d + offset)
            cols["x"].append(shapely.get_x(at))
            cols["y"].append(shapely.get_y(at))
            cols["bearing"].append(np.degrees(np.arctan2(dx, dy)) % 360.0)
            offset += length
    c = {k: np.concatenate(v) for k, v in cols.items()}
    return Locations(c["street"], c["highway"], c["part"].astype(np.int64), c["chainage"],
                     c["street_chainage"], c["x"], c["y"], c["bearing"])
