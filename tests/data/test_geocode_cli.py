"""``python -m data_gen.geocode`` on a CSV of the user's points."""

from __future__ import annotations

import csv

from data_gen.geocode import main


def _write(path, rows):
    path.write_text("\n".join(rows) + "\n")
    return path


def test_adds_address_columns_and_keeps_the_rest(tmp_path):
    src = _write(tmp_path / "in.csv", ["id,lat,lon,note", "1,60.1686,24.9410,shop",
                                        "2,60.1700,24.9500,uni", "3,60.1690,24.9999,sea"])
    assert main(["--in", str(src), "--out", str(tmp_path / "out.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert [r["note"] for r in rows] == ["shop", "uni", "sea"]
    assert rows[0]["street"] == "Aleksanterinkatu" and rows[0]["district"] == "Kluuvi"
    assert rows[0]["city"] == "Helsinki" and float(rows[0]["distance_m"]) < 30
    assert rows[0]["sub_street"].startswith("Aleksanterinkatu")
    assert rows[2]["street"] == rows[2]["district"] == rows[2]["sub_street"] == ""


def test_bad_row_names_its_line(tmp_path, capsys):
    src = _write(tmp_path / "in.csv", ["lat,lon", "60.1686,24.9410", "91,24.9"])
    assert main(["--in", str(src), "--out", str(tmp_path / "out.csv")]) == 2
    assert "in.csv, row 3: lat 91.0 is outside" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()
    assert main(["--in", str(src), "--out", str(tmp_path / "out.csv"), "--skip-bad"]) == 0
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert rows[1]["street"] == ""


def test_missing_columns_are_reported(tmp_path, capsys):
    src = _write(tmp_path / "in.csv", ["latitude,longitude", "60.1,24.9"])
    assert main(["--in", str(src), "--out", str(tmp_path / "o.csv")]) == 2
    assert "missing column(s) ['lat', 'lon']" in capsys.readouterr().err
