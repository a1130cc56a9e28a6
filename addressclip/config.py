"""Training configuration: dataclasses parsed from the command line and from YAML.

One place per default:

- every fixed default is the field default below (``help`` metadata is the flag's help text);
- defaults that depend on the model are in :data:`MODEL_DEFAULTS` and fill only fields the user left
  unset (``None`` after YAML and flags are applied), so ``--lr 1e-4`` always wins.

Precedence, lowest first: field default, YAML file (``--config``, nested by section, the same layout
as the ``config.yaml`` a run writes), command-line flags, then model-dependent defaults for whatever is
still ``None``. Parsing is the toolkit's one mechanism (:func:`ial_core.config.parse_config`): flags
are the field names (``--batch_size``, ``--batch-size`` too), booleans are ``--augment true|false``,
``none`` sets an optional field to ``None``. Every field name is unique across sections, so flags
stay flat.

Paper defaults (AddressCLIP, ECCV 2024): Adam betas (0.9, 0.98), cosine learning rate 2.4e-5 down to
2.4e-8 with warm-up, batch 32 per GPU, 100 epochs, loss weights alpha=1, beta=0.2, gamma=0.8. The paper
names Adam; we use AdamW with decoupled weight decay 0.1 on 2-D weights (open_clip's rule; gains,
biases and the logit scale are not decayed) and epsilon 1e-6; ``--weight_decay 0`` is plain Adam.
Warm-up length is not given; 500 steps here.

The tiny CPU configuration trains from random initialisation and needs a much larger learning rate
and only a few epochs (see ``MODEL_DEFAULTS``); docs/stage-one-speed.md records how its learning rate
was chosen.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from addressclip.losses import PAPER_WEIGHTS
from ial_core.config import option, parse_config
from ial_core.files import write_text

EMBEDDED = "embedded"
TINY_MODEL = "AddressCLIP-Tiny"


class ConfigError(ValueError):
    """An invalid or contradictory configuration value."""


@dataclass
class DataConfig:
    data: str = option(EMBEDDED, "'embedded' (the Helsinki dataset, built when missing) or a dataset "
                       "folder written by data_gen (built, or converted from released annotations)")
    data_dir: str = option("runs/helsinki/data", "where the embedded dataset lives / is built")
    build_seed: int = option(0, "seed passed to `python -m data_gen.build` when building the embedded set")
    train_split: str = option("train", "split used for training")
    val_split: str | None = option("val", "split validated after each epoch ('none' to skip)")
    caption_address: str = option("address", "address column appended to the caption for the "
                                  "image-caption loss: address, street_address or verbose_address")
    augment: bool = option(True, "random resized crops for training images (seeded per sample)")
    crop_scale_min: float = option(0.8, "smallest crop area fraction of the training augmentation")
    workers: int | None = option(None, "DataLoader worker processes (None: half the cores, 1..4)")
    limit_train: int | None = option(None, "use only the first N training images (smoke runs)")


@dataclass
class ModelConfig:
    model: str = option(TINY_MODEL, "open_clip model name (registry name, 'local-dir:PATH', 'hf-hub:ID')")
    pretrained: str | None = option(None, "open_clip pretrained tag (e.g. openai) or a local checkpoint "
                                    "file (.safetensors, or .pt/.bin read with weights_only=True)")
    force_quick_gelu: bool | None = option(None, "QuickGELU activations (None: as the pretrained tag says)")
    lock_image: bool = option(False, "freeze the image tower (open_clip lock_image_tower)")
    lock_image_unlocked_groups: int = option(0, "leave the last N image-tower layer groups trainable")
    lock_text: bool = option(False, "freeze the text tower (open_clip lock_text_tower)")
    lock_text_unlocked_layers: int = option(0, "leave the last N text-tower layers trainable")
    grad_checkpointing: bool = option(False, "activation checkpointing in both towers")
    text_length_groups: bool = option(False, "run each batch's texts in up to 4 groups of similar length "
                                      "(faster; equal to the default up to float rounding)")


@dataclass
class LossConfig:
    alpha: float = option(PAPER_WEIGHTS["alpha"],
                          "weight of the image-address contrastive loss (0 switches it off)")
    beta: float = option(PAPER_WEIGHTS["beta"],
                         "weight of the image-caption contrastive loss (0 switches it off)")
    gamma: float = option(PAPER_WEIGHTS["gamma"],
                          "weight of the image-geography matching loss (0 switches it off)")


@dataclass
class OptimConfig:
    epochs: int | None = option(None, "training epochs (model-dependent default)")
    batch_size: int | None = option(None, "images per process per micro-step (model-dependent default)")
    accum_steps: int = option(1, "micro-steps accumulated per optimizer step")
    lr: float | None = option(None, "peak learning rate (model-dependent default)")
    lr_min: float | None = option(None, "final learning rate of the cosine schedule")
    warmup_steps: int | None = option(None, "linear warm-up steps (optimizer steps)")
    beta1: float = option(0.9, "Adam beta1")
    beta2: float = option(0.98, "Adam beta2")
    eps: float = option(1e-6, "Adam epsilon")
    weight_decay: float = option(0.1, "decoupled weight decay on 2-D weights (0 gives plain Adam)")
    grad_clip: float | None = option(None, "clip the global gradient norm to this value")


@dataclass
class RunConfig:
    out: str = option("runs/helsinki/addressclip", "run directory (checkpoints, logs, config.yaml)")
    seed: int = option(0, "seed for initialisation, shuffling and augmentation")
    precision: str = option("auto", "auto | fp32 | bf16 | fp16 (auto: bf16 on CUDA if supported, "
                            "fp32 on CPU; fp16 needs CUDA)")
    device: str = option("auto", "auto | cpu | cuda")
    resume: str | None = option(None, "'latest' or a checkpoint directory to continue from")
    stop_at_step: int | None = option(None, "stop (after saving) at this optimizer step, as if interrupted")
    save_every_steps: int = option(0, "also checkpoint every N optimizer steps (0: only per epoch)")
    keep_checkpoints: int = option(2, "step checkpoints kept besides 'init'")
    log_every: int = option(10, "optimizer steps between TensorBoard/console scalars")
    val_every: int = option(1, "epochs between validations")
    progress: bool = option(True, "tqdm progress bar")


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig,
                             "optim": OptimConfig, "run": RunConfig}

# Model-dependent defaults (fill only fields still None). "*" holds the paper's settings and applies
# to every model without its own entry (ViT-B-16 + openai, as in the paper).
MODEL_DEFAULTS: dict[str, dict[str, typing.Any]] = {
    TINY_MODEL: {"epochs": 4, "batch_size": 64, "lr": 1e-3, "lr_min": 1e-5, "warmup_steps": 30},
    "*": {"epochs": 100, "batch_size": 32, "lr": 2.4e-5, "lr_min": 2.4e-8, "warmup_steps": 500},
}

# Settings of one invocation, not of the run: a resumed run takes them from the new command line.
INVOCATION_FIELDS = {"resume", "stop_at_step", "progress", "workers"}
# Fields a resumed run may change when given explicitly (the dataset may have moved); everything else
# must match the run's config.yaml.
RESUME_MUTABLE = INVOCATION_FIELDS | {"log_every", "save_every_steps", "keep_checkpoints", "device",
                                      "data_dir", "data"}


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "config") -> Config:
        cfg = cls()
        apply_nested(cfg, d, source=source)
        return cfg

    def save_yaml(self, path: str | Path) -> None:
        write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @property
    def uses_embedded_data(self) -> bool:
        return self.data.data == EMBEDDED

    @property
    def dataset_root(self) -> Path:
        return Path(self.data.data_dir if self.uses_embedded_data else self.data.data)


def _field_types(section_cls: type) -> dict[str, typing.Any]:
    return typing.get_type_hints(section_cls)


def _unwrap_optional(tp) -> tuple[type, bool]:
    args = typing.get_args(tp)
    if args and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return inner[0], True
    return tp, False


_FIELD_SECTION: dict[str, str] = {}
for _sec, _cls in SECTIONS.items():
    for _fld in dataclasses.fields(_cls):
        if _fld.name in _FIELD_SECTION:
            raise RuntimeError(f"field {_fld.name!r} defined in two sections")  # flat flags need this
        _FIELD_SECTION[_fld.name] = _sec


def _coerce(value, tp, name: str, source: str):
    base, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{source}: {name} may not be null")
    if base is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: {name} must be true or false, got {value!r}")
    if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if base is float and isinstance(value, str):  # YAML reads 2.4e-5 without a dot as a string
        try:
            return float(value)
        except ValueError:
            pass
    if base is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if base is str and isinstance(value, str):
        return value
    raise ConfigError(f"{source}: {name} must be {base.__name__}, got {value!r}")


def apply_nested(cfg: Config, d: dict, *, source: str) -> set[str]:
    """Apply a nested ``{section: {field: value}}`` mapping; returns the field names set."""
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: expected a mapping of sections {sorted(SECTIONS)}")
    set_names = set()
    for sec, values in d.items():
        if sec not in SECTIONS:
            raise ConfigError(f"{source}: unknown section {sec!r}; sections are {sorted(SECTIONS)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {sec!r} must be a mapping")
        obj = getattr(cfg, sec)
        types = _field_types(SECTIONS[sec])
        for name, value in values.items():
            if name not in types:
                raise ConfigError(f"{source}: unknown key {sec}.{name}; valid: {sorted(types)}")
            setattr(obj, name, _coerce(value, types[name], f"{sec}.{name}", source))
            set_names.add(name)
    return set_names


def model_defaults(model_name: str) -> dict:
    return MODEL_DEFAULTS.get(model_name, MODEL_DEFAULTS["*"])


def fill_model_defaults(cfg: Config) -> dict[str, typing.Any]:
    """Fill fields still ``None`` from :data:`MODEL_DEFAULTS`; returns what was filled."""
    filled = {}
    for name, value in model_defaults(cfg.model.model).items():
        obj = getattr(cfg, _FIELD_SECTION[name])
        if getattr(obj, name) is None:
            setattr(obj, name, value)
            filled[name] = value
    return filled


def validate(cfg: Config) -> None:
    loss, o, r, d = cfg.loss, cfg.optim, cfg.run, cfg.data
    for name in PAPER_WEIGHTS:
        if getattr(loss, name) < 0:
            raise ConfigError(f"loss weight {name} must be >= 0")
    if loss.alpha == 0 and loss.beta == 0:
        raise ConfigError("alpha and beta are both 0: no contrastive loss left to align images with "
                          "text, so the model could not predict addresses")
    if o.batch_size is not None and o.batch_size < 2:
        raise ConfigError("batch_size must be >= 2 (contrastive losses need negatives)")
    if o.accum_steps < 1:
        raise ConfigError("accum_steps must be >= 1")
    if o.epochs is not None and o.epochs < 1:
        raise ConfigError("epochs must be >= 1")
    if r.precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ConfigError(f"precision must be auto, fp32, bf16 or fp16, got {r.precision!r}")
    if r.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {r.device!r}")
    if d.caption_address not in ("address", "street_address", "verbose_address"):
        raise ConfigError("caption_address must be address, street_address or verbose_address")
    if not 0 < d.crop_scale_min <= 1:
        raise ConfigError("crop_scale_min must be in (0, 1]")
    if d.workers is not None and d.workers < 0:
        raise ConfigError("workers must be >= 0")


def read_config_file(path: Path) -> dict[str, typing.Any]:
    """The settings of a ``--config`` file, checked against the sections and typed, as a flat
    ``{field: value}``; errors name the file and the setting (``unknown key optim.learning_rate``,
    ``optim.epochs must be int``)."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    cfg = Config()
    names = apply_nested(cfg, yaml.safe_load(path.read_text(encoding="utf-8")) or {}, source=str(path))
    return {name: getattr(getattr(cfg, _FIELD_SECTION[name]), name) for name in names}


