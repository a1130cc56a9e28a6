"""Global-batch losses across processes: 2 gloo ranks give the single-process gradient exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from addressclip.losses import AddressCLIPLoss, LossWeights
from ial_core.launch import free_port

GLOBAL_BATCH = 8


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.img = nn.Linear(10, 6)
        self.txt = nn.Linear(10, 6)
        self.logit_scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, x_img, x_addr, x_cap):
        return (F.normalize(self.img(x_img), dim=-1), F.normalize(self.txt(x_addr), dim=-1),
                F.normalize(self.txt(x_cap), dim=-1), self.logit_scale.exp())


def _data():
    g = torch.Generator().manual_seed(1)
    return (torch.randn(GLOBAL_BATCH, 10, generator=g), torch.randn(GLOBAL_BATCH, 10, generator=g),
            torch.randn(GLOBAL_BATCH, 10, generator=g), torch.rand(GLOBAL_BATCH, 2, generator=g) * 500)


def _loss(model, sl, world):
    x_img, x_addr, x_cap, coords = _data()
    img, addr, cap, scale = model(x_img[sl], x_addr[sl], x_cap[sl])
    return AddressCLIPLoss(LossWeights(1.0, 0.2, 0.8), world_size=world)(
        img, scale, address=addr, caption=cap, coords=coords[sl])


def _rank_main(rank: int, world: int, store: str, out: str):
    # A file store, not a TCP one: rank 0 hosts a TCP store, and when it tears down first its peer's
    # store client can abort the process ("terminate called without an active exception").
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        model = DistributedDataParallel(Toy())
        n = GLOBAL_BATCH // world
        losses = _loss(model, slice(rank * n, (rank + 1) * n), world)
        losses["total"].backward()
        if rank == 0:
            torch.save({"loss": {k: v.detach() for k, v in losses.items()},
                        "grads": {k: p.grad for k, p in model.module.named_parameters()}}, out)
        dist.barrier()      # tear down together: gloo may abort a rank whose peer is still busy
    finally:
        dist.destroy_process_group()


def test_two_ranks_match_one_process_on_the_global_batch(tmp_path):
    out = tmp_path / "rank0.pt"
    mp.spawn(_rank_main, args=(2, str(tmp_path / "store"), str(out)), nprocs=2, join=True)
    got = torch.load(out, weights_only=True)

    model = Toy()
    ref = _loss(model, slice(0, GLOBAL_BATCH), 1)
    ref["total"].backward()
    for k in ("address", "caption", "geography", "total"):
        assert got["loss"][k].item() == pytest.approx(ref[k].item(), abs=1e-6), k
    for name, p in model.named_parameters():
        assert torch.allclose(got["grads"][name], p.grad, atol=1e-6), name
    # and the global batch really matters: a rank's local-only loss differs
    local = _loss(Toy(), slice(0, GLOBAL_BATCH // 2), 1)["total"].item()
    assert abs(local - ref["total"].item()) > 1e-3


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train(synthetic_dataset, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(free_port()), "-m", "addressclip.train",
           "--data", str(synthetic_dataset), "--out", str(run), "--epochs", "1", "--batch-size", "8",
           "--workers", "0", "--progress", "false", "--val-split", "none"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["world_size"] == 2
    # 192 train images / (8 per rank x 2 ranks) = 12 optimizer steps
    assert summary["steps"] == 12
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())
    assert latest["step"] == 12 and (Path(run / "checkpoints" / latest["checkpoint"]) /
                                     "open_clip_model.safetensors").is_file()
