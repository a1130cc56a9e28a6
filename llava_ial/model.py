"""Load a LLaVA-IAL model for training: precision/quantization, which parts train, LoRA, projector I/O.

Parts (transformers 5.x names): ``model.model.vision_tower``, ``model.model.multi_modal_projector``,
``model.model.language_model`` + ``model.lm_head``. What trains is decided by the stage and flags,
never by folder names:

- ``pretrain``: the projector only;
- ``finetune``: projector + language model (fully, or LoRA adapters with the projector fully trained
  via peft ``modules_to_save``); the vision tower only with ``tune_vision_tower``. Under LoRA the
  template tokens that compose added (``new_token_ids`` in ``llava_ial.json``: ``<|im_end|>``, the
  stop token, above all) train their embedding and ``lm_head`` rows through peft's
  ``trainable_token_indices``; otherwise they would keep their mean initialisation and the model
  would never learn to stop.

Weights load in the training dtype (``--bf16``/``--fp16``) from the start; under ZeRO-3
``from_pretrained`` builds them inside ``deepspeed.zero.Init`` (transformers does so while the
Trainer's DeepSpeed config is alive), so no process ever holds the whole model.

ZeRO-3 partitions parameters as ``from_pretrained`` creates them, so a projector read afterwards cannot
be copied in directly (the reference code fails with ``size mismatch ... torch.Size([0])``).
:func:`load_projector` gathers the partitioned projector (``deepspeed.zero.GatheredParameters``),
writes it on rank 0, re-partitions on exit, then gathers again to verify the copy.
"""

from __future__ import annotations

import logging
import os
import re
from contextlib import nullcontext
from pathlib import Path

import torch
from safetensors.torch import load_file

from llava_ial.layout import PROJECTOR_FILE, LayoutError, read_meta

log = logging.getLogger("llava_ial.model")
PROJECTOR = "multi_modal_projector"
VISION = "vision_tower"
# Modules kept out of 4/8-bit quantization (prefixes of module names): only the LM body is quantized.
NOT_QUANTIZED = [f"model.{VISION}", f"model.{PROJECTOR}", "lm_head"]


def quantization_config(bits: int, compute_dtype: torch.dtype):
    from transformers import BitsAndBytesConfig
    if bits == 4:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                  bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute_dtype,
                                  llm_int8_skip_modules=NOT_QUANTIZED)
    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=NOT_QUANTIZED)
    return None


def load_llava(model_dir: str | Path, *, bits: int = 16, dtype: torch.dtype = torch.float32,
               compute_dtype: torch.dtype | None = None, device_map=None):
    """``LlavaForConditionalGeneration`` from a full LLaVA directory (safetensors only); with
    ``bits`` 4/8 the language-model body is quantized and matmuls run in ``compute_dtype``."""
    from transformers import LlavaForConditionalGeneration
    meta = read_meta(model_dir)
    if meta["kind"] != "full":
        raise LayoutError(f"{model_dir}: a {meta['kind']!r} folder; training starts from a full model "
                          "(compose one, or export this with `python -m llava_ial.export`)")
    quant = quantization_config(bits, compute_dtype or dtype)
    if quant is not None and device_map is None:      # bitsandbytes places weights at load time
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        device_map = {"": local_rank} if torch.cuda.is_available() else {"": "cpu"}
    return LlavaForConditionalGeneration.from_pretrained(
        model_dir, dtype=dtype, quantization_config=quant, device_map=device_map, use_safetensors=True)


def base_of(model):
    """The ``LlavaForConditionalGeneration`` inside a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def part_of(name: str) -> str:
    """Which part a parameter name belongs to: vision_tower, projector or language_model."""
    if f"{VISION}." in name:
        return VISION
    if f"{PROJECTOR}." in name:
        return "projector"
    return "language_model"


def set_trainable(model, stage: str, *, tune_vision_tower: bool = False) -> dict[str, int]:
    """Freeze by stage (before any LoRA wrapping); returns trainable parameter counts per part."""
    train_parts = {"projector"} | ({"language_model"} if stage == "finetune" else set())
    if tune_vision_tower:
        train_parts.add(VISION)
    for name, p in model.named_parameters():
        p.requires_grad_(part_of(name) in train_parts and p.is_floating_point())
    return count_trainable(model)


def count_trainable(model) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            n = p.ds_numel if hasattr(p, "ds_numel") else p.numel()
            counts[part_of(name)] = counts.get(part_of(name), 0) + n
    return counts


def lora_target_regex(model, target: str) -> str:
    """A peft ``target_modules`` regex over the language model's Linear layers only."""
    if target != "all-linear":
        names = [t.strip() for t in target.split(",") if t.strip()]
    else:
        lm = base_of(model).model.language_model
        names = sorted({n.rsplit(".", 1)[-1] for n, m in lm.named_modules()
                        if isinstance(m, torch.nn.Linear) or type(m).__name__ in ("Linear4bit",
                                                                                   "Linear8bitLt")})
    if not names:
        raise ValueError(f"no LoRA target modules from {target!r}")
    return rf".*\.language_model\..*\.({'|'.join(map(re.escape, names))})"


