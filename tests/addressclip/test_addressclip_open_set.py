"""Open-set scores on synthetic embeddings: direction, exact distances, storage and stale files,
and the predictor's rule with old and new calibration files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from addressclip.calibration import Calibration
from addressclip.open_set import (
    OPEN_SET_FILE,
    OpenSetError,
    auroc,
    fit_open_set,
    load_open_set,
    probe_image,
    save_open_set,
)
from addressclip.predict import AddressPredictor, Candidate

D, C = 16, 6


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _city(rng, centres, n_per_class, spread=0.2):
    """Views of ``len(centres)`` places: each photo is its place's centre plus noise, normalised."""
    labels = np.repeat(np.arange(len(centres)), n_per_class)
    return _unit(centres[labels] + spread * rng.normal(size=(len(labels), D))), labels


@pytest.fixture(scope="module")
def cities():
    """A trained city (train/val/test from one set of place centres) and another city (other centres)."""
    rng = np.random.default_rng(0)
    here, there = _unit(rng.normal(size=(C, D))), _unit(rng.normal(size=(C, D)))
    train, labels = _city(rng, here, 60)
    val, _ = _city(rng, here, 20)
    test, _ = _city(rng, here, 20)
    other, _ = _city(rng, there, 20)
    return {"train": train, "labels": labels, "val": val, "test": test, "other": other, "text": here}


def test_auroc_counts_pairs_and_ties():
    assert auroc([0.9, 0.5], [0.5, 0.1]) == pytest.approx(3.5 / 4)   # one tie counts half
    assert auroc([0.5, 0.1], [0.9, 0.5]) == pytest.approx(0.5 / 4)   # the other way round
    with pytest.raises(ValueError, match="at least one"):
        auroc([], [1.0])


@pytest.mark.parametrize("name", ["mahalanobis", "relative_mahalanobis", "knn_kth@10", "knn_mean@10",
                                  "energy"])
def test_scores_put_the_trained_city_above_another(cities, name):
    score = fit_open_set(name, cities["train"], cities["labels"], text=cities["text"], logit_scale=20.0)
    val, test, other = (score(torch.from_numpy(cities[k]).float()).numpy() for k in ("val", "test", "other"))
    assert auroc(test, other) > 0.9                       # higher = more in-city, not the reverse
    thr = np.quantile(val, 0.1)                            # chosen on the trained city only
    assert (test < thr).mean() < 0.25 and (other < thr).mean() > 0.75


def test_mahalanobis_is_the_textbook_distance(cities):
    """Against scipy's Mahalanobis distance with the shared within-class covariance (+ the ridge)."""
    from scipy.spatial.distance import mahalanobis
    x, y = cities["train"], cities["labels"]
    means = np.stack([x[y == c].mean(0) for c in range(C)])
    within = sum((x[y == c] - means[c]).T @ (x[y == c] - means[c]) for c in range(C)) / len(x)
    ridge = 0.5
    vi = np.linalg.inv(within + ridge * np.trace(within) / D * np.eye(D))
    pts = cities["other"][:5]
    expected = [-min(mahalanobis(p, m, vi) ** 2 for m in means) for p in pts]
    got = fit_open_set("mahalanobis", x, y, ridge=ridge)(torch.from_numpy(pts).float()).numpy()
    assert got == pytest.approx(expected, rel=1e-3)
    # relative: minus the excess over the distance to one Gaussian of all training photos
    cov = np.cov(x, rowvar=False, bias=True)
    g_vi = np.linalg.inv(cov + ridge * np.trace(cov) / D * np.eye(D))
    rel = [e + mahalanobis(p, x.mean(0), g_vi) ** 2 for e, p in zip(expected, pts)]
    got = fit_open_set("relative_mahalanobis", x, y, ridge=ridge)(torch.from_numpy(pts).float()).numpy()
    assert got == pytest.approx(rel, rel=1e-3)


def test_knn_scans_the_gallery_in_chunks_exactly(cities):
    gallery = torch.from_numpy(cities["train"]).float()
    q = torch.from_numpy(cities["other"][:7]).float()
    sims = (q @ gallery.t()).sort(dim=1, descending=True).values
    small = fit_open_set("knn_kth@10", cities["train"])
    small.chunk = 13                                        # many chunks, k spans several
    assert torch.allclose(small(q), sims[:, 9], atol=1e-6)
    mean = fit_open_set("knn_mean@5", cities["train"])
    assert torch.allclose(mean(q), sims[:, :5].mean(1), atol=1e-6)
    with pytest.raises(ValueError, match="unknown open-set score"):
        fit_open_set("cosine_magic", cities["train"])


def _probe_embedder(seed):
    """A stand-in for a model's image tower: a fixed random projection of the probe's pixels."""
    w = torch.randn(3 * 96 * 96, D, generator=torch.Generator().manual_seed(seed))

    def embed(image):
        x = torch.from_numpy(np.asarray(image, dtype=np.float32).reshape(1, -1) / 255)
        return torch.nn.functional.normalize(x @ w, dim=-1)
    return embed


