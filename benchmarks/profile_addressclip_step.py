"""Where AddressCLIP's training step spends its time: ``python benchmarks/profile_addressclip_step.py``.

One fixed batch of real training samples (``runs/helsinki/data`` or ``--data``) through the real
step (``addressclip.train.batch_losses``, backward, fused AdamW), for the address-only and the
all-losses weights. Prints, per weights, the median over ``--steps`` of each phase timed alone
(image tower forward, text tower forward on the batch's distinct addresses and on the captions, the
losses, backward, optimizer step; forward phases under ``no_grad`` are not what the step runs, so the
phases are timed with autograd on and the backward is that of the whole step), the text lengths the
tower actually runs at, and the top operators of one step by self CPU time (``torch.profiler``).

``--flops true`` instead counts model FLOPs of one forward + backward (``FlopCounterMode``; independent
of machine load) for what open_clip's trainer runs (both towers, every text at the full context) and
for AddressCLIP's step with each set of weights, with and without ``--text-length-groups``.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from functools import partial

from common import ROOT

from ial_core.config import option, parse_config


@dataclass
class ProfileStepConfig:
    model: str = option("ViT-B-32", "model name")
    data: str = option(str(ROOT / "runs" / "helsinki" / "data"), "built dataset")
    batch: int = option(32, "batch")
    steps: int = option(3, "timed steps per weights")
    top: int = option(12, "operators listed")
    flops: bool = option(False, "count FLOPs per step instead of timing")


def main(argv: list[str] | None = None) -> int:
    a = parse_config(ProfileStepConfig, argv, description=__doc__.split("\n")[0])
    import open_clip
    import torch
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.data import default_collate

    from addressclip.config import parse_args
    from addressclip.data import CandidateSet, EpochBatchSampler, IALImageDataset
    from addressclip.losses import AddressCLIPLoss, LossWeights
    from addressclip.model import AddressCLIP, create_clip
    from addressclip.train import batch_losses, make_optimizer
    from data_gen.dataset import load_dataset_dir

    device = torch.device("cpu")
    torch.manual_seed(0)
    ial = load_dataset_dir(a.data)
    cands = CandidateSet.from_dataset(ial)
    clip, mcfg = create_clip(a.model)
    tok = open_clip.get_tokenizer(a.model)
    model = AddressCLIP(clip)
    cfg, _ = parse_args(["--model", a.model, "--batch-size", str(a.batch)])
    opt = make_optimizer(model, cfg, device)
    cand_tokens = cands.tokens(tok)
    ds = IALImageDataset(ial, "train", cands, preprocess_cfg=mcfg["preprocess_cfg"], train=True,
                         tokenizer=tok)
    batch = default_collate([ds[k] for k in next(iter(EpochBatchSampler(len(ds), a.batch, seed=0)))])
    uniq = torch.unique(batch["label"])

    def lengths(tokens):
        return tokens.argmax(-1) + 1        # EOT is the largest token id
    print(f"{a.model}, batch {a.batch}, {torch.get_num_threads()} threads; distinct addresses "
          f"{len(uniq)} (tokens: longest {int(lengths(cand_tokens[uniq]).max())}, mean "
          f"{float(lengths(cand_tokens[uniq]).float().mean()):.1f}); captions: longest "
          f"{int(lengths(batch['caption_tokens']).max())}, mean "
          f"{float(lengths(batch['caption_tokens']).float().mean()):.1f}; context "
          f"{cand_tokens.shape[1]}")

    def total_loss(loss_fn):
        return batch_losses(model, loss_fn, batch, cand_tokens, device)["total"]

    def timed(phases: dict[str, list[float]], key: str, fn):
        t = time.perf_counter()
        out = fn()
        phases.setdefault(key, []).append(time.perf_counter() - t)
        return out

    if a.flops:
        from torch.utils.flop_counter import FlopCounterMode

        def count(fn) -> float:
            with FlopCounterMode(display=False) as fc:
                fn().backward()
            model.zero_grad(set_to_none=True)
            return fc.get_total_flops() / 1e9

        def open_clip_step():
            img, txt, scale = clip(batch["image"], cand_tokens[batch["label"]])[:3]  # 77 tokens
            return open_clip.ClipLoss()(img, txt, scale)

        rows = [("open_clip_train (CLIP loss, texts at 77 tokens)", count(open_clip_step))]
        for name, w in (("address only", LossWeights(1, 0, 0)), ("all losses", LossWeights(1, 0.2, 0.8))):
            for grouped in (False, True):
                model.text_length_groups = grouped
                g = count(partial(total_loss, AddressCLIPLoss(w)))
                rows.append((f"AddressCLIP {name}{', length groups' if grouped else ''}", g))
        print("\n| step | GFLOP per step | GFLOP per image | open_clip's / this |\n|---|---|---|---|")
        for label, g in rows:
            print(f"| {label} | {g:.0f} | {g / a.batch:.1f} | {rows[0][1] / g:.2f} |")
        return 0

    for name, w in (("address only", LossWeights(1, 0, 0)), ("all losses", LossWeights(1, 0.2, 0.8))):
        loss_fn = AddressCLIPLoss(w)
        phases: dict[str, list[float]] = {}
        for i in range(a.steps + 1):
            if i == 0:
                phases.clear()
            img = timed(phases, "image tower forward", lambda: model.encode_image(batch["image"]))
            del img
            if w.alpha:
                timed(phases, "text forward: addresses", lambda: model.encode_text(cand_tokens[uniq]))
            if w.beta:
                timed(phases, "text forward: captions",
                      lambda: model.encode_text(batch["caption_tokens"]))
            opt.zero_grad(set_to_none=True)
            losses = timed(phases, "whole forward + losses",
                           partial(batch_losses, model, loss_fn, batch, cand_tokens, device))
            timed(phases, "backward", losses["total"].backward)
            timed(phases, "optimizer step", opt.step)
            opt.zero_grad(set_to_none=True)
            if i == 0:
                phases.clear()
        med = {k: statistics.median(v) for k, v in phases.items()}
        step = med["whole forward + losses"] + med["backward"] + med["optimizer step"]
        print(f"\n== {name}: step {step:.2f} s = {a.batch / step:.2f} images/s")
        for k, v in med.items():
            print(f"  {k:28s} {v:7.3f} s  ({100 * v / step:5.1f}% of the step)")
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            losses = batch_losses(model, loss_fn, batch, cand_tokens, device)
            losses["total"].backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.top,
                                        max_name_column_width=40))
    return 0


if __name__ == "__main__":
    sys.exit(main())
