"""The city map as inline SVG, drawn from the sub-street geometry of ``addresses.json``.

Why SVG from our own geometry: the app must work offline (no map tiles), the street network is
already in the dataset (every candidate sub-street with its OSM line in UTM metres), and SVG
elements carry their address (``data-address``), so the page says what is highlighted, for people
(tooltips) and for the browser test alike. Predicted sub-streets are drawn over the grey network,
the top-1 thickest; the true location (when known) is a ring.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np

RANK_COLOURS = ("#d62728", "#ff7f0e", "#9467bd", "#1f77b4", "#17becf")
WIDTH_PX = 640


@dataclass
class StreetNetwork:
    """Polylines of every sub-street, in UTM metres, and the map frame."""

    addresses: list[str]
    lines: list[list[np.ndarray]]          # per sub-street: its parts, each [n, 2]
    bounds: tuple[float, float, float, float]

    @classmethod
    def from_addresses(cls, addresses: dict) -> StreetNetwork | None:
        """None when the file has no geometry (e.g. released annotation sets)."""
        import shapely
        recs = [r for r in addresses.get("sub_streets", []) if r.get("geometry_wkt")]
        if not recs:
            return None
        geoms = shapely.from_wkt([r["geometry_wkt"] for r in recs])
        lines = []
        for g in geoms:
            parts = shapely.get_parts(g)
            lines.append([shapely.get_coordinates(p) for p in parts])
        xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
        return cls([r["address"] for r in recs], lines, (xmin, ymin, xmax, ymax))


def _path(parts: list[np.ndarray], to_px) -> str:
    out = []
    for xy in parts:
        px = to_px(xy)
        out.append("M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in px))
    return " ".join(out)


def render_map(network: StreetNetwork, highlights: list[tuple[str, float]], *,
               true_utm: tuple[float, float] | None = None, margin_m: float = 40.0) -> str:
    """SVG of the network and an HTML legend; ``highlights`` = [(address, probability)] best first."""
    xmin, ymin, xmax, ymax = network.bounds
    xmin, ymin, xmax, ymax = xmin - margin_m, ymin - margin_m, xmax + margin_m, ymax + margin_m
    scale = WIDTH_PX / max(xmax - xmin, 1.0)
    height = int(round((ymax - ymin) * scale))

    def to_px(xy: np.ndarray) -> np.ndarray:
        return np.stack([(xy[:, 0] - xmin) * scale, (ymax - xy[:, 1]) * scale], axis=1)

    where = {a: i for i, a in enumerate(network.addresses)}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="ial-map" viewBox="0 0 {WIDTH_PX} {height}" '
             f'width="100%" style="max-height:520px" role="img" aria-label="map of the candidate streets">',
             f'<rect width="{WIDTH_PX}" height="{height}" fill="#f7f7f4"/>',
             '<g class="network" stroke="#b9b9b9" stroke-width="1.6" fill="none" stroke-linecap="round">']
    parts += [f'<path class="street" d="{_path(lines, to_px)}"><title>{html.escape(a)}</title></path>'
              for a, lines in zip(network.addresses, network.lines)]
    parts.append("</g>")
    for rank in range(len(highlights) - 1, -1, -1):      # top-1 drawn last, on top
        address, prob = highlights[rank]
        if address not in where:
            continue
        colour = RANK_COLOURS[rank % len(RANK_COLOURS)]
        width = 6.0 if rank == 0 else 4.0
        a = html.escape(address, quote=True)
        parts.append(f'<path class="predicted" data-rank="{rank + 1}" data-address="{a}" '
                     f'd="{_path(network.lines[where[address]], to_px)}" stroke="{colour}" '
                     f'stroke-width="{width}" fill="none" stroke-linecap="round" opacity="0.9">'
                     f'<title>{rank + 1}. {a} ({100 * prob:.1f}%)</title></path>')
    if true_utm is not None:
        x, y = to_px(np.asarray([true_utm], dtype=float))[0]
        parts.append(f'<circle class="true-location" cx="{x:.1f}" cy="{y:.1f}" r="7" fill="none" '
                     f'stroke="#2ca02c" stroke-width="3"><title>true location</title></circle>')
    parts.append("</svg>")
    legend = ('<div class="ial-map-legend" style="font-size:0.85em;color:#555">grey: streets; '
              + ", ".join(f'<span style="color:{RANK_COLOURS[r % len(RANK_COLOURS)]}">&#9644; {r + 1}</span>'
                          for r in range(len(highlights)))
              + " predicted sub-streets" + ("; green ring: true location" if true_utm is not None else "")
              + "</div>")
    parts.append(legend)
    return "".join(parts)
