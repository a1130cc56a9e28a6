"""Small released benchmarks in the forms they are distributed in, for the converter's tests.

- Pitts-IAL: ``pitts_train.json`` / ``pitts_database.json`` / ``pitts_queries.json`` keyed by
  ``000/0000PP_pitch1_yawK.jpg`` (some written ``./000/...``), canonical addresses in both forms
  (``"{street} & {cross}, {district}"`` and ``"{street}, {district} ({cross})"``), positions in a
  Pitts-250K ``.mat`` (``dbStruct`` or a plain 2 x N UTM matrix of places), written with
  ``scipy.io.savemat``;
- SF-IAL: SF-XL file names ``@east@north@10@S@lat@lon@pano@...@.jpg`` carrying their position.

Images are tiny real PNGs whose colour depends on the sub-street, so stage one can train on them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

AMP, PAREN = "amp", "paren"
# sub-streets of Pittsburgh (street, cross, district) and an anchor point in UTM 17N
PITTS = [("Forbes Ave", "Craig St", "Oakland", (589_500.0, 4_477_300.0)),
         ("Forbes Ave", "Bouquet St", "Oakland", (589_900.0, 4_477_000.0)),
         ("Fifth Ave", "Grant St", "Downtown", (584_700.0, 4_476_900.0)),
         ("East Carson St", "", "South Side Flats", (586_000.0, 4_475_600.0))]
# San Francisco (UTM zone 10, band S = northern hemisphere)
SF = [("Market St", "5th St", "South of Market", 37.7837, -122.4075),
      ("Mission St", "16th St", "Mission District", 37.7650, -122.4194),
      ("Geary Blvd", "Masonic Ave", "Laurel Heights", 37.7820, -122.4466)]


def canonical(street: str, cross: str, district: str, form: str) -> str:
    if not cross:
        return f"{street}, {district}"
    return f"{street} & {cross}, {district}" if form == AMP else f"{street}, {district} ({cross})"


def verbose(street: str, cross: str, district: str) -> str:
    return f"located in {district}, specifically on a section of {street}" + (
        f" that meets {cross}" if cross else "")


def _image(path: Path, sub: int) -> None:
    rng = np.random.default_rng(sub * 7919 + len(str(path)))
    colour = np.array([(sub * 97) % 256, (sub * 53 + 80) % 256, (sub * 151 + 40) % 256])
    pixels = np.clip(colour + rng.normal(0, 10, (24, 24, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def _write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def pitts_places(places_per_sub: int = 6):
    """(place index, sub-street index, easting, northing): places 10 m apart along each sub-street."""
    out, place = [], 0
    for sub, (*_, (east, north)) in enumerate(PITTS):
        for k in range(places_per_sub):
            out.append((place, sub, east + 10.0 * k, north + 3.0 * k))
            place += 1
    return out


def make_pitts(root: Path, *, train_form=AMP, query_form=PAREN, dot_keys=True, yaws=(1, 4),
               places_per_sub: int = 6) -> dict:
    """The three Pitts-IAL files, the images and both ``.mat`` layouts; returns their paths.

    The last place of every sub-street is a query; the others are train (and database). Even
    places get ``./`` keys in the train file when ``dot_keys``.
    """
    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)
    train, database, queries, names, utm = {}, {}, {}, [], []
    q_names, q_utm = [], []
    places = pitts_places(places_per_sub)
    for place, sub, east, north in places:
        street, cross, district, _ = PITTS[sub]
        is_query = place % places_per_sub == places_per_sub - 1
        for yaw in yaws:
            image = f"{place // 1000:03d}/{place:06d}_pitch1_yaw{yaw}.jpg"
            _image(root / "images" / image, sub)
            caption = f"a street view of a {['red', 'tall', 'quiet', 'busy'][sub]} street, yaw {yaw}"
            if is_query:
                queries[image] = [caption, verbose(street, cross, district),
                                  canonical(street, cross, district, query_form)]
                q_names.append(image)
                q_utm.append((east, north))
                continue
            key = f"./{image}" if dot_keys and place % 2 == 0 else image
            value = [caption, verbose(street, cross, district),
                     canonical(street, cross, district, train_form)]
            train[key] = value
            database[image] = [value[0], value[1], canonical(street, cross, district, query_form)]
            names.append(image)
            utm.append((east, north))
    db_struct = {"whichSet": "train",
                 "dbImage": np.array(names, dtype=object).reshape(-1, 1),
                 "utmDb": np.array(utm).T,
                 "qImage": np.array(q_names, dtype=object).reshape(-1, 1),
                 "utmQ": np.array(q_utm).T,
                 "numImages": len(names), "numQueries": len(q_names)}
    savemat(root / "pitts250k_train.mat", {"dbStruct": db_struct})
    matrix = np.array([(e, n) for _, _, e, n in places]).T          # 2 x N, column = place index
    savemat(root / "pittsburgh_database_utm.mat", {"Cdb": matrix})
    return {"train": _write(root / "pitts_train.json", train),
            "database": _write(root / "pitts_database.json", database),
            "queries": _write(root / "pitts_queries.json", queries),
            "dbstruct": root / "pitts250k_train.mat", "matrix": root / "pittsburgh_database_utm.mat",
            "images": root / "images", "places": places}


def sfxl_name(lat: float, lon: float, *, pano: str, heading: float, folder: str = "") -> str:
    import pyproj

    east, north = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32610", always_xy=True).transform(lon, lat)
    name = (f"@{east:.2f}@{north:.2f}@10@S@{lat:.5f}@{lon:.5f}@{pano}@@{heading:.0f}@@@@201811@@.jpg")
    return f"{folder}/{name}" if folder else name


def make_sf(root: Path, *, places_per_sub: int = 6) -> dict:
    """SF-IAL train and test files keyed by SF-XL names, and their images."""
    root.mkdir(parents=True, exist_ok=True)
    train, test = {}, {}
    for sub, (street, cross, district, lat, lon) in enumerate(SF):
        for k in range(places_per_sub):
            for heading in (0, 180):
                image = sfxl_name(lat + 0.0001 * k, lon + 0.0001 * k, pano=f"p{sub}x{k}",
                                  heading=heading, folder="train" if k < places_per_sub - 1 else "test")
                _image(root / "images" / image, sub)
                value = [f"a street view of street {sub} heading {heading}",
                         verbose(street, cross, district), canonical(street, cross, district, AMP)]
                (train if k < places_per_sub - 1 else test)[image] = value
    return {"train": _write(root / "sf_train.json", train), "test": _write(root / "sf_test.json", test),
            "images": root / "images"}
