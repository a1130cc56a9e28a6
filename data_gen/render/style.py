"""Deterministic looks derived from names: the location signal in every rendered image.

Three scales, strongest first:

- ``district_style``: facade palette, building height, material, roof, windows, skyline.
- ``street_style``: road width and markings (from the OSM highway class), tram rails,
  pavement and kerb colours, tree rows, lamp posts, shop awnings, building rhythm.
- ``parcel_at`` / ``landmark_in_bucket``: the buildings and rare landmarks along a street,
  indexed by chainage, so nearby places share buildings and far places do not.

Everything is cached: a city has few districts and streets, and an image needs only
a handful of parcels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from .colors import RGB, colour_name, hsv, mix, shade
from .hashing import pick, smooth_noise, unit_floats

MATERIALS = ("brick", "plaster", "stone", "glass", "wood", "concrete")
ROOF_STYLES = ("flat", "gabled", "mansard", "crenellated", "copper")
WINDOW_STYLES = ("tall", "square", "band", "paired")
SKYLINES = ("chimneys", "towers", "cranes", "domes", "flat")
HEIGHT_CLASSES = {"low": (2, 3), "mid-rise": (4, 5), "tall": (6, 8)}
LANDMARK_KINDS = ("church tower", "statue", "clock", "kiosk", "dome")
TALL_LANDMARKS = ("church tower", "dome")     # rise above the roofline
LANDMARK_BUCKET_M = 150.0
LANDMARK_RATE = 0.3

_GLASS_TINT: RGB = (120, 150, 165)
# the odd building out: a strongly coloured facade among the district's palette (local cue)
CONTRAST_COLOURS: tuple[RGB, ...] = ((196, 64, 52), (232, 200, 86), (240, 238, 230), (86, 108, 150),
                                     (150, 186, 140), (226, 150, 120), (110, 70, 60), (60, 60, 64))
CONTRAST_RATE = 0.18


@dataclass(frozen=True)
class DistrictStyle:
    name: str
    palette_name: str
    facade_colours: tuple[RGB, ...]
    height_class: str
    floors: tuple[int, int]
    floor_m: float
    material: str
    roof_style: str
    roof_colour: RGB
    window_style: str
    window_colour: RGB
    trim_colour: RGB
    skyline: str
    skyline_colour: RGB


@lru_cache(maxsize=1024)
def district_style(district: str) -> DistrictStyle:
    u = unit_floats("district", district)
    hue = u[0] * 360.0
    sat = 0.22 + 0.5 * u[1]
    val = 0.45 + 0.45 * u[2]
    material = pick(u[4], MATERIALS, (3, 4, 2, 1.2, 1, 1.5))
    colours = []
    for j in range(5):
        v = unit_floats("district", district, "colour", j)
        c = hsv(hue + (v[0] - 0.5) * 24.0, sat + (v[1] - 0.5) * 0.14, val + (v[2] - 0.5) * 0.18)
        if material == "glass":
            c = mix(c, _GLASS_TINT, 0.45)
        colours.append(c)
    height_class = pick(u[3], tuple(HEIGHT_CLASSES), (1, 1.6, 1))
    if material == "wood" and height_class == "tall":
        height_class = "mid-rise"
    base = hsv(hue, sat, val)
    roof_style = pick(u[5], ROOF_STYLES, (3, 2, 2, 1, 1))
    roof_colour = pick(u[6], ((60, 62, 66), (150, 60, 45), (70, 130, 110), (40, 40, 44), (110, 80, 60)))
    return DistrictStyle(
        name=district,
        palette_name=colour_name(mix(base, _GLASS_TINT, 0.45) if material == "glass" else base),
        facade_colours=tuple(colours),
        height_class=height_class,
        floors=HEIGHT_CLASSES[height_class],
        floor_m=3.0 + 0.8 * u[7],
        material=material,
        roof_style=roof_style,
        roof_colour=(70, 130, 110) if roof_style == "copper" else roof_colour,
        window_style=pick(u[8], WINDOW_STYLES),
        window_colour=hsv(200 + 40 * u[9], 0.25 + 0.3 * u[10], 0.18 + 0.22 * u[11]),
        trim_colour=pick(u[12], ((235, 232, 220), (60, 55, 50), (200, 190, 160), shade(base, 0.7))),
        skyline=pick(u[13], SKYLINES, (2, 2, 1, 1, 2)),
        skyline_colour=hsv(hue, 0.1, 0.55 + 0.15 * u[14]),
    )


# OSM highway class -> (road half-width range m, markings, tram probability, shop rate)
_HIGHWAY = {
    "motorway": ((10.0, 12.0), "lanes", 0.0, 0.0),
    "trunk": ((9.0, 11.0), "lanes", 0.2, 0.3),
    "primary": ((8.0, 10.5), "lanes", 0.6, 0.8),
    "secondary": ((6.5, 8.5), "centre", 0.4, 0.7),
    "tertiary": ((5.0, 6.5), "centre", 0.15, 0.5),
    "residential": ((3.8, 5.0), "none", 0.0, 0.25),
    "unclassified": ((3.8, 5.0), "edge", 0.0, 0.2),
    "living_street": ((3.0, 4.0), "none", 0.0, 0.2),
    "service": ((2.5, 3.5), "none", 0.0, 0.05),
    "pedestrian": ((4.0, 6.5), "paving", 0.0, 0.9),
    "footway": ((2.5, 4.0), "paving", 0.0, 0.3),
    "cycleway": ((2.5, 3.5), "edge", 0.0, 0.1),
}
_DEFAULT_HIGHWAY = ((4.0, 5.5), "none", 0.0, 0.3)

PAVEMENT_COLOURS = ((170, 170, 166), (150, 96, 84), (196, 186, 160), (110, 110, 112), (186, 150, 120))
AWNING_COLOURS = ((170, 40, 40), (40, 100, 60), (40, 70, 140), (210, 170, 50), (200, 200, 196), (110, 50, 110))
LAMP_STYLES = ("classic", "modern", "catenary")
TREE_KINDS = ("linden", "birch", "maple")
TREE_COLOURS = {"linden": (62, 110, 52), "birch": (120, 150, 70), "maple": (80, 120, 40)}


@dataclass(frozen=True)
class StreetStyle:
    street: str
    highway: str
    road_half_m: float
    pavement_m: float
    markings: str
    tram: bool
    road_colour: RGB
    paving: bool
    pavement_colour: RGB
    kerb_colour: RGB
    trees: bool
    tree_kind: str
    tree_spacing_m: float
    lamp_style: str
    lamp_colour: RGB
    lamp_spacing_m: float
    awning_colour: RGB | None     # main shop-awning colour; stretches of the street use awning_alt
    awning_alt: RGB | None
    shop_rate: float
    parcel_m: float
    colour_weights: tuple[float, ...]
    accent_colour: RGB


@lru_cache(maxsize=8192)
def street_style(street: str, highway: str) -> StreetStyle:
    u = unit_floats("street", street)
    (w0, w1), markings, tram_p, shop_rate = _HIGHWAY.get(highway, _DEFAULT_HIGHWAY)
    paving = markings == "paving"
    if markings == "centre" and u[1] < 0.25:
        markings = "none"
    road_colour = (
        pick(u[2], ((150, 120, 100), (160, 156, 150), (120, 100, 96), (176, 166, 140)))
        if paving else shade((70, 70, 72), 0.8 + 0.45 * u[2])
    )
    tree_p = {"primary": 0.5, "secondary": 0.45, "residential": 0.45, "pedestrian": 0.35}.get(highway, 0.3)
    has_shops = u[9] < min(0.95, shop_rate + 0.1)
    weights = [unit_floats("street", street, "w", j)[0] ** 2.5 + 0.02 for j in range(5)]
    total = sum(weights)
    return StreetStyle(
        street=street,
        highway=highway,
        road_half_m=w0 + (w1 - w0) * u[0],
        pavement_m=2.0 + 2.0 * u[3],
        markings=markings,
        tram=u[4] < tram_p,
        road_colour=road_colour,
        paving=paving,
        pavement_colour=pick(u[5], PAVEMENT_COLOURS),
        kerb_colour=shade((150, 150, 150), 0.7 + 0.5 * u[6]),
        trees=u[7] < tree_p,
        tree_kind=pick(u[8], TREE_KINDS),
        tree_spacing_m=8.0 + 6.0 * u[10],
        lamp_style=pick(u[11], LAMP_STYLES),
        lamp_colour=pick(u[12], ((40, 60, 45), (90, 92, 96), (30, 30, 32))),
        lamp_spacing_m=20.0 + 12.0 * u[13],
        awning_colour=pick(u[14], AWNING_COLOURS) if has_shops else None,
        awning_alt=pick(unit_floats("street", street, "awning")[0], AWNING_COLOURS) if has_shops else None,
        shop_rate=0.35 + 0.55 * shop_rate if has_shops else 0.0,
        parcel_m=14.0 + 18.0 * u[15],
        colour_weights=tuple(w / total for w in weights),
        accent_colour=hsv(unit_floats("street", street, "accent")[0] * 360, 0.55, 0.55),
    )


@dataclass(frozen=True)
class Parcel:
    """One building along one side of a street, between two chainages (metres)."""

    side: str
    index: int
    start: float
    end: float
    colour: RGB
    floors: int
    has_shop: bool
    roof_style: str
    window_style: str
    awning: RGB | None    # shop awning colour (None: no shop)
    lit: float            # fraction of lit windows at night


def _boundary(street: str, side: str, k: int, parcel_m: float) -> float:
    return (k + 0.35 * (unit_floats("bound", street, side, k)[0] - 0.5)) * parcel_m


@lru_cache(maxsize=65536)
def parcel_at(street: str, highway: str, district: str, side: str, k: int) -> Parcel:
    ds, ss = district_style(district), street_style(street, highway)
    start = _boundary(street, side, k, ss.parcel_m)
    end = _boundary(street, side, k + 1, ss.parcel_m)
    mid = 0.5 * (start + end)
    u = unit_floats("parcel", street, side, k)
    # colour: street-weighted palette choice, lightness drifting smoothly along the street
    idx = pick(u[0], tuple(range(5)), ss.colour_weights)
    drift = smooth_noise(f"{street}|{side}|light", mid, 120.0) - 0.5
    base = pick(u[9], CONTRAST_COLOURS) if u[10] < CONTRAST_RATE else ds.facade_colours[idx]
    colour = shade(base, 1.0 + 0.25 * drift + 0.08 * (u[1] - 0.5))
    lo, hi = ds.floors
    height_drift = 4.0 * (smooth_noise(f"{street}|height", mid, 160.0) - 0.5)
    floors = int(round(lo + (hi - lo) * u[2] + height_drift))
    has_shop = u[3] < ss.shop_rate
    alt = smooth_noise(f"{street}|awning", mid, 150.0) > 0.6
    return Parcel(
        side=side, index=k, start=start, end=end, colour=colour,
        floors=max(1, min(10, floors)),
        has_shop=has_shop,
        awning=(ss.awning_alt if alt else ss.awning_colour) if has_shop else None,
        roof_style=ds.roof_style if u[4] < 0.8 else pick(u[5], ROOF_STYLES),
        window_style=ds.window_style if u[6] < 0.85 else pick(u[7], WINDOW_STYLES),
        lit=u[8],
    )


def trees_at(street: str, highway: str, chainage: float) -> bool:
    """Whether the street's tree row (if any) runs at ``chainage``: rows have gaps."""
    return street_style(street, highway).trees and smooth_noise(f"{street}|trees", chainage, 180.0) > 0.3


