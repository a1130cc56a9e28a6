"""Run one backend over the items and keep every result on disk the moment it arrives.

``OUT/runs/NAME.jsonl`` gets one line per result, ``{"id", "answer"}`` or ``{"id", "error"}``,
appended and flushed as the backend yields it; ``NAME.meta.json`` holds the backend's fingerprint.
A rerun with the same fingerprint reuses the stored answers and asks only for the rest (items that
failed are asked again). A different fingerprint (another model, prompt or checkpoint) moves the old
file aside as ``NAME.jsonl.stale-TIME`` instead of mixing answers. Backends that are cheap or read
a file (answers, baselines) are always redone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eval.backends.base import Backend, BackendError, Item, Result
from ial_core.files import write_text

log = logging.getLogger("eval.runner")
PROGRESS_EVERY_S = 10.0


@dataclass
class RunRecord:
    name: str
    backend: str
    spec: str
    results: dict[str, Result] = field(default_factory=dict)
    failure: str | None = None          # the whole backend failed (items left get an error)
    issues: list[dict] = field(default_factory=list)    # problems that belong to no item
    reused: int = 0                     # answers taken from an earlier invocation
    seconds: float = 0.0
    store: str | None = None


class ResultStore:
    """The JSONL of one run and the fingerprint it was made with."""

    def __init__(self, runs_dir: Path, name: str):
        self.path = runs_dir / f"{name}.jsonl"
        self.meta_path = runs_dir / f"{name}.meta.json"

    def open(self, fingerprint: dict, *, cacheable: bool, fresh: bool) -> dict[str, Result]:
        """Prepare for appending; returns the stored finished results that may be reused."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fingerprint = json.loads(json.dumps(fingerprint, default=str))
        done: dict[str, Result] = {}
        if self.path.exists():
            if not cacheable:
                self.path.unlink()
            elif not fresh and self._fingerprint() == fingerprint:
                done = self._finished()
            else:
                stale = self._aside()
                os.replace(self.path, stale)
                why = "--fresh" if fresh else "it was made with other settings"
                log.warning("%s: %s; earlier answers moved to %s", self.path, why, stale.name)
        write_text(self.meta_path, json.dumps({"fingerprint": fingerprint}, indent=1))
        return done

    def _aside(self) -> Path:
        """A free ``NAME.jsonl.stale-TIME[-k]`` name next to the file."""
        base = f"{self.path.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}"
        candidate, k = self.path.with_name(base), 1
        while candidate.exists():
            k += 1
            candidate = self.path.with_name(f"{base}-{k}")
        return candidate

    def _fingerprint(self) -> dict | None:
        try:
            return json.loads(self.meta_path.read_text(encoding="utf-8")).get("fingerprint")
        except (OSError, ValueError, AttributeError):
            return None

    def _finished(self) -> dict[str, Result]:
        done: dict[str, Result] = {}
        bad = 0
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                    rid = str(rec["id"])
                except (ValueError, KeyError, TypeError):
                    bad += 1          # e.g. a line cut short when a previous run was killed
                    continue
                if isinstance(rec.get("answer"), str) and not rec.get("error"):
                    done[rid] = Result(rid, answer=rec["answer"])
                else:
                    done.pop(rid, None)
        if bad:
            log.warning("%s: ignored %d unreadable line(s)", self.path, bad)
        return done

    def append(self, f, result: Result) -> None:
        rec = {"id": result.id, "answer": result.answer} if result.ok else \
            {"id": result.id, "error": result.error or "no answer"}
        f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        f.flush()


def run_backend(name: str, spec: str, backend: Backend, items: Sequence[Item], runs_dir: Path, *,
                fresh: bool = False) -> RunRecord:
    """Answers for every item: stored ones, then new ones; never raises for a backend failure."""
    store = ResultStore(runs_dir, name)
    record = RunRecord(name, backend.kind, spec, store=str(store.path))
    wanted = {item.id for item in items}
    t0 = time.perf_counter()
    # The questions are part of what an answer depends on: answers to other questions are not reused.
    prompts = sorted({item.prompt for item in items})
    if len(prompts) > 32:          # e.g. one per item with candidates: a digest, not the list
        prompts = [f"{len(prompts)} prompts, sha256 "
                   + hashlib.sha256("\n".join(prompts).encode("utf-8")).hexdigest()]
    fingerprint = {**backend.fingerprint(), "prompts": prompts}
    try:
        done = store.open(fingerprint, cacheable=backend.cacheable, fresh=fresh)
        record.results = {k: v for k, v in done.items() if k in wanted}
        record.reused = len(record.results)
        pending = [item for item in items if item.id not in record.results]
        if record.reused:
            log.info("%s: %d stored answers reused, %d to ask", name, record.reused, len(pending))
        _collect(record, backend, pending, store, wanted)
    except BackendError as exc:
        record.failure = str(exc)
    except Exception as exc:  # noqa: BLE001 - one broken backend must not stop the other runs
        record.failure = f"{type(exc).__name__}: {exc}"
        log.debug("%s failed:\n%s", name, traceback.format_exc())
    finally:
        backend.close()
    if record.failure:
        log.error("%s: %s", name, record.failure)
    record.issues = list(getattr(backend, "issues", []))
    for item in items:
        if item.id not in record.results:
            reason = f"run failed: {record.failure}" if record.failure else "the backend gave no result"
            record.results[item.id] = Result(item.id, error=reason)
    record.seconds = time.perf_counter() - t0
    return record


def _collect(record: RunRecord, backend: Backend, pending: list[Item], store: ResultStore,
             wanted: set[str]) -> None:
    last = time.perf_counter()
    n = errors = 0
    with open(store.path, "a", encoding="utf-8") as f:
        for result in backend.generate(pending):
            if result.id not in wanted:
                continue
            store.append(f, result)
            record.results[result.id] = result
            n += 1
            errors += not result.ok
            if time.perf_counter() - last > PROGRESS_EVERY_S:
                log.info("%s: %d/%d answered (%d errors)", record.name, n, len(pending), errors)
                last = time.perf_counter()
