"""Atomic writes: a reader sees the old output or the complete new one, never a partial one."""

from __future__ import annotations

import json

import pytest

from ial_core.files import atomic_dir, atomic_file, publish, write_json


def test_atomic_file_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "a.json"
    write_json(path, {"v": "ä"})
    assert path.read_text(encoding="utf-8") == '{\n "v": "ä"\n}\n'
    with pytest.raises(RuntimeError), atomic_file(path) as tmp:
        tmp.write_text("{half")
        raise RuntimeError("killed")
    assert json.loads(path.read_text(encoding="utf-8")) == {"v": "ä"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_publish_swaps_the_old_folder_aside_and_removes_it_only_after(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "f").write_text("old")
    new = tmp_path / "new"
    new.mkdir()
    (new / "f").write_text("new")
    import ial_core.files as files
    renames = []
    real = files.os.replace
    monkeypatch.setattr(files.os, "replace", lambda a, b: (renames.append((a, b)), real(a, b))[1])
    publish(new, out, durable=True)
    assert (out / "f").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # the old folder is renamed aside first, then the new one takes its name: it is never deleted
    # while it is the only complete copy
    (aside, first_target), (second_source, second_target) = renames
    assert aside == out and first_target.name.startswith(".out.old.")
    assert second_source == new and second_target == out
