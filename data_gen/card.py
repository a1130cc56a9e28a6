"""The dataset card (README.md) and map (map.png) written next to every built dataset."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np


def plot_map(path: Path, x: np.ndarray, y: np.ndarray, district: np.ndarray, streets, title: str) -> None:
    """Locations coloured by district over the street centre lines (UTM metres)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 7), dpi=100)
    for line in streets:
        xy = np.asarray(line.coords)
        ax.plot(xy[:, 0], xy[:, 1], color="0.8", linewidth=1, zorder=1)
    names = sorted(set(district.tolist()))
    colours = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    for i, name in enumerate(names):
        mask = district == name
        ax.scatter(x[mask], y[mask], s=4, color=colours(i % colours.N), label=f"{name} ({mask.sum()})",
                   zorder=2)
    ax.set_aspect("equal")
    ax.set_xlabel("UTM easting (m)")
    ax.set_ylabel("UTM northing (m)")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=7, markerscale=3)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def card_text(meta: dict, split_of: np.ndarray, district: np.ndarray) -> str:
    """Markdown dataset card: what, how built, counts per split and per district."""
    counts = meta["counts"]
    lines = [
        f"# IAL dataset: {meta['city']}",
        "",
        f"Image Address Localization data built by `python -m data_gen.build` from "
        f"`{meta['source']['osm']}` ({meta['source']['kind']}).",
        "",
        f"- images: {counts['images']}, locations: {counts['locations']}, "
        f"headings per location: {meta['config']['headings']}",
        f"- sub-streets (candidate addresses): {counts['sub_streets']}, streets: {counts['streets']}, "
        f"districts: {counts['districts']}",
        f"- CRS: {meta['crs']}; district source: {', '.join(meta['district_sources'])}",
        "",
        "| split | images | locations | sub-streets |",
        "|---|---:|---:|---:|",
    ]
    for split, c in counts["splits"].items():
        lines.append(f"| {split} | {c['images']} | {c['locations']} | {c['sub_streets']} |")
    lines += ["", "| district | images |", "|---|---:|"]
    for name, n in sorted(collections.Counter(district.tolist()).items()):
        lines.append(f"| {name} | {n} |")
    lines += ["", "Files: `annotations/{split}.json` (image -> [caption, verbose address, canonical "
              "address]), `coordinates.csv`, `hf/` (datasets.DatasetDict), `addresses.json` "
              "(candidates), `meta.json`, `map.png`.", ""]
    return "\n".join(lines)
