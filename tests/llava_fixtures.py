"""Fixtures shared by the stage-two tests: one torch thread per test module, and the tiny composed
LLaVA-IAL stack (built once per session, cached on disk by :func:`llava_ial.testing.cached_tiny_stack`).

Import them into a test module (``from llava_fixtures import one_torch_thread, stack``)."""

from __future__ import annotations

import pytest

from llava_ial.testing import cached_tiny_stack, torch_threads
from synthetic_ial import make_synthetic_dataset


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    return cached_tiny_stack(tmp_path_factory.getbasetemp(), make_synthetic_dataset)
