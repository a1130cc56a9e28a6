"""The one check of a checkpoint file's integrity, shared by both stages' resume logic."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from safetensors import SafetensorError, safe_open

TORCH_SUFFIXES = (".pt", ".pth", ".bin")


def file_problem(path: str | Path) -> str | None:
    """Why one checkpoint file is unreadable, naming it; None if its structure is intact.

    Headers only, no tensors read: safetensors checks that its header's offsets cover the file
    exactly, ``torch.save`` files (``.pt``/``.pth``/``.bin``) are zip archives whose directory sits
    at the end, JSON must parse. That catches the usual damage, a file cut short. Other suffixes
    are only checked to be readable files.
    """
    path = Path(path)
    kind = {".safetensors": "safetensors file", ".json": "JSON"}.get(
        path.suffix, "torch.save archive" if path.suffix in TORCH_SUFFIXES else "file")
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt"):
                pass
        elif path.suffix in TORCH_SUFFIXES:
            with zipfile.ZipFile(path):
                pass
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif not path.is_file():
            raise FileNotFoundError(path)
    except (SafetensorError, zipfile.BadZipFile, ValueError, OSError) as exc:
        return f"{path}: truncated or corrupt {kind} ({exc})"
    return None
