"""Dataset adapter: labels, bad inputs, deterministic augmentation, resumable batch order, metrics."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from addressclip.data import CandidateSet, EpochBatchSampler, IALImageDataset
from addressclip.evaluate import score
from data_gen.dataset import load_dataset_dir
from helpers.synthetic import make_synthetic_dataset
from ial_core.errors import DataError

PRE = {"size": (64, 64), "mode": "RGB", "mean": (0.48145466, 0.4578275, 0.40821073),
       "std": (0.26862954, 0.26130258, 0.27577711), "interpolation": "bicubic",
       "resize_mode": "shortest", "fill_color": 0}


@pytest.fixture(scope="module")
def ial(synthetic_dataset):
    return load_dataset_dir(synthetic_dataset)


def test_labels_are_candidate_indices(ial):
    cands = CandidateSet.from_dataset(ial)
    assert len(cands) == 12
    labels = cands.labels(ial, "train")
    assert np.array_equal(labels, np.asarray(ial.split("train")["sub_street_id"]))
    assert cands.streets[labels[0]] == ial.split("train")[0]["street"]
    assert len(set(cands.street_ids.tolist())) == 6 and len(cands.district_names) == 3


def test_address_missing_from_candidates_is_a_clear_error(tmp_path):
    ial = load_dataset_dir(make_synthetic_dataset(tmp_path / "d", drop_candidate=True,
                                                  locations_per_sub=6, n_districts=1))
    cands = CandidateSet.from_dataset(ial)
    with pytest.raises(DataError, match=r"missing from the candidate addresses.*Betakatu & Southtie"):
        cands.labels(ial, "train")
    with pytest.raises(DataError, match="addresses.json"):
        IALImageDataset(ial, "test", cands, preprocess_cfg=PRE, train=False)


def test_empty_split_is_a_clear_error(synthetic_dataset):
    ial = load_dataset_dir(synthetic_dataset)
    ial.splits["val"] = ial.splits["val"].select([])
    with pytest.raises(DataError, match="split 'val' is empty"):
        IALImageDataset(ial, "val", CandidateSet.from_dataset(ial), preprocess_cfg=PRE, train=False)


def test_training_crops_are_seeded_per_sample(ial):
    cands = CandidateSet.from_dataset(ial)
    tok = open_clip.get_tokenizer("AddressCLIP-Tiny")
    ds = IALImageDataset(ial, "train", cands, preprocess_cfg=PRE, train=True, tokenizer=tok,
                         crop_scale_min=0.5)
    a, b, c = ds[(3, 11)], ds[(3, 11)], ds[(3, 12)]
    assert a["image"].shape == (3, 64, 64)
    assert torch.equal(a["image"], b["image"])            # same seed, same crop
    assert not torch.equal(a["image"], c["image"])        # another seed, another crop
    text = ds.captions[3]
    assert text.endswith(", " + ial.split("train")[3]["address"])
    assert a["caption_tokens"].shape == (77,)
    assert torch.equal(a["caption_tokens"], tok([text])[0])
    assert a["coords"].dtype == torch.float32 and (ds.coords >= 0).all()


def test_eval_pixels_are_open_clips_eval_transform(ial):
    cands = CandidateSet.from_dataset(ial)
    ds = IALImageDataset(ial, "test", cands, preprocess_cfg=PRE, train=False)
    ref = open_clip.create_model_and_transforms("AddressCLIP-Tiny")[2]
    img = Image.open(ds.paths[0])
    assert torch.allclose(ds[0]["image"], ref(img), atol=1e-6)
    # a training sample without augmentation sees the same pixels (square images)
    tr = IALImageDataset(ial, "test", cands, preprocess_cfg=PRE, train=True, augment=False)
    assert torch.allclose(tr[(0, 5)]["image"], ds[0]["image"], atol=1e-5)


def test_batch_sampler_splits_ranks_and_resumes_mid_epoch():
    full = [list(b) for b in EpochBatchSampler(50, 4, seed=1, rank=0, world_size=1)]
    assert len(full) == 12
    r0 = EpochBatchSampler(50, 4, seed=1, rank=0, world_size=2)
    r1 = EpochBatchSampler(50, 4, seed=1, rank=1, world_size=2)
    i0 = {i for b in r0 for i, _ in b}
    i1 = {i for b in r1 for i, _ in b}
    assert len(r0) == 6 and not (i0 & i1) and len(i0 | i1) == 48
    r0.set_epoch(0, start_batch=4)
    assert len(r0) == 2
    resumed = list(r0)
    r0.set_epoch(0)
    assert resumed == list(r0)[4:]
    r0.set_epoch(1)
    assert list(r0) != list(EpochBatchSampler(50, 4, seed=1, rank=0, world_size=2))  # reshuffled
    with pytest.raises(DataError, match="cannot fill one batch"):
        EpochBatchSampler(5, 4, seed=0, world_size=2)


def test_score_by_hand():
    cands = CandidateSet(addresses=["A & X, D1", "A & Y, D1", "B & Z, D2"], streets=["A", "A", "B"],
                         districts=["D1", "D1", "D2"], street_ids=np.array([0, 0, 1]),
                         district_ids=np.array([0, 0, 1]), district_names=["D1", "D2"],
                         index={})
    top = np.array([[0, 1, 2], [0, 2, 1], [1, 0, 2], [2, 0, 1]])
    labels = np.array([0, 1, 2, 2])
    m = score(top, labels, cands)
    # top-1: right, wrong (same street), wrong (other street), right
    assert m["ssa@1"] == 50.0 and m["sa@1"] == 75.0
    assert m["ssa@5"] == 100.0 and m["sa@5"] == 100.0
    assert m["per_district"] == {"D1": {"n": 2, "ssa@1": 50.0, "sa@1": 100.0},
                                 "D2": {"n": 2, "ssa@1": 50.0, "sa@1": 50.0}}
    assert m["chance_ssa@1"] == pytest.approx(100 / 3)
