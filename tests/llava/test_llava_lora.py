"""LoRA and QLoRA fine-tuning, and the merged export (same logits as adapter + base)."""

from __future__ import annotations

import pytest
import torch

from llava_ial import export, train
from llava_ial.inference import load_for_inference
from llava_ial.layout import read_meta
from llava_ial.model import load_llava

QUIET = ["--report_to", "none", "--disable_tqdm", "True", "--dataloader_num_workers", "0",
         "--per_device_train_batch_size", "8", "--logging_steps", "1"]
# Merged weights W + BA reproduce adapter + base up to float32 rounding (observed ~1e-6).
LOGIT_TOLERANCE = 1e-4


def lora_args(st, out, *extra):
    return ["--model", str(st.model), "--conversations", str(st.conversations / "instruct_train.json"),
            "--output_dir", str(out), "--lora", "True", "--lora_r", "8", "--lora_alpha", "16",
            "--learning_rate", "5e-3", "--projector_lr", "1e-3", *QUIET, *extra]


@pytest.mark.slow
def test_lora_export_matches_adapter_plus_base(stack, tmp_path):
    from transformers import LlavaForConditionalGeneration
    _, st = stack
    out = train.train(lora_args(st, tmp_path / "run", "--max_steps", "4", "--save_strategy", "steps",
                                "--save_steps", "2"))
    meta = read_meta(out)
    assert meta["kind"] == "lora" and meta["base_model"] == str(st.model.resolve())
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert not list(out.glob("*.bin"))

    report = export.export(out, tmp_path / "merged")
    assert read_meta(tmp_path / "merged")["exported_from"]["source_kind"] == "lora"

    adapter, processor = load_for_inference(out)
    merged, info = LlavaForConditionalGeneration.from_pretrained(tmp_path / "merged",
                                                                 output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    base = LlavaForConditionalGeneration.from_pretrained(st.model)
    logits = [export.probe_logits(m.eval(), processor) for m in (adapter, merged, base)]
    diff = float((logits[0] - logits[1]).abs().max())
    assert diff <= LOGIT_TOLERANCE and report["max_abs_logit_diff"] <= LOGIT_TOLERANCE
    assert float((logits[0] - logits[2]).abs().max()) > 100 * LOGIT_TOLERANCE   # it did train
    trained = merged.model.multi_modal_projector.linear_1.weight
    assert not torch.equal(trained, base.model.multi_modal_projector.linear_1.weight)


@pytest.mark.slow
def test_lora_resume(stack, tmp_path):
    _, st = stack
    args = lora_args(st, tmp_path / "run", "--save_strategy", "steps", "--save_steps", "2",
                     "--activation_checkpointing", "True")
    train.train([*args, "--max_steps", "2"])
    out = train.train([*args, "--max_steps", "3", "--resume_from_checkpoint", "latest"])
    assert read_meta(out)["summary"]["global_step"] == 3


@pytest.mark.slow
def test_qlora_trains_the_4bit_language_model(stack, tmp_path):
    _, st = stack
    model = load_llava(st.model, bits=4)
    kinds = {type(m).__name__ for m in model.model.language_model.modules()}
    assert "Linear4bit" in kinds
    assert type(model.model.multi_modal_projector.linear_1).__name__ == "Linear"
    assert type(model.model.vision_tower.encoder.layers[0].mlp.fc1).__name__ == "Linear"
    out = train.train(lora_args(st, tmp_path / "run", "--bits", "4", "--max_steps", "3",
                                "--save_strategy", "no", "--optim", "adamw_torch"))
    meta = read_meta(out)
    assert meta["kind"] == "lora" and meta["bits"] == 4
    losses = [h["loss"] for h in meta["summary"].get("log_history", [])] or [meta["summary"]["train_loss"]]
    assert all(torch.isfinite(torch.tensor(losses)))
    merged = export.export(out, tmp_path / "merged", tolerance=float("inf"))
    assert merged["source_kind"] == "lora"
