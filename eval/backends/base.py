"""What every backend takes and gives: items with an image and a prompt in, one result per item out.

A backend yields each :class:`Result` as soon as it has it (the runner writes it to disk at once),
and reports a failed item as a result with ``error`` set instead of raising, so one bad image or one
dropped connection never costs the rest of a run. Raising is for failures of the whole backend (a
model folder that does not load); the runner records those as the run's failure.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from data_gen.questions import DESIGN_QUESTION

if TYPE_CHECKING:
    from eval.config import QAEvalConfig

# The question LLaVA-IAL is built for, the same constant training and inference use.
DEFAULT_PROMPT = DESIGN_QUESTION


@dataclass(frozen=True)
class Item:
    id: str
    image: Path | None
    prompt: str


@dataclass(frozen=True)
class Result:
    id: str
    answer: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.answer is not None


class BackendError(RuntimeError):
    """The backend as a whole cannot run (bad model folder, missing file, ...)."""


class Backend(ABC):
    """One way of answering. A backend that ``--run KIND:TARGET`` can choose also declares how the
    short form ``--backend KIND`` names its target (:attr:`target_flag`, :meth:`flag_targets`) and
    how it is built from the settings (:meth:`from_config`); it is then listed once, in
    ``eval.backends.BACKENDS``."""

    kind: str = ""
    # Whether stored results may be reused by a rerun (False: cheap or file-based backends, whose
    # input may change between runs, are always redone).
    cacheable: bool = True
    # The flag and argument that give ``--backend KIND`` its target, as error messages name it.
    target_flag: str = ""

    @classmethod
    def flag_targets(cls, cfg: QAEvalConfig) -> list[str]:
        """The targets ``--backend KIND`` takes from the settings (empty ones are dropped)."""
        return []

    @classmethod
    def split_target(cls, target: str) -> tuple[str, str | None]:
        """``TARGET`` of ``--run KIND:TARGET`` -> (target, base URL or None)."""
        return target, None

    @classmethod
    def default_name(cls, target: str) -> str:
        """The run's name when ``--run`` gives none: the target's file or folder name."""
        return Path(target).name or cls.kind

    @classmethod
    def from_config(cls, target: str, cfg: QAEvalConfig, *, base_url: str | None,
                    cache_dir: Path) -> Backend:
        """The backend of one run, its options taken from the settings."""
        raise NotImplementedError(f"backend {cls.kind!r} cannot be chosen by --run")

    def fingerprint(self) -> dict:
        """Settings that change answers: stored results made with others are not reused."""
        return {"kind": self.kind}

    @abstractmethod
    def generate(self, items: Sequence[Item]) -> Iterator[Result]:
        """One result per item, in any order, as soon as each is ready."""

    def close(self) -> None:  # noqa: B027 - optional: a backend holding nothing leaves it empty
        """Free models, threads or connections."""


def missing_image(item: Item) -> Result | None:
    """A result explaining why ``item`` cannot be sent to an image model, or None when it can."""
    if item.image is None:
        return Result(item.id, error="no image for this reference (add \"image\" to the references "
                                     "file or evaluate a dataset)")
    if not Path(item.image).is_file():
        return Result(item.id, error=f"image not found: {item.image}")
    return None


def split_by_image(items: Sequence[Item]) -> tuple[list[Item], list[Result]]:
    """The items an image model can be sent, and an error result for each of the others."""
    ready, refused = [], []
    for item in items:
        problem = missing_image(item)
        if problem is None:
            ready.append(item)
        else:
            refused.append(problem)
    return ready, refused
