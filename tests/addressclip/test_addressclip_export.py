"""HF CLIPVisionModel export: stock transformers loads it, and every layer matches open_clip."""

from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from addressclip.export import ExportError, export_vision_tower, open_clip_hidden_states
from addressclip.model import REGISTRY_DIR, create_clip


@pytest.mark.parametrize("quick_gelu", [False, True])
def test_every_hidden_state_matches_open_clip(tmp_path, quick_gelu):
    from transformers import CLIPImageProcessor, CLIPVisionModel
    torch.manual_seed(0)
    clip, cfg = create_clip("AddressCLIP-Tiny", force_quick_gelu=quick_gelu)
    export_vision_tower(clip, cfg["preprocess_cfg"], tmp_path / "hf")

    hf, info = CLIPVisionModel.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert hf.config.hidden_act == ("quick_gelu" if quick_gelu else "gelu")
    with safe_open(str(tmp_path / "hf" / "model.safetensors"), "pt") as f:
        assert all(k.startswith("vision_model.") for k in f.keys())  # the names vLLM expects

    # a real image through each side's own preprocessing, then every layer
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    proc = CLIPImageProcessor.from_pretrained(tmp_path / "hf")
    hf_pixels = proc(images=img, return_tensors="pt")["pixel_values"]
    oc_pixels = open_clip.create_model_and_transforms("AddressCLIP-Tiny")[2](img)[None]
    assert hf_pixels.shape == oc_pixels.shape == (1, 3, 64, 64)
    assert (hf_pixels - oc_pixels).abs().mean() < 0.02  # same resize/crop/normalisation

    clip.eval()
    with torch.no_grad():
        ours = open_clip_hidden_states(clip.visual, oc_pixels)
        theirs = hf(pixel_values=oc_pixels, output_hidden_states=True)
    assert len(theirs.hidden_states) == len(ours) == 5
    for i, (a, b) in enumerate(zip(ours, theirs.hidden_states)):
        assert (a - b).abs().max() <= 1e-4, f"hidden state {i}"
    # resblock i output is hidden_states[i + 1]; pooled output is ln_post of the class token
    assert torch.allclose(theirs.pooler_output, clip.visual.ln_post(ours[-1][:, 0]), atol=1e-4)
    report = json.loads((tmp_path / "hf" / "addressclip_export.json").read_text())
    assert report["parity"]["max_abs_diff"] <= 1e-4


def test_export_is_not_a_tautology(tmp_path):
    """A perturbed weight is caught by the same comparison the export runs."""
    from transformers import CLIPVisionModel
    torch.manual_seed(0)
    clip, cfg = create_clip("AddressCLIP-Tiny")
    export_vision_tower(clip, cfg["preprocess_cfg"], tmp_path / "hf")
    hf = CLIPVisionModel.from_pretrained(tmp_path / "hf")
    with torch.no_grad():
        clip.visual.transformer.resblocks[2].attn.in_proj_weight[256 + 5, 7] += 0.5  # a value weight
        x = torch.randn(1, 3, 64, 64)
        ours = open_clip_hidden_states(clip.visual, x)
        theirs = hf(pixel_values=x, output_hidden_states=True).hidden_states
    assert (ours[2] - theirs[2]).abs().max() <= 1e-4
    assert (ours[3] - theirs[3]).abs().max() > 1e-3


def test_non_plain_vit_is_refused(tmp_path):
    cfg = json.loads((REGISTRY_DIR / "AddressCLIP-Tiny.json").read_text())
    cfg["vision_cfg"]["attentional_pool"] = True
    path = tmp_path / "Test-AttnPool.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    clip, pre = create_clip("Test-AttnPool")
    with pytest.raises(ExportError, match="attentional pooler"):
        export_vision_tower(clip, pre["preprocess_cfg"], tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
