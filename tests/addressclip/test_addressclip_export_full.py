"""``export --full``: stock transformers' zero-shot pipeline ranks addresses as addressclip.evaluate."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch
from PIL import Image

from addressclip import export_full as ef
from addressclip.data import CandidateSet, IALImageDataset, eval_loader
from addressclip.evaluate import cached_candidate_features, predict
from addressclip.export import ExportError
from addressclip.model import AddressCLIP, create_clip

pytestmark = pytest.mark.slow


def test_zero_shot_pipeline_ranks_like_evaluate_on_the_embedded_city(small_city, tmp_path):
    from transformers import AutoImageProcessor, pipeline

    from data_gen.dataset import load_dataset_dir
    torch.manual_seed(0)
    clip, cfg = create_clip("AddressCLIP-Tiny")
    clip.eval()
    ial = load_dataset_dir(small_city)
    tokenizer = open_clip.get_tokenizer("AddressCLIP-Tiny")
    report = ef.export_full(clip, cfg["preprocess_cfg"], tokenizer, ial.addresses, tmp_path / "full")
    assert report["parity"]["text_max_abs_diff"] <= 1e-4

    # addressclip.evaluate's own ranking of the test split
    cands = CandidateSet.from_dataset(ial)
    ds = IALImageDataset(ial, "test", cands, preprocess_cfg=cfg["preprocess_cfg"], train=False,
                         limit=16)
    text, _ = cached_candidate_features(AddressCLIP(clip), cands, tokenizer, torch.device("cpu"),
                                        "fp32", None, None)
    top, _, _ = predict(AddressCLIP(clip), eval_loader(ds, 64, 0, False), text, "cpu", k=5)

    labels = json.loads((tmp_path / "full" / "candidate_addresses.json").read_text())
    assert labels == cands.addresses and len(labels) > 50
    clf = pipeline("zero-shot-image-classification", model=str(tmp_path / "full"))
    out = clf(ds.paths, candidate_labels=labels, hypothesis_template="{}")
    ranked = [[cands.index[r["label"]] for r in res[:5]] for res in out]
    assert ranked == top.tolist()
    assert out[0][0]["score"] > out[0][4]["score"] > 0

    # a non-square photo: the PIL backend gives open_clip's pixels exactly, hence the same ranking
    photo = Image.open(ds.paths[0]).resize((96, 64))
    photo.save(tmp_path / "wide.png")
    pil = pipeline("zero-shot-image-classification", model=str(tmp_path / "full"),
                   image_processor=AutoImageProcessor.from_pretrained(tmp_path / "full", backend="pil"))
    wide = pil(str(tmp_path / "wide.png"), candidate_labels=labels, hypothesis_template="{}")
    ours = AddressCLIP(clip).encode_image(ds.eval_transform(photo.convert("RGB"))[None]) @ text.t()
    assert [cands.index[r["label"]] for r in wide[:5]] == ours.topk(5).indices[0].tolist()


def test_a_wrong_mapping_is_caught_and_leaves_nothing(small_city, tmp_path, monkeypatch):
    from data_gen.dataset import load_dataset_dir
    clip, cfg = create_clip("AddressCLIP-Tiny")
    tokenizer = open_clip.get_tokenizer("AddressCLIP-Tiny")
    real = ef.hf_clip_state_dict

    def swapped(model):  # q and k of one text layer exchanged: still loads, computes otherwise
        sd = real(model)
        p = "text_model.encoder.layers.1.self_attn."
        sd[p + "q_proj.weight"], sd[p + "k_proj.weight"] = sd[p + "k_proj.weight"], sd[p + "q_proj.weight"]
        return sd

    monkeypatch.setattr(ef, "hf_clip_state_dict", swapped)
    with pytest.raises(ExportError, match="differs from open_clip"):
        ef.export_full(clip, cfg["preprocess_cfg"], tokenizer, load_dataset_dir(small_city).addresses,
                       tmp_path / "full")
    assert not list(tmp_path.iterdir())


def test_a_calibration_naming_a_missing_open_set_file_is_refused(small_city, tmp_path):
    """The export's predictor must abstain as the run's does: no silent fallback to top probability."""
    from addressclip.calibration import Calibration
    from data_gen.dataset import load_dataset_dir
    clip, cfg = create_clip("AddressCLIP-Tiny")
    cal = tmp_path / "run"
    cal.mkdir()
    Calibration(open_set={"score": "mahalanobis", "threshold": -10.0}).save(cal)
    with pytest.raises(ExportError, match="open_set.safetensors is missing"):
        ef.export_full(clip, cfg["preprocess_cfg"], open_clip.get_tokenizer("AddressCLIP-Tiny"),
                       load_dataset_dir(small_city).addresses, tmp_path / "full", calibration_dir=cal)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
