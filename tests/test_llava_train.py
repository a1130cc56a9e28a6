"""End to end on CPU: pretrain the projector, fine-tune, resume, export, chat, evaluate."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from llava_ial import chat, export, train  # noqa: E402
from llava_ial.config import parse_args  # noqa: E402
from llava_ial.evaluate import evaluate  # noqa: E402
from llava_ial.inference import DEFAULT_QUESTION, load_for_inference  # noqa: E402
from llava_ial.layout import checkpoint_keys, read_meta  # noqa: E402
from llava_fixtures import one_torch_thread, stack  # noqa: E402,F401  (fixtures)

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
def test_evaluate_scores_answers(stack, runs):
    dataset, _ = stack
    _, _, finetuned = runs
    result = evaluate(finetuned, dataset, "test", limit=12)
    assert result["n_images"] == 12 and len(result["rows"]) == 12
    assert 0 <= result["street_accuracy"] <= 100
    assert result["majority"]["street"] and 0 <= result["answers_naming_a_street"] <= 100


def test_scoring_takes_the_first_street_named():
    from llava_ial.evaluate import score
    streets = {"Mannerheimintie", "Pohjoinen Mannerheimintie", "Kalevankatu"}
    answers = ["It looks like Pohjoinen Mannerheimintie, Kluuvi, Helsinki.",
               "Kalevankatu or Mannerheimintie, Kamppi", "somewhere on mannerheimintie.",
               "Kalevankatu2 is not a street", "I can't tell."]
    truth = ["Mannerheimintie", "Kalevankatu", "Mannerheimintie", "Kalevankatu", "Kalevankatu"]
    result = score(answers, truth, ["Kluuvi"] * 5, streets, {"Kluuvi", "Kamppi"})
    assert result["predicted_streets"] == ["Pohjoinen Mannerheimintie", "Kalevankatu",
                                           "Mannerheimintie", "", ""]
    assert result["street_accuracy"] == 40.0 and result["district_accuracy"] == 20.0


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


@pytest.mark.slow
def test_pipeline_runs_every_step(stack, tmp_path):
    """llava_ial.pipeline on the synthetic city with the micro LM and a few steps per stage."""
    from llava_ial.pipeline import PipelineConfig, run
    dataset, st = stack
    (tmp_path / "pt.yaml").write_text("stage: pretrain\nmax_steps: 2\nper_device_train_batch_size: 8\n"
                                      "report_to: [none]\ndisable_tqdm: true\n")
    (tmp_path / "compose.yaml").write_text("vision_feature_layer: -1\nvision_feature_select_strategy: full\n")
    (tmp_path / "ft.yaml").write_text("stage: finetune\nmax_steps: 3\nlearning_rate: 3.0e-3\n"
                                      "per_device_train_batch_size: 8\nreport_to: [none]\n"
                                      "disable_tqdm: true\nsave_strategy: 'no'\n")
    report = run(PipelineConfig(vision=st.vision, data=dataset, out=tmp_path / "out", lm="llama-micro",
                                pretrain_config=tmp_path / "pt.yaml", finetune_config=tmp_path / "ft.yaml",
                                compose_config=tmp_path / "compose.yaml", untuned_baseline=False,
                                nproc=1, eval_limit=6))
    assert report["compose"] == {"vision_feature_layer": -1, "vision_feature_select_strategy": "full"}
    tuned = report["tuned"]
    assert tuned["n_images"] == 6 and tuned["loss"]["finetune"]["steps"] == 3
    assert (tmp_path / "out" / "report.md").read_text().startswith("| model |")
    assert read_meta(tmp_path / "out" / "tuned" / "finetune" / "model")["kind"] == "full"
