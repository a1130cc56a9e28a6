"""Make ``import torchvision`` work when its compiled ops do not match the installed torch.

PyPI has no CPU build of torchvision: on a CPU-only torch, torchvision's ``_C`` extension (a CUDA
build) fails to load, and ``torchvision/_meta_registrations.py`` then raises
``RuntimeError: operator torchvision::nms does not exist`` at import. That breaks open_clip, timm and
even text-only imports of transformers. The only unconditional registrations there are the fake
(meta) kernels of ``nms`` and ``qnms``; every other one is skipped when the ops are missing.

The fix: just before torchvision executes, try to load its ``_C`` library exactly as torchvision
does; only if that fails, define the two operator *schemas* (no kernels). Transforms and models work;
the C++ detection ops stay unavailable and raise if called. On a machine whose torchvision matches
its torch the library loads and nothing is defined: the hook is a no-op.

It is installed as ``ial_compat.pth`` in site-packages (``make setup`` writes it), which calls
:func:`install` at interpreter start-up; install() only adds an import hook, it imports nothing heavy.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from pathlib import Path

# Schemas as torchvision's own csrc/ops/nms.cpp declares them.
MISSING_OP_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}

_LIBRARY = None  # keeps the torch.library.Library fragment alive for the process lifetime


def compiled_ops_load(package_dir: Path) -> bool:
    """Whether torchvision's compiled ``_C`` extension in ``package_dir`` loads with this torch."""
    import torch

    candidates = sorted(package_dir.glob("_C*.so")) + sorted(package_dir.glob("_C*.pyd"))
    for path in candidates:
        try:
            torch.ops.load_library(str(path))
            return True
        except (ImportError, OSError):
            continue
    return False


def define_missing_schemas() -> list[str]:
    """Define the torchvision op schemas torchvision's import needs; returns those defined."""
    global _LIBRARY
    import torch

    defined = []
    for name, schema in MISSING_OP_SCHEMAS.items():
        if hasattr(torch.ops.torchvision, name):
            continue
        if _LIBRARY is None:
            _LIBRARY = torch.library.Library("torchvision", "FRAGMENT")
        _LIBRARY.define(schema)
        defined.append(name)
    return defined


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, wrapped: importlib.abc.Loader, package_dir: Path):
        self._wrapped = wrapped
        self._package_dir = package_dir

    def create_module(self, spec):
        return self._wrapped.create_module(spec)

    def exec_module(self, module):
        if not compiled_ops_load(self._package_dir):
            define_missing_schemas()
        self._wrapped.exec_module(module)


class _TorchvisionFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torchvision":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not spec.submodule_search_locations:
            return spec
        package_dir = Path(list(spec.submodule_search_locations)[0])
        spec.loader = _PatchingLoader(spec.loader, package_dir)
        return spec


def install() -> None:
    """Put the torchvision import hook first on ``sys.meta_path`` (idempotent)."""
    if "torchvision" in sys.modules:
        return
    if not any(isinstance(f, _TorchvisionFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _TorchvisionFinder())
