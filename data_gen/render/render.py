"""``render_view``: one deterministic street-view image, caption and attributes per ViewSpec."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from . import facade, perspective
from .atmosphere import finish, paint_skyline, roll_and_zoom, sky_gradient
from .canvas import Canvas
from .caption import make_caption
from .colors import colour_name, mix
from .draw import street_sign
from .nuisance import make_nuisance
from .spec import DEFAULT_SIZE, RenderedView, ViewSpec
from .style import district_style, street_style

MODES = ("ahead", "left", "behind", "right")


def view_mode(heading: float) -> tuple[str, float]:
    """Nearest of ahead/left/behind/right for ``heading`` and the signed deviation from it."""
    h = heading % 360.0 if math.isfinite(heading) else 0.0
    k = int(((h + 45.0) % 360.0) // 90.0)
    dev = h - 90.0 * k
    if dev > 180.0:
        dev -= 360.0
    return MODES[k], dev


def render_view(spec: ViewSpec, size: int = DEFAULT_SIZE) -> RenderedView:
    ds = district_style(spec.district)
    ss = street_style(spec.street, spec.highway)
    nz = make_nuisance(spec.seed, ss)
    mode, dev = view_mode(spec.heading)
    street_view = mode in ("ahead", "behind")
    horizon = (perspective.horizon_row if street_view else facade.horizon_row)(size, nz)

    sky = sky_gradient(nz.time_of_day, nz.weather, size, horizon)
    haze = tuple(int(v) for v in sky[min(max(horizon - 1, 0), size - 1), 0])
    paint_skyline(sky, spec.district, horizon, int(nz.dx * size), mix(ds.skyline_colour, haze, 0.45))
    cv = Canvas(sky, night=nz.time_of_day in ("evening", "night"))
    if street_view:
        drawn = perspective.draw_street_view(cv, spec, ds, ss, nz, 1 if mode == "ahead" else -1, dev)
    else:
        drawn = facade.draw_facade_view(cv, spec, ds, ss, nz, mode, dev)
    sign_text = spec.street if nz.sign and spec.street else None
    if sign_text:
        street_sign(cv.img, cv.d, sign_text, nz.sign_side, nz.sign_height, drawn["ground_row"])

    image = finish(np.asarray(cv.img, dtype=np.float32), nz.time_of_day, nz.weather, horizon,
                   (nz.noise_x, nz.noise_y), cv.emissive())
    if nz.roll_deg:
        image = np.asarray(roll_and_zoom(Image.fromarray(image), nz.roll_deg))

    floors = drawn["floors"]
    mean_floors = sum(floors) / len(floors) if floors else float(sum(ds.floors)) / 2
    attributes = {
        "view": drawn["view"],
        "district_palette": ds.palette_name,
        "facade_colours": drawn["facade_colours"],
        "dominant_colour": drawn["facade_colours"][0] if drawn["facade_colours"] else None,
        "height_class": "low" if mean_floors < 3.5 else "mid-rise" if mean_floors < 5.5 else "tall",
        "floors": floors,
        "material": ds.material,
        "roof_style": ds.roof_style,
        "roof_styles": drawn["roof_styles"],
        "window_style": ds.window_style,
        "skyline": ds.skyline,
        "road": {"highway": spec.highway, "width_m": round(2 * ss.road_half_m, 1), "markings": ss.markings,
                 "tram_rails": ss.tram, "paving": ss.paving},
        "pavement_colour": colour_name(ss.pavement_colour),
        "street_trees": drawn["street_trees"],
        "tree_kind": ss.tree_kind if drawn["street_trees"] or nz.fg_tree else None,
        "lamp_style": ss.lamp_style,
        "shops": drawn["shops"],
        "awning_colours": drawn["awning_colours"],
        "landmark": drawn["landmarks"][0].kind if drawn["landmarks"] else None,
        "landmarks": [{"kind": lm.kind, "colour": lm.colour_name, "chainage_m": round(lm.chainage, 1),
                       "side": lm.side} for lm in drawn["landmarks"]],
        "street_end_visible": drawn["street_end_visible"],
        "sign_text": sign_text,
        "weather": nz.weather,
        "time_of_day": nz.time_of_day,
        "vehicles": [f"{colour_name(v.colour)} {v.kind}" for v in drawn["vehicles"]],
        "foreground_tree": nz.fg_tree,
        "camera": {"dx": round(nz.dx, 4), "dy": round(nz.dy, 4), "zoom": round(nz.zoom, 4),
                   "roll_deg": round(nz.roll_deg, 3), "deviation_deg": round(dev, 3)},
    }
    return RenderedView(image=image, caption=make_caption(attributes), attributes=attributes)
