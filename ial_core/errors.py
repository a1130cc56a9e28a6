"""Input errors that name the file and row, and a report of items skipped on request.

Every reader raises :class:`DataError` for bad input unless the caller passed a :class:`SkipReport`,
in which case the item is skipped, counted by reason, and the first few examples are kept so that the
build report says exactly what was dropped.
"""

from __future__ import annotations

import collections
import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path


class DataError(ValueError):
    """Bad input data; the message names the file and, where there is one, the row or item."""

    def __init__(self, message: str, *, path: str | Path | None = None, row: int | str | None = None):
        where = ""
        if path is not None:
            where = str(path)
            if row is not None:
                where += f", row {row}" if isinstance(row, int) else f", item {row!r}"
            where += ": "
        super().__init__(where + message)
        self.path = None if path is None else str(path)
        self.row = row


@dataclass
class SkipReport:
    """Counts of skipped items by reason, with a few examples each (kept for the build report)."""

    max_examples: int = 5
    counts: collections.Counter = field(default_factory=collections.Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, error: Exception | str) -> None:
        self.counts[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < self.max_examples:
            kept.append(str(error))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict:
        return {"skipped": self.total, "by_reason": dict(sorted(self.counts.items())),
                "examples": self.examples}


def handle(error: DataError, skip: SkipReport | None, reason: str) -> None:
    """Raise ``error`` unless skipping was asked for; then count it under ``reason``."""
    if skip is None:
        raise error
    skip.skip(reason, error)


def tagged_error(message: str, reason: str, *, path=None, row=None) -> DataError:
    """A DataError tagged with the skip-report reason it is counted under when skipping."""
    error = DataError(message, path=path, row=row)
    error.reason = reason
    return error


def skip_or_raise(error: DataError, skip: SkipReport | None, default: str) -> None:
    """:func:`handle` under the error's own reason tag when it has one, else ``default``."""
    handle(error, skip, getattr(error, "reason", default))


def exit_2_on(*errors: type[Exception]):
    """Decorate a ``main(argv) -> int``: bad input (``errors``, default :class:`DataError`) is
    printed as ``error: MESSAGE`` on stderr and the exit status is 2, without a traceback."""
    errors = errors or (DataError,)

    def decorate(main):
        @functools.wraps(main)
        def run(argv=None) -> int:
            try:
                return main(argv)
            except errors as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        return run
    return decorate
