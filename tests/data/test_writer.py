"""The shared dataset writer: what build and released both write, and how it is published."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from data_gen.dataset import load_dataset_dir
from data_gen.schema import COLUMNS, SCHEMA_VERSION
from data_gen.writer import staging_folder, write_dataset


def _columns(n=5):
    images = [f"img/{i}.jpg" for i in range(n)]
    split = ["train", "train", "test", "train", "test"][:n]
    return {"id": images, "image": images, "split": split, "location_id": np.arange(n) // 2,
            "heading": np.arange(n, dtype=np.float32) * 90, "lat": np.linspace(60.1, 60.2, n),
            "lon": np.linspace(24.9, 25.0, n), "utm_easting": np.linspace(385_000.5, 385_100.25, n),
            "utm_northing": np.full(n, 6_672_000.125), "street": ["A"] * n, "cross_street": ["B"] * n,
            "sub_street": ["A & B"] * n, "sub_street_id": np.zeros(n, dtype=np.int32),
            "district": ["Kallio"] * n, "city": ["Helsinki"] * n, "address": ["A & B, Kallio"] * n,
            "street_address": ["A, Kallio"] * n, "verbose_address": [f"v{i}" for i in range(n)],
            "caption": [f"c{i}" for i in range(n)], "distance_m": np.zeros(n, dtype=np.float32)}


def _write(out, columns, splits=("train", "val", "test")):
    addresses = {"city": "Helsinki", "crs": "EPSG:32635",
                 "sub_streets": [{"id": 0, "address": "A & B, Kallio", "aliases": ["A & B, Kallio sv"]}]}
    with staging_folder(out) as tmp:
        write_dataset(tmp, columns, splits=splits, addresses=addresses,
                      meta={"schema_version": SCHEMA_VERSION})


def test_every_file_holds_the_columns_row_for_row(tmp_path):
    cols = _columns()
    _write(tmp_path / "ds", cols)
    ds = load_dataset_dir(tmp_path / "ds")
    assert set(ds.splits) == {"train", "test"}            # the empty val split is not saved
    train = ds.split("train").to_list()
    assert tuple(ds.split("train").column_names) == COLUMNS
    assert [r["image"] for r in train] == ["img/0.jpg", "img/1.jpg", "img/3.jpg"]
    assert [r["caption"] for r in train] == ["c0", "c1", "c3"]     # not shifted between rows
    assert train[2]["utm_easting"] == cols["utm_easting"][3] and train[2]["heading"] == 270.0
    assert ds.sub_streets[0]["aliases"] == ["A & B, Kallio sv"]    # records keep extra fields
    test = json.loads((tmp_path / "ds" / "annotations" / "test.json").read_text())
    assert test == {"img/2.jpg": ["c2", "v2", "A & B, Kallio"], "img/4.jpg": ["c4", "v4", "A & B, Kallio"]}
    assert json.loads((tmp_path / "ds" / "annotations" / "val.json").read_text()) == {}
    with open(tmp_path / "ds" / "coordinates.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["split"] for r in rows] == cols["split"]
    assert float(rows[4]["utm_easting"]) == cols["utm_easting"][4]   # exact, not rounded


def test_a_failed_write_keeps_the_previous_dataset(tmp_path):
    _write(tmp_path / "ds", _columns())
    before = (tmp_path / "ds" / "meta.json").read_text()
    broken = _columns()
    del broken["caption"]
    with pytest.raises(ValueError, match="caption"):
        _write(tmp_path / "ds", broken)
    assert (tmp_path / "ds" / "meta.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
