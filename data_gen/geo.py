"""Metric coordinates: every distance in the toolkit is in metres in the extract's UTM zone.

Degrees are not metres (at 60 N a degree of longitude is half a degree of latitude), so geometry is
projected once, when the extract is read, and all nearest-street queries run in UTM.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from pyproj import Transformer


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 / UTM zone containing (lon, lat)."""
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise ValueError(f"not a WGS 84 coordinate: lon={lon}, lat={lat}")
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def parse_utm_zone(zone: str) -> int:
    """'17N' -> 32617, '10S' -> 32710 (as Pitts-250K-style ground truth names its zone)."""
    text = zone.strip().upper()
    if len(text) < 2 or text[-1] not in "NS" or not text[:-1].isdigit() or not 1 <= int(text[:-1]) <= 60:
        raise ValueError(f"UTM zone {zone!r} is not of the form '17N' or '10S'")
    return (32600 if text[-1] == "N" else 32700) + int(text[:-1])


@dataclass(frozen=True)
class UTMProjection:
    """WGS 84 <-> one UTM zone, vectorised over numpy arrays."""

    epsg: int

    @classmethod
    def for_points(cls, lon, lat) -> UTMProjection:
        return cls(utm_epsg(float(np.mean(lon)), float(np.mean(lat))))

    @property
    def crs(self) -> str:
        return f"EPSG:{self.epsg}"

    @cached_property
    def _forward(self) -> Transformer:
        return Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)

    @cached_property
    def _inverse(self) -> Transformer:
        return Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)

    def to_utm(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        x, y = self._forward.transform(np.asarray(lon, float), np.asarray(lat, float))
        return np.asarray(x), np.asarray(y)

    def to_lonlat(self, easting, northing) -> tuple[np.ndarray, np.ndarray]:
        lon, lat = self._inverse.transform(np.asarray(easting, float), np.asarray(northing, float))
        return np.asarray(lon), np.asarray(lat)