def parcels_between(street: str, highway: str, district: str, side: str,
                    c0: float, c1: float, length: float) -> list[Parcel]:
    """Parcels on ``side`` overlapping chainages [c0, c1], clipped to the street's extent."""
    c0, c1 = max(c0, 0.0), min(c1, length)
    if c1 <= c0:
        return []
    pm = street_style(street, highway).parcel_m
    k0 = math.floor(c0 / pm) - 1
    k1 = math.floor(c1 / pm) + 1
    out = []
    for k in range(k0, k1 + 1):
        p = parcel_at(street, highway, district, side, k)
        if p.end > c0 and p.start < c1:
            out.append(p)
    return out


@dataclass(frozen=True)
class Landmark:
    kind: str
    chainage: float
    side: str
    colour: RGB
    colour_name: str
    height_m: float


_LANDMARK_COLOURS = {
    "church tower": ((200, 70, 50), (232, 230, 222), (130, 130, 126)),
    "statue": ((40, 120, 80), (110, 80, 50), (30, 30, 32)),
    "clock": ((30, 30, 32), (40, 90, 60), (120, 30, 30)),
    "kiosk": ((40, 120, 60), (190, 40, 40), (220, 180, 40), (40, 80, 160)),
    "dome": ((215, 175, 60), (70, 140, 110), (50, 80, 170), (180, 60, 50)),
}


