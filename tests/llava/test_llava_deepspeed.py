"""scripts/finetune_llava_ial.sh itself, with two CPU processes (DeepSpeed CPU accelerator, gloo):
a few steps under ZeRO-2, and under ZeRO-3 starting from a pretrained projector.

The first DeepSpeed run on a machine compiles its shared-memory op (~30 s; cached afterwards in
~/.cache/torch_extensions).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ial_core.launch import free_port
from llava_ial import train
from llava_ial.layout import read_meta

REPO = Path(__file__).resolve().parents[2]
STEPS = ["--max_steps", "3", "--per_device_train_batch_size", "4", "--report_to", "none",
         "--save_strategy", "no", "--disable_tqdm", "True", "--dataloader_num_workers", "0",
         "--logging_steps", "1"]


def run_finetune_script(env: dict, args: list[str]) -> str:
    env = {**os.environ, "PYTHON": sys.executable, "NUM_GPUS": "2", "MASTER_PORT": str(free_port()),
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **env}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "finetune_llava_ial.sh"), *args], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=480)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return log


def projector_of(model_dir: Path) -> dict[str, torch.Tensor]:
    state = load_file(str(model_dir / "model.safetensors"))
    prefix = "multi_modal_projector."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


@pytest.mark.slow
def test_zero2_two_cpu_processes(stack, tmp_path):
    from transformers import LlavaForConditionalGeneration
    _, st = stack
    out = tmp_path / "zero2"
    run_finetune_script({"MODEL": str(st.model), "PROJECTOR": "", "ZERO": "scripts/zero2.json",
                               "DATA": str(st.conversations / "instruct_train.json"),
                               "OUTPUT_DIR": str(out)}, STEPS)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_step"] == 3 and summary["zero_stage"] == 2
    model, info = LlavaForConditionalGeneration.from_pretrained(out / "model", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))


@pytest.mark.slow
def test_zero3_loads_a_pretrained_projector(stack, tmp_path):
    """The projector is copied into ZeRO-3-partitioned parameters (gathered, verified); with its
    learning rate at 0 it must come out of training bit-identical while the LLM trains."""
    _, st = stack
    pretrained = train.train(["--model", str(st.model), "--stage", "pretrain", "--conversations",
                              str(st.conversations / "pretrain_train.json"), "--output_dir",
                              str(tmp_path / "pretrain"), *STEPS])
    out = tmp_path / "zero3"
    log = run_finetune_script({"MODEL": str(st.model), "PROJECTOR": str(pretrained),
                               "ZERO": "scripts/zero3.json", "OUTPUT_DIR": str(out),
                               "DATA": str(st.conversations / "instruct_train.json")},
                              [*STEPS, "--learning_rate", "1e-2", "--projector_lr", "0"])
    assert "pretrained projector loaded" in log and "verified (max abs diff 0)" in log
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["zero_stage"] == 3
    assert read_meta(out / "model")["kind"] == "full"
    loaded = load_file(str(pretrained / "projector.safetensors"))
    final = projector_of(out / "model")
    base = projector_of(st.model)
    assert set(final) == set(loaded)
    for name, value in loaded.items():
        assert torch.equal(final[name], value), name
        assert not torch.equal(base[name], value)          # the pretrain run changed it
    before = load_file(str(st.model / "model.safetensors"))
    after = load_file(str(out / "model" / "model.safetensors"))
    key = "language_model.model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(before[key], after[key])          # while the language model trained


@pytest.mark.slow
def test_zero3_lora_two_cpu_processes(stack, tmp_path):
    """LoRA under ZeRO-3: adapters on partitioned layers; the adapter saved from the gathered
    weights loads on its base and exports."""
    from llava_ial import export
    _, st = stack
    out = tmp_path / "zero3_lora"
    run_finetune_script({"MODEL": str(st.model), "PROJECTOR": "", "ZERO": "scripts/zero3.json",
                         "DATA": str(st.conversations / "instruct_train.json"),
                         "OUTPUT_DIR": str(out)},
                        [*STEPS, "--lora", "True", "--lora_r", "4", "--lora_alpha", "8"])
    meta = read_meta(out / "model")
    assert meta["kind"] == "lora" and meta["summary"]["zero_stage"] == 3
    assert meta["summary"]["world_size"] == 2
    report = export.export(out / "model", tmp_path / "merged")
    assert report["max_abs_logit_diff"] <= 1e-4


@pytest.mark.slow
def test_zero3_offload_keeps_the_per_part_learning_rates(stack, tmp_path):
    """zero3_offload.json leaves the optimizer to the Trainer (DeepSpeed's CPU Adam with the
    per-part groups): with --projector_lr 0 the projector stays put while the LM trains."""
    _, st = stack
    out = tmp_path / "offload"
    log = run_finetune_script({"MODEL": str(st.model), "PROJECTOR": "",
                               "ZERO": "scripts/zero3_offload.json", "OUTPUT_DIR": str(out),
                               "DATA": str(st.conversations / "instruct_train.json")},
                              [*STEPS, "--learning_rate", "1e-2", "--projector_lr", "0"])
    assert "DeepSpeedCPUAdam" in log or "cpu_adam" in log.lower()
    assert json.loads((out / "train_summary.json").read_text())["zero_stage"] == 3
    before, after = projector_of(st.model), projector_of(out / "model")
    for name in before:
        assert torch.equal(before[name], after[name]), name
    full_before = load_file(str(st.model / "model.safetensors"))
    full_after = load_file(str(out / "model" / "model.safetensors"))
    key = "language_model.model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(full_before[key], full_after[key])
