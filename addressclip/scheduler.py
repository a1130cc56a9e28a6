"""Learning rate as a pure function of the optimizer step: linear warm-up, then cosine decay.

``lr_at(0) = lr / warmup``; ``lr_at(warmup - 1) = lr``; from there a half cosine to ``lr_min`` at
``total_steps`` (the paper: 2.4e-5 down to 2.4e-8). Being a pure function, resuming needs only the step.
"""

from __future__ import annotations

import math


def lr_at(step: int, *, lr: float, lr_min: float, warmup_steps: int, total_steps: int) -> float:
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
