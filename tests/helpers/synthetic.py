"""A small synthetic IAL dataset folder in the layout of :mod:`data_gen.schema`, for AddressCLIP tests.

Images are learnable on purpose: the background colour depends on the district, a horizontal band's
colour on the street, and the position of a bright block on the cross street (the sub-street); the
heading shifts the scene a little and every pixel gets noise. A tiny ViT learns these within a few
hundred steps, so tests can require accuracy far above chance. Coordinates are UTM metres: districts
lie ~2 km apart, streets ~400 m apart, sub-streets ~100 m apart along their street, locations 15 m
apart, so the geography loss has real structure to use.

``make_synthetic_dataset(root, ...)`` writes the folder and returns its path. Arguments exist to make
bad inputs the loader must refuse (an address missing from the candidates).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from data_gen.addresses import canonical_address, street_address, sub_street_name, verbose_address
from data_gen.schema import FEATURES, SCHEMA_VERSION, SPLITS

DISTRICTS = ["Kallio", "Kamppi", "Toolo", "Vallila", "Punavuori"]
STREET_STEMS = ["Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Zeta", "Eta", "Theta", "Iota", "Kappa"]
CROSS_STEMS = ["North", "South", "East", "West", "Upper", "Lower"]
COLOUR_WORDS = ["red", "green", "blue", "grey", "yellow", "white"]


def _palette(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` well separated RGB colours."""
    hues = (np.arange(n) / n + rng.uniform(0, 1 / n)) % 1.0
    out = []
    for h in hues:
        k = (np.array([5, 3, 1]) + h * 6) % 6
        rgb = 1 - np.clip(np.minimum(k, 4 - k), 0, 1)
        out.append(40 + 200 * rgb)
    return np.asarray(out)


def _render(district: int, street: int, cross: int, heading: int, image_size: int,
            colours: dict, rng: np.random.Generator) -> Image.Image:
    s = image_size
    img = np.empty((s, s, 3), dtype=np.float32)
    img[:] = colours["district"][district]
    band_top = s // 3 + 2 * heading
    img[band_top:band_top + s // 4] = colours["street"][street]
    block = s // 5
    x0 = (cross * (s - block)) // max(1, colours["n_cross"] - 1)
    y0 = 2 * s // 3
    img[y0:y0 + block, x0:x0 + block] = 255 - colours["street"][street]
    img += rng.normal(0, 12, size=img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def make_synthetic_dataset(root: str | Path, *, n_districts: int = 3, streets_per_district: int = 2,
                           subs_per_street: int = 2, locations_per_sub: int = 6, headings: int = 4,
                           image_size: int = 64, seed: int = 0, drop_candidate: bool = False,
                           city: str = "Synthcity") -> Path:
    """Write a dataset folder; every sub-street has test and val locations and is present in train.

    Locations of a sub-street go to splits in the repeating pattern train x4, val, test (so with the
    default 6 locations: 4 train, 1 val, 1 test). ``drop_candidate`` removes the last sub-street
    from addresses.json while its images stay. (An empty split is made in memory by the tests:
    ``datasets`` 5.2 cannot ``load_from_disk`` a saved empty split.)
    """
    root = Path(root)
    datasets.disable_progress_bars()
    rng = np.random.default_rng(seed)
    n_streets = n_districts * streets_per_district
    palette = _palette(n_districts + n_streets, rng)  # all distinct: no band vanishes into its wall
    colours = {"district": palette[:n_districts], "street": palette[n_districts:][::-1],
               "n_cross": subs_per_street}
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)

    sub_streets, rows = [], []
    location_id = 0
    pattern = ["train"] * 4 + ["val", "test"]
    for d in range(n_districts):
        district = DISTRICTS[d % len(DISTRICTS)] + ("" if d < len(DISTRICTS) else f" {d}")
        for si in range(streets_per_district):
            street_idx = d * streets_per_district + si
            street = f"{STREET_STEMS[street_idx % len(STREET_STEMS)]}katu{street_idx // len(STREET_STEMS) or ''}"
            for c in range(subs_per_street):
                cross = f"{CROSS_STEMS[c % len(CROSS_STEMS)]}tie"
                sid = len(sub_streets)
                record = {"id": sid, "street": street, "cross_street": cross,
                          "sub_street": sub_street_name(street, cross), "district": district,
                          "address": canonical_address(street, cross, district),
                          "street_address": street_address(street, district),
                          "verbose_address": verbose_address(street, cross, district)}
                sub_streets.append(record)
                e0 = 380000.0 + 2000.0 * d + 100.0 * c
                n0 = 6670000.0 + 400.0 * si
                for li in range(locations_per_sub):
                    split = pattern[li % len(pattern)]
                    e, n = e0 + 15.0 * li, n0 + rng.normal(0, 2.0)
                    for h in range(headings):
                        rel = f"images/{location_id:05d}_h{h}.jpg"
                        _render(d, street_idx, c, h, image_size, colours, rng).save(
                            root / rel, quality=92)
                        word = COLOUR_WORDS[(street_idx + h) % len(COLOUR_WORDS)]
                        rows.append({
                            "id": rel, "image": rel, "split": split, "location_id": location_id,
                            "heading": float(90 * h), "lat": 60.0 + n / 1e7, "lon": 24.0 + e / 1e7,
                            "utm_easting": e, "utm_northing": n, "street": street,
                            "cross_street": cross, "sub_street": record["sub_street"],
                            "sub_street_id": sid, "district": district, "city": city,
                            "address": record["address"], "street_address": record["street_address"],
                            "verbose_address": record["verbose_address"],
                            "caption": f"a street view of a {word} building with parked cars",
                            "distance_m": 3.0})
                    location_id += 1

    if drop_candidate:
        sub_streets = sub_streets[:-1]

    by_split = {s: [r for r in rows if r["split"] == s] for s in SPLITS}
    dd = datasets.DatasetDict({
        s: datasets.Dataset.from_dict({k: [r[k] for r in by_split[s]] for k in FEATURES},
                                      features=FEATURES)
        for s in SPLITS})
    dd.save_to_disk(str(root / "hf"))
    for s in SPLITS:
        ann = {r["image"]: [r["caption"], r["verbose_address"], r["address"]] for r in by_split[s]}
        (root / "annotations" / f"{s}.json").write_text(json.dumps(ann, indent=1), encoding="utf-8")
    with open(root / "coordinates.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["image", "split", "utm_easting", "utm_northing", "lat", "lon", "heading"])
        for r in rows:
            w.writerow([r["image"], r["split"], r["utm_easting"], r["utm_northing"], r["lat"],
                        r["lon"], r["heading"]])
    (root / "addresses.json").write_text(json.dumps(
        {"city": city, "crs": "EPSG:32635", "sub_streets": sub_streets}, indent=1), encoding="utf-8")
    (root / "meta.json").write_text(json.dumps(
        {"schema_version": SCHEMA_VERSION, "source": "tests/helpers/synthetic.py", "seed": seed,
         "counts": {s: len(by_split[s]) for s in SPLITS}}, indent=1), encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory) -> Path:
    """The default synthetic dataset (12 sub-streets, 3 districts, 288 images), built once."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic_ial") / "data")


if __name__ == "__main__":  # manual use: python tests/helpers/synthetic.py OUT
    import sys
    print(make_synthetic_dataset(sys.argv[1]))
