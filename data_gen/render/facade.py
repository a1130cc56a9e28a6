"""Side view (heading about 90 or 270): the facades of one side of the street, frontal.

The camera stands at the far kerb and faces the buildings across the road, so a view
spans some 25-60 m of street: one to four parcels, their windows, shop fronts and
roofs, the pavement with its trees and lamps, and the road in front. Facing left,
chainage grows to the right of the image; facing right, to the left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .canvas import Canvas
from .colors import colour_name, mix, shade
from .draw import Camera, lamp, landmark, tree, vehicle_side
from .nuisance import Nuisance
from .perspective import COPPER, LIT, MARKING, RAIL, WINDOW_ROWS, WIRE, building_height
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
from .textures import LABEL_ID

CAM_H = 1.8
# window style -> (bay width m, window half-width m)
WINDOW_COLS = {"tall": (3.0, 0.45), "square": (3.2, 0.65), "band": (6.0, 2.7), "paired": (3.6, 0.35)}


def horizon_row(size: int, nz: Nuisance) -> int:
    return int(round(size * (0.66 + nz.dy)))


@dataclass(frozen=True)
class SideGeometry:
    """Camera facing the facades at distance ``D``; chainage maps linearly to columns."""

    cam: Camera
    sign: int            # +1: chainage grows to the right (facing left), -1 otherwise
    chainage: float      # chainage at the image centre
    D: float             # camera to facade line (m)
    half: float          # half the street length seen at the facade line (m)
    road_half: float
    pavement: float
    length: float

    def x(self, chainage: float, z: float | None = None) -> float:
        return self.cam.x(self.sign * (chainage - self.chainage), self.D if z is None else z)

    def chainage_at(self, cols: np.ndarray) -> np.ndarray:
        return self.chainage + self.sign * (cols - self.cam.cx) * self.D / self.cam.F

    @property
    def z_kerb(self) -> float:
        return self.D - self.pavement

    @property
    def z_centre(self) -> float:
        return self.D - self.pavement - self.road_half


def _geometry(size: int, spec: ViewSpec, ss: StreetStyle, nz: Nuisance, side: str,
              deviation_deg: float) -> SideGeometry:
    sign = 1 if side == "left" else -1
    D = max(9.0, 2.0 * ss.road_half_m + ss.pavement_m)
    cam = Camera(0.4 * size * nz.zoom, size / 2 + nz.dx * size, horizon_row(size, nz), CAM_H)
    turn = D * math.tan(math.radians(max(-40.0, min(40.0, deviation_deg))))
    return SideGeometry(cam=cam, sign=sign, chainage=spec.chainage_m - sign * turn, D=D,
                        half=(size / 2 + abs(nz.dx) * size + 2) / cam.F * D,
                        road_half=ss.road_half_m, pavement=ss.pavement_m, length=spec.street_length_m)


def _landmarks(g: SideGeometry, spec: ViewSpec, side: str, size: int) -> list[tuple[float, Landmark]]:
    """Landmarks on this side within view: tall ones front the street, small ones on the pavement."""
    marks = []
    for lm in landmarks_between(spec.street, g.chainage - 2 * g.half, g.chainage + 2 * g.half, g.length):
        z = g.D - 0.4 if lm.kind in TALL_LANDMARKS else g.D - g.pavement * 0.5
        if lm.side == side and -0.03 * size < g.x(lm.chainage, z) < 1.03 * size:
            marks.append((z, lm))
    return marks


def _roof(cv: Canvas, p: Parcel, box, k: float, ds: DistrictStyle, facade_label: int) -> None:
    """The roof of one building above its facade box (k: pixels per metre)."""
    xa, ya, xb, _ = box
    roof_label = LABEL_ID["roof"]
    if p.roof_style in ("gabled", "copper"):
        colour = COPPER if p.roof_style == "copper" else ds.roof_colour
        rise = min((xb - xa) * 0.3, 5.0 * k)
        cv.polygon(((xa - 0.3 * k, ya), (xb + 0.3 * k, ya), ((xa + xb) / 2, ya - rise)), colour, roof_label)
    elif p.roof_style == "mansard":
        cv.polygon(((xa, ya), (xb, ya), (xb - 1.2 * k, ya - 2.8 * k), (xa + 1.2 * k, ya - 2.8 * k)),
                   ds.roof_colour, roof_label)
    elif p.roof_style == "crenellated":
        parapet = shade(p.colour, 0.8)
        cv.rect((xa, ya - 0.5 * k, xb, ya), parapet, facade_label)
        x = xa
        while x < xb:
            cv.rect((x, ya - 1.3 * k, min(x + 0.8 * k, xb), ya), parapet, facade_label)
            x += 1.7 * k
    else:
        cv.rect((xa - 0.3 * k, ya - 0.2 * k, xb + 0.3 * k, ya + 0.4 * k), ds.trim_colour, roof_label)


def _buildings_and_ground(cv: Canvas, g: SideGeometry, spec: ViewSpec, ds: DistrictStyle,
                          ss: StreetStyle, side: str) -> list[tuple[Parcel, tuple]]:
    """Hazy back row, facades with roofs, pavement and road; returns (parcel, box) pairs."""
    cam, size, fm = g.cam, cv.size, ds.floor_m
    facade_label = LABEL_ID[ds.material]
    back_z = g.D + 45.0    # seen through gaps at street ends
    cv.rect((0, cam.y(ds.floors[0] * fm + 6.0, back_z), size, cam.y(0, back_z)),
            mix(ds.facade_colours[1], (200, 205, 210), 0.45))
    boxes = []
    for p in parcels_between(spec.street, spec.highway, spec.district, side,
                             g.chainage - g.half, g.chainage + g.half, g.length):
        xa, xb = sorted((g.x(max(p.start, 0.0)), g.x(min(p.end, g.length))))
        box = (xa, cam.y(building_height(p, fm), g.D), xb, cam.y(0, g.D))
        cv.rect(box, p.colour, facade_label)
        _roof(cv, p, box, cam.k(g.D), ds, facade_label)
        boxes.append((p, box))
    y_kerb = cam.y(0, g.z_kerb)
    cv.rect((0, cam.y(0, g.D), size, y_kerb), ss.pavement_colour, LABEL_ID["pavement"])
    cv.rect((0, y_kerb, size, size), ss.road_colour, LABEL_ID["paving" if ss.paving else "asphalt"])
    return boxes


def _windows(arr: np.ndarray, emit: np.ndarray | None, g: SideGeometry, boxes, ds: DistrictStyle) -> None:
    """Window grids straight into the pixel array: columns by bay, rows by floor."""
    size, cam, fm = arr.shape[0], g.cam, ds.floor_m
    for p, (xa, ya, xb, yb) in boxes:
        x0, x1 = max(int(math.ceil(xa)), 0), min(int(xb), size)
        y0, y1 = max(int(math.ceil(ya)), 0), min(int(yb), size)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        bay, half_w = WINDOW_COLS[p.window_style]
        width_m = p.end - p.start
        bay = width_m / max(1, round(width_m / bay))
        pos = np.abs((g.chainage_at(np.arange(x0, x1) + 0.5) - p.start) % bay - bay / 2)
        if p.window_style == "paired":
            cols = np.abs(pos - 0.5) < half_w
        else:
            cols = pos < min(half_w, bay / 2 - 0.25)
        height = CAM_H + (cam.cy - (np.arange(y0, y1) + 0.5)) * g.D / cam.F - (0.6 if p.has_shop else 0.0)
        floor = np.floor(height / fm)
        frac = height - floor * fm
        wa, wb = WINDOW_ROWS[p.window_style]
        rows = (frac >= wa) & (frac <= wb) & (floor >= (1 if p.has_shop else 0)) & (floor < p.floors)
        if not cols.any() or not rows.any():
            continue
        cidx = np.nonzero(cols)[0] + x0
        lit = (((p.lit * 7.31 + floor * 0.618) % 1.0) < 0.45) if emit is not None else np.zeros_like(rows)
        dark_rows = np.nonzero(rows & ~lit)[0] + y0
        arr[np.ix_(dark_rows, cidx)] = ds.window_colour
        if emit is not None:
            lit_rows = np.nonzero(rows & lit)[0] + y0
            arr[np.ix_(lit_rows, cidx)] = LIT
            emit[np.ix_(lit_rows, cidx)] = 255


def _fronts(cv: Canvas, g: SideGeometry, boxes, ds: DistrictStyle, ss: StreetStyle) -> None:
    """Dormers, shop windows with awnings, doors and party walls."""
    d, k = cv.d, g.cam.k(g.D)
    for p, (xa, ya, xb, yb) in boxes:
        if p.roof_style == "mansard":
            x = xa + 2.5 * k
            while x < xb - 2.5 * k:
                d.rectangle((x, ya - 2.2 * k, x + 0.8 * k, ya - 1.0 * k), fill=ds.window_colour)
                x += 3.5 * k
        if p.has_shop and xb - xa > 2.0 * k:
            d.rectangle((xa + 0.8 * k, yb - 2.6 * k, xb - 0.8 * k, yb - 0.3 * k), fill=shade(ds.window_colour, 0.8))
            d.polygon(((xa + 0.5 * k, yb - 3.4 * k), (xb - 0.5 * k, yb - 3.4 * k),
                       (xb - 0.2 * k, yb - 2.6 * k), (xa + 0.2 * k, yb - 2.6 * k)), fill=p.awning)
        elif not p.has_shop:
            mid = (xa + xb) / 2
            d.rectangle((mid - 0.6 * k, yb - 2.4 * k, mid + 0.6 * k, yb), fill=ss.accent_colour)
        d.line((xa, ya, xa, yb), fill=shade(p.colour, 0.7), width=1)


def _road_lines(cv: Canvas, g: SideGeometry, ss: StreetStyle) -> None:
    """Kerb, lane markings, tram rails and overhead wires (horizontal in this view)."""
    cam, d, size = g.cam, cv.d, cv.size
    line_w = max(1, size // 128)
    d.line((0, cam.y(0, g.z_kerb), size, cam.y(0, g.z_kerb)), fill=ss.kerb_colour, width=max(1, size // 64))
    zc, w = g.z_centre, g.road_half
    if ss.markings == "edge" and g.z_kerb - 0.4 > 1.0:
        y = cam.y(0, g.z_kerb - 0.4)
        d.line((0, y, size, y), fill=MARKING, width=line_w)
    elif ss.markings in ("lanes", "centre"):
        for z in ((zc,) if ss.markings == "centre" else (zc, zc + w / 2, zc - w / 2)):
            if z <= 1.0:
                continue
            y, thick = cam.y(0, z), max(1.0, 0.12 * cam.k(z))
            ch = math.floor((g.chainage - 2 * g.half) / 9.0) * 9.0
            while ch < g.chainage + 2 * g.half:
                xa, xb = sorted((g.x(ch, z), g.x(ch + 3.5, z)))
                d.rectangle((xa, y, xb, y + thick), fill=MARKING)
                ch += 9.0
    if ss.tram:
        for z in (zc - 2.2, zc - 0.8, zc + 0.8, zc + 2.2):
            if z > 1.0:
                d.line((0, cam.y(0, z), size, cam.y(0, z)), fill=RAIL, width=line_w)
        for z in (zc - 1.5, zc + 1.5):
            if z > 1.0:
                d.line((0, cam.y(6.5, z), size, cam.y(6.5, z)), fill=WIRE, width=1)


def _furniture(cv: Canvas, g: SideGeometry, spec: ViewSpec, ss: StreetStyle, nz: Nuisance,
               marks) -> tuple[int, list]:
    """Street trees, lamps, small landmarks, vehicles and a near tree; returns (trees, vehicles)."""
    cam, d, size = g.cam, cv.d, cv.size
    tree_colour = TREE_COLOURS[ss.tree_kind]
    z_tree = g.z_kerb + 0.6
    n_trees = 0
    if ss.trees:
        ch = math.floor((g.chainage - g.half - 4.0) / ss.tree_spacing_m) * ss.tree_spacing_m
        while ch < g.chainage + g.half + 4.0:
            if 0.0 <= ch <= g.length and trees_at(spec.street, spec.highway, ch):
                n_trees += 1
                tree(d, g.x(ch, z_tree), cam.y(0, z_tree), cam.k(z_tree), tree_colour, ss.tree_kind)
            ch += ss.tree_spacing_m
    z_lamp = g.z_kerb + 0.3
    ch = math.floor((g.chainage - g.half - 2.0) / ss.lamp_spacing_m) * ss.lamp_spacing_m + 7.0
    while ch < g.chainage + g.half + 2.0:
        if 0.0 <= ch <= g.length:
            if ss.lamp_style == "catenary":
                d.line((g.x(ch), cam.y(7.5, g.D), g.x(ch, 1.5), cam.y(7.5, 1.5)), fill=WIRE, width=1)
            else:
                lamp(d, g.x(ch, z_lamp), cam.y(0, z_lamp), cam.k(z_lamp), ss.lamp_style, ss.lamp_colour, 1, cv.emit)
        ch += ss.lamp_spacing_m
    for z, lm in marks:
        if lm.kind not in TALL_LANDMARKS:
            landmark(d, g.x(lm.chainage, z), cam.y(0, z), cam.k(z), lm, lm.height_m)
    for v in nz.vehicles:
        if v.kind == "tram":
            z = g.z_centre + (1.5 if v.lane < 0.5 else -1.5)
        else:
            z = g.z_centre + (0.5 if v.lane < 0.6 else -0.5) * g.road_half
        z = max(z, 3.0)
        vehicle_side(d, size * (0.1 + 0.8 * v.depth), cam.y(0, z), cam.k(z), v)
    if nz.fg_tree:
        tree(d, size * (0.5 + 0.38 * nz.fg_tree_side), cam.y(0, 2.6), cam.k(2.6), tree_colour, ss.tree_kind)
    return n_trees, list(nz.vehicles)


def draw_facade_view(cv: Canvas, spec: ViewSpec, ds: DistrictStyle, ss: StreetStyle,
                     nz: Nuisance, side: str, deviation_deg: float) -> dict:
    """Draw the ``side`` ("left"/"right") facades onto ``cv``; returns what was drawn."""
    size = cv.size
    g = _geometry(size, spec, ss, nz, side, deviation_deg)
    marks = _landmarks(g, spec, side, size)
    boxes = _buildings_and_ground(cv, g, spec, ds, ss, side)
    arr = cv.texture(nz.weather == "snowy")
    night = nz.time_of_day in ("evening", "night")
    emit = np.array(cv.emit_img) if night else None
    _windows(arr, emit, g, boxes, ds)
    cv.resume(arr)
    if emit is not None:
        cv.set_emissive(emit)
    _fronts(cv, g, boxes, ds, ss)
    tall_top = ds.floors[1] * ds.floor_m + 12.0
    for z, lm in marks:
        if lm.kind in TALL_LANDMARKS:
            landmark(cv.d, g.x(lm.chainage, z), g.cam.y(0, z), g.cam.k(z), lm, max(tall_top, lm.height_m))
    _road_lines(cv, g, ss)
    n_trees, vehicles = _furniture(cv, g, spec, ss, nz, marks)

    shown = sorted(((min(b[2], size) - max(b[0], 0), p) for p, b in boxes), key=lambda t: -t[0])
    main = [p for width, p in shown[:4] if width > 0]
    return {
        "view": f"{side} facades",
        "facade_colours": [colour_name(p.colour) for p in main],
        "floors": [p.floors for p in main],
        "roof_styles": list(dict.fromkeys(p.roof_style for p in main)),      # most prominent first
        "shops": any(p.has_shop for p in main),
        "awning_colours": list(dict.fromkeys(colour_name(p.awning) for p in main if p.awning)),
        "street_end_visible": g.chainage - g.half < 0.0 or g.chainage + g.half > g.length,
        "landmarks": [lm for _, lm in marks],
        "vehicles": vehicles,
        "street_trees": n_trees > 0,
        "ground_row": int(min(g.cam.y(0, g.z_kerb) + 0.1 * size, size - 1)),
    }
