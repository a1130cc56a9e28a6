"""Per-image nuisances drawn from the ``seed`` alone: light, weather, camera, occluders, sign.

They carry no location signal (except that trams only run on tram streets), so a model
has to look past them; keeping them seed-only also makes the headings of one seed share
the same weather, like photos taken within a minute of each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from .colors import RGB
from .hashing import pick, unit_floats
from .style import StreetStyle

TIMES = ("morning", "noon", "afternoon", "evening", "night")
WEATHERS = ("clear", "overcast", "foggy", "rainy", "snowy")
SIGN_RATE = 0.25

CAR_COLOURS: tuple[RGB, ...] = ((230, 230, 228), (30, 30, 32), (150, 152, 156), (170, 30, 30),
                                (40, 70, 150), (40, 80, 50), (200, 160, 40))
BUS_COLOUR: RGB = (30, 90, 170)        # Helsinki region buses are blue
TRAM_COLOUR: RGB = (40, 130, 70)       # and trams green


@dataclass(frozen=True)
class Vehicle:
    kind: str          # car, van, bus, tram
    colour: RGB
    depth: float       # unit float: where along the view it stands
    lane: float        # unit float: which lane / horizontal position


@dataclass(frozen=True)
class Nuisance:
    time_of_day: str
    weather: str
    dx: float          # camera shift, fraction of the image size
    dy: float
    zoom: float
    roll_deg: float
    lateral: float     # unit float: camera position across the road
    vehicles: tuple[Vehicle, ...]
    fg_tree: bool
    fg_tree_side: int  # -1 left, +1 right
    sign: bool
    sign_side: int
    sign_height: float  # unit float
    noise_x: int
    noise_y: int


def make_nuisance(seed: int, street: StreetStyle) -> Nuisance:
    u = unit_floats("nuisance", seed)
    v = unit_floats("nuisance-vehicles", seed)
    n_vehicles = 0 if street.paving else pick(v[0], (0, 1, 2), (4, 4, 2))
    vehicles = []
    for i in range(n_vehicles):
        w = unit_floats("vehicle", seed, i)
        if street.tram and w[0] < 0.4 and not any(v.kind == "tram" for v in vehicles):
            kind, colour = "tram", TRAM_COLOUR
        elif street.highway in ("primary", "secondary", "tertiary", "trunk") and w[0] < 0.6:
            kind, colour = "bus", BUS_COLOUR
        else:
            kind = "van" if w[1] < 0.2 else "car"
            colour = (235, 235, 232) if kind == "van" else pick(w[2], CAR_COLOURS)
        vehicles.append(Vehicle(kind, colour, w[3], w[4]))
    vehicles.sort(key=lambda x: -x.depth)   # far first, so near ones are drawn on top
    return Nuisance(
        time_of_day=pick(u[0], TIMES, (25, 30, 25, 14, 6)),
        weather=pick(u[1], WEATHERS, (40, 30, 10, 12, 8)),
        dx=(u[2] - 0.5) * 0.08,
        dy=(u[3] - 0.5) * 0.08,
        zoom=0.9 + 0.22 * u[4],
        roll_deg=(u[5] - 0.5) * 5.0 if u[6] < 0.5 else 0.0,
        lateral=u[7],
        vehicles=tuple(vehicles),
        fg_tree=u[8] < (0.35 if street.trees else 0.12),
        fg_tree_side=-1 if u[9] < 0.5 else 1,
        sign=unit_floats("sign", seed)[0] < SIGN_RATE,
        sign_side=-1 if u[10] < 0.5 else 1,
        sign_height=u[11],
        noise_x=int(u[12] * 1_000_000),
        noise_y=int(u[13] * 1_000_000),
    )

