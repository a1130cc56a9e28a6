"""Reading the released AddressCLIP annotations and turning them into a toolkit dataset folder."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_gen import released
from data_gen.dataset import load_dataset_dir
from data_gen.released import (
    ReleasedAnnotations,
    detect_order,
    heading_from_name,
    main,
    parse_canonical,
    read_released_annotations,
    read_utm_coordinates,
    released_to_dataset,
    utm_crs,
)
from data_gen.schema import COLUMNS, COORDINATE_COLUMNS, SCHEMA_VERSION
from ial_core.errors import DataError, SkipReport

# Pittsburgh-like entries: (image, caption, verbose, canonical), UTM 17N positions near Oakland/Downtown
ENTRIES = [
    ("000/000015_pitch1_yaw1.jpg", "a street with shops and parked cars",
     "located in Oakland, specifically on a section of Forbes Ave that meets Craig St",
     "Forbes Ave & Craig St, Oakland"),
    ("000/000015_pitch1_yaw4.jpg", "a brick building, a bus stop and trees",
     "located in Oakland, specifically on a section of Forbes Ave near Craig St",
     "Forbes Ave & Craig St, Oakland"),
    ("000/000016_pitch2_yaw1.jpg", "tall office towers",
     "located in Downtown, specifically on a section of Fifth Ave that meets Grant St",
     "Fifth Ave & Grant St, Downtown"),
    ("000/000017_pitch1_yaw7.jpg", "a bridge over the river",
     "located in South Side Flats, specifically on a section of East Carson Street that runs east",
     "East Carson St, South Side Flats"),
]
UTM = {15: (589_500.0, 4_477_300.0), 16: (584_700.0, 4_476_900.0), 17: (586_000.0, 4_475_600.0)}


def _place(image: str) -> int:
    return int(image.split("/")[1].split("_")[0])


def write_json(path, data):
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def released_json(tmp_path, name="train.json", order=(0, 1, 2), entries=ENTRIES):
    """The released layout with each value's [caption, verbose, canonical] permuted by ``order``."""
    data = {}
    for image, *fields in entries:
        data[image] = [fields[i] for i in order]
    return write_json(tmp_path / name, data)


def utm_csv(tmp_path, entries=ENTRIES, name="utm.csv", header=True, sep=","):
    lines = [sep.join(("image", "easting", "northing"))] if header else []
    for image, *_ in entries:
        e, n = UTM[_place(image)]
        lines.append(sep.join((image, str(e), str(n))))
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- parsing and field-order detection ----------------------------------------------------------

def test_parse_canonical_forms():
    assert parse_canonical("Forbes Ave & Craig St, Oakland") == ("Forbes Ave", "Craig St", "Oakland")
    assert parse_canonical("East Carson St, South Side Flats") == ("East Carson St", "", "South Side Flats")
    # the district is after the LAST comma
    assert parse_canonical("Penn Ave, Strip & Co, Strip District")[2] == "Strip District"
    for bad in ("Forbes Ave & Craig St", "Forbes Ave & , Oakland", "& Craig St, Oakland", ", Oakland",
                "Forbes Ave,   "):
        with pytest.raises(ValueError):
            parse_canonical(bad)


def test_detects_default_order(tmp_path):
    records = read_released_annotations(released_json(tmp_path))
    assert isinstance(records, ReleasedAnnotations) and len(records) == 4
    assert records.field_order == ("caption", "verbose", "canonical") and not records.explicit
    assert records.order_counts == {"caption,verbose,canonical": 4} and records.fallback == 0
    first = records[0]
    assert (first.street, first.cross_street, first.district) == ("Forbes Ave", "Craig St", "Oakland")
    assert first.caption == ENTRIES[0][1] and first.verbose_address.startswith("located in Oakland")
    assert records[3].cross_street == "" and records[3].canonical_address == "East Carson St, South Side Flats"


def test_detects_shuffled_order(tmp_path):
    records = read_released_annotations(released_json(tmp_path, order=(2, 0, 1)))
    assert records.field_order == ("canonical", "caption", "verbose")
    assert [r.canonical_address for r in records] == [e[3] for e in ENTRIES]
    assert [r.caption for r in records] == [e[1] for e in ENTRIES]


def test_mixed_orders_are_detected_per_entry_and_counted(tmp_path):
    data = json.loads(released_json(tmp_path).read_text())
    image, caption, verbose, canonical = ENTRIES[2]
    data[image] = [verbose, canonical, caption]
    records = read_released_annotations(write_json(tmp_path / "mixed.json", data))
    assert records.order_counts == {"caption,verbose,canonical": 3, "verbose,canonical,caption": 1}
    assert records.field_order == ("caption", "verbose", "canonical")
    assert records[2].canonical_address == canonical and records[2].caption == caption
    assert records[2].field_order == ("verbose", "canonical", "caption")


