"""End to end on CPU: pretrain the projector, fine-tune, resume, export, chat, evaluate."""

from __future__ import annotations

import json

import pytest
import torch

from llava_ial import chat, export, train
from llava_ial.config import parse_args
from llava_ial.inference import DEFAULT_QUESTION, load_for_inference
from llava_ial.layout import checkpoint_keys, read_meta

QUIET = ["--report_to", "none", "--disable_tqdm", "True", "--dataloader_num_workers", "0",
         "--save_strategy", "no", "--per_device_train_batch_size", "16", "--logging_steps", "1"]


@pytest.fixture(scope="module")
def runs(stack, tmp_path_factory):
    """A pretrain run and a full fine-tune from its projector (module-scoped: several tests read)."""
    _, st = stack
    root = tmp_path_factory.mktemp("llava_runs")
    pretrained = train.train(["--model", str(st.model), "--stage", "pretrain", "--conversations",
                              str(st.conversations / "pretrain_train.json"), "--output_dir",
                              str(root / "pretrain"), "--max_steps", "4", *QUIET])
    finetuned = train.train(["--model", str(st.model), "--pretrained_projector", str(pretrained),
                             "--conversations", str(st.conversations / "instruct_train.json"),
                             "--output_dir", str(root / "finetune"), "--max_steps", "24",
                             "--learning_rate", "5e-3", "--warmup_steps", "2", *QUIET,
                             "--report_to", "tensorboard", "--activation_checkpointing", "True"])
    return root, pretrained, finetuned


def test_settings_from_yaml_and_flags(tmp_path):
    (tmp_path / "c.yaml").write_text("stage: pretrain\nlora_r: 8\nmodel_max_length: 256\n")
    m, d, lora, t = parse_args(["--config", str(tmp_path / "c.yaml"), "--model", "M",
                                "--conversations", "C", "--lora_r", "4"])
    assert (t.stage, t.learning_rate, lora.lora_r, d.model_max_length) == ("pretrain", 1e-3, 4, 256)
    *_, t = parse_args(["--model", "M", "--conversations", "C"])
    assert (t.stage, t.learning_rate) == ("finetune", 2e-5)
    (tmp_path / "bad.yaml").write_text("stagee: pretrain\n")
    with pytest.raises(SystemExit):
        parse_args(["--config", str(tmp_path / "bad.yaml"), "--model", "M", "--conversations", "C"])


@pytest.mark.slow
def test_pretrain_writes_only_the_projector(runs):
    _, pretrained, _ = runs
    meta = read_meta(pretrained)
    assert meta["kind"] == "projector" and meta["stage"] == "pretrain"
    assert (pretrained / "projector.safetensors").is_file()
    assert not (pretrained / "model.safetensors").exists()


@pytest.mark.slow
def test_projector_run_exports_into_its_base(runs, tmp_path):
    from safetensors.torch import load_file
    from transformers import LlavaForConditionalGeneration
    _, pretrained, _ = runs
    report = export.export(pretrained, tmp_path / "export")
    assert report["source_kind"] == "projector"
    model = LlavaForConditionalGeneration.from_pretrained(tmp_path / "export")
    for name, value in load_file(str(pretrained / "projector.safetensors")).items():
        assert torch.equal(model.model.multi_modal_projector.state_dict()[name], value), name


@pytest.mark.slow
def test_finetune_loss_falls_and_masking_is_counted(runs):
    root, _, finetuned = runs
    summary = json.loads((root / "finetune" / "train_summary.json").read_text())
    losses = [h["loss"] for h in summary["log_history"] if "loss" in h]
    assert len(losses) == 24
    assert sum(losses[-4:]) / 4 < 0.7 * sum(losses[:4]) / 4, losses
    data = json.loads((root / "finetune" / "data_stats.json").read_text())
    assert data["learned_tokens"] > 0 and data["masked_tokens"] > data["learned_tokens"]
    assert read_meta(finetuned)["kind"] == "full"
    assert not (finetuned / "training_args.bin").exists()
    assert list((root / "finetune" / "runs").rglob("events.out.tfevents.*"))       # TensorBoard
    keys = checkpoint_keys(finetuned)
    assert any(k.startswith("vision_tower.vision_model.") for k in keys)
    assert not any(k.startswith("vision_tower.embeddings") for k in keys)


