"""Mixed precision: bf16/fp16 autocast on CUDA, fp32 on CPU.

``auto`` resolves to bf16 on a CUDA device that supports it (fp16 with a gradient scaler otherwise)
and to fp32 on CPU. An explicit ``bf16`` on CPU uses CPU autocast; ``fp16`` needs CUDA. Weights and
optimizer state stay fp32 in every case (autocast, not a cast of the model).
"""

from __future__ import annotations

import contextlib

import torch

from addressclip.config import ConfigError


def resolve_precision(requested: str, device: torch.device) -> str:
    if requested == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if requested == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs a CUDA device; use fp32 (or bf16) on CPU")
    return requested


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str):
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None