def test_ambiguous_entry_falls_back_to_majority(tmp_path):
    """A caption that itself looks like "X, D" cannot be told apart; the file's usual order decides."""
    data = json.loads(released_json(tmp_path, order=(1, 2, 0)).read_text())
    data["000/000015_pitch1_yaw9.jpg"] = ["located in Oakland, on Forbes Ave", "Forbes Ave, Oakland",
                                          "Craig St, Oakland"]
    records = read_released_annotations(write_json(tmp_path / "amb.json", data))
    assert records.field_order == ("verbose", "canonical", "caption") and records.fallback == 1
    assert records[-1].canonical_address == "Forbes Ave, Oakland"
    assert detect_order(["located in Oakland, on Forbes Ave", "Forbes Ave, Oakland",
                         "Craig St, Oakland"]) is None


def test_explicit_order_overrides_detection(tmp_path):
    path = released_json(tmp_path, order=(2, 0, 1))
    records = read_released_annotations(path, field_order="canonical,caption,verbose")
    assert records.explicit and records.field_order == ("canonical", "caption", "verbose")
    assert records[0].canonical_address == ENTRIES[0][3]
    # a wrong explicit order is not "corrected": the caption is not an address
    with pytest.raises(DataError, match="canonical address"):
        read_released_annotations(released_json(tmp_path, order=(2, 1, 0)),
                                  field_order=("caption", "verbose", "canonical"))
    with pytest.raises(ValueError, match="exactly once"):
        read_released_annotations(path, field_order="caption,caption,canonical")


# -- errors name the file and the key (or line); skip counts them ------------------------------

def test_malformed_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"000/a.jpg": ["x", "y",\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.json, row 2: not valid JSON"):
        read_released_annotations(path)
    skip = SkipReport()
    assert read_released_annotations(path, skip=skip) == []
    assert skip.counts == {"unreadable_file": 1} and "broken.json" in skip.examples["unreadable_file"][0]


def test_not_a_dict_and_bad_values(tmp_path):
    with pytest.raises(DataError, match=r"list\.json: expected a JSON object"):
        read_released_annotations(write_json(tmp_path / "list.json", [["a", "b", "c"]]))
    data = {"000/ok.jpg": list(ENTRIES[0][1:]), "000/two.jpg": ["a", "b"], "000/num.jpg": [1, 2, 3],
            "000/obj.jpg": {"caption": "x"}, "000/noaddr.jpg": ["a cat", "located in X", "no address"]}
    path = write_json(tmp_path / "vals.json", data)
    with pytest.raises(DataError, match=r"vals\.json, item '000/two\.jpg': value must be a list of 3"):
        read_released_annotations(path)
    skip = SkipReport()
    records = read_released_annotations(path, skip=skip)
    assert [r.image for r in records] == ["000/ok.jpg"]
    assert skip.counts == {"bad_value": 3, "bad_address": 1}
    assert "'000/noaddr.jpg'" in skip.examples["bad_address"][0]


def test_non_utf8_names_key(tmp_path):
    good = json.dumps({"000/a.jpg": list(ENTRIES[0][1:])})[1:-1]
    raw = ('{' + good + ', "000/b.jpg": ["caf').encode() + b"\xe9" + (
        b'", "located in Oakland, on Forbes Ave", "Forbes Ave & Craig St, Oakland"]}')
    path = tmp_path / "latin1.json"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=r"latin1\.json, item '000/b\.jpg': .*not valid UTF-8"):
        read_released_annotations(path)
    skip = SkipReport()
    assert [r.image for r in read_released_annotations(path, skip=skip)] == ["000/a.jpg"]
    assert skip.counts == {"not_utf8": 1}


def test_unsafe_and_duplicate_paths(tmp_path):
    value = list(ENTRIES[0][1:])
    path = write_json(tmp_path / "paths.json", {"../x.jpg": value, "000/a.jpg": value,
                                                "/etc/y.jpg": value, "000\\a.jpg": value})
    with pytest.raises(DataError, match=r"paths\.json, item '\.\./x\.jpg': .*escapes"):
        read_released_annotations(path)
    skip = SkipReport()
    records = read_released_annotations(path, skip=skip)
    assert [r.image for r in records] == ["000/a.jpg"]
    assert skip.counts == {"unsafe_path": 2, "duplicate_image": 1}


# -- UTM coordinates ------------------------------------------------------------------------------

@pytest.mark.parametrize("sep,header", [(",", True), ("\t", True), (" ", False), (",", False)])
def test_read_utm_separators_and_header(tmp_path, sep, header):
    coords = read_utm_coordinates(utm_csv(tmp_path, sep=sep, header=header))
    assert coords[ENTRIES[2][0]] == UTM[16] and len(coords) == 4