@lru_cache(maxsize=65536)
def landmark_in_bucket(street: str, bucket: int) -> Landmark | None:
    """The landmark (or none) in chainage bucket ``bucket`` (150 m) of ``street``."""
    u = unit_floats("landmark", street, bucket)
    if u[0] >= LANDMARK_RATE:
        return None
    kind = pick(u[1], LANDMARK_KINDS)
    colour = pick(u[2], _LANDMARK_COLOURS[kind])
    height = {"church tower": 30.0, "dome": 22.0, "statue": 5.6, "clock": 4.9, "kiosk": 3.4}[kind]
    if kind in TALL_LANDMARKS:
        height *= 0.85 + 0.3 * u[5]
    return Landmark(
        kind=kind,
        chainage=(bucket + 0.15 + 0.7 * u[3]) * LANDMARK_BUCKET_M,
        side="left" if u[4] < 0.5 else "right",
        colour=colour,
        colour_name=colour_name(colour),
        height_m=height,
    )


def landmarks_between(street: str, c0: float, c1: float, length: float) -> list[Landmark]:
    """Landmarks with chainage inside [c0, c1] and on the street."""
    lo, hi = max(c0, 0.0), min(c1, length)
    out = []
    for b in range(math.floor(lo / LANDMARK_BUCKET_M), math.floor(hi / LANDMARK_BUCKET_M) + 1):
        lm = landmark_in_bucket(street, b)
        if lm is not None and lo <= lm.chainage <= hi:
            out.append(lm)
    return out
