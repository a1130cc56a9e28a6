"""Training settings: four dataclasses parsed together by ``HfArgumentParser``, with YAML support.

One place per default: a field's default below is *the* default. The learning rate depends on the
stage and the method (LLaVA recipe: 1e-3 to pre-train the projector, 2e-5 to fine-tune fully, 2e-4
for LoRA with the projector at 2e-5), so it defaults to ``None`` and :func:`parse_args` fills it
from :data:`STAGE_LEARNING_RATE` / :data:`LORA_LEARNING_RATE` only when left unset.

Precedence, lowest first: field defaults, ``--config FILE.yaml`` (a flat mapping of field names from
any of the four dataclasses), command-line flags.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml
from transformers import HfArgumentParser, TrainingArguments

STAGES = ("pretrain", "finetune")
STAGE_LEARNING_RATE = {"pretrain": 1e-3, "finetune": 2e-5}
# LLaVA-1.5's LoRA recipe (finetune_lora.sh): adapters at 2e-4, the fully trained projector at 2e-5
LORA_LEARNING_RATE = 2e-4
LORA_PROJECTOR_LR = 2e-5


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class ModelArguments:
    model: str = _f(None, "LLaVA-IAL model directory (from `python -m llava_ial.compose`, or an "
                    "exported one to continue training)")
    pretrained_projector: str | None = _f(None, "projector to start from: the output of a pretrain "
                                          "run (its model/ folder) or a projector .safetensors file")
    tune_vision_tower: bool = _f(False, "also train the vision tower (frozen by default)")
    bits: int = _f(16, "16: no quantization; 4 or 8: load the language model quantized with "
                   "bitsandbytes (QLoRA; needs --lora)")
    trust_remote_code: bool = _f(False, "allow code shipped inside model folders to run")

    def __post_init__(self):
        if not self.model:
            raise ValueError("--model is required: a LLaVA-IAL directory (python -m llava_ial.compose)")
        if self.bits not in (4, 8, 16):
            raise ValueError(f"--bits must be 4, 8 or 16, got {self.bits}")


@dataclass
class DataArguments:
    conversations: str = _f(None, "LLaVA-format JSON (python -m data_gen.conversations)")
    image_root: str | None = _f(None, "folder the image paths are relative to (default: the "
                                "image_root in meta.json next to the JSON)")
    eval_conversations: str | None = _f(None, "JSON evaluated with --eval_strategy (loss only)")
    model_max_length: int | None = _f(None, "longest sequence in tokens, image tokens included; a "
                                      "sample whose answer would be cut is an error (None: the "
                                      "longest sample, within the LM's max_position_embeddings)")
    limit: int | None = _f(None, "use only the first N samples (smoke runs)")

    def __post_init__(self):
        if not self.conversations:
            raise ValueError("--conversations is required (a LLaVA-format JSON file)")


@dataclass
class LoraArguments:
    lora: bool = _f(False, "fine-tune the language model with LoRA adapters instead of fully")
    lora_r: int = _f(128, "LoRA rank (LLaVA recipe: 128)")
    lora_alpha: int = _f(256, "LoRA alpha (LLaVA recipe: 256)")
    lora_dropout: float = _f(0.05, "LoRA dropout")
    lora_target: str = _f("all-linear", "'all-linear' (every Linear layer of the language model) or "
                          "a comma-separated list of module names, e.g. q_proj,v_proj")


@dataclass
class IALTrainingArguments(TrainingArguments):
    """``TrainingArguments`` with this toolkit's defaults and its stage and per-part learning rates."""

    stage: str = _f("finetune", "pretrain: projector only (LLM and vision tower frozen); finetune: "
                    "projector + language model (full, or LoRA with --lora)")
    learning_rate: float | None = _f(None, "peak learning rate (None: 1e-3 for pretrain, 2e-5 for "
                                     "finetune, 2e-4 for finetune --lora)")
    projector_lr: float | None = _f(None, "learning rate of the projector (None: --learning_rate; "
                                    "2e-5 with --lora and no --learning_rate given)")
    vision_tower_lr: float | None = _f(None, "learning rate of the vision tower when tuned (None: "
                                       "--learning_rate)")
    output_dir: str = _f("runs/helsinki/llava_ial", "run folder: checkpoints, TensorBoard logs, "
                         "and the final model in OUTPUT_DIR/model")
    num_train_epochs: float = _f(1.0, "epochs")
    per_device_train_batch_size: int = _f(16, "batch size per process")
    lr_scheduler_type: str = _f("cosine", "learning-rate schedule")
    warmup_steps: float = _f(0.03, "warm-up: steps, or a fraction of all steps when < 1")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    logging_steps: float = _f(10, "log every N steps")
    save_strategy: str = _f("steps", "when to save checkpoints: no, steps, epoch")
    save_steps: float = _f(500, "checkpoint every N steps")
    save_total_limit: int | None = _f(2, "keep at most N checkpoints")
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"], metadata={
        "help": "logging integrations (tensorboard, none, ...)"})
    remove_unused_columns: bool = _f(False, "keep the collator's columns (pixel_values)")
    dataloader_num_workers: int = _f(1, "data-loading worker processes")

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"--stage must be one of {STAGES}, got {self.stage!r}")
        if self.learning_rate is None:          # parse_args fills it first when --lora is given
            self.learning_rate = STAGE_LEARNING_RATE[self.stage]
        super().__post_init__()


ARGUMENT_CLASSES = (ModelArguments, DataArguments, LoraArguments, IALTrainingArguments)


def parse_args(argv: list[str] | None = None, classes=ARGUMENT_CLASSES, description: str = ""):
    """Parse ``argv`` into one instance per class; ``--config FILE.yaml`` supplies defaults."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(classes, description=description)
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML file of settings (flat: field: value); flags override it")
    known, _ = parser.parse_known_args(argv)
    if known.config is not None:
        parser.set_defaults(**read_yaml(known.config, classes, parser))
    namespace = parser.parse_args(argv)
    if getattr(namespace, "lora", False) and getattr(namespace, "stage", None) == "finetune" \
            and getattr(namespace, "learning_rate", 0) is None:
        namespace.learning_rate = LORA_LEARNING_RATE
        if namespace.projector_lr is None:
            namespace.projector_lr = LORA_PROJECTOR_LR
    return tuple(cls(**{f.name: getattr(namespace, f.name) for f in fields(cls) if f.init})
                 for cls in classes)

def read_yaml(path: Path, classes, parser) -> dict:
    if not path.is_file():
        parser.error(f"--config {path}: no such file")
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        parser.error(f"--config {path}: expected a mapping of setting: value")
    known = {f.name for cls in classes for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        parser.error(f"--config {path}: unknown settings {unknown}")
    return values