def test_stored_score_round_trips_and_refuses_another_model(cities, tmp_path):
    score = fit_open_set("mahalanobis", cities["train"], cities["labels"])
    model_a, model_b = _probe_embedder(0), _probe_embedder(1)
    save_open_set(score, tmp_path, probe=model_a(probe_image()))
    assert not list(tmp_path.glob(".*tmp"))
    back = load_open_set(tmp_path, model_a, expected_name="mahalanobis")
    q = torch.from_numpy(cities["test"]).float()
    assert torch.allclose(back(q), score(q))
    with pytest.raises(OpenSetError, match="another model"):
        load_open_set(tmp_path, model_b)
    with pytest.raises(OpenSetError, match="names 'knn_kth@10'"):
        load_open_set(tmp_path, model_a, expected_name="knn_kth@10")
    (tmp_path / OPEN_SET_FILE).write_bytes(b"\x00" * 64)
    with pytest.raises(OpenSetError, match="not a readable open-set file"):
        load_open_set(tmp_path, model_a)
    (tmp_path / OPEN_SET_FILE).unlink()
    with pytest.raises(OpenSetError, match="missing"):
        load_open_set(tmp_path, model_a)
    knn = fit_open_set("knn_mean@10", cities["train"])
    save_open_set(knn, tmp_path, probe=model_a(probe_image()))
    assert torch.allclose(load_open_set(tmp_path, model_a)(q), knn(q))


# ---- the predictor's rule -------------------------------------------------------------------------------

class _Backend:
    """Text features are the place centres; images are given as embeddings directly."""

    def __init__(self, text):
        self.text, self.logit_scale = torch.from_numpy(text).float(), 20.0

    def encode_texts(self, texts, batch_size=256):
        return self.text


def _predictor(cities, calibration, open_set=None):
    cands = [Candidate(f"S{i} & T, D", f"S{i}", "T", "S & T", "D", "City", None, None) for i in range(C)]
    return AddressPredictor(_Backend(cities["text"]), cands, calibration, open_set=open_set)


def test_old_calibration_file_keeps_the_top_probability_rule(cities, tmp_path):
    (tmp_path / "calibration.json").write_text(json.dumps(
        {"temperature": 1.0, "threshold": 0.99, "accept_rate": 0.9, "fitted_on": "x", "report": {}}))
    cal = Calibration.load(tmp_path)
    assert cal.open_set == {} and cal.open_set_score == "top_probability"
    p = _predictor(cities, cal)
    emb = torch.from_numpy(np.r_[cities["test"][:20], cities["other"][:20]]).float()
    preds = p.rank(emb)
    top = np.array([q.top_probability for q in preds])
    assert 0 < (top < 0.99).sum() < len(top)                # the rule is exercised both ways
    assert [q.unknown for q in preds] == list(top < 0.99)
    assert all(q.open_set_score is None for q in preds)


def test_open_set_score_decides_unknown_and_groups_use_their_threshold(cities, tmp_path):
    score = fit_open_set("mahalanobis", cities["train"], cities["labels"])
    val = score(torch.from_numpy(cities["val"]).float()).numpy()
    cal = Calibration(temperature=1.0, threshold=0.0,
                      open_set={"score": "mahalanobis", "threshold": float(np.quantile(val, 0.1)),
                                "grouped_thresholds": {"2": 1e9, "3": -1e9}})
    p = _predictor(cities, cal, open_set=score)
    test, other = (torch.from_numpy(cities[k]).float() for k in ("test", "other"))
    unk_test = np.mean([q.unknown for q in p.rank(test)])
    unk_other = np.mean([q.unknown for q in p.rank(other)])
    assert unk_test < 0.25 and unk_other > 0.75   # with threshold 0 on top probability: none unknown
    q = p.rank(other[:1])[0]
    assert q.open_set_score == pytest.approx(float(score(other[:1])[0])) and q.to_dict()["open_set_score"]
    # a mean of n views is held to the threshold fitted for n views; more views than calibrated: the
    # largest n's; predict(group_by=...) itself runs on a trained model in test_addressclip_predict
    means = p.rank(test[:4], n_views=np.array([2, 1, 3, 7]))
    assert [m.open_set_threshold for m in means] == [1e9, cal.open_set["threshold"], -1e9, -1e9]
    assert means[0].unknown and not means[2].unknown and not means[3].unknown


def test_first_views_mean_takes_the_first_n_views_of_each_location():
    from addressclip.calibrate import first_views_mean
    emb = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    keys = ["b", "a", "b", "a", "b", "c"]           # b: rows 0 2 4, a: rows 1 3, c: row 5
    two = first_views_mean(emb, keys, 2)
    assert two.tolist() == [[2.0, 3.0], [4.0, 5.0]]   # b = mean(rows 0, 2), a = mean(rows 1, 3); c has 1
    assert first_views_mean(emb, keys, 3).tolist() == [[4.0, 5.0]]
    assert len(first_views_mean(emb, keys, 4)) == 0


def test_calibration_open_set_fields_are_validated(tmp_path):
    base = {"temperature": 1.0, "threshold": 0.1}
    for bad, match in (({"open_set": []}, "'open_set' must be an object"),
                       ({"open_set": {"threshold": 1.0}}, "open_set.score"),
                       ({"open_set": {"score": "mahalanobis", "threshold": "low"}}, "open_set.threshold"),
                       ({"open_set": {"score": "mahalanobis", "threshold": -3.0,
                                      "grouped_thresholds": {"4": None}}}, "open_set.grouped_thresholds.4"),
                       ({"open_set": {"score": "mahalanobis", "threshold": -3.0,
                                      "grouped_thresholds": {"one": 1.0}}}, "map group sizes")):
        (tmp_path / "calibration.json").write_text(json.dumps(base | bad))
        with pytest.raises(ValueError, match=match):
            Calibration.load(tmp_path)
    Calibration(open_set={"score": "mahalanobis", "threshold": -40.0,
                          "grouped_thresholds": {"4": -30.0}}).save(tmp_path)
    assert Calibration.load(tmp_path).open_set["threshold"] == -40.0  # any real number, not a probability
