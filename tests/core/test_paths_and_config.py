"""Dataset-relative paths cannot escape; configuration from YAML and flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ial_core.config import option, parse_config
from ial_core.errors import DataError
from ial_core.paths import resolve_in_root, safe_relative_path


@pytest.mark.parametrize("bad", ["../x.jpg", "a/../../x.jpg", "/etc/passwd", "C:\\x.jpg", "",
                                 "a\x00b.jpg", "..\\..\\x.jpg"])
def test_unsafe_paths_are_refused(bad):
    with pytest.raises(DataError):
        safe_relative_path(bad, source="ann.json", row=7)


def test_symlink_out_of_the_root_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.jpg").write_bytes(b"x")
    os.symlink(tmp_path / "secret.jpg", root / "link.jpg")
    with pytest.raises(DataError, match="outside the dataset root"):
        resolve_in_root(root, "link.jpg")
    assert resolve_in_root(root, "sub/./a.jpg") == (root / "sub" / "a.jpg").resolve()


@dataclass
class _Settings:
    out: Path = field(default=Path("runs/x"), metadata={"help": "where"})
    seed: int = 0
    fast: bool = False


def test_yaml_supplies_values_and_flags_override(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("seed: 5\nout: elsewhere\n")
    assert parse_config(_Settings, []) == _Settings()
    assert parse_config(_Settings, ["--config", str(cfg)]) == _Settings(Path("elsewhere"), 5)
    assert parse_config(_Settings, ["--config", str(cfg), "--seed", "7", "--fast"]) == \
        _Settings(Path("elsewhere"), 7, True)


def test_unknown_yaml_setting_is_an_error(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sead: 5\n")
    with pytest.raises(SystemExit):
        parse_config(_Settings, ["--config", str(cfg)])
    assert "unknown settings ['sead']" in capsys.readouterr().err


@dataclass
class _Switches:
    progress: bool = option(True, "progress bar")
    limit: int | None = option(None, "at most N")
    batch_size: int = option(8, "batch")


def test_one_boolean_spelling_none_for_optionals_and_dashed_aliases(capsys):
    assert parse_config(_Switches, ["--progress", "false"]).progress is False
    assert parse_config(_Switches, ["--progress"]).progress is True
    assert parse_config(_Switches, ["--limit", "none"]).limit is None
    assert parse_config(_Switches, ["--limit", "3", "--batch-size", "2"]) == _Switches(True, 3, 2)
    with pytest.raises(SystemExit):          # the second spelling HfArgumentParser would add
        parse_config(_Switches, ["--no_progress"])
    assert "unrecognized arguments: --no_progress" in capsys.readouterr().err


def test_explicit_names_only_what_the_file_or_the_flags_set(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("limit: 4\n")
    got, explicit = parse_config(_Switches, ["--config", str(cfg), "--batch-size=3"], with_explicit=True)
    assert got == _Switches(True, 4, 3) and explicit == {"limit", "batch_size"}
