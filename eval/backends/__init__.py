"""Backends that answer the QA prompt, and the run specifications that choose them.

A run is ``NAME=BACKEND:TARGET`` (``--run``, repeatable; ``NAME=`` optional)::

    llava=hf:runs/helsinki/llava_ial/export      a local HF LLaVA folder
    gpt=openai:gpt-4o@https://api.example/v1     a served model [at a base URL other than --base-url]
    mine=answers:answers.jsonl                   answers another system wrote
    clip=addressclip:runs/helsinki/addressclip   stage one's top-1 candidate

``--backend`` with ``--model`` / ``--answers`` (repeatable) / ``--addressclip-run`` is the short form
of the same thing. Names become file names (``OUT/runs/NAME.jsonl``) and table rows.

:data:`BACKENDS` is the one list of kinds: each class declares its target flag, its default run
name and how it is built from the settings (:class:`~eval.backends.base.Backend`), so adding a
backend is one class and one line here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eval.backends.addressclip import AddressCLIPBackend
from eval.backends.answers import AnswersBackend
from eval.backends.base import Backend, BackendError, Item, Result
from eval.backends.hf import HFBackend
from eval.backends.openai import OpenAIBackend

if TYPE_CHECKING:
    from eval.config import QAEvalConfig

__all__ = ["BACKENDS", "Backend", "BackendError", "Item", "Result", "RunSpec", "RunSpecError",
           "build_backend", "parse_run", "runs_from_config"]

# kind -> backend class: what --backend and --run may name (the baselines are scored apart)
BACKENDS: dict[str, type[Backend]] = {cls.kind: cls for cls in (
    HFBackend, OpenAIBackend, AnswersBackend, AddressCLIPBackend)}
BASELINE_PREFIX = "baseline-"


class RunSpecError(ValueError):
    """A run specification that cannot be used; the message says how to write it."""


@dataclass(frozen=True)
class RunSpec:
    name: str
    backend: str
    target: str
    base_url: str | None = None     # openai only: overrides --base-url

    @property
    def text(self) -> str:
        at = f"@{self.base_url}" if self.base_url else ""
        return f"{self.name}={self.backend}:{self.target}{at}"


def parse_run(text: str) -> RunSpec:
    """``[NAME=]BACKEND:TARGET`` -> :class:`RunSpec` (a default name comes from the target)."""
    name = ""
    eq, colon = text.find("="), text.find(":")
    if eq >= 0 and (colon < 0 or eq < colon):
        name, text = text[:eq].strip(), text[eq + 1:]
    backend, sep, target = text.partition(":")
    backend, target = backend.strip(), target.strip()
    if not sep or backend not in BACKENDS or not target:
        raise RunSpecError(f"--run {text!r}: expected [NAME=]BACKEND:TARGET with BACKEND one of "
                           f"{', '.join(BACKENDS)} (e.g. llava=hf:runs/x/export)")
    cls = BACKENDS[backend]
    target, base_url = cls.split_target(target)
    return RunSpec(name or cls.default_name(target), backend, target, base_url)


def runs_from_config(cfg: QAEvalConfig) -> list[RunSpec]:
    """The runs ``--backend`` and ``--run`` ask for, with unique, file-safe names."""
    specs: list[RunSpec] = []
    if cfg.backend is not None:
        if cfg.backend not in BACKENDS:
            raise RunSpecError(f"--backend {cfg.backend!r}: choose one of {', '.join(BACKENDS)}")
        cls = BACKENDS[cfg.backend]
        targets = [t for t in cls.flag_targets(cfg) if t]
        if not targets:
            raise RunSpecError(f"--backend {cfg.backend} needs {cls.target_flag}")
        specs += [RunSpec(cls.default_name(t), cfg.backend, t) for t in targets]
    elif cfg.answers:
        raise RunSpecError("--answers needs --backend answers (or use --run NAME=answers:FILE)")
    specs += [parse_run(text) for text in cfg.run]
    return _unique(specs)


def build_backend(spec: RunSpec, cfg: QAEvalConfig, *, cache_dir: Path) -> Backend:
    if spec.backend not in BACKENDS:
        raise RunSpecError(f"unknown backend {spec.backend!r}")
    return BACKENDS[spec.backend].from_config(spec.target, cfg, base_url=spec.base_url,
                                              cache_dir=cache_dir)


def _unique(specs: list[RunSpec]) -> list[RunSpec]:
    seen: dict[str, int] = {}
    out = []
    for spec in specs:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", spec.name).strip("._") or spec.backend
        if name.startswith(BASELINE_PREFIX):
            raise RunSpecError(f"run name {name!r}: names starting with {BASELINE_PREFIX!r} are "
                               "the baselines'")
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}-{seen[name]}"
        out.append(RunSpec(name, spec.backend, spec.target, spec.base_url))
    return out
