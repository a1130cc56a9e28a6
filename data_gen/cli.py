"""Configuration dataclasses from the command line and YAML files, one place per default.

Every entry point declares its settings as a dataclass whose field defaults are *the* defaults and
whose ``metadata["help"]`` is the flag's help. ``--config FILE.yaml`` supplies values first, flags on
the command line override them. Parsing is transformers' ``HfArgumentParser``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TypeVar

import yaml

T = TypeVar("T")


def parse_config(cls: type[T], argv: list[str] | None = None, *, description: str = "") -> T:
    """Parse ``argv`` (default: sys.argv) into ``cls``; ``--config`` names a YAML file of defaults."""
    from transformers import HfArgumentParser

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(cls, description=description)
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML file of settings; command-line flags override it")
    known, _ = parser.parse_known_args(argv)
    if known.config is not None:
        if not known.config.is_file():
            parser.error(f"--config {known.config}: no such file")
        values = yaml.safe_load(known.config.read_text(encoding="utf-8")) or {}
        if not isinstance(values, dict):
            parser.error(f"--config {known.config}: expected a mapping of setting: value")
        fields = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(values) - fields)
        if unknown:
            parser.error(f"--config {known.config}: unknown settings {unknown}")
        parser.set_defaults(**values)
    namespace = parser.parse_args(argv)
    del namespace.config
    return cls(**vars(namespace))
