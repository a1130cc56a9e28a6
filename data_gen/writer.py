"""Write a dataset folder (the layout of :mod:`data_gen.schema`): one writer for every producer.

``data_gen.build`` (rendered cities and users' photos) and ``data_gen.released`` (the released
Pitts-IAL / SF-IAL annotations) both hand over the same columns (:data:`~data_gen.schema.FEATURES`,
as lists or numpy arrays, one entry per image) and get the same files: ``annotations/{split}.json``,
``coordinates.csv``, ``hf/``, ``addresses.json``, ``meta.json`` and ``build_report.json``. Columns go
to Arrow in one batch and each split is a ``take`` of that table, so a few million rows cost seconds,
not a Python loop per row and column.

Publishing is atomic: everything is written into a temporary sibling of the target
(:func:`staging_folder`), which is renamed into place only once complete; an older dataset in the
target is swapped aside and then deleted, and a failure leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import csv
import json
from pathlib import Path

import numpy as np

from data_gen.schema import COORDINATE_COLUMNS, FEATURES
from ial_core.errors import DataError, SkipReport
from ial_core.files import atomic_dir, write_json

HF_BATCH_ROWS = 20_000     # rows per Arrow record batch in hf/
JSON_CHUNK = 20_000        # annotation entries encoded at a time
# the released [caption, verbose, canonical], by column name
ANNOTATION_FIELDS = ("caption", "verbose_address", "address")


def check_out_dir(out: Path) -> None:
    """Refuse to replace anything but an empty folder or a previously written dataset folder."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError("output path exists and is not a folder", path=out)
    if any(out.iterdir()) and not (out / "meta.json").is_file():
        raise DataError("output folder exists, is not empty and is not a dataset folder; "
                        "refusing to overwrite it", path=out)


@contextlib.contextmanager
def staging_folder(out: Path):
    """A fresh temporary sibling of ``out`` to write into (:func:`ial_core.files.atomic_dir`), after
    :func:`check_out_dir` has agreed to replace what is there."""
    check_out_dir(out)
    with atomic_dir(out) as tmp:
        yield tmp


def split_indices(split, names) -> dict[str, np.ndarray]:
    """Row indices of each split in ``names`` (in row order)."""
    split = np.asarray(split, dtype=object)
    return {name: np.flatnonzero(split == name) for name in names}


def write_annotations(folder: Path, columns: dict, indices: dict, *, sort: bool = False,
                      indent: int | None = None) -> None:
    """``annotations/{split}.json`` in the released layout ``{image: [caption, verbose, canonical]}``.

    Without ``indent`` the object is written in chunks of :data:`JSON_CHUNK` entries (the same bytes
    as one ``json.dumps``), so millions of entries never sit in memory as one dict and one string.
    """
    folder.mkdir(parents=True, exist_ok=True)
    image = columns["image"]
    caption, verbose, address = (columns[name] for name in ANNOTATION_FIELDS)
    for name, idx in indices.items():
        order = sorted(idx.tolist(), key=image.__getitem__) if sort else idx.tolist()
        if indent is not None:
            entries = {image[i]: [caption[i], verbose[i], address[i]] for i in order}
            write_json(folder / f"{name}.json", entries, indent=indent)
            continue
        with open(folder / f"{name}.json", "w", encoding="utf-8") as f:
            f.write("{")
            for start in range(0, len(order), JSON_CHUNK):
                chunk = {image[i]: [caption[i], verbose[i], address[i]]
                         for i in order[start:start + JSON_CHUNK]}
                text = json.dumps(chunk, ensure_ascii=False)[1:-1]
                f.write((", " if start else "") + text)
            f.write("}\n")


def write_coordinates(path: Path, columns: dict) -> None:
    """``coordinates.csv``: image, split, then UTM, lat/lon and heading as exact float reprs
    (formatted :data:`JSON_CHUNK` rows at a time)."""
    numeric = [np.asarray(columns[name], dtype=np.float64) for name in COORDINATE_COLUMNS[2:]]
    image, split = columns["image"], columns["split"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COORDINATE_COLUMNS)
        for start in range(0, len(image), JSON_CHUNK):
            end = start + JSON_CHUNK
            text = [list(map(repr, col[start:end].tolist())) for col in numeric]
            writer.writerows(zip(image[start:end], split[start:end], *text))


def write_hf(path: Path, columns: dict, indices: dict) -> None:
    """``hf/``: a ``datasets.DatasetDict`` with every column of FEATURES, one dataset per non-empty
    split (``datasets`` cannot load back a split saved with no rows)."""
    import datasets
    import pyarrow as pa
    from datasets.table import InMemoryTable

    schema = FEATURES.arrow_schema
    arrays = [pa.array(np.asarray(columns[name]) if not isinstance(columns[name], list)
                       else columns[name], type=schema.field(name).type) for name in FEATURES]
    table = pa.Table.from_arrays(arrays, schema=schema)
    del arrays
    splits = datasets.DatasetDict({
        name: datasets.Dataset(InMemoryTable(table.take(pa.array(idx, type=pa.int64())).combine_chunks()),
                               info=datasets.DatasetInfo(features=FEATURES))
        for name, idx in indices.items() if len(idx)})
    del table       # each split holds its own copy of its rows now
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()   # a bar per shard is noise next to the printed counts
    # save_to_disk writes record batches of config.DEFAULT_MAX_BATCH_SIZE rows, each with a fixed
    # cost for its schema checks that dominates the write of a large split. Larger batches, same file.
    batch = datasets.config.DEFAULT_MAX_BATCH_SIZE
    datasets.config.DEFAULT_MAX_BATCH_SIZE = max(batch, HF_BATCH_ROWS)
    try:
        splits.save_to_disk(str(path))
    finally:
        datasets.config.DEFAULT_MAX_BATCH_SIZE = batch
        if bars:
            datasets.enable_progress_bars()


def write_dataset(folder: Path, columns: dict, *, splits, addresses: dict, meta: dict,
                  skip: SkipReport | None = None, sort_annotations: bool = False,
                  annotation_indent: int | None = None) -> None:
    """Every shared file of a dataset folder from the per-image ``columns`` (FEATURES' names).

    ``splits`` names the splits to write, in order (an empty split is written empty);
    ``addresses`` is written as ``addresses.json`` as given (records may carry extra fields, e.g.
    alias names), ``meta`` as ``meta.json``; ``skip`` adds ``build_report.json``.
    """
    missing = [name for name in FEATURES if name not in columns]
    if missing:
        raise ValueError(f"columns missing for the dataset writer: {missing}")
    indices = split_indices(columns["split"], splits)
    write_annotations(folder / "annotations", columns, indices, sort=sort_annotations,
                      indent=annotation_indent)
    write_coordinates(folder / "coordinates.csv", columns)
    write_hf(folder / "hf", columns, indices)
    write_json(folder / "addresses.json", addresses)
    write_json(folder / "meta.json", meta)
    if skip is not None:
        write_json(folder / "build_report.json", skip.as_dict())
