"""Configuration precedence (defaults < YAML < flags, model defaults fill only unset fields), the
learning-rate schedule, and resume rules."""

from __future__ import annotations

import math

import pytest
import yaml

from addressclip.config import MODEL_DEFAULTS, TINY_MODEL, Config, ConfigError, merge_for_resume, parse_args
from addressclip.scheduler import lr_at


def test_no_arguments_is_the_tiny_cpu_job_on_the_embedded_city():
    cfg, explicit = parse_args([])
    assert explicit == set()
    assert cfg.model.model == TINY_MODEL and cfg.model.pretrained is None
    assert cfg.uses_embedded_data and str(cfg.dataset_root) == "runs/helsinki/data"
    assert cfg.run.out == "runs/helsinki/addressclip"
    for k, v in MODEL_DEFAULTS[TINY_MODEL].items():
        assert getattr(cfg.optim, k) == v
    assert (cfg.loss.alpha, cfg.loss.beta, cfg.loss.gamma) == (1.0, 0.2, 0.8)
    assert (cfg.optim.beta1, cfg.optim.beta2) == (0.9, 0.98)


def test_paper_defaults_for_a_paper_model():
    cfg, _ = parse_args(["--model", "ViT-B-16", "--pretrained", "openai"])
    assert cfg.optim.lr == 2.4e-5 and cfg.optim.lr_min == 2.4e-8
    assert cfg.optim.batch_size == 32 and cfg.optim.epochs == 100


def test_yaml_then_flags_then_model_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"optim": {"lr": 3e-4, "epochs": 7}, "loss": {"gamma": 0},
                                    "data": {"data": str(tmp_path)}}))
    cfg, explicit = parse_args(["--config", str(path), "--epochs", "9", "--batch-size", "16"])
    assert cfg.optim.lr == 3e-4                     # YAML beats the model default
    assert cfg.optim.epochs == 9                    # the flag beats YAML
    assert cfg.optim.batch_size == 16
    assert cfg.optim.lr_min == MODEL_DEFAULTS[TINY_MODEL]["lr_min"]  # still unset: model default
    assert cfg.loss.gamma == 0.0 and not cfg.uses_embedded_data
    assert {"lr", "epochs", "batch_size", "gamma", "data"} <= explicit


def test_flags_types_none_and_booleans():
    cfg, _ = parse_args(["--val-split", "none", "--augment", "false", "--lock-image", "--lr", "1e-4"])
    assert cfg.data.val_split is None and cfg.data.augment is False
    assert cfg.model.lock_image is True and cfg.optim.lr == 1e-4


@pytest.mark.parametrize("argv, message", [
    (["--alpha", "0", "--beta", "0"], "no contrastive loss"),
    (["--precision", "fp8"], "precision"),
    (["--batch-size", "1"], "negatives"),
    (["--caption-address", "zip"], "caption_address"),
])
def test_invalid_values_are_clear_errors(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_args(argv)


def test_yaml_unknown_keys_are_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"optim": {"learning_rate": 1.0}}))
    with pytest.raises(ConfigError, match="unknown key optim.learning_rate"):
        parse_args(["--config", str(path)])
    path.write_text(yaml.safe_dump({"trainer": {}}))
    with pytest.raises(ConfigError, match="unknown section"):
        parse_args(["--config", str(path)])
    path.write_text(yaml.safe_dump({"optim": {"epochs": "many"}}))
    with pytest.raises(ConfigError, match="epochs must be int"):
        parse_args(["--config", str(path)])


def test_saved_yaml_round_trips(tmp_path):
    cfg, _ = parse_args(["--epochs", "3", "--gamma", "0"])
    cfg.save_yaml(tmp_path / "config.yaml")
    again, _ = parse_args(["--config", str(tmp_path / "config.yaml")])
    assert again.to_dict() == cfg.to_dict()


def test_resume_keeps_the_run_and_refuses_changes():
    saved, _ = parse_args(["--epochs", "3"])
    requested, explicit = parse_args(["--resume", "latest", "--workers", "3"])
    merged = merge_for_resume(saved, requested, explicit)
    assert merged.optim.epochs == 3 and merged.data.workers == 3 and merged.run.resume == "latest"
    requested, explicit = parse_args(["--resume", "latest", "--lr", "0.5"])
    with pytest.raises(ConfigError, match="cannot change lr when resuming"):
        merge_for_resume(saved, requested, explicit)


def test_schedule_warmup_then_cosine_to_the_minimum():
    kw = dict(lr=2.4e-5, lr_min=2.4e-8, warmup_steps=10, total_steps=110)
    assert lr_at(0, **kw) == pytest.approx(2.4e-6)
    assert lr_at(9, **kw) == pytest.approx(2.4e-5)
    assert lr_at(10, **kw) == pytest.approx(2.4e-5)
    assert lr_at(60, **kw) == pytest.approx(2.4e-8 + 0.5 * (2.4e-5 - 2.4e-8))  # half way: mean
    assert lr_at(110, **kw) == pytest.approx(2.4e-8)
    assert lr_at(500, **kw) == pytest.approx(2.4e-8)  # stays at the floor
    after = [lr_at(s, **kw) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(after, after[1:]))
    assert all(math.isfinite(lr_at(s, lr=1.0, lr_min=0.0, warmup_steps=0, total_steps=1))
               for s in range(3))


def test_config_from_dict_rejects_null_for_required():
    with pytest.raises(ConfigError, match="may not be null"):
        Config.from_dict({"model": {"model": None}})


def test_precision_resolution_on_cpu():
    import torch

    from addressclip.precision import autocast, grad_scaler, resolve_precision
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", cpu)
    assert grad_scaler(cpu, "fp32") is None
    with autocast(cpu, "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast(cpu, "fp32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
