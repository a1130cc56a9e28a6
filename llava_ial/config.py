"""Training settings: four dataclasses parsed together by :func:`ial_core.config.parse_config`.

One place per default: a field's default below is *the* default. The learning rate depends on the
stage and the method (LLaVA recipe: 1e-3 to pre-train the projector, 2e-5 to fine-tune fully, 2e-4
for LoRA with the projector at 2e-5), so it defaults to ``None`` and :func:`parse_args` fills it
from :data:`STAGE_LEARNING_RATE` / :data:`LORA_LEARNING_RATE` only when left unset.

Precedence, lowest first: field defaults, ``--config FILE.yaml`` (a flat mapping of field names from
any of the four dataclasses), command-line flags.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import TrainingArguments

from ial_core.config import option, parse_config

STAGES = ("pretrain", "finetune")
STAGE_LEARNING_RATE = {"pretrain": 1e-3, "finetune": 2e-5}
# LLaVA-1.5's LoRA recipe (finetune_lora.sh): adapters at 2e-4, the fully trained projector at 2e-5
LORA_LEARNING_RATE = 2e-4
LORA_PROJECTOR_LR = 2e-5


@dataclass
class ModelArguments:
    model: str = option(None, "LLaVA-IAL model directory (from `python -m llava_ial.compose`, or "
                        "an exported one to continue training)")
    pretrained_projector: str | None = option(None, "projector to start from: the output of a "
                                              "pretrain run (its model/ folder) or a projector "
                                              ".safetensors file")
    tune_vision_tower: bool = option(False, "also train the vision tower (frozen by default)")
    bits: int = option(16, "16: no quantization; 4 or 8: load the language model quantized with "
                       "bitsandbytes (QLoRA; needs --lora)")
    trust_remote_code: bool = option(False, "allow code shipped inside model folders to run")

    def __post_init__(self):
        if not self.model:
            raise ValueError("--model is required: a LLaVA-IAL directory (python -m llava_ial.compose)")
        if self.bits not in (4, 8, 16):
            raise ValueError(f"--bits must be 4, 8 or 16, got {self.bits}")


@dataclass
class DataArguments:
    conversations: str = option(None, "LLaVA-format JSON (python -m data_gen.conversations)")
    image_root: str | None = option(None, "folder the image paths are relative to (default: the "
                                    "image_root in meta.json next to the JSON)")
    eval_conversations: str | None = option(None, "JSON evaluated with --eval_strategy (loss only)")
    model_max_length: int | None = option(None, "longest sequence in tokens, image tokens "
                                          "included; a sample whose answer would be cut is an "
                                          "error (None: the longest sample, within the LM's "
                                          "max_position_embeddings)")
    limit: int | None = option(None, "use only the first N samples (smoke runs)")

    def __post_init__(self):
        if not self.conversations:
            raise ValueError("--conversations is required (a LLaVA-format JSON file)")


@dataclass
class LoraArguments:
    lora: bool = option(False, "fine-tune the language model with LoRA adapters instead of fully")
    lora_r: int = option(128, "LoRA rank (LLaVA recipe: 128)")
    lora_alpha: int = option(256, "LoRA alpha (LLaVA recipe: 256)")
    lora_dropout: float = option(0.05, "LoRA dropout")
    lora_target: str = option("all-linear", "'all-linear' (every Linear layer of the language "
                              "model) or a comma-separated list of module names, e.g. "
                              "q_proj,v_proj")


@dataclass
class IALTrainingArguments(TrainingArguments):
    """``TrainingArguments`` with this toolkit's defaults and its stage and per-part learning rates."""

    stage: str = option("finetune", "pretrain: projector only (LLM and vision tower frozen); "
                        "finetune: projector + language model (full, or LoRA with --lora)")
    learning_rate: float | None = option(None, "peak learning rate (None: 1e-3 for pretrain, 2e-5 "
                                         "for finetune, 2e-4 for finetune --lora)")
    projector_lr: float | None = option(None, "learning rate of the projector (None: "
                                        "--learning_rate; 2e-5 with --lora and no --learning_rate "
                                        "given)")
    vision_tower_lr: float | None = option(None, "learning rate of the vision tower when tuned "
                                           "(None: --learning_rate)")
    output_dir: str = option("runs/helsinki/llava_ial", "run folder: checkpoints, TensorBoard "
                             "logs, and the final model in OUTPUT_DIR/model")
    num_train_epochs: float = option(1.0, "epochs")
    per_device_train_batch_size: int = option(16, "batch size per process")
    lr_scheduler_type: str = option("cosine", "learning-rate schedule")
    warmup_steps: float = option(0.03, "warm-up: steps, or a fraction of all steps when < 1")
    weight_decay: float = option(0.0, "AdamW weight decay")
    logging_steps: float = option(10, "log every N steps")
    save_strategy: str = option("steps", "when to save checkpoints: no, steps, epoch")
    save_steps: float = option(500, "checkpoint every N steps")
    save_total_limit: int | None = option(2, "keep at most N checkpoints")
    report_to: list[str] = option(help="logging integrations (tensorboard, none, ...)",
                                  default_factory=lambda: ["tensorboard"])
    remove_unused_columns: bool = option(False, "keep the collator's columns (pixel_values)")
    dataloader_num_workers: int = option(1, "data-loading worker processes")

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"--stage must be one of {STAGES}, got {self.stage!r}")
        # (not a field: whether parse_args may put the LoRA recipe's rates in its place)
        self.learning_rate_defaulted = self.learning_rate is None
        if self.learning_rate is None:
            self.learning_rate = STAGE_LEARNING_RATE[self.stage]
        super().__post_init__()


ARGUMENT_CLASSES = (ModelArguments, DataArguments, LoraArguments, IALTrainingArguments)


def parse_args(argv: list[str] | None = None, classes=ARGUMENT_CLASSES, description: str = ""):
    """Parse ``argv`` into one instance per class; ``--config FILE.yaml`` supplies defaults. A LoRA
    fine-tuning with no learning rate given takes the LoRA recipe's rates."""
    parsed = parse_config(classes, argv, description=description)
    by_class = {type(p): p for p in parsed}
    lora, targs = by_class.get(LoraArguments), by_class.get(IALTrainingArguments)
    if lora is not None and targs is not None and lora.lora and targs.stage == "finetune" \
            and targs.learning_rate_defaulted:
        targs.learning_rate = LORA_LEARNING_RATE
        if targs.projector_lr is None:
            targs.projector_lr = LORA_PROJECTOR_LR
    return parsed
