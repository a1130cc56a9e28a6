"""The released benchmarks as distributed: both canonical forms, ``./`` keys, the released split names
(database, queries, a carved-out val), Pitts-250K ``.mat`` ground truth and SF-XL file names."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_gen.dataset import load_dataset_dir
from data_gen.released import main, read_released_annotations, released_to_dataset
from data_gen.released_annotations import FORM_AMPERSAND, FORM_PARENTHESES, FORM_STREET, parse_canonical_form
from data_gen.released_mat import read_mat_coordinates
from data_gen.released_sfxl import parse_sfxl_name, read_sfxl_names, zone_crs
from helpers.released import PAREN, SF, make_pitts, make_sf, sfxl_name
from ial_core.errors import DataError, SkipReport


def _write(path, data):
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# -- canonical forms ------------------------------------------------------------------------------

def test_both_canonical_forms_give_the_same_parts():
    amp = parse_canonical_form("Forbes Ave & Craig St, Oakland")
    paren = parse_canonical_form("Forbes Ave, Oakland (Craig St)")
    assert amp[:3] == paren[:3] == ("Forbes Ave", "Craig St", "Oakland")
    assert (amp[3], paren[3]) == (FORM_AMPERSAND, FORM_PARENTHESES)
    assert parse_canonical_form("East Carson St, South Side Flats") == (
        "East Carson St", "", "South Side Flats", FORM_STREET)
    for bad in ("Forbes Ave & Craig St, Oakland (Craig St)", "Forbes Ave, Oakland (Craig St",
                "Forbes Ave, Oakland ()", "Forbes (Ave), Oakland", "Forbes Ave, (Craig St)"):
        with pytest.raises(ValueError):
            parse_canonical_form(bad)


def test_parenthesised_file_is_not_misread_as_new_districts(tmp_path):
    """Read as '&'-form, 'Oakland (Craig St)' would be a district: twice the districts and streets."""
    files = make_pitts(tmp_path / "p", train_form=PAREN, query_form=PAREN)
    records = read_released_annotations(files["train"])
    assert {r.district for r in records} == {"Oakland", "Downtown", "South Side Flats"}
    assert {r.canonical_address for r in records} == {
        "Forbes Ave & Craig St, Oakland", "Forbes Ave & Bouquet St, Oakland",
        "Fifth Ave & Grant St, Downtown", "East Carson St, South Side Flats"}
    assert records.form_counts == {FORM_PARENTHESES: 30, FORM_STREET: 10}


def test_entry_in_no_form_names_its_key(tmp_path):
    path = _write(tmp_path / "bad.json", {
        "000/000001_pitch1_yaw1.jpg": ["a road", "located in Oakland, on Forbes Ave",
                                       "Forbes Ave, Oakland (Craig St)"],
        "000/000002_pitch1_yaw1.jpg": ["a road", "located in Oakland, on Forbes Ave",
                                       "Forbes Ave & Craig St, Oakland (Craig St)"]})
    with pytest.raises(DataError, match=r"bad\.json, item '000/000002_pitch1_yaw1\.jpg': canonical "
                                        r"address .* fits none of the forms"):
        read_released_annotations(path)
    skip = SkipReport()
    assert len(read_released_annotations(path, skip=skip)) == 1 and skip.counts == {"bad_address": 1}


def test_dot_slash_keys_are_the_same_image(tmp_path):
    value = ["a road", "located in Oakland, on Forbes Ave", "Forbes Ave & Craig St, Oakland"]
    records = read_released_annotations(_write(tmp_path / "a.json", {"./000/000001_pitch1_yaw1.jpg": value}))
    assert records[0].image == "000/000001_pitch1_yaw1.jpg"
    skip = SkipReport()
    twice = _write(tmp_path / "b.json", {"./000/x.jpg": value, "000/x.jpg": value})
    assert len(read_released_annotations(twice, skip=skip)) == 1
    assert skip.counts == {"duplicate_image": 1}


# -- .mat ground truth ----------------------------------------------------------------------------

def test_mat_db_struct_and_plain_matrix(tmp_path):
    files = make_pitts(tmp_path / "p")
    db = read_mat_coordinates(files["dbstruct"])
    place, sub, east, north = files["places"][7]
    assert db.kind == "mat-dbstruct" and db.lookup("000/000007_pitch1_yaw4.jpg") == (east, north)
    last = files["places"][5]                      # a query place: in qImage/utmQ, not in dbImage
    assert db.lookup("000/000005_pitch1_yaw1.jpg", query=True) == (last[2], last[3])
    matrix = read_mat_coordinates(files["matrix"])
    assert matrix.kind == "mat-matrix" and len(matrix.positions) == len(files["places"])
    # column i is place i, read as (easting, northing) and not as (northing, easting)
    assert matrix.lookup("000/000007_pitch2_yaw12.jpg") == (east, north)


def test_mat_errors_name_the_file(tmp_path):
    from scipy.io import savemat

    savemat(tmp_path / "two.mat", {"a": np.zeros((2, 3)), "b": np.ones((2, 4))})
    with pytest.raises(DataError, match=r"two\.mat: expected a 'dbStruct' or exactly one"):
        read_mat_coordinates(tmp_path / "two.mat")
    savemat(tmp_path / "short.mat", {"dbStruct": {"dbImage": np.array(["a.jpg", "b.jpg"], dtype=object)
                                                  .reshape(-1, 1), "utmDb": np.zeros((2, 3))}})
    with pytest.raises(DataError, match=r"short\.mat: dbStruct\.utmDb has 3 positions for 2 images"):
        read_mat_coordinates(tmp_path / "short.mat")
    (tmp_path / "junk.mat").write_bytes(b"not matlab at all" * 20)
    with pytest.raises(DataError, match=r"junk\.mat: not a readable MATLAB"):
        read_mat_coordinates(tmp_path / "junk.mat")


# -- SF-XL names ----------------------------------------------------------------------------------

def test_sfxl_name_fields_and_zone_band():
    name = sfxl_name(37.7837, -122.4075, pano="abc", heading=270, folder="train")
    info = parse_sfxl_name(name)
    # band S is a latitude band of the northern hemisphere: zone 10 north, not 10 south (32710)
    assert info["crs"] == zone_crs(10, "S") == "EPSG:32610" and zone_crs(10, "L") == "EPSG:32710"
    assert (info["lat"], info["lon"], info["heading"]) == (37.7837, -122.4075, 270.0)
    assert 540_000 < info["easting"] < 560_000 and 4_170_000 < info["northing"] < 4_190_000
    with pytest.raises(ValueError, match="not an SF-XL name"):
        parse_sfxl_name("000/000001_pitch1_yaw1.jpg")


def test_sfxl_mixed_zones_and_wrong_fields_are_named():
    a = sfxl_name(37.78, -122.40, pano="a", heading=0)
    b = a.replace("@10@S@", "@11@S@")
    with pytest.raises(DataError, match=r"item '.*@11@S@.*': UTM zone 11S .* differs"):
        read_sfxl_names([a, b])
    swapped = a.split("@")
    swapped[5], swapped[6] = swapped[6], swapped[5]       # lon where lat belongs
    with pytest.raises(DataError):
        read_sfxl_names(["@".join(swapped)])


# -- whole conversions ----------------------------------------------------------------------------

def _pitts(tmp_path, coords_key="dbstruct", **kwargs):
    files = make_pitts(tmp_path / "p")
    annotations = {"train": files["train"], "database": files["database"], "queries": files["queries"]}
    meta = released_to_dataset(annotations, files[coords_key], city="Pittsburgh", utm_zone="17N",
                               image_root=files["images"], out_dir=tmp_path / "ds", **kwargs)
    return meta, load_dataset_dir(tmp_path / "ds"), files


@pytest.mark.parametrize("coords_key", ["dbstruct", "matrix"])
def test_released_split_names_and_val_carve_out(tmp_path, coords_key):
    meta, ds, files = _pitts(tmp_path, coords_key)
    assert set(ds.splits) == {"train", "val", "test", "database"}
    # queries are the test split, in the parenthesised form, read into the same addresses
    assert meta["canonical_form"]["test"] == {FORM_PARENTHESES: 6, FORM_STREET: 2}
    assert meta["canonical_form"]["train"] == {FORM_AMPERSAND: 30, FORM_STREET: 10}
    assert meta["counts"]["districts"] == 3 and meta["counts"]["sub_streets"] == 4
    train, val, test = (ds.split(s).to_list() for s in ("train", "val", "test"))
    # val: whole places (both yaws), one contiguous stretch per sub-street, apart from train places
    assert {r["location_id"] for r in val}.isdisjoint({r["location_id"] for r in train})
    assert len(val) == 8 and meta["splits"]["val"].startswith("carved from train")
    for sub in {r["sub_street_id"] for r in val}:
        val_e = sorted({r["utm_easting"] for r in val if r["sub_street_id"] == sub})
        train_e = sorted({r["utm_easting"] for r in train if r["sub_street_id"] == sub})
        assert not any(val_e[0] < e < val_e[-1] for e in train_e)
    assert {r["sub_street_id"] for r in test} <= {r["sub_street_id"] for r in train}
    # positions: ./ keys matched, query images from qImage/utmQ (or the place matrix)
    by_place = {p: (e, n) for p, _, e, n in files["places"]}
    for row in train + val + test:
        place = int(row["image"].split("/")[1][:6])
        assert (row["utm_easting"], row["utm_northing"]) == by_place[place], row["image"]
        assert 40.40 < row["lat"] < 40.48 and -80.05 < row["lon"] < -79.90
        assert not row["image"].startswith("./")
    assert ds.split("database").num_rows == 40   # the gallery, kept apart
    assert meta["inputs"]["coordinates"]["kind"] == ("mat-dbstruct" if coords_key == "dbstruct"
                                                     else "mat-matrix")


def test_image_in_database_and_queries_is_refused(tmp_path):
    files = make_pitts(tmp_path / "p")
    data = json.loads(files["database"].read_text())
    query = json.loads(files["queries"].read_text())
    data.update(query)
    _write(files["database"], data)
    with pytest.raises(DataError, match="is in both database and test"):
        released_to_dataset({"database": files["database"], "queries": files["queries"]},
                            files["dbstruct"], city="Pittsburgh", utm_zone="17N", image_root=None,
                            out_dir=tmp_path / "ds")


def test_sfxl_filenames_conversion(tmp_path):
    files = make_sf(tmp_path / "sf")
    meta = released_to_dataset({"train": files["train"], "test": files["test"]}, "sfxl-filenames",
                               city="San Francisco", utm_zone=None, image_root=files["images"],
                               out_dir=tmp_path / "ds")
    ds = load_dataset_dir(tmp_path / "ds")
    assert meta["crs"] == "EPSG:32610" and ds.addresses["crs"] == "EPSG:32610"
    rows = ds.split("train").to_list() + ds.split("test").to_list()
    for row in rows:
        info = parse_sfxl_name(row["image"])
        assert (row["lat"], row["lon"]) == (info["lat"], info["lon"])
        assert 37.7 < row["lat"] < 37.8 and row["heading"] == info["heading"]
    assert {r["district"] for r in rows} == {d for *_, d, _, _ in SF}
    with pytest.raises(DataError, match="contradicts"):
        released_to_dataset({"train": files["train"]}, "sfxl-filenames", city="SF", utm_zone="11N",
                            image_root=None, out_dir=tmp_path / "ds2")


def test_cli_with_released_names(tmp_path, capsys):
    files = make_pitts(tmp_path / "p")
    code = main(["--train", str(files["train"]), "--database", str(files["database"]),
                 "--queries", str(files["queries"]), "--coords", str(files["dbstruct"]),
                 "--utm-zone", "17N", "--city", "Pittsburgh", "--out", str(tmp_path / "cli")])
    out = capsys.readouterr().out
    assert code == 0 and "test 8" in out and "database 40" in out and "carved from train" in out
    assert FORM_PARENTHESES in out


def test_released_dataset_feeds_the_qa_gazetteer(tmp_path):
    from eval.gazetteer import Gazetteer

    _, ds, _ = _pitts(tmp_path)
    gazetteer = Gazetteer.from_dataset(ds)
    assert sorted(gazetteer.streets) == ["East Carson St", "Fifth Ave", "Forbes Ave"]
    assert sorted(gazetteer.districts) == ["Downtown", "Oakland", "South Side Flats"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab./\\: @_-\x00", max_size=12))
def test_plain_path_fast_path_agrees_with_the_full_check(text):
    """The shortcut for already-normal paths must accept and return exactly what the full check does."""
    from ial_core.paths import _PLAIN, safe_relative_path

    def full(t):
        try:
            return str(PurePosixPath(t.replace("\\", "/"))) if t.strip() and ".." not in \
                PurePosixPath(t.replace("\\", "/")).parts and not t.replace("\\", "/").startswith("/") \
                and t.replace("\\", "/")[1:2] != ":" and "\x00" not in t else None
        except Exception:
            return None

    try:
        got = safe_relative_path(text)
    except DataError:
        got = None
    if _PLAIN.fullmatch(text) and text[1:2] != ":":
        assert got == text == full(text)
    else:
        assert got == full(text)
