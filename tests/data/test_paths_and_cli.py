"""Dataset-relative paths cannot escape; configuration from YAML and flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ial_core.config import parse_config
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
