"""The install step's torchvision fix: present, working, and a no-op where it is not needed."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import torch

from ial_compat import torchvision_ops


def test_hook_is_installed_in_site_packages():
    assert (Path(sysconfig.get_paths()["purelib"]) / "ial_compat.pth").is_file()


def test_torchvision_imports_and_transforms_work_in_a_fresh_interpreter():
    code = ("import torch, torchvision; from torchvision.transforms import v2; "
            "print(tuple(v2.Resize(8)(torch.zeros(3, 16, 16)).shape)); import open_clip")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(3, 8, 8)"


def test_schemas_are_defined_only_when_missing():
    import torchvision  # noqa: F401  (after import the ops exist: real or from the hook)

    assert hasattr(torch.ops.torchvision, "nms")
    assert torchvision_ops.define_missing_schemas() == []


def test_missing_compiled_library_is_detected(tmp_path):
    assert torchvision_ops.compiled_ops_load(tmp_path) is False
    (tmp_path / "_C.so").write_bytes(b"not a shared object")
    assert torchvision_ops.compiled_ops_load(tmp_path) is False
