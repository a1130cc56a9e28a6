"""Fixtures of the stage-two tests: one torch thread per test module, and the tiny composed LLaVA-IAL
stack (built once per session, cached on disk by :func:`llava_ial.testing.cached_tiny_stack`)."""

from __future__ import annotations

import pytest

from helpers.synthetic import make_synthetic_dataset
from llava_ial.testing import cached_tiny_stack, torch_threads


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    return cached_tiny_stack(tmp_path_factory.getbasetemp(), make_synthetic_dataset)


@pytest.fixture(scope="session")
def bos_llama(tmp_path_factory):
    """A tiny random Llama with a real Llama tokenizer that adds BOS (mistral-common's
    sentencepiece model) and a Mistral-style template of its own; built once per session."""
    from llava_ial.testing import make_bos_llama_dir
    folder = tmp_path_factory.getbasetemp() / "bos_llama"
    return folder if (folder / "config.json").is_file() else make_bos_llama_dir(folder)


@pytest.fixture(scope="session")
def bos_stack(stack, bos_llama, tmp_path_factory):
    """(dataset, conversations, composed LLaVA-IAL on the BOS Llama with the toolkit's ChatML)."""
    from llava_ial.compose import ComposeConfig, compose_to_dir
    dataset, st = stack
    out = tmp_path_factory.getbasetemp() / "bos_llava"
    if not (out / "config.json").is_file():
        compose_to_dir(ComposeConfig(vision=st.vision, lm=bos_llama, out=out))
    return dataset, st.conversations, out