@pytest.mark.slow
def test_resume_from_latest_checkpoint(stack, tmp_path):
    _, st = stack
    args = ["--model", str(st.model), "--conversations", str(st.conversations / "instruct_train.json"),
            "--output_dir", str(tmp_path / "run"), "--learning_rate", "1e-3", *QUIET,
            "--save_strategy", "steps", "--save_steps", "2"]
    train.train([*args, "--max_steps", "2"])
    assert (tmp_path / "run" / "checkpoint-2").is_dir()
    from transformers import LlavaForConditionalGeneration
    at_2 = LlavaForConditionalGeneration.from_pretrained(tmp_path / "run" / "checkpoint-2")
    resumed = {}
    original = train.IALTrainer._load_from_checkpoint

    def spy(self, folder, model=None):
        original(self, folder, model)
        resumed.update((self.model if model is None else model).state_dict())
    train.IALTrainer._load_from_checkpoint = spy
    try:
        train.train([*args, "--max_steps", "3", "--resume_from_checkpoint", "latest"])
    finally:
        train.IALTrainer._load_from_checkpoint = original
    for name, value in at_2.state_dict().items():
        assert torch.equal(resumed[name], value), name      # the weights of step 2, not of the base
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    steps = [h["step"] for h in summary["log_history"] if "loss" in h]
    assert summary["global_step"] == 3 and steps == [1, 2, 3]   # history restored, one step more


@pytest.mark.slow
def test_export_chat_and_stock_transformers_agree(stack, runs, tmp_path, capsys):
    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration
    dataset, _ = stack
    _, _, finetuned = runs
    report = export.export(finetuned, tmp_path / "export")
    assert report["max_abs_logit_diff"] <= export.DEFAULT_TOLERANCE
    image = dataset / "images" / "00000_h0.jpg"
    assert chat.main(["--model", str(tmp_path / "export"), "--image", str(image)]) == 0
    ours = capsys.readouterr().out.strip()

    model, info = LlavaForConditionalGeneration.from_pretrained(tmp_path / "export",
                                                                output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    processor = AutoProcessor.from_pretrained(tmp_path / "export")
    messages = [{"role": "user", "content": [{"type": "image"},
                                             {"type": "text", "text": DEFAULT_QUESTION}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(images=Image.open(image), text=prompt, return_tensors="pt")
    out = model.eval().generate(**inputs, max_new_tokens=64, do_sample=False)
    stock = processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert ours == stock and ours


@pytest.mark.slow
def test_the_one_scorer_reads_a_finetuned_folder(stack, runs, tmp_path):
    """Stage two's output is scored by eval.qa_eval (the one scorer), asked the design question."""
    from eval.config import QAEvalConfig
    from eval.qa_eval import evaluate
    dataset, _ = stack
    _, _, finetuned = runs
    report = evaluate(QAEvalConfig(data=str(dataset), run=[f"tuned=hf:{finetuned}"], limit=12,
                                   baselines=False, bootstrap=0, out=str(tmp_path / "qa")))
    run = report["runs"]["tuned"]
    assert run["failure"] is None and report["references"]["n"] == 12
    assert report["questions"]["phrasings"] == [DEFAULT_QUESTION]
    assert 0 <= run["metrics"]["street_acc"] <= 1


def test_refused_combinations(stack, tmp_path):
    _, st = stack
    base = ["--model", str(st.model), "--conversations", str(st.conversations / "instruct_train.json"),
            "--output_dir", str(tmp_path), *QUIET]
    with pytest.raises(ValueError, match="--lora applies to --stage finetune"):
        train.train([*base, "--stage", "pretrain", "--lora", "True"])
    with pytest.raises(ValueError, match="needs --lora"):
        train.train([*base, "--bits", "4"])


def test_projector_from_another_model_is_refused(stack, tmp_path):
    from safetensors.torch import save_file

    from llava_ial.layout import LayoutError
    from llava_ial.model import load_projector
    _, st = stack
    model, _ = load_for_inference(st.model)
    save_file({"linear_1.weight": torch.zeros(3, 3), "linear_1.bias": torch.zeros(3),
               "linear_2.weight": torch.zeros(3, 3), "linear_2.bias": torch.zeros(3)},
              str(tmp_path / "p.safetensors"))
    with pytest.raises(LayoutError, match="p.safetensors: linear_1.weight has shape"):
        load_projector(model, tmp_path / "p.safetensors")
