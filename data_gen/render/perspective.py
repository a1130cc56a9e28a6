"""Down-the-street view (heading about 0 or 180): one-point perspective.

The camera stands in a lane and looks along the street; facades on both sides converge
to the vanishing point. Looking ahead shows chainages c..c+200 m, looking back c-200..c
with the street's sides swapped, so the two headings of one place show different
buildings. Where the street ends within view, a building across the junction closes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .canvas import Canvas
from .colors import RGB, colour_name, shade
from .draw import Camera, lamp, landmark, tree, vehicle_rear
from .hashing import unit_floats
from .nuisance import Nuisance
from .spec import ViewSpec
from .style import (
    TALL_LANDMARKS,
    TREE_COLOURS,
    DistrictStyle,
    Landmark,
    Parcel,
    StreetStyle,
    landmarks_between,
    parcels_between,
    trees_at,
)
from .textures import LABEL_ID, LANDMARK_LABELS

Z_NEAR = 0.8
Z_MAX = 200.0                # how far down the street buildings are drawn (m)
Z_DETAIL = 110.0             # furniture, markings and piers only up to here
CAM_H = 2.4
CROSS_STREET_M = 14.0
SHOP_PLINTH_M = 0.6          # extra ground-floor height of buildings with shops
WINDOW_ROWS = {"tall": (0.6, 2.5), "square": (1.0, 2.2), "band": (0.9, 2.1), "paired": (0.8, 2.3)}
WINDOW_BAYS = {"tall": (3.0, 1.4), "square": (3.2, 1.5), "band": (6.0, 0.3), "paired": (3.6, 1.0)}
LIT: RGB = (250, 212, 130)
COPPER: RGB = (70, 130, 110)
MARKING: RGB = (225, 225, 215)
WIRE: RGB = (40, 40, 40)
RAIL: RGB = (150, 150, 155)
MIN_MARK_FRACTION = 0.05     # small landmarks shorter than this (of the image) go unmentioned
MIN_TALL_FRACTION = 0.0015   # tall ones need this share of pixels left uncovered by facades


def horizon_row(size: int, nz: Nuisance) -> int:
    return int(round(size * (0.56 + nz.dy)))


def building_height(p: Parcel, floor_m: float) -> float:
    return p.floors * floor_m + (SHOP_PLINTH_M if p.has_shop else 0.0)


@dataclass(frozen=True)
class StreetGeometry:
    """Camera and street cross-section of one view, in camera coordinates (X right)."""

    cam: Camera
    direction: int           # +1 looking ahead (growing chainage), -1 looking back
    chainage: float
    road_half: float
    pavement: float
    xcam: float              # camera offset right of the centre line
    z_end: float             # distance to the street's end in the viewing direction
    zf: float                # how far buildings are drawn

    def kerb(self, side: int) -> float:
        return side * self.road_half - self.xcam

    def plane(self, side: int) -> float:
        """X of the facade line on image side ``side`` (-1 left, +1 right)."""
        return side * (self.road_half + self.pavement) - self.xcam

    def street_side(self, side: int) -> str:
        """Which side of the street (its own left/right) appears on image side ``side``."""
        return ("left" if side < 0 else "right") if self.direction > 0 else ("right" if side < 0 else "left")

    def depth(self, chainage: float) -> float:
        return self.direction * (chainage - self.chainage)

    def chainage_range(self) -> tuple[float, float]:
        c = self.chainage
        return (c, c + self.zf) if self.direction > 0 else (c - self.zf, c)


def _quad(cam: Camera, X: float, y0: float, y1: float, z0: float, z1: float):
    """Screen polygon of the vertical strip X=const, heights y0..y1, depths z0..z1."""
    return ((cam.x(X, z0), cam.y(y0, z0)), (cam.x(X, z1), cam.y(y0, z1)),
            (cam.x(X, z1), cam.y(y1, z1)), (cam.x(X, z0), cam.y(y1, z0)))


def _slope(cam: Camera, X: float, dx: float, y0: float, y1: float, z0: float, z1: float):
    """A strip leaning from (X, y0) to (X+dx, y1): roofs, cornices, awnings."""
    return ((cam.x(X, z0), cam.y(y0, z0)), (cam.x(X, z1), cam.y(y0, z1)),
            (cam.x(X + dx, z1), cam.y(y1, z1)), (cam.x(X + dx, z0), cam.y(y1, z0)))


def _ground(x0: float, x1: float, z0: float, z1: float, cam: Camera):
    """Screen polygon of the ground strip x0..x1 (camera X), depths z0..z1."""
    return ((cam.x(x0, z0), cam.y(0, z0)), (cam.x(x1, z0), cam.y(0, z0)),
            (cam.x(x1, z1), cam.y(0, z1)), (cam.x(x0, z1), cam.y(0, z1)))


def _geometry(size: int, spec: ViewSpec, ss: StreetStyle, nz: Nuisance, direction: int,
              deviation_deg: float) -> StreetGeometry:
    F = 0.5 * size * nz.zoom
    turn = max(-0.35 * size, min(0.35 * size, F * math.tan(math.radians(deviation_deg))))
    cam = Camera(F, size / 2 + nz.dx * size + turn, horizon_row(size, nz), CAM_H)
    c, length = spec.chainage_m, spec.street_length_m
    z_end = max((length - c) if direction > 0 else c, 0.0)
    return StreetGeometry(cam=cam, direction=direction, chainage=c, road_half=ss.road_half_m,
                          pavement=ss.pavement_m, xcam=(0.15 + 0.6 * nz.lateral) * ss.road_half_m,
                          z_end=z_end, zf=max(min(z_end, Z_MAX), 1.5))


def _far_end_and_ground(cv: Canvas, g: StreetGeometry, spec: ViewSpec, ds: DistrictStyle,
                        ss: StreetStyle) -> None:
    """The building closing the street (or a hazy continuation), pavements and road."""
    cam, size, fm = g.cam, cv.size, ds.floor_m
    facade_label = LABEL_ID[ds.material]
    road_label = LABEL_ID["paving" if ss.paving else "asphalt"]
    if g.z_end < Z_MAX:
        zt = g.z_end + CROSS_STREET_M
        u = unit_floats("street-end", spec.street, g.direction)
        end_h = (ds.floors[0] + u[1] * (ds.floors[1] - ds.floors[0] + 1)) * fm
        cv.rect((0, cam.y(end_h, zt), size, cam.y(0, zt)), ds.facade_colours[int(u[0] * 5)], facade_label)
        wa, wb = WINDOW_ROWS[ds.window_style]
        for j in range(1, int(end_h / fm)):
            cv.rect((0, cam.y(j * fm + wb, zt), size, cam.y(j * fm + wa, zt)), ds.window_colour)
    else:
        zt = Z_MAX
        cv.rect((0, cam.y(ds.floors[1] * fm, Z_MAX), size, cam.y(0, Z_MAX)), ds.facade_colours[0], facade_label)
    cv.rect((0, cam.y(0, zt), size, size), ss.pavement_colour, LABEL_ID["pavement"])
    if g.z_end < Z_MAX:   # the crossing street
        cv.rect((0, cam.y(0, zt - 3.0), size, cam.y(0, g.z_end + 2.0)), ss.road_colour, road_label)
    cv.polygon(_ground(g.kerb(-1), g.kerb(1), Z_NEAR, g.zf + 2.0, cam), ss.road_colour, road_label)


def _landmarks(cv: Canvas, g: StreetGeometry, spec: ViewSpec, ds: DistrictStyle):
    """Draw tall landmarks (behind the facade line, with visibility probes); list small ones."""
    size, cam = cv.size, g.cam
    tall_top = ds.floors[1] * ds.floor_m + 12.0
    probes: list[tuple[int, Landmark]] = []
    small: list[tuple[float, int, Landmark]] = []
    lo, hi = g.chainage_range()
    for lm in landmarks_between(spec.street, lo, hi, spec.street_length_m):
        z = g.depth(lm.chainage)
        if z < 4.0:
            continue
        side = -1 if g.street_side(-1) == lm.side else 1
        if lm.kind in TALL_LANDMARKS:
            X = g.plane(side) + side * 3.8
            box = landmark(cv.d, cam.x(X, z), cam.y(0, z), cam.k(z), lm, max(tall_top, lm.height_m))
            if len(probes) < len(LANDMARK_LABELS):
                probes.append((LANDMARK_LABELS[len(probes)], lm))
                cv.mark(box, probes[-1][0])
        elif cam.k(z) * lm.height_m >= MIN_MARK_FRACTION * size:
            small.append((z, side, lm))
    return probes, small


def _facades(cv: Canvas, g: StreetGeometry, spec: ViewSpec, ds: DistrictStyle):
    """Facade and roof of every parcel in view, far to near; returns (area, parcel, z0, z1, side)."""
    cam, size, fm = g.cam, cv.size, ds.floor_m
    facade_label, roof_label = LABEL_ID[ds.material], LABEL_ID["roof"]
    lo, hi = g.chainage_range()
    spans = []
    for side in (-1, 1):
        for p in parcels_between(spec.street, spec.highway, spec.district, g.street_side(side), lo, hi,
                                 spec.street_length_m):
            z0, z1 = sorted((g.depth(p.start), g.depth(p.end)))
            z0, z1 = max(z0, Z_NEAR), min(z1, g.zf)
            if z1 > z0:
                spans.append((p, z0, z1, side))
    spans.sort(key=lambda t: -t[2])
    visible = []
    for p, z0, z1, side in spans:
        X, H = g.plane(side), building_height(p, fm)
        cv.polygon(_quad(cam, X, 0.0, H, z0, z1), p.colour, facade_label)
        if p.roof_style in ("gabled", "copper"):
            colour = COPPER if p.roof_style == "copper" else ds.roof_colour
            cv.polygon(_slope(cam, X, side * 4.0, H, H + 3.2, z0, z1), colour, roof_label)
        elif p.roof_style == "mansard":
            cv.polygon(_slope(cam, X, side * 1.0, H, H + 2.6, z0, z1), ds.roof_colour, roof_label)
        elif p.roof_style == "crenellated":
            cv.polygon(_quad(cam, X, H, H + 1.0, z0, z1), shade(p.colour, 0.8), facade_label)
        else:
            cv.polygon(_slope(cam, X, -side * 0.4, H - 0.3, H + 0.2, z0, z1), ds.trim_colour, roof_label)
        xa, xb = sorted((min(max(cam.x(X, z0), 0), size), min(max(cam.x(X, z1), 0), size)))
        area = (xb - xa) * max(0.0, min(cam.y(0, z1), size) - max(cam.y(H, z0), 0))
        visible.append((area, p, z0, z1, side))
    return visible


def _facade_details(cv: Canvas, g: StreetGeometry, visible, ds: DistrictStyle, night: bool) -> None:
    """Window rows (lit at night), piers between bays, shop windows and awnings."""
    cam, d, fm = g.cam, cv.d, ds.floor_m
    for _, p, z0, z1, side in visible:
        X, H = g.plane(side), building_height(p, fm)
        base = SHOP_PLINTH_M if p.has_shop else 0.0
        wa, wb = WINDOW_ROWS[p.window_style]
        for j in range(1 if p.has_shop else 0, p.floors):
            lit = night and ((p.lit * 7.31 + j * 0.618) % 1.0) < 0.45
            q = _quad(cam, X, base + j * fm + wa, base + j * fm + wb, z0, z1)
            d.polygon(q, fill=LIT if lit else ds.window_colour)
            if lit:
                cv.emit.polygon(q, fill=255)
        bay, pier = WINDOW_BAYS[p.window_style]
        if z0 < 70.0:
            zb = z0 + bay * 0.5
            while zb < z1:
                pw = max(1, round(cam.F * abs(X) * pier / (zb * zb)))
                d.line((cam.x(X, zb), cam.y(base + 0.3, zb), cam.x(X, zb), cam.y(H - 0.4, zb)),
                       fill=p.colour, width=pw)
                zb += bay
        if p.has_shop:
            d.polygon(_quad(cam, X, 0.3, 2.6, z0, z1), fill=shade(ds.window_colour, 0.8))
            d.polygon(_slope(cam, X, -side * 1.3, 3.3, 2.6, z0, z1), fill=p.awning)


def _road_lines(cv: Canvas, g: StreetGeometry, ss: StreetStyle) -> None:
    """Lane markings, kerbs, tram rails and their overhead wires."""
    cam, d, size = g.cam, cv.d, cv.size
    line_w = max(1, size // 128)
    z_lim = max(min(g.zf, 120.0), 1.5)
    if ss.markings in ("lanes", "centre"):
        dash_phase = (g.chainage * g.direction) % 9.0
        offsets = (0.0,) if ss.markings == "centre" else (0.0, -g.road_half / 2, g.road_half / 2)
        for off in offsets:
            X = off - g.xcam
            z = 11.0 - dash_phase
            while z < z_lim:
                d.polygon(_ground(X - 0.08, X + 0.08, max(z, Z_NEAR), z + 3.5, cam), fill=MARKING)
                z += 9.0
    elif ss.markings == "edge":
        for side in (-1, 1):
            X = g.kerb(side) - side * 0.4
            d.line((cam.x(X, 1.5), cam.y(0, 1.5), cam.x(X, z_lim), cam.y(0, z_lim)), fill=MARKING, width=line_w)
    for side in (-1, 1):
        X = g.kerb(side)
        d.line((cam.x(X, 1.0), cam.y(0, 1.0), cam.x(X, g.zf), cam.y(0, g.zf)), fill=ss.kerb_colour,
               width=max(1, size // 64))
    if ss.tram:
        for rail in (-2.2, -0.8, 0.8, 2.2):
            X = rail - g.xcam
            d.line((cam.x(X, 1.0), cam.y(0, 1.0), cam.x(X, z_lim), cam.y(0, z_lim)), fill=RAIL, width=line_w)
        for wire in (-1.5, 1.5):
            X = wire - g.xcam
            d.line((cam.x(X, 1.5), cam.y(6.5, 1.5), cam.x(X, z_lim), cam.y(6.5, z_lim)), fill=WIRE, width=1)


def _furniture(cv: Canvas, g: StreetGeometry, spec: ViewSpec, ss: StreetStyle, nz: Nuisance,
               small_marks) -> tuple[int, list]:
    """Trees, lamps, small landmarks, vehicles and a near tree, painted far to near.

    Returns how many street trees and which vehicles were drawn.
    """
    cam, d = g.cam, cv.d
    TREE, LAMP, MARK, VEHICLE, NEAR_TREE = range(5)
    items: list[tuple[float, int, object]] = [(z, MARK, (side, lm)) for z, side, lm in small_marks]
    n_trees = 0
    if ss.trees:
        z = ss.tree_spacing_m - (g.chainage * g.direction) % ss.tree_spacing_m
        while z < min(g.zf, Z_DETAIL):
            if z > 2.0 and trees_at(spec.street, spec.highway, g.chainage + g.direction * z):
                items.append((z, TREE, None))
                n_trees += 1
            z += ss.tree_spacing_m
    z = ss.lamp_spacing_m - (g.chainage * g.direction + 7.0) % ss.lamp_spacing_m
    while z < min(g.zf, Z_DETAIL):
        if z > 2.0:
            items.append((z, LAMP, None))
        z += ss.lamp_spacing_m
    vehicles = []
    for v in nz.vehicles:
        z = 7.0 + 35.0 * v.depth
        if z < g.zf:
            items.append((z + 0.01, VEHICLE, v))
            vehicles.append(v)
    if nz.fg_tree:
        items.append((3.2, NEAR_TREE, None))
    tree_colour = TREE_COLOURS[ss.tree_kind]
    for z, kind, obj in sorted(items, key=lambda t: -t[0]):
        k, y0 = cam.k(z), cam.y(0, z)
        if kind == MARK:
            side, lm = obj
            landmark(d, cam.x(g.plane(side) - side * g.pavement * 0.5, z), y0, k, lm, lm.height_m)
        elif kind == TREE:
            for side in (-1, 1):
                tree(d, cam.x(g.kerb(side) + side * 1.0, z), y0, k, tree_colour, ss.tree_kind)
        elif kind == LAMP and ss.lamp_style == "catenary":
            yw = cam.y(7.5, z)
            d.line((cam.x(g.plane(-1), z), yw, cam.x(g.plane(1), z), yw), fill=WIRE, width=1)
            lx = cam.x(-g.xcam, z)
            box = (lx - 0.4 * k, yw, lx + 0.4 * k, yw + 0.3 * k)
            d.rectangle(box, fill=(235, 235, 220))
            if cv.emit is not None:
                cv.emit.rectangle(box, fill=255)
        elif kind == LAMP:
            for side in (-1, 1):
                lamp(d, cam.x(g.kerb(side) + side * 0.4, z), y0, k, ss.lamp_style, ss.lamp_colour, -side, cv.emit)
        elif kind == VEHICLE:
            if obj.kind == "tram":
                X = -1.5 if obj.lane < 0.5 else 1.5
            else:
                X = 0.5 * g.road_half if obj.lane < 0.6 else -0.5 * g.road_half
            vehicle_rear(d, cam.x(X - g.xcam, z), y0, k, obj)
        else:
            side = nz.fg_tree_side
            tree(d, cam.x(g.kerb(side) + side * 1.0, z), y0, k, tree_colour, ss.tree_kind)
    return n_trees, vehicles


def draw_street_view(cv: Canvas, spec: ViewSpec, ds: DistrictStyle, ss: StreetStyle,
                     nz: Nuisance, direction: int, deviation_deg: float) -> dict:
    """Draw the view along the street onto ``cv``; returns what was drawn."""
    g = _geometry(cv.size, spec, ss, nz, direction, deviation_deg)
    _far_end_and_ground(cv, g, spec, ds, ss)
    probes, small_marks = _landmarks(cv, g, spec, ds)
    visible = _facades(cv, g, spec, ds)
    min_px = max(6.0, MIN_TALL_FRACTION * cv.size * cv.size)
    shown_marks = [lm for label, lm in probes if cv.visible_pixels(label) >= min_px]
    shown_marks += [lm for _, _, lm in small_marks]
    cv.resume(cv.texture(nz.weather == "snowy"))
    _facade_details(cv, g, visible, ds, night=nz.time_of_day in ("evening", "night"))
    _road_lines(cv, g, ss)
    n_trees, vehicles = _furniture(cv, g, spec, ss, nz, small_marks)

    main = [p for _, p, *_ in sorted(visible, key=lambda t: -t[0])[:4]]
    return {
        "view": "street ahead" if direction > 0 else "street behind",
        "facade_colours": [colour_name(p.colour) for p in main],
        "floors": [p.floors for p in main],
        "roof_styles": list(dict.fromkeys(p.roof_style for p in main)),      # most prominent first
        "shops": any(p.has_shop for p in main),
        "awning_colours": list(dict.fromkeys(colour_name(p.awning) for p in main if p.awning)),
        "street_end_visible": g.z_end < Z_MAX,
        "landmarks": shown_marks,
        "vehicles": vehicles,
        "street_trees": n_trees > 0,
        "ground_row": int(g.cam.y(0, 6.0)),
    }
