"""Backends that answer the QA prompt, and the run specifications that choose them.

A run is ``NAME=BACKEND:TARGET`` (``--run``, repeatable; ``NAME=`` optional)::

    llava=hf:runs/helsinki/llava_ial/export      a local HF LLaVA folder
    gpt=openai:gpt-4o@https://api.example/v1     a served model [at a base URL other than --base-url]
    mine=answers:answers.jsonl                   answers another system wrote
    clip=addressclip:runs/helsinki/addressclip   stage one's top-1 candidate

``--backend`` with ``--model`` / ``--answers`` (repeatable) / ``--addressclip-run`` is the short form
of the same thing. Names become file names (``OUT/runs/NAME.jsonl``) and table rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eval.backends.base import Backend, BackendError, Item, Result

if TYPE_CHECKING:
    from eval.config import QAEvalConfig

__all__ = ["Backend", "BackendError", "Item", "Result", "RunSpec", "RunSpecError", "build_backend",
           "parse_run", "runs_from_config"]

BACKEND_KINDS = ("hf", "openai", "answers", "addressclip")
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
    if not sep or backend not in BACKEND_KINDS or not target:
        raise RunSpecError(f"--run {text!r}: expected [NAME=]BACKEND:TARGET with BACKEND one of "
                           f"{', '.join(BACKEND_KINDS)} (e.g. llava=hf:runs/x/export)")
    base_url = None
    if backend == "openai":
        m = re.fullmatch(r"(.+?)@(https?://.+)", target)
        if m:
            target, base_url = m.group(1), m.group(2)
    return RunSpec(name or _default_name(backend, target), backend, target, base_url)


def runs_from_config(cfg: "QAEvalConfig") -> list[RunSpec]:
    """The runs ``--backend`` and ``--run`` ask for, with unique, file-safe names."""
    specs: list[RunSpec] = []
    if cfg.backend is not None:
        if cfg.backend not in BACKEND_KINDS:
            raise RunSpecError(f"--backend {cfg.backend!r}: choose one of {', '.join(BACKEND_KINDS)}")
        targets = {"hf": [cfg.model], "openai": [cfg.model], "answers": cfg.answers,
                   "addressclip": [cfg.addressclip_run]}[cfg.backend]
        targets = [t for t in targets if t]
        if not targets:
            flag = {"hf": "--model DIR", "openai": "--model NAME", "answers": "--answers FILE",
                    "addressclip": "--addressclip-run DIR"}[cfg.backend]
            raise RunSpecError(f"--backend {cfg.backend} needs {flag}")
        specs += [RunSpec(_default_name(cfg.backend, t), cfg.backend, t) for t in targets]
    elif cfg.answers:
        raise RunSpecError("--answers needs --backend answers (or use --run NAME=answers:FILE)")
    specs += [parse_run(text) for text in cfg.run]
    return _unique(specs)


def build_backend(spec: RunSpec, cfg: "QAEvalConfig", *, cache_dir: Path) -> Backend:
    if spec.backend == "hf":
        from eval.backends.hf import HFBackend
        return HFBackend(spec.target, max_new_tokens=cfg.max_new_tokens, options=cfg.hf_options())
    if spec.backend == "openai":
        from eval.backends.openai import OpenAIBackend
        return OpenAIBackend(spec.target, max_tokens=cfg.max_new_tokens,
                             options=cfg.openai_options(spec.base_url))
    if spec.backend == "answers":
        from eval.backends.answers import AnswersBackend
        return AnswersBackend(spec.target)
    if spec.backend == "addressclip":
        from eval.backends.addressclip import AddressCLIPBackend
        return AddressCLIPBackend(spec.target, data=cfg.data, split=cfg.split,
                                  checkpoint=cfg.addressclip_checkpoint,
                                  batch_size=cfg.batch_size, device=cfg.device,
                                  cache_dir=cache_dir)
    raise RunSpecError(f"unknown backend {spec.backend!r}")


def _default_name(backend: str, target: str) -> str:
    if backend == "addressclip":
        return "addressclip"
    path = Path(target)
    stem = path.name[:-len(".jsonl")] if path.name.endswith(".jsonl") else path.stem
    return stem if backend == "answers" else (path.name or backend)


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