def parse_args(argv: list[str] | None = None) -> tuple[Config, set[str]]:
    """Config from YAML + flags + model defaults, and the set of field names the user set."""
    sections, explicit = parse_config(SECTIONS.values(), argv, with_explicit=True,
                                      read_settings=read_config_file,
                                      prog="python -m addressclip.train",
                                      description="Train AddressCLIP (image-address alignment).")
    cfg = Config(**dict(zip(SECTIONS, sections)))
    fill_model_defaults(cfg)
    validate(cfg)
    return cfg, explicit


def load_run_config(run_dir: str | Path) -> Config:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: missing; is {run_dir} a run directory written by "
                          "`python -m addressclip.train`?")
    return Config.from_dict(yaml.safe_load(path.read_text(encoding="utf-8")) or {}, source=str(path))


def merge_for_resume(saved: Config, requested: Config, explicit: set[str]) -> Config:
    """The saved run config, with :data:`INVOCATION_FIELDS` and explicitly given
    :data:`RESUME_MUTABLE` fields taken from the request.

    Any other explicitly given value that differs from the saved one is an error: a resumed run must
    be the same run (same model, data, schedule and seed).
    """
    merged = Config.from_dict(saved.to_dict())
    for name in INVOCATION_FIELDS:
        sec = _FIELD_SECTION[name]
        setattr(getattr(merged, sec), name, getattr(getattr(requested, sec), name))
    for name in sorted(explicit):
        sec = _FIELD_SECTION[name]
        new, old = getattr(getattr(requested, sec), name), getattr(getattr(saved, sec), name)
        if name in RESUME_MUTABLE:
            setattr(getattr(merged, sec), name, new)
        elif new != old:
            raise ConfigError(f"cannot change {name} when resuming (run has {old!r}, got {new!r}); "
                              "start a new run directory instead")
    return merged


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 2) // 2))
