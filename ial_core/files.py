"""Atomic writes: a file or folder is written under a temporary sibling name and renamed into place.

One set of semantics for every output of the toolkit. A reader sees either the old output or the
complete new one, never a half-written one. An existing folder is *swapped aside* (renamed away,
the new one renamed in, then the old one deleted), so a crash at any moment leaves a complete
output at the target, old or new. Deleting the old folder first would lose it if the rename then
failed. ``durable=True`` also flushes the data and the rename to disk (checkpoints: a power cut
must not leave a renamed but empty file).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


def _sibling(path: Path, kind: str) -> Path:
    """A hidden, unique name beside ``path`` (same folder, so the rename never crosses devices)."""
    return path.with_name(f".{path.name}.{kind}.{os.getpid()}-{uuid.uuid4().hex[:8]}")


def fsync(path: str | Path) -> None:
    """Flush a file or folder to disk: a rename is durable only once what it renames is."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for child in folder.rglob("*"):
        if child.is_file():
            fsync(child)
    fsync(folder)


@contextlib.contextmanager
def atomic_file(path: str | Path, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; renamed onto ``path`` when the block
    ends normally, deleted when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "tmp")
    try:
        yield tmp
        if durable:
            fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync(path.parent)


def write_text(path: str | Path, text: str, *, durable: bool = False) -> None:
    """Write UTF-8 text atomically."""
    with atomic_file(path, durable=durable) as tmp:
        tmp.write_text(text, encoding="utf-8")


def dumps_json(obj, *, indent: int | None = 1, default=None) -> str:
    """UTF-8 JSON text (non-ASCII kept) with a final newline."""
    return json.dumps(obj, ensure_ascii=False, indent=indent, default=default) + "\n"


def write_json(path: str | Path, obj, *, indent: int | None = 1, default=None,
               durable: bool = False) -> None:
    """Write ``obj`` as UTF-8 JSON (non-ASCII kept, final newline) atomically."""
    write_text(path, dumps_json(obj, indent=indent, default=default), durable=durable)


def publish(tmp: str | Path, out: str | Path, *, durable: bool = False) -> None:
    """Move the finished folder (or file) ``tmp`` onto ``out``; an older ``out`` is swapped aside
    first and deleted only once the new one is in place."""
    tmp, out = Path(tmp), Path(out)
    if durable:
        _fsync_tree(tmp) if tmp.is_dir() else fsync(tmp)
    if out.exists():
        old = _sibling(out, "old")
        os.replace(out, old)
        os.replace(tmp, out)
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    else:
        os.replace(tmp, out)
    if durable:
        fsync(out.parent)


@contextlib.contextmanager
def atomic_dir(out: str | Path, *, durable: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary sibling folder of ``out`` to write into; published onto ``out``
    (:func:`publish`) when the block ends normally, deleted when it raises."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(out, "tmp")
    tmp.mkdir()     # (not mkdtemp: the folder gets the usual permissions, not 0700)
    try:
        yield tmp
        publish(tmp, out, durable=durable)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