def test_read_utm_index_order_matches_place_number(tmp_path):
    path = tmp_path / "utm.txt"
    places = [(580_000.0 + i, 4_470_000.0 + i) for i in range(15)] + [UTM[15], UTM[16], UTM[17]]
    path.write_text("# easting northing, one row per place\n" + "\n".join(
        f"{e} {n}" for e, n in places) + "\n", encoding="utf-8")
    coords = read_utm_coordinates(path)
    assert released.lookup_coordinates(coords, "000/000016_pitch2_yaw1.jpg") == UTM[16]
    assert released.lookup_coordinates(coords, "000/000099_pitch2_yaw1.jpg") is None


def test_read_utm_bad_lines(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("image,easting,northing\n000/a.jpg,589500,4477300\n000/b.jpg,nan,4477300\n"
                    "000/c.jpg,inf,1\n000/d.jpg,east,1\n000/e.jpg,1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.csv, row 3: easting is 'nan'"):
        read_utm_coordinates(path)
    skip = SkipReport()
    assert read_utm_coordinates(path, skip=skip) == {"000/a.jpg": (589500.0, 4477300.0)}
    assert skip.counts == {"bad_coordinates": 4}
    assert any("row 6" in e for e in skip.examples["bad_coordinates"])


def test_utm_zone_names():
    assert utm_crs("17N") == "EPSG:32617" and utm_crs("10n") == "EPSG:32610"
    assert utm_crs("33S") == "EPSG:32733" and utm_crs("EPSG:32617") == "EPSG:32617"
    for bad in ("17", "61N", "ZZ", "0N"):
        with pytest.raises(ValueError, match="UTM zone"):
            utm_crs(bad)


def test_heading_from_yaw():
    assert heading_from_name("000/000015_pitch1_yaw1.jpg") == 0.0
    assert heading_from_name("000/000015_pitch1_yaw4.jpg") == 90.0
    assert heading_from_name("x/img_yaw270.jpg") == 270.0
    assert heading_from_name("x/plain.jpg") == 0.0


# -- the dataset folder -----------------------------------------------------------------------------

def build(tmp_path, **kwargs):
    splits = {"train": released_json(tmp_path, "train.json", entries=ENTRIES[:3]),
              "test": released_json(tmp_path, "test.json", order=(2, 1, 0), entries=ENTRIES[3:])}
    options = dict(city="Pittsburgh", utm_zone="17N", image_root=None, out_dir=tmp_path / "ds")
    options.update(kwargs)
    coords = options.pop("coords") if "coords" in options else utm_csv(tmp_path)
    return released_to_dataset(splits, coords, **options), tmp_path / "ds"


def test_dataset_folder_loads_with_columns_and_candidates(tmp_path):
    meta, out = build(tmp_path)
    ds = load_dataset_dir(out)
    assert set(ds.splits) == {"train", "test"}
    assert tuple(ds.split("train").column_names) == COLUMNS
    assert len(ds.split("train")) == 3 and len(ds.split("test")) == 1
    assert [c["address"] for c in ds.sub_streets] == sorted({e[3] for e in ENTRIES})
    assert [c["id"] for c in ds.sub_streets] == [0, 1, 2]
    assert ds.addresses["crs"] == "EPSG:32617" and ds.city == "Pittsburgh"
    assert ds.addresses["districts"] == ["Downtown", "Oakland", "South Side Flats"]
    assert ds.addresses["streets"] == ["East Carson St", "Fifth Ave", "Forbes Ave"]   # names, as build
    assert {s["street_address"] for s in ds.addresses["street_addresses"]} == {
        "Forbes Ave, Oakland", "Fifth Ave, Downtown", "East Carson St, South Side Flats"}
    train = ds.split("train").to_list()
    for row in train + ds.split("test").to_list():
        assert ds.sub_streets[row["sub_street_id"]]["address"] == row["address"]
        assert row["distance_m"] == 0.0 and row["id"] == row["image"] and row["city"] == "Pittsburgh"
    assert train[0]["location_id"] == train[1]["location_id"] != train[2]["location_id"]
    assert [r["heading"] for r in train] == [0.0, 90.0, 0.0]
    assert train[2]["street_address"] == "Fifth Ave, Downtown"
    assert train[0]["verbose_address"] == ENTRIES[0][2] and train[0]["caption"] == ENTRIES[0][1]
    assert ds.meta["schema_version"] == SCHEMA_VERSION and ds.meta["source"] == "released"
    assert ds.meta["field_order"]["test"]["used"] == "canonical,verbose,caption"
    assert ds.meta["counts"]["images"] == 4 and ds.meta["counts"]["locations"] == 3
    assert ds.meta["image_root"] is None and meta == ds.meta


def test_utm_17n_lands_in_pittsburgh(tmp_path):
    _, out = build(tmp_path)
    for row in load_dataset_dir(out).split("train").to_list():
        assert 40.40 < row["lat"] < 40.48 and -80.05 < row["lon"] < -79.90, row
    header, *lines = (out / "coordinates.csv").read_text().splitlines()
    assert tuple(header.split(",")) == COORDINATE_COLUMNS and len(lines) == 4
    lat = float(lines[0].split(",")[4])
    assert math.isclose(lat, 40.44, abs_tol=0.02)


def test_annotations_copied_in_released_layout(tmp_path):
    _, out = build(tmp_path)
    test = json.loads((out / "annotations" / "test.json").read_text(encoding="utf-8"))
    image, caption, verbose, canonical = ENTRIES[3]
    assert test == {image: [caption, verbose, canonical]}  # normalised to [caption, verbose, canonical]


def test_missing_coordinates_raise_or_are_skipped(tmp_path):
    coords = utm_csv(tmp_path, entries=ENTRIES[1:])  # the first image has no row
    with pytest.raises(DataError, match=r"utm\.csv, item '000/000015_pitch1_yaw1\.jpg': no coordinates"):
        build(tmp_path, coords=coords)
    assert not (tmp_path / "ds").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds")]  # nothing half-written
    skip = SkipReport()
    meta, out = build(tmp_path, coords=coords, skip=skip)
    assert skip.counts == {"missing_coordinates": 1} and meta["counts"]["images"] == 3
    report = json.loads((out / "build_report.json").read_text())
    assert report["by_reason"] == {"missing_coordinates": 1}
    with pytest.raises(DataError, match="--coords"):
        build(tmp_path, coords=None)


def test_image_root_is_checked_and_recorded(tmp_path):
    root = tmp_path / "pitts250k"
    for image, *_ in ENTRIES:
        (root / image).parent.mkdir(parents=True, exist_ok=True)
        (root / image).write_bytes(b"jpg")
    meta, out = build(tmp_path, image_root=root)
    assert meta["image_root"] == str(root.resolve())
    (root / ENTRIES[3][0]).unlink()
    with pytest.raises(DataError, match="image file not found"):
        build(tmp_path, image_root=root, out_dir=tmp_path / "ds2")
    with pytest.raises(DataError, match="refusing to overwrite"):
        build(tmp_path, out_dir=root)


def test_rebuild_replaces_previous_dataset(tmp_path):
    build(tmp_path)
    meta, out = build(tmp_path, field_order="caption,verbose,canonical", skip=SkipReport())
    # the test split is in another order; with the order forced its entry is skipped, not misread
    assert meta["counts"]["splits"] == {"train": 3, "test": 0}
    assert set(load_dataset_dir(out).splits) == {"train"}


def test_cli(tmp_path, capsys):
    train = released_json(tmp_path, "train.json", entries=ENTRIES)
    code = main(["--train", str(train), "--coords", str(utm_csv(tmp_path)), "--utm-zone", "17N",
                 "--city", "Pittsburgh", "--out", str(tmp_path / "cli"), "--skip-bad"])
    out = capsys.readouterr().out
    assert code == 0 and "4 images" in out and "3 sub-streets" in out and "skipped 0" in out
    assert load_dataset_dir(tmp_path / "cli").split("train").num_rows == 4
    code = main(["--train", str(train), "--coords", str(utm_csv(tmp_path)), "--utm-zone", "17",
                 "--city", "Pittsburgh", "--out", str(tmp_path / "cli2")])
    assert code == 2 and "UTM zone" in capsys.readouterr().err


# -- property: arbitrary JSON-ish input never raises anything but DataError -------------------------

_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                     st.text(max_size=12),
                     st.sampled_from([e[3] for e in ENTRIES] + [e[2] for e in ENTRIES]
                                     + ["A & B, C", "x, y", "located in", "&, ,", "a & , b"]))
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
_keys = st.one_of(st.text(max_size=16), st.sampled_from(["../x.jpg", "/abs.jpg", "a/../b.jpg", ".",
                                                         "a/", "000/000015_pitch1_yaw1.jpg", "a\\b"]))
_values = st.one_of(_json, st.lists(_scalars, min_size=3, max_size=3))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.dictionaries(_keys, _values, max_size=6), _json),
       skipping=st.booleans(), order=st.sampled_from([None, "canonical,caption,verbose"]))
def test_arbitrary_json_only_raises_data_error(tmp_path, data, skipping, order):
    path = tmp_path / "any.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    skip = SkipReport() if skipping else None
    try:
        records = read_released_annotations(path, field_order=order, skip=skip)
    except DataError as error:
        assert not skipping and "any.json" in str(error)
        return
    for record in records:
        assert record.canonical_address == released.addr.canonical_address(
            record.street, record.cross_street, record.district)
    if skipping and isinstance(data, dict):
        assert len(records) + skip.total == len(data)
