"""AddressPredictor: candidate points, calibration, open set, multi-view, and the CLI."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from pyproj import Transformer

from addressclip.calibration import (
    Calibration,
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    softmax,
)
from addressclip.predict import AddressPredictor, group_mean, load_candidates
from addressclip.predict import main as predict_main
from ial_core.errors import DataError

# An L-shaped street in UTM 35N (central Helsinki): 400 m east, then 200 m north. Its centroid is
# (266.7, 33.3) m from the start, so the nearest point of the line is on the first leg at x=266.7:
# not the start, not the corner, not the middle by length (the corner) and not the centroid itself.
L_SHAPE = "LINESTRING (385000 6672000, 385400 6672000, 385400 6672200)"


def _addresses(records, crs="EPSG:32635"):
    return {"city": "Helsinki", "crs": crs, "sub_streets": records}


def _rec(address, street="Mannerheimintie", district="Kluuvi", **extra):
    return {"address": address, "street": street, "cross_street": "Kaivokatu",
            "sub_street": f"{street} & Kaivokatu", "district": district, **extra}


def test_candidate_point_is_on_the_geometry_nearest_its_centroid():
    cands = load_candidates(_addresses([
        _rec("A & B, Kluuvi", geometry_wkt=L_SHAPE),
        _rec("A & B, Kluuvi", geometry_wkt="LINESTRING (0 0, 1 1)"),  # same class again: ignored
        _rec("C & D, Kamppi", district="Kamppi")]),
        fallback_lonlat={"C & D, Kamppi": (24.93, 60.17)})
    assert [c.address for c in cands] == ["A & B, Kluuvi", "C & D, Kamppi"]
    lon, lat = Transformer.from_crs("EPSG:32635", "EPSG:4326", always_xy=True).transform(
        385000 + 800 / 3, 6672000)
    assert cands[0].lat == pytest.approx(lat, abs=1e-8) and cands[0].lon == pytest.approx(lon, abs=1e-8)
    assert 60.1 < cands[0].lat < 60.2 and 24.9 < cands[0].lon < 25.0      # not swapped
    assert (cands[1].lon, cands[1].lat) == (24.93, 60.17)                  # no geometry: fallback
    assert cands[0].city == "Helsinki" and cands[0].cross_street == "Kaivokatu"
    assert load_candidates(_addresses([_rec("C & D, Kamppi")]))[0].lat is None


def test_bad_candidate_records_are_named():
    with pytest.raises(DataError, match="record 1 has no 'street'"):
        load_candidates(_addresses([_rec("A"), {"address": "B", "district": "K"}]))
    with pytest.raises(DataError, match="names no 'crs'"):
        load_candidates({"sub_streets": [_rec("A", geometry_wkt=L_SHAPE)]})


def test_temperature_recovers_the_one_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(4000, 20))
    e = np.exp(logits / 2.5)                      # written out: not the module's own softmax
    probs = e / e.sum(1, keepdims=True)
    labels = (probs.cumsum(1) > rng.random((4000, 1))).argmax(1)
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.1)
    assert softmax(logits, 2.5) == pytest.approx(probs)


def test_ece_and_threshold():
    conf = np.full(1000, 0.9)
    hit = np.arange(1000) < 900
    assert expected_calibration_error(conf, hit) == pytest.approx(0.0, abs=1e-9)
    assert expected_calibration_error(conf, np.arange(1000) < 500) == pytest.approx(0.4)
    # two bins: 0.25 (all right) and 0.75 (all wrong): |1-0.25|/2 + |0-0.75|/2
    assert expected_calibration_error(np.r_[np.full(5, 0.25), np.full(5, 0.75)],
                                      np.r_[np.ones(5), np.zeros(5)], bins=2) == pytest.approx(0.75)
    top = np.linspace(0, 1, 101)
    thr = choose_threshold(top, 0.9)
    assert (top >= thr).mean() == pytest.approx(0.9, abs=0.011)


def test_calibration_file_is_validated(tmp_path):
    Calibration(temperature=0.5, threshold=0.2).save(tmp_path)
    assert Calibration.load(tmp_path).temperature == 0.5
    (tmp_path / "calibration.json").write_text(json.dumps({"temperature": 1.0, "threshold": "high"}))
    with pytest.raises(ValueError, match="calibration.json: field 'threshold'"):
        Calibration.load(tmp_path)
    (tmp_path / "calibration.json").write_text(json.dumps({"temperature": 0, "threshold": 0.1}))
    with pytest.raises(ValueError, match="'temperature' must be > 0"):
        Calibration.load(tmp_path)


def test_group_mean_averages_views_of_one_key():
    emb = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), dim=-1)
    keys, mean, counts = group_mean(emb, ["a", "b", "a"])
    assert keys == ["a", "b"] and counts.tolist() == [2, 1]
    assert torch.allclose(mean[0], torch.tensor([0.5 ** 0.5, 0.5 ** 0.5]))
    assert torch.allclose(mean[1], torch.tensor([0.0, 1.0]))


# ---- on a trained run ------------------------------------------------------------------------------

def _split(dataset, split):
    from data_gen.dataset import load_dataset_dir
    ial = load_dataset_dir(dataset)
    rows = ial.split(split)
    return ial, rows, [ial.image_path(p) for p in rows["image"]]


@pytest.mark.slow
def test_predictor_ranks_like_evaluate(trained_run, synthetic_dataset, tmp_path):
    from addressclip.evaluate import evaluate_run
    evaluate_run(trained_run, out=tmp_path / "eval", zero_shot=False)
    with open(tmp_path / "eval" / "predictions.csv", encoding="utf-8") as f:
        expected = [r["predicted_address"] for r in csv.DictReader(f)]
    p = AddressPredictor.from_pretrained(trained_run, calibration=False)
    ial, rows, paths = _split(synthetic_dataset, "test")
    preds = p.predict(paths, top_k=5)
    assert [q.candidates[0].address for q in preds] == expected
    first = preds[0]
    probs = [c.probability for c in first.candidates]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert [c.rank for c in first.candidates] == [1, 2, 3, 4, 5]
    assert not first.unknown                       # uncalibrated: threshold 0
    # no geometry in the synthetic city: the candidate's point is the mean of its photos
    addr = first.candidates[0].address
    every = [s for s in ial.splits.values()]
    lat = np.concatenate([np.asarray(s["lat"])[np.asarray(s["address"]) == addr] for s in every])
    assert first.candidates[0].lat == pytest.approx(lat.mean())
    assert p.predict(paths[0], top_k=100)[0].candidates[-1].rank == len(p.candidates)  # k capped


@pytest.mark.slow
def test_calibrated_predictor_abstains_and_averages_views(trained_run, synthetic_dataset, tmp_path):
    from addressclip.calibrate import calibrate_run
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    cal = calibrate_run(run, accept_rate=0.75)
    assert (run / "calibration.json").is_file()
    r = cal.report
    assert set(r) >= {"ece_before", "ece_after", "test_unknown_rate", "multi_view", "test"}
    assert r["test_nll_after"] <= r["test_nll_before"] + 0.05  # fitted on val, measured on test
    p = AddressPredictor.from_pretrained(run)
    assert p.calibrated and p.calibration.temperature == pytest.approx(cal.temperature)

    ial, rows, paths = _split(synthetic_dataset, "test")
    loc = list(rows["location_id"])
    grouped = p.predict(paths, group_by=loc)
    assert len(grouped) == len(set(loc)) and all(g.n_views == 4 for g in grouped)
    assert grouped[0].group == loc[0]
    # the group's prediction is the ranking of the averaged view embeddings
    emb = p.embed([x for x, k in zip(paths, loc) if k == loc[0]])
    manual = p.rank(torch.nn.functional.normalize(emb.mean(0, keepdim=True), dim=-1))[0]
    assert manual.candidates[0].address == grouped[0].candidates[0].address
    assert manual.top_probability == pytest.approx(grouped[0].top_probability, rel=1e-5)

    # the open-set score (Mahalanobis, fitted on the training split) decides unknown, not the top
    # probability; its thresholds come from validation
    assert cal.open_set["score"] == "mahalanobis" and (run / "open_set.safetensors").is_file()
    assert set(r["open_set"]) == {"top_probability", "mahalanobis"}
    single = p.predict(paths)
    unknown = np.array([q.unknown for q in single])
    score = np.array([q.open_set_score for q in single])
    assert (unknown == (score < cal.open_set["threshold"])).all()
    assert r["test_unknown_rate"] == pytest.approx(unknown.mean())
    val_paths = _split(synthetic_dataset, "val")[2]
    val_unknown = np.mean([q.unknown for q in p.predict(val_paths)])
    assert val_unknown == pytest.approx(0.25, abs=0.08)       # accept_rate 0.75 of validation
    assert all(g.open_set_threshold == cal.open_set["grouped_thresholds"]["4"] for g in grouped)
    assert set(cal.open_set["grouped_thresholds"]) == {"2", "3", "4"}
    p.calibration.open_set["threshold"] = 1e9
    assert all(q.unknown for q in p.predict(paths[:3]))

    # a score stored by another model (the run's untrained init here) is refused, not misused
    from addressclip.open_set import OpenSetError
    with pytest.raises(OpenSetError, match="another model"):
        AddressPredictor.from_pretrained(run, checkpoint="init")
    (run / "open_set.safetensors").unlink()
    with pytest.raises(OpenSetError, match="missing"):
        AddressPredictor.from_pretrained(run)


@pytest.mark.slow
def test_cli_reports_bad_files_and_goes_on(trained_run, synthetic_dataset, tmp_path, capsys):
    _, _, paths = _split(synthetic_dataset, "test")
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    shutil.copy(paths[0], photos / "a.jpg")
    shutil.copy(paths[1], photos / "sub" / "b.jpg")
    (photos / "broken.jpg").write_bytes(b"this is not a jpeg")
    (photos / "notes.txt").write_text("not an image file name: not collected from a folder")
    out = tmp_path / "p.csv"
    rc = predict_main(["--model", str(trained_run), str(photos), "--top-k", "3", "--out", str(out),
                       "--progress", "false"])
    assert rc == 1                                            # one file failed, the rest went on
    assert "broken.jpg" in capsys.readouterr().err
    with open(out, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_image = {}
    for r in rows:
        by_image.setdefault(r["image"].rsplit("/", 1)[-1], []).append(r)
    assert sorted(by_image) == ["a.jpg", "b.jpg", "broken.jpg"]
    assert [r["rank"] for r in by_image["a.jpg"]] == ["1", "2", "3"]
    assert "cannot be decoded" in by_image["broken.jpg"][0]["error"]

    geo = tmp_path / "p.geojson"
    assert predict_main(["--model", str(trained_run), str(photos / "a.jpg"), "--out", str(geo),
                         "--progress", "false"]) == 0
    feat = json.loads(geo.read_text())["features"][0]
    top = feat["properties"]["candidates"][0]
    assert feat["geometry"]["coordinates"] == [top["lon"], top["lat"]]      # GeoJSON is lon, lat
    jl = tmp_path / "p.jsonl"
    assert predict_main(["--model", str(trained_run), str(photos / "broken.jpg"), str(photos / "a.jpg"),
                         "--out", str(jl), "--progress", "false"]) == 1
    lines = [json.loads(x) for x in jl.read_text().splitlines()]
    assert "error" in lines[0] and lines[1]["candidates"][0]["rank"] == 1
    with pytest.raises(SystemExit):
        predict_main(["--model", str(trained_run), str(photos), "--out", str(tmp_path / "p.xlsx")])


@pytest.mark.slow
def test_predictor_loads_the_export_and_agrees_with_the_run(trained_run, synthetic_dataset, tmp_path):
    from addressclip.calibration import Calibration
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    from addressclip.data import CandidateSet
    from addressclip.open_set import fit_open_set, probe_image, save_open_set
    from data_gen.dataset import load_dataset_dir
    plain = AddressPredictor.from_pretrained(run, calibration=False)
    ial, rows, train = _split(synthetic_dataset, "train")
    score = fit_open_set("mahalanobis", plain.embed(train).numpy(),
                         CandidateSet.from_dataset(load_dataset_dir(synthetic_dataset)).labels(ial, "train"))
    imgs = sorted((synthetic_dataset / "images").glob("*.jpg"))[:24]
    # a threshold between two scores far apart near the middle: about half of the images unknown,
    # none so near it that the backends' ~1e-6 differences decide
    ranked = np.sort(score(plain.embed(imgs)).numpy())
    gap = 6 + int(np.argmax(np.diff(ranked[6:19])))
    median = float(ranked[gap:gap + 2].mean())
    save_open_set(score, run, probe=plain.embed([probe_image()]))
    Calibration(temperature=0.7, threshold=0.05,
                open_set={"score": "mahalanobis", "threshold": median}).save(run)
    from addressclip.export import main as export_main
    assert export_main(["--run", str(run), "--full"]) == 0
    full = run / "hf_full"
    assert json.loads((full / "calibration.json").read_text())["temperature"] == 0.7
    assert (full / "open_set.safetensors").is_file()
    a = AddressPredictor.from_pretrained(run)
    b = AddressPredictor.from_pretrained(full)                 # its probe check passes on the HF model
    pa, pb = a.predict(imgs), b.predict(imgs)
    assert 0 < sum(p.unknown for p in pa) < len(pa)
    assert np.allclose([p.open_set_score for p in pa], [p.open_set_score for p in pb], rtol=1e-3, atol=1e-3)
    assert [[c.address for c in p.candidates] for p in pa] == [[c.address for c in p.candidates] for p in pb]
    assert np.allclose([p.top_probability for p in pa], [p.top_probability for p in pb], atol=1e-5)
    assert [p.unknown for p in pa] == [p.unknown for p in pb]
    assert [c.lat for c in a.candidates] == pytest.approx([c.lat for c in b.candidates])
