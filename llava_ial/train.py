"""Train LLaVA-IAL: ``python -m llava_ial.train --model DIR --conversations FILE --stage STAGE ...``.

Stages (LLaVA recipe): ``pretrain`` aligns the projector (LLM and vision tower frozen, lr 1e-3, image
-> caption); ``finetune`` trains projector + language model on the address conversations (fully, or
LoRA/QLoRA with ``--lora [--bits 4]``), starting from ``--pretrained_projector``. The HF Trainer does
the loop: DeepSpeed (``--deepspeed scripts/zero3.json``, launched with ``deepspeed``), gradient
checkpointing (``--activation_checkpointing True``; transformers 5.x's name for it), bf16
(``--bf16 True`` on GPUs; CPUs train in fp32), TensorBoard, and
``--resume_from_checkpoint latest``: the newest *complete* ``checkpoint-N`` (one left half-written by
a killed run, or damaged later, is named in a warning and skipped). Settings:
:mod:`llava_ial.config` (flags or ``--config YAML``).

Outputs in ``--output_dir``: ``checkpoint-N/`` (Trainer), ``runs/`` (TensorBoard), ``data_stats.json``
(learned/masked token counts), ``train_summary.json`` (loss history), and the final model in
``model/`` with ``llava_ial.json`` saying what it is: ``full`` (a servable HF LLaVA directory),
``lora`` (adapter + projector for ``base_model``) or ``projector`` (a pretrain run).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoProcessor, Trainer

from ial_core.checkpoints import file_problem
from ial_core.files import atomic_dir, publish, write_text
from llava_ial.compose import num_image_tokens
from llava_ial.config import parse_args
from llava_ial.data import Collator, ConversationDataset
from llava_ial.layout import PROJECTOR_FILE, read_meta, save_full, write_meta
from llava_ial.model import (
    apply_lora,
    base_of,
    count_trainable,
    load_llava,
    load_projector,
    part_of,
    projector_state_dict,
    set_trainable,
)

log = logging.getLogger("llava_ial.train")
# A pretrained projector must arrive bit-exact, up to the one rounding into the model's dtype
# (load_projector compares against the file cast to that dtype; ZeRO-3 gathers and re-partitions it).
PROJECTOR_LOAD_TOL = 0.0
CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")      # the Trainer's checkpoint folders
TRAINER_STATE = "trainer_state.json"                    # written last by Trainer._save_checkpoint
# Files any resumable checkpoint has one of: full weights, sharded weights, a LoRA adapter, DeepSpeed.
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")


class IALTrainer(Trainer):
    """The HF Trainer with per-part learning rates (projector, vision tower, language model), and
    full-model resume through ``from_pretrained``.

    transformers 5.x writes checkpoints in the legacy LLaVA names (``language_model.model.*``), which
    ``Trainer._load_from_checkpoint`` feeds to ``load_state_dict`` unmapped: every key misses, only a
    warning is logged and training "resumes" from the initial weights. Reading the checkpoint with
    ``from_pretrained`` applies the name mapping; the copy is then strict. (Adapters and DeepSpeed
    checkpoints resume through peft / DeepSpeed and keep the Trainer's path.)
    """

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        model = self.model if model is None else model
        folder = Path(resume_from_checkpoint)
        full = (folder / "model.safetensors").is_file() or \
            (folder / "model.safetensors.index.json").is_file()
        if hasattr(model, "peft_config") or not full:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        saved = type(model).from_pretrained(folder, dtype=model.dtype, use_safetensors=True)
        model.load_state_dict(saved.state_dict(), strict=True)
        log.info("resumed model weights from %s", folder)

    def create_optimizer(self, model=None):
        if self.optimizer is not None:
            return self.optimizer
        args = self.args
        part_lr = {"projector": args.projector_lr, "vision_tower": args.vision_tower_lr}
        decay = set(self.get_decay_parameter_names(self.model))
        groups: dict[tuple[float, float], list] = {}
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                lr = part_lr.get(part_of(name))
                lr = args.learning_rate if lr is None else lr
                groups.setdefault((lr, args.weight_decay if name in decay else 0.0), []).append(p)
        param_groups = [{"params": ps, "lr": lr, "weight_decay": wd}
                        for (lr, wd), ps in groups.items()]
        optimizer_cls, kwargs = self.get_optimizer_cls_and_kwargs(args, self.model)
        if offloads_optimizer(args):
            # ZeRO-Offload steps the optimizer on the CPU: DeepSpeed's vectorised CPU Adam (AdamW
            # with adamw_mode), the one it accepts there, with the same per-part groups.
            from deepspeed.ops.adam import DeepSpeedCPUAdam
            optimizer_cls = DeepSpeedCPUAdam
            kwargs = {"betas": (args.adam_beta1, args.adam_beta2), "eps": args.adam_epsilon,
                      "adamw_mode": True}
        self.optimizer = optimizer_cls(param_groups, **kwargs)
        log.info("optimizer %s, learning rates by group: %s", optimizer_cls.__name__,
                 [g["lr"] for g in param_groups])
        return self.optimizer


def offloads_optimizer(targs) -> bool:
    """Whether the DeepSpeed config puts the optimizer state on the CPU (ZeRO-Offload)."""
    if not targs.deepspeed:
        return False
    zero = targs.hf_deepspeed_config.config.get("zero_optimization", {})
    return zero.get("offload_optimizer", {}).get("device") in ("cpu", "nvme")


def training_dtype(targs) -> torch.dtype:
    """The dtype weights load in: bf16/fp16 from the start when training in it, else float32."""
    return torch.bfloat16 if targs.bf16 else torch.float16 if targs.fp16 else torch.float32


def check_combination(margs, largs, targs) -> None:
    """Refuse setting combinations that cannot work, with the reason (before any model loads)."""
    if targs.stage == "pretrain" and largs.lora:
        raise ValueError("--lora applies to --stage finetune (pretrain trains the projector only)")
    if targs.stage == "pretrain" and margs.tune_vision_tower:
        raise ValueError("--tune_vision_tower applies to --stage finetune: a pretrain run keeps only "
                         "the projector, so a tuned tower would be thrown away")
    if margs.bits != 16 and not largs.lora:
        raise ValueError(f"--bits {margs.bits} quantizes the frozen base: it needs --lora (QLoRA)")
    ds = targs.hf_deepspeed_config.config if targs.deepspeed else {}
    if margs.bits != 16 and ds.get("zero_optimization", {}).get("stage") == 3:
        raise ValueError("QLoRA (--bits 4/8) does not combine with ZeRO-3: quantized weights cannot be "
                         "partitioned. Use scripts/zero2.json, or --bits 16 with ZeRO-3")
    if "optimizer" in ds and (targs.projector_lr is not None or targs.vision_tower_lr is not None):
        log.warning("the DeepSpeed config defines its own optimizer: --projector_lr/--vision_tower_lr "
                    "are ignored (use zero2.json/zero3.json, which leave the optimizer to the Trainer)")


def trainer_checkpoint_problem(folder: str | Path) -> str | None:
    """Why the Trainer checkpoint ``folder`` cannot be resumed from, naming the file; None if it can.

    The Trainer writes ``checkpoint-N/`` in place (model, optimizer, scheduler, RNG state, then
    ``trainer_state.json`` last), so a run killed while saving leaves a folder without
    ``trainer_state.json``, which ``get_last_checkpoint`` would still pick. Besides that marker the
    folder needs weights, and every file in it (DeepSpeed's ``global_step*/`` included) must be intact.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return f"{folder}: no such checkpoint folder"
    if not (folder / TRAINER_STATE).is_file():
        return f"{folder / TRAINER_STATE}: missing (the save was interrupted)"
    if not any((folder / name).is_file() for name in WEIGHTS) and not list(folder.glob("global_step*")):
        return f"{folder}: no model weights ({', '.join(WEIGHTS)} or DeepSpeed global_step*/)"
    index = folder / "model.safetensors.index.json"
    if index.is_file() and not file_problem(index):
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        missing = [name for name in shards if not (folder / name).is_file()]
        if missing:
            return f"{folder / missing[0]}: missing (listed in {index.name})"
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        problem = file_problem(path)
        if problem:
            return problem
    return None


def latest_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest ``checkpoint-N`` that :func:`trainer_checkpoint_problem` accepts; each newer one it skips
    is logged with the reason. None when there is no checkpoint at all; an error when there are some
    and every one is damaged (starting over silently would throw the run away)."""
    folders = [p for p in Path(output_dir).iterdir() if p.is_dir() and CHECKPOINT_DIR.match(p.name)]
    folders.sort(key=lambda p: int(CHECKPOINT_DIR.match(p.name).group(1)), reverse=True)
    problems = []
    for folder in folders:
        problem = trainer_checkpoint_problem(folder)
        if problem is None:
            if problems:
                log.warning("resuming from %s, the newest complete checkpoint", folder)
            return str(folder)
        problems.append(problem)
        log.warning("checkpoint %s is unusable: %s; trying the previous one", folder.name, problem)
    if problems:
        raise ValueError(f"{output_dir}: no checkpoint to resume from: every one is damaged: "
                         + "; ".join(problems) + ". Delete them to start over")
    return None


def resolve_resume(targs) -> str | None:
    """``latest`` means the newest complete checkpoint in the output folder (none yet: start fresh);
    a folder named explicitly is checked the same way but never replaced by another."""
    value = targs.resume_from_checkpoint
    if value in (None, "", "false", "False"):
        return None
    if value in ("latest", "true", "True"):
        last = latest_complete_checkpoint(targs.output_dir) if Path(targs.output_dir).is_dir() else None
        if last is None:
            log.info("no checkpoint in %s yet; starting from the beginning", targs.output_dir)
        return last
    if not Path(value).is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint {value}: no such checkpoint folder")
    problem = trainer_checkpoint_problem(value)
    if problem:
        raise ValueError(f"--resume_from_checkpoint {value}: {problem}")
    return value


def build_model(margs, largs, targs):
    dtype = training_dtype(targs)
    # bitsandbytes keeps the non-quantized parts (tower, projector, head) in float32 for stability
    model = load_llava(margs.model, bits=margs.bits, dtype=dtype if margs.bits == 16 else torch.float32,
                       compute_dtype=dtype)
    if margs.pretrained_projector:
        diff = load_projector(model, margs.pretrained_projector)
        if diff > PROJECTOR_LOAD_TOL:
            raise RuntimeError(f"projector from {margs.pretrained_projector} did not load: max abs "
                               f"difference {diff} after copying")
        log.info("pretrained projector loaded from %s and verified (max abs diff %g)",
                 margs.pretrained_projector, diff)
    set_trainable(model, targs.stage, tune_vision_tower=margs.tune_vision_tower)
    if largs.lora:
        new_tokens = read_meta(margs.model).get("new_token_ids") or []
        model = apply_lora(model, largs, tune_vision_tower=margs.tune_vision_tower,
                           gradient_checkpointing=targs.activation_checkpointing,
                           new_token_ids=new_tokens)
        if new_tokens:
            log.info("LoRA: the embedding and output rows of the %d new template tokens %s train too",
                     len(new_tokens), new_tokens)
    if not targs.deepspeed and dtype != torch.float32:
        upcast_trainable(model)
    log.info("trainable parameters by part: %s", count_trainable(model))
    return model


def upcast_trainable(model) -> None:
    """Without DeepSpeed (which keeps float32 master weights itself) the trained parameters are
    held in float32 and only the frozen ones stay in bf16/fp16: the Trainer's fp16 grad scaler
    refuses half-precision gradients, and AdamW steps lose most of their bits in bf16."""
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()


def build_dataset(path, processor, model, dargs) -> ConversationDataset:
    config = base_of(model).config
    n_image_tokens = num_image_tokens(config.vision_config, config.vision_feature_select_strategy)
    data = ConversationDataset(path, processor, image_root=dargs.image_root,
                               max_length=dargs.model_max_length,
                               image_token_id=config.image_token_index,
                               n_image_tokens=n_image_tokens, limit=dargs.limit)
    limit = getattr(config.text_config, "max_position_embeddings", None)
    if limit and data.stats.max_length > limit:
        raise ValueError(f"{path}: the longest sample has {data.stats.max_length} tokens "
                         f"({n_image_tokens} of them image tokens) but the language model takes "
                         f"{limit} positions; set --model_max_length {limit} (answers cut by it are "
                         "refused) or shorten the conversations")
    return data


def save_final(trainer, model, processor, margs, largs, targs, summary: dict) -> Path | None:
    """Write ``OUTPUT_DIR/model`` (atomically); every rank calls it (ZeRO-3 gathers are collective)."""
    out = Path(targs.output_dir) / "model"
    main = trainer.is_world_process_zero()
    common = {"stage": targs.stage, "base_model": str(Path(margs.model).resolve()),
              "bits": margs.bits, "summary": summary}
    if targs.stage == "pretrain":
        state = projector_state_dict(model)
        if main:
            with atomic_dir(out) as d:
                save_file(state, str(d / PROJECTOR_FILE), metadata={"format": "pt"})
                processor.save_pretrained(d)
                write_meta(d, "projector", **common)
    elif largs.lora:
        # One name on every rank (saving can be collective), so not atomic_dir's unique one.
        tmp = out.with_name(".model.tmp")
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
        trainer.save_model(str(tmp))                  # peft: adapter + projector (modules_to_save)
        if main:
            (tmp / "training_args.bin").unlink(missing_ok=True)    # a pickle; not needed to load
            write_meta(tmp, "lora", **common, lora={"r": largs.lora_r, "alpha": largs.lora_alpha})
            processor.save_pretrained(tmp)
            publish(tmp, out)
    else:
        try:
            state = trainer.accelerator.get_state_dict(trainer.deepspeed if trainer.is_deepspeed_enabled
                                                       else trainer.model)
        except ValueError as exc:
            raise ValueError(f"cannot gather the ZeRO-3 weights: set \"stage3_gather_16bit_weights_"
                             f"on_model_save\": true in {targs.deepspeed}") from exc
        if main:
            save_full(trainer.accelerator.unwrap_model(trainer.model), processor, out,
                      state_dict=state, **common)
    if main:
        write_text(Path(targs.output_dir) / "training_args.json", targs.to_json_string())
    return out if main else None


def train(argv: list[str] | None = None) -> Path | None:
    margs, dargs, largs, targs = parse_args(argv, description=__doc__.split("\n")[0])
    logging.basicConfig(level=logging.INFO if targs.should_log else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    check_combination(margs, largs, targs)
    if torch.cuda.is_available() and not (targs.bf16 or targs.fp16):
        log.warning("training on a GPU in fp32; pass --bf16 True (LLaVA recipe) for speed and memory")
    # Set up the device and the process groups now: ZeRO-3 partitions parameters as from_pretrained
    # creates them and needs the world size then. On CPU (use_cpu) transformers sets up
    # torch.distributed only, so DeepSpeed's own communication layer is started here.
    log.info("device %s, process %d of %d", targs.device, targs.process_index, targs.world_size)
    if targs.deepspeed:
        import deepspeed
        deepspeed.init_distributed()
    processor = AutoProcessor.from_pretrained(margs.model, trust_remote_code=margs.trust_remote_code)
    model = build_model(margs, largs, targs)
    train_set = build_dataset(dargs.conversations, processor, model, dargs)
    eval_set = build_dataset(dargs.eval_conversations, processor, model, dargs) \
        if dargs.eval_conversations else None
    stats = train_set.stats.as_dict()
    log.info("training data %s: %s", dargs.conversations, stats)
    trainer = IALTrainer(model=model, args=targs, train_dataset=train_set, eval_dataset=eval_set,
                         data_collator=Collator(processor.tokenizer.pad_token_id),
                         processing_class=processor)
    if trainer.is_world_process_zero():
        Path(targs.output_dir).mkdir(parents=True, exist_ok=True)
        write_text(Path(targs.output_dir) / "data_stats.json", json.dumps(stats, indent=2))
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resolve_resume(targs))
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    summary = {"global_step": trainer.state.global_step, "train_loss": result.training_loss,
               "first_logged_loss": losses[0] if losses else None,
               "last_logged_loss": losses[-1] if losses else None,
               "seconds": round(time.perf_counter() - start, 2),
               "world_size": targs.world_size,
               "cuda_peak_bytes": torch.cuda.max_memory_allocated() if torch.cuda.is_available()
               else None,
               "zero_stage": targs.hf_deepspeed_config.config.get("zero_optimization", {}).get("stage")
               if targs.deepspeed else None}
    out = save_final(trainer, trainer.model, processor, margs, largs, targs, summary)
    if trainer.is_world_process_zero():
        summary["log_history"] = trainer.state.log_history
        summary["data"] = stats
        write_text(Path(targs.output_dir) / "train_summary.json", json.dumps(summary, indent=2))
        log.info("final model: %s (%s steps, loss %s -> %s)", out, summary["global_step"],
                 summary["first_logged_loss"], summary["last_logged_loss"])
    return out


def main(argv: list[str] | None = None) -> int:
    try:
        train(argv)
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
