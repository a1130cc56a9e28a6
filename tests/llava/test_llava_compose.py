"""Composing LLaVA-IAL from a vision directory and a causal LM: a directory stock transformers (and
vLLM, by its documented requirements) loads with no conversion."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from llava_ial.compose import ComposeConfig, ComposeError, compose_to_dir
from llava_ial.layout import read_meta
from llava_ial.template import IMAGE_TOKEN, TURN_END, user_message
from llava_ial.testing import make_vision_dir
from llava_ial.tiny_lm import build_tiny_lm_dir, registry_names


def load_clean(folder):
    from transformers import LlavaForConditionalGeneration
    model, info = LlavaForConditionalGeneration.from_pretrained(folder, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    return model.eval()


def test_stock_transformers_loads_it_cleanly(stack):
    from transformers import AutoProcessor, AutoTokenizer
    folder = stack[1].model
    model = load_clean(folder)
    processor = AutoProcessor.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["image_token_index"] == tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert config["text_config"]["vocab_size"] >= len(tokenizer)
    assert config["vision_feature_layer"] == -2
    assert config["vision_feature_select_strategy"] == "default"
    assert config["projector_hidden_act"] == "gelu"
    assert model.model.multi_modal_projector.linear_2.in_features == config["text_config"]["hidden_size"]
    assert tokenizer.chat_template and processor.chat_template == tokenizer.chat_template
    assert (folder / "chat_template.jinja").is_file()
    assert read_meta(folder)["kind"] == "full"
    assert model.generation_config.eos_token_id[0] == tokenizer.convert_tokens_to_ids(TURN_END)


def test_weight_names_follow_vllm(stack):
    with safe_open(str(stack[1].model / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    vision = [k for k in keys if "vision_tower" in k]
    assert vision and all(k.startswith("vision_tower.vision_model.") for k in vision)
    assert any(k.startswith("multi_modal_projector.linear_1") for k in keys)
    assert any(k.startswith("language_model.") for k in keys)


def test_processor_files_for_vllm(stack):
    pc = json.loads((stack[1].model / "processor_config.json").read_text())
    assert pc["patch_size"] == 8 and pc["vision_feature_select_strategy"] == "default"
    assert pc["num_additional_image_tokens"] == 1 and pc["processor_class"] == "LlavaProcessor"


def test_template_renders_image_parts_and_plain_strings(stack):
    from transformers import AutoProcessor
    processor = AutoProcessor.from_pretrained(stack[1].model)
    parts = processor.apply_chat_template([user_message("Where?")], add_generation_prompt=True)
    plain = processor.apply_chat_template([{"role": "user", "content": "<image>\nWhere?"}],
                                          add_generation_prompt=True)
    assert parts == plain == "<|im_start|>user\n<image>\nWhere?<|im_end|>\n<|im_start|>assistant\n"


def test_vision_weights_come_from_the_tower_directory(stack):
    from transformers import CLIPVisionModel
    tower = CLIPVisionModel.from_pretrained(stack[1].vision)
    model = load_clean(stack[1].model)
    for (name, a), (_, b) in zip(tower.state_dict().items(), model.model.vision_tower.state_dict().items()):
        assert torch.equal(a, b), name


def test_random_tower_and_a_second_architecture(stack, tmp_path):
    """Qwen2 (GQA, QKV bias) composes like Llama; the untuned baseline gets a random tower."""
    from transformers import AutoProcessor
    lm = build_tiny_lm_dir("qwen2-tiny", stack[1].conversations, tmp_path / "qwen")
    out = compose_to_dir(ComposeConfig(vision=stack[1].vision, lm=lm, out=tmp_path / "llava",
                                       random_vision_init=True, seed=1))
    model = load_clean(out)
    assert model.config.text_config.model_type == "qwen2"
    tuned = load_clean(stack[1].model)
    a = model.model.vision_tower.embeddings.patch_embedding.weight
    b = tuned.model.vision_tower.embeddings.patch_embedding.weight
    assert not torch.equal(a, b)
    processor = AutoProcessor.from_pretrained(out)
    from PIL import Image
    text = processor.apply_chat_template([user_message("Where?")], add_generation_prompt=True)
    inputs = processor(images=[Image.new("RGB", (40, 50), "red")], text=[text], return_tensors="pt")
    out_ids = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out_ids.shape[1] <= inputs["input_ids"].shape[1] + 3


def test_every_registry_entry_builds(stack, tmp_path):
    from transformers import AutoModelForCausalLM
    for name in registry_names():
        out = build_tiny_lm_dir(name, stack[1].conversations, tmp_path / name)
        model = AutoModelForCausalLM.from_pretrained(out)
        assert model.num_parameters() < 5_000_000


def test_errors_name_the_folder(stack, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ComposeError, match="empty: no config.json"):
        compose_to_dir(ComposeConfig(vision=empty, lm=stack[1].lm, out=tmp_path / "x"))
    with pytest.raises(ComposeError, match="model_type 'llama'"):
        compose_to_dir(ComposeConfig(vision=stack[1].lm, lm=stack[1].lm, out=tmp_path / "x"))
    assert not (tmp_path / "x").exists()
    bad = make_vision_dir(tmp_path / "bad_size")
    pre = json.loads((bad / "preprocessor_config.json").read_text())
    pre["crop_size"] = {"height": 48, "width": 48}
    (bad / "preprocessor_config.json").write_text(json.dumps(pre))
    with pytest.raises(ComposeError, match=r"outputs \(48, 48\) pixels but the vision tower takes 32x32"):
        compose_to_dir(ComposeConfig(vision=bad, lm=stack[1].lm, out=tmp_path / "x"))


def test_make_vision_dir_matches_the_addressclip_export_layout(tmp_path):
    folder = make_vision_dir(tmp_path / "v")
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert all(k.startswith("vision_model.") for k in f.keys())
    assert (folder / "preprocessor_config.json").is_file()
