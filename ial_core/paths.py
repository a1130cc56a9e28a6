"""Image paths inside a dataset root: relative, normalised, and unable to escape the root."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from ial_core.errors import DataError

# Already normal: ASCII segments separated by single "/", none empty or starting with "." (so no
# "..", "./", leading "/", drive letter or backslash). Such paths are returned as they are, without
# the PurePosixPath round trip (millions of keys in the released benchmarks).
_PLAIN = re.compile(r"[^/\\\x00.:\s][^/\\\x00]*(?:/[^/\\\x00.\s][^/\\\x00]*)*")


def safe_relative_path(relpath: str, *, source: str | Path | None = None, row=None) -> str:
    """Validate a dataset-relative path: no absolute paths, no ``..``, POSIX separators."""
    if isinstance(relpath, str) and relpath.isascii() and _PLAIN.fullmatch(relpath) \
            and relpath[1:2] != ":":
        return relpath
    if not isinstance(relpath, str) or not relpath.strip():
        raise DataError("empty image path", path=source, row=row)
    if "\x00" in relpath:
        raise DataError(f"image path {relpath!r} contains a NUL byte", path=source, row=row)
    try:
        relpath.encode("utf-8")
    except UnicodeEncodeError:       # lone surrogates (e.g. a "\ud800" JSON escape): no file name
        raise DataError(f"image path {relpath!r} is not valid Unicode text", path=source,
                        row=row) from None
    posix = relpath.replace("\\", "/")
    pure = PurePosixPath(posix)
    if pure.is_absolute() or (len(posix) > 1 and posix[1] == ":"):
        raise DataError(f"image path {relpath!r} is absolute; paths must be relative to the "
                        "dataset root", path=source, row=row)
    if ".." in pure.parts:
        raise DataError(f"image path {relpath!r} escapes the dataset root", path=source, row=row)
    return str(pure)


def resolve_in_root(root: str | Path, relpath: str, *, source=None, row=None) -> Path:
    """Join a relative image path onto ``root`` and check the result (symlinks included) stays inside."""
    root = Path(root).resolve()
    candidate = (root / safe_relative_path(relpath, source=source, row=row)).resolve()
    if os.path.commonpath([root, candidate]) != str(root):
        raise DataError(f"image path {relpath!r} resolves outside the dataset root {root}",
                        path=source, row=row)
    return candidate
