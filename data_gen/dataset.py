"""Read a built IAL dataset folder (see :mod:`data_gen.schema`) for training and evaluation."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from data_gen.schema import SCHEMA_VERSION
from ial_core.errors import DataError
from ial_core.paths import resolve_in_root


@dataclass
class IALDataset:
    """A built dataset: its splits, its candidate addresses, and how it was made."""

    root: Path
    splits: datasets.DatasetDict
    addresses: dict            # contents of addresses.json: city, crs, sub_streets[...]
    meta: dict = field(default_factory=dict)

    @property
    def sub_streets(self) -> list[dict]:
        return self.addresses["sub_streets"]

    @property
    def city(self) -> str:
        return self.addresses.get("city", "")

    @property
    def image_root(self) -> Path:
        """Where image paths are relative to: the dataset folder, or (for released annotation
        sets, whose images are not copied) the ``image_root`` recorded in meta.json."""
        return Path(self.meta["image_root"]) if self.meta.get("image_root") else self.root

    def image_path(self, relpath: str, *, row=None) -> Path:
        """Absolute path of an image; refuses paths that would leave the image root (``..``,
        absolute paths, symlinks pointing out), naming ``row`` (the item's id) when given."""
        return resolve_in_root(self.image_root, relpath, source=self.root / "hf", row=row)

    def split(self, name: str) -> datasets.Dataset:
        if name not in self.splits:
            raise DataError(f"split {name!r} not found (have {sorted(self.splits)})", path=self.root)
        ds = self.splits[name]
        if len(ds) == 0:
            raise DataError(f"split {name!r} is empty", path=self.root)
        return ds


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError("missing file; is this a folder written by `python -m data_gen.build`?",
                        path=path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"not valid UTF-8 JSON ({exc})", path=path) from exc


def load_dataset_dir(root: str | Path) -> IALDataset:
    """Open a dataset folder written by ``python -m data_gen.build``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("dataset folder does not exist", path=root)
    meta = _read_json(root / "meta.json")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise DataError(f"schema_version {meta.get('schema_version')!r}, this toolkit reads "
                        f"{SCHEMA_VERSION}; rebuild the dataset", path=root / "meta.json")
    addresses = _read_json(root / "addresses.json")
    if not addresses.get("sub_streets"):
        raise DataError("no sub-streets (candidate addresses) listed", path=root / "addresses.json")
    hf_dir = root / "hf"
    if not hf_dir.is_dir():
        raise DataError("missing the Hugging Face dataset folder", path=hf_dir)
    splits = datasets.load_from_disk(str(hf_dir))
    return IALDataset(root=root, splits=splits, addresses=addresses, meta=meta)
