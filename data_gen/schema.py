"""The on-disk layout and columns of a built IAL dataset: the contract between all stages.

A dataset folder holds::

    images/...                  rendered or user images (paths below are relative to the folder)
    annotations/{split}.json    released AddressCLIP layout: {image: [caption, verbose, canonical]}
    coordinates.csv             image, split, utm_easting, utm_northing, lat, lon, heading
    hf/                         a ``datasets.DatasetDict`` (save_to_disk) with every column below
    addresses.json              the candidate set: city, CRS and one record per sub-street, the
                                "streets" and "districts", their other names ("street_aliases",
                                "district_aliases": name -> [alias], from OSM name:sv, name:en,
                                alt_name, official_name, old_name, short_name), "city_aliases",
                                and the city's "region", "region_code" (ISO 3166-2) and "country"
                                (ISO 3166-1 alpha-2) where the extract tags them (else null)
    meta.json                   build configuration, counts, CRS, schema version
    README.md, map.png          dataset card and a map of the locations coloured by district
    build_report.json           what was skipped and why (only with --skip-bad)
"""

from __future__ import annotations

import datasets

SCHEMA_VERSION = 1
SPLITS = ("train", "val", "test")

FEATURES = datasets.Features({
    "id": datasets.Value("string"),              # unique per image; equals the image path
    "image": datasets.Value("string"),           # path relative to the dataset folder
    "split": datasets.Value("string"),
    "location_id": datasets.Value("int32"),      # images of one place share it (several headings)
    "heading": datasets.Value("float32"),        # camera compass bearing, degrees clockwise from N
    "lat": datasets.Value("float64"),
    "lon": datasets.Value("float64"),
    "utm_easting": datasets.Value("float64"),
    "utm_northing": datasets.Value("float64"),
    "street": datasets.Value("string"),
    "cross_street": datasets.Value("string"),
    "sub_street": datasets.Value("string"),      # "{street} & {cross_street}"
    "sub_street_id": datasets.Value("int32"),    # index into addresses.json "sub_streets"
    "district": datasets.Value("string"),
    "city": datasets.Value("string"),
    "address": datasets.Value("string"),         # canonical: "{street} & {cross}, {district}"
    "street_address": datasets.Value("string"),  # "{street}, {district}"
    "verbose_address": datasets.Value("string"),
    "caption": datasets.Value("string"),
    "distance_m": datasets.Value("float32"),     # from the GPS point to the street centre line
})

COLUMNS = tuple(FEATURES.keys())
COORDINATE_COLUMNS = ("image", "split", "utm_easting", "utm_northing", "lat", "lon", "heading")
