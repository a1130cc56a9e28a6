"""Answers another system produced: a JSONL file with one ``{"id": ..., "answer": ...}`` per line.

Problems that belong to no scored item (a line that is not JSON, an id that is not among the
evaluated references, a repeated id) are collected in ``issues`` and reported with the run; a
reference with no line gets a per-item error. A non-string answer (an object, a list) is scored as
its JSON text, so structured answers reach the parser's JSON rules. A line may carry ``"error"``
instead of an answer (the other system failed on that item): the error is kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from eval.backends.base import Backend, BackendError, Item, Result


class AnswersBackend(Backend):
    kind = "answers"
    cacheable = False   # the file may change between runs; reading it again is cheap
    target_flag = "--answers FILE"

    @classmethod
    def flag_targets(cls, cfg) -> list[str]:
        return list(cfg.answers)

    @classmethod
    def default_name(cls, target: str) -> str:
        """The file name without ``.jsonl``."""
        path = Path(target)
        return path.name[:-len(".jsonl")] if path.name.endswith(".jsonl") else path.stem

    @classmethod
    def from_config(cls, target, cfg, *, base_url, cache_dir) -> AnswersBackend:
        return cls(target)

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.issues: list[dict] = []

    def fingerprint(self) -> dict:
        return {"kind": self.kind, "path": str(self.path)}

    def generate(self, items: Sequence[Item]) -> Iterator[Result]:
        answers = self._read({item.id for item in items})
        for item in items:
            yield answers.get(item.id) or Result(item.id, error=f"no answer for this id in "
                                                               f"{self.path.name}")

    def _read(self, wanted: set[str]) -> dict[str, Result]:
        if not self.path.is_file():
            raise BackendError(f"answers file not found: {self.path}")
        self.issues = []
        out: dict[str, Result] = {}
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError as exc:
                    self.issues.append({"line": n, "reason": f"not JSON ({exc})"})
                    continue
                if not isinstance(rec, dict) or not isinstance(rec.get("id"), (str, int)):
                    self.issues.append({"line": n, "reason": 'expected an object with an "id"'})
                    continue
                rid = str(rec["id"])
                if rid not in wanted:
                    self.issues.append({"line": n, "id": rid,
                                        "reason": "id not among the evaluated references"})
                    continue
                if rid in out:
                    self.issues.append({"line": n, "id": rid,
                                        "reason": "repeated id; the first answer is kept"})
                    continue
                out[rid] = _result(rid, rec, n)
        return out


def _result(rid: str, rec: dict, line: int) -> Result:
    answer = rec.get("answer")
    if rec.get("error") and answer is None:
        return Result(rid, error=f"the answering system reported: {rec['error']}")
    if answer is None:
        return Result(rid, error=f'line {line} has no "answer"')
    if not isinstance(answer, str):
        answer = json.dumps(answer, ensure_ascii=False)
    return Result(rid, answer=answer)
