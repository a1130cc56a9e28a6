"""Checkpoints: atomic publication, weights_only-loadable training state, pruning."""

from __future__ import annotations

import json

import pytest
import torch

from addressclip import checkpoint as ckpt
from addressclip.model import CheckpointError, create_clip, load_clip_dir


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_clip("AddressCLIP-Tiny")


def _optimizer(model):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.logit_scale.grad = torch.tensor(1.0)
    opt.step()
    return opt


def test_state_round_trips_with_weights_only(tiny, tmp_path):
    model, config = tiny
    opt = _optimizer(model)
    torch.manual_seed(42)
    path = ckpt.save_checkpoint(tmp_path, clip=model, model_config=config, optimizer=opt, scaler=None,
                                step=7, epoch=1, batch_in_epoch=3)
    expected_next = torch.rand(3)
    state = ckpt.load_training_state(path)  # torch.load(weights_only=True) inside
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (7, 1, 3)
    fresh = torch.optim.AdamW(model.parameters(), lr=1e-3)
    fresh.load_state_dict(state["optimizer"])
    (k, ref), = opt.state_dict()["state"].items()  # only logit_scale had a gradient
    assert torch.equal(fresh.state_dict()["state"][k]["exp_avg"], ref["exp_avg"])
    torch.manual_seed(0)
    ckpt.set_rng_state(state["rng"])
    assert torch.equal(torch.rand(3), expected_next)
    loaded, _ = load_clip_dir(path)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                  model.state_dict().values()))
    assert json.loads((tmp_path / "checkpoints" / "latest.json").read_text())["step"] == 7


def test_a_crash_while_saving_leaves_latest_on_a_complete_checkpoint(tiny, tmp_path, monkeypatch):
    model, config = tiny
    opt = _optimizer(model)
    kw = dict(clip=model, model_config=config, optimizer=opt, scaler=None, epoch=0, batch_in_epoch=0)
    ckpt.save_checkpoint(tmp_path, step=1, **kw)

    def crash(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(ckpt, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(tmp_path, step=2, **kw)
    assert not (tmp_path / "checkpoints" / "step_000002").exists()
    latest = ckpt.resolve_checkpoint(tmp_path, "latest")
    assert latest.name == "step_000001"
    load_clip_dir(latest)
    ckpt.load_training_state(latest)


def test_old_checkpoints_are_pruned_but_init_kept(tiny, tmp_path):
    model, config = tiny
    opt = _optimizer(model)
    ckpt.save_model_dir(tmp_path / "checkpoints" / "init", model, config)
    for step in (1, 2, 3, 4):
        ckpt.save_checkpoint(tmp_path, clip=model, model_config=config, optimizer=opt, scaler=None,
                             step=step, epoch=0, batch_in_epoch=step, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir())
    assert names == ["init", "step_000003", "step_000004"]
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        ckpt.load_training_state(tmp_path / "checkpoints" / "init")
    with pytest.raises(CheckpointError, match="no checkpoint to resume"):
        ckpt.resolve_checkpoint(tmp_path / "empty", "latest")
