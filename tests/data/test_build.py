"""The dataset builder end to end: the embedded city (rendered) and users' own photos."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_gen.build import BuildConfig, build, main
from data_gen.dataset import load_dataset_dir
from data_gen.schema import COLUMNS
from ial_core.errors import DataError

SMALL = dict(spacing_m=40.0, headings=2, image_size=64, workers=2)


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("build") / "data"
    return build(BuildConfig(out=out, seed=3, **SMALL))


@pytest.mark.slow
def test_same_seed_builds_a_byte_identical_dataset(small_build, tmp_path):
    again = build(BuildConfig(out=tmp_path / "again", seed=3, **SMALL))
    first, second = _tree_digest(small_build), _tree_digest(again)
    assert len(first) > 100
    assert first == second
    other = build(BuildConfig(out=tmp_path / "other", seed=4, **SMALL))
    assert _tree_digest(other) != first


@pytest.mark.slow
def test_built_dataset_has_every_field_and_the_released_layout(small_build):
    ds = load_dataset_dir(small_build)
    assert set(ds.splits) == {"train", "val", "test"}
    train, test = ds.split("train"), ds.split("test")
    assert set(train.column_names) == set(COLUMNS)
    # every test sub-street is a training class, and no place is in two splits
    assert set(test["sub_street_id"]) <= set(train["sub_street_id"])
    assert not set(test["location_id"]) & set(train["location_id"])
    row = test[0]
    assert row["address"] == f"{row['street']} & {row['cross_street']}, {row['district']}" or \
        row["address"] == f"{row['street']}, {row['district']}"
    assert ds.sub_streets[row["sub_street_id"]]["address"] == row["address"]
    assert row["caption"] and row["city"] == "Helsinki"
    released = json.loads((small_build / "annotations" / "test.json").read_text())
    caption, verbose, canonical = released[row["image"]]
    assert (caption, verbose, canonical) == (row["caption"], row["verbose_address"], row["address"])
    with Image.open(ds.image_path(row["image"])) as image:
        assert image.size == (64, 64) and image.mode == "RGB"
    assert (small_build / "map.png").stat().st_size > 10_000
    card = (small_build / "README.md").read_text()
    assert "Helsinki" in card and "| test |" in card


@pytest.mark.slow
def test_rebuilding_with_the_same_settings_is_a_no_op(small_build, capsys):
    before = (small_build / "meta.json").stat().st_mtime_ns
    build(BuildConfig(out=small_build, seed=3, **SMALL))
    assert (small_build / "meta.json").stat().st_mtime_ns == before


def test_failed_build_leaves_nothing_behind(tmp_path):
    with pytest.raises(DataError):
        build(BuildConfig(out=tmp_path / "data", osm=tmp_path / "missing.osm.pbf"))
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_folder_that_is_not_a_dataset(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "precious.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a dataset folder"):
        build(BuildConfig(out=tmp_path / "data", overwrite=True, **SMALL))
    assert (tmp_path / "data" / "precious.txt").read_text() == "keep me"


# -- users' own photos ---------------------------------------------------------------------------

def _photo_set(tmp_path, helsinki, rows_extra=()):
    """JPEGs at real street points, and the GPS table naming them."""
    photos = tmp_path / "photos"
    (photos / "cam").mkdir(parents=True)
    lines = ["image,lat,lon,heading"]
    rng = np.random.default_rng(0)
    street = helsinki.street("Fabianinkatu").parts[0]
    for i, d in enumerate(np.linspace(10, street.length - 10, 12)):
        p = street.interpolate(d)
        lon, lat = helsinki.projection.to_lonlat([p.x], [p.y])
        Image.fromarray(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)).save(photos / "cam" / f"{i}.jpg")
        lines.append(f"cam/{i}.jpg,{lat[0]:.7f},{lon[0]:.7f},{i * 30}")
    lines += list(rows_extra)
    (tmp_path / "gps.csv").write_text("\n".join(lines) + "\n")
    return photos, tmp_path / "gps.csv"


def test_own_photos_are_labelled_not_rendered(tmp_path, helsinki):
    photos, gps = _photo_set(tmp_path, helsinki)
    out = build(BuildConfig(out=tmp_path / "data", images=photos, gps_csv=gps, min_locations=1,
                            workers=1))
    ds = load_dataset_dir(out)
    rows = [r for name in ds.splits for r in ds.splits[name]]
    assert len(rows) == 12
    assert {r["street"] for r in rows} == {"Fabianinkatu"}
    assert all(r["image"].startswith("images/cam/") for r in rows)
    assert sorted(r["heading"] for r in rows)[-1] == 330.0
    assert (out / rows[0]["image"]).read_bytes() == (photos / rows[0]["image"][len("images/"):]).read_bytes()


@pytest.mark.parametrize("extra, message", [
    ("cam/x.jpg,60.17,not-a-number,0", "row 14.*lon 'not-a-number' is not a number"),
    ("cam/far.jpg,60.10,24.94,0", "row 14.*farther than 30.0 m"),
    ("../escape.jpg,60.17,24.94,0", "row 14.*escapes the dataset root"),
    ("cam/0.jpg,60.17,24.94,0", "row 14.*listed twice"),
])
def test_bad_gps_rows_name_the_file_and_row(tmp_path, helsinki, extra, message):
    photos, gps = _photo_set(tmp_path, helsinki, [extra])
    with pytest.raises(DataError, match=message) as info:
        build(BuildConfig(out=tmp_path / "data", images=photos, gps_csv=gps, workers=1))
    assert "gps.csv" in str(info.value)
    assert not (tmp_path / "data").exists()


def test_corrupt_image_is_named_or_skipped_and_counted(tmp_path, helsinki):
    photos, gps = _photo_set(tmp_path, helsinki)
    data = (photos / "cam" / "3.jpg").read_bytes()
    (photos / "cam" / "3.jpg").write_bytes(data[: len(data) // 3])          # truncated JPEG
    (photos / "cam" / "5.jpg").write_bytes(b"")                             # zero bytes
    with pytest.raises(DataError, match="cam/3.jpg"):
        build(BuildConfig(out=tmp_path / "data", images=photos, gps_csv=gps, workers=1))
    out = build(BuildConfig(out=tmp_path / "data", images=photos, gps_csv=gps, workers=1,
                            skip_bad=True, min_locations=1))
    report = json.loads((out / "build_report.json").read_text())
    assert report["by_reason"] == {"bad_image": 2}
    assert sum(len(load_dataset_dir(out).splits[s]) for s in ("train", "val", "test")) == 10


def test_cli_prints_the_card(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "d"), "--spacing-m", "200", "--headings", "1",
                 "--image-size", "32", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "# IAL dataset: Helsinki" in printed and "dataset:" in printed
    assert main(["--out", str(tmp_path / "e"), "--osm", str(tmp_path / "none.pbf")]) == 2


def test_own_photos_can_stay_where_they_are(tmp_path, helsinki):
    photos, gps = _photo_set(tmp_path, helsinki)
    out = build(BuildConfig(out=tmp_path / "data", images=photos, gps_csv=gps, min_locations=1,
                            workers=1, copy_images=False))
    ds = load_dataset_dir(out)
    assert not (out / "images").exists() and ds.meta["image_root"] == str(photos.resolve())
    rows = [r for name in ds.splits for r in ds.splits[name]]
    assert len(rows) == 12 and all(r["image"].startswith("cam/") for r in rows)
    assert ds.image_path(rows[0]["image"]) == (photos / rows[0]["image"]).resolve()
    assert ds.meta["config"]["copy_images"] is False