def trainable_tokens(model, token_ids: list[int]) -> dict[str, list[int]] | None:
    """peft ``trainable_token_indices`` for the new tokens: the input embedding, and ``lm_head``
    when it is not tied to it (tied heads follow the embedding's adapter)."""
    if not token_ids:
        return None
    base = base_of(model)
    out = {"embed_tokens": sorted(token_ids)}
    head = base.get_output_embeddings()
    if head is not None and head.weight is not base.get_input_embeddings().weight:
        out["lm_head"] = sorted(token_ids)
    return out


def apply_lora(model, lora_args, *, tune_vision_tower: bool = False, gradient_checkpointing=False,
               new_token_ids: list[int] | None = None):
    """Wrap with peft LoRA on the language model; the projector (and tower) train fully, and the
    rows of ``new_token_ids`` in the embedding and output head train too."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False})
    config = LoraConfig(r=lora_args.lora_r, lora_alpha=lora_args.lora_alpha,
                        lora_dropout=lora_args.lora_dropout, bias="none", task_type="CAUSAL_LM",
                        target_modules=lora_target_regex(model, lora_args.lora_target),
                        modules_to_save=[PROJECTOR] + ([VISION] if tune_vision_tower else []),
                        trainable_token_indices=trainable_tokens(model, new_token_ids or []))
    model = get_peft_model(model, config)
    if gradient_checkpointing:
        model.enable_input_require_grads()
    return model


def _zero3_params(params: list) -> bool:
    return any(hasattr(p, "ds_id") for p in params)


def gathered(params: list, modifier_rank=None):
    """Full parameters inside the block under ZeRO-3 (a no-op otherwise)."""
    if not _zero3_params(params):
        return nullcontext()
    import deepspeed
    return deepspeed.zero.GatheredParameters(params, modifier_rank=modifier_rank)


def projector_state_dict(model) -> dict[str, torch.Tensor]:
    """The projector's weights (gathered under ZeRO-3), as CPU float32 tensors."""
    proj = base_of(model).model.multi_modal_projector
    if hasattr(proj, "modules_to_save"):                       # peft ModulesToSaveWrapper
        proj = proj.modules_to_save["default"]
    params = dict(proj.named_parameters())
    with gathered(list(params.values())):
        return {k: v.detach().to("cpu", torch.float32).clone() for k, v in params.items()}


def read_projector(path: str | Path) -> dict[str, torch.Tensor]:
    """Projector weights from a pretrain run's model folder or a ``.safetensors`` file."""
    path = Path(path)
    if path.is_dir():
        meta = read_meta(path)
        if meta["kind"] != "projector":
            raise LayoutError(f"{path}: a {meta['kind']!r} folder, not a pretrained projector")
        path = path / PROJECTOR_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such projector file")
    return load_file(str(path))


def load_projector(model, path: str | Path) -> float:
    """Copy pretrained projector weights in (ZeRO-3 aware); returns the max abs difference after,
    against the file's values cast to the model's dtype (a float32 projector in a bf16 model is
    rounded once by the copy; what must hold exactly is that the copy is that rounding)."""
    state = read_projector(path)
    proj = base_of(model).model.multi_modal_projector
    params = dict(proj.named_parameters())
    if set(state) != set(params):
        raise LayoutError(f"{path}: projector keys {sorted(state)} differ from the model's "
                          f"{sorted(params)}")
    with gathered(list(params.values()), modifier_rank=0):
        for name, p in params.items():
            if tuple(state[name].shape) != tuple(p.shape):
                raise LayoutError(f"{path}: {name} has shape {tuple(state[name].shape)}, the model "
                                  f"needs {tuple(p.shape)} (another vision tower or LM?)")
            with torch.no_grad():
                p.copy_(state[name].to(p.dtype))
    after = projector_state_dict(model)
    return max(float((after[k] - state[k].to(params[k].dtype).float()).abs().max()) for k in state)
