"""Folder metadata, atomic writes and checkpoint names (llava_ial/layout.py)."""

from __future__ import annotations

import json

import pytest
import torch

from ial_core.files import atomic_dir
from llava_ial.layout import (
    LayoutError,
    checkpoint_keys,
    checkpoint_name,
    read_meta,
    write_meta,
    write_weights,
)


def test_checkpoint_names_are_the_llava_hf_layout():
    assert checkpoint_name("model.language_model.layers.0.mlp.up_proj.weight") == \
        "language_model.model.layers.0.mlp.up_proj.weight"
    assert checkpoint_name("lm_head.weight") == "language_model.lm_head.weight"
    assert checkpoint_name("model.vision_tower.embeddings.patch_embedding.weight") == \
        "vision_tower.vision_model.embeddings.patch_embedding.weight"
    assert checkpoint_name("model.multi_modal_projector.linear_1.bias") == \
        "multi_modal_projector.linear_1.bias"
    with pytest.raises(LayoutError, match="base_model.model"):
        checkpoint_name("base_model.model.lm_head.weight")


def test_weights_shard_and_skip_a_tied_head(tmp_path):
    state = {"model.language_model.embed_tokens.weight": torch.zeros(64, 8),
             "lm_head.weight": torch.zeros(64, 8),
             "model.multi_modal_projector.linear_1.weight": torch.ones(8, 8)}
    files = write_weights(state, tmp_path, tie_word_embeddings=True, max_shard_bytes=2100)
    assert len(files) == 2 and (tmp_path / "model.safetensors.index.json").is_file()
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(checkpoint_keys(tmp_path)) == {
        "language_model.model.embed_tokens.weight", "multi_modal_projector.linear_1.weight"}


def test_meta_says_what_a_folder_is(tmp_path):
    write_meta(tmp_path, "lora", base_model="/somewhere")
    assert read_meta(tmp_path) == {"format": "llava_ial", "kind": "lora", "base_model": "/somewhere"}
    with pytest.raises(ValueError, match="kind must be one of"):
        write_meta(tmp_path, "adapter")
    (tmp_path / "llava_ial.json").write_text(json.dumps({"kind": "weird"}))
    with pytest.raises(LayoutError, match="kind 'weird'"):
        read_meta(tmp_path)


def test_stock_llava_folder_counts_as_full_and_run_folder_gets_a_hint(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    assert read_meta(tmp_path)["kind"] == "full"
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    write_meta(run / "model", "full")
    with pytest.raises(LayoutError, match="OUTPUT_DIR/model"):
        read_meta(run)


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("1")
    assert (out / "a").read_text() == "1"
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "a").write_text("2")
            raise RuntimeError("interrupted")
    assert (out / "a").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
