"""The hf backend on tiny LLaVA folders built from config: batching does not change answers, a bad
image costs only its own item, and folders that cannot serve are refused with the reason."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

from eval.backends.base import DEFAULT_PROMPT, BackendError, Item
from eval.backends.hf import HFBackend, HFOptions
from helpers.qa import build_tiny_llava

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def random_llava(tmp_path_factory):
    return build_tiny_llava(tmp_path_factory.mktemp("llava") / "random", seed=3)


@pytest.fixture
def images(tmp_path):
    sizes = [(16, 16), (40, 24), (24, 40), (64, 64), (20, 33)]
    items = []
    for i, size in enumerate(sizes):
        path = tmp_path / f"{i}.jpg"
        Image.effect_noise(size, 40 + 30 * i).convert("RGB").save(path)
        items.append(Item(f"i{i}", path, DEFAULT_PROMPT))
    return items


def _answers(model_dir, items, batch_size):
    backend = HFBackend(model_dir, max_new_tokens=8,
                        options=HFOptions(batch_size=batch_size, device="cpu", dtype="float32"))
    return {r.id: r for r in backend.generate(items)}


def test_batched_generation_equals_one_at_a_time(random_llava, images):
    batched = _answers(random_llava, images, batch_size=3)
    single = _answers(random_llava, images, batch_size=1)
    assert all(r.ok for r in batched.values())
    assert {k: r.answer for k, r in batched.items()} == {k: r.answer for k, r in single.items()}
    assert len({r.answer for r in batched.values()}) > 1          # answers depend on the image


def test_a_broken_image_fails_only_its_item(random_llava, images, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    clean = _answers(random_llava, images, batch_size=8)
    mixed = _answers(random_llava, images[:2] + [Item("bad", bad, DEFAULT_PROMPT)] + images[2:], 8)
    assert "generation failed" in mixed["bad"].error
    assert {k: r.answer for k, r in mixed.items() if k != "bad"} == \
        {k: r.answer for k, r in clean.items()}


def test_folders_that_cannot_serve_are_refused(random_llava, images, tmp_path):
    with pytest.raises(BackendError, match="config.json"):
        _answers(tmp_path / "empty", images, 2)
    no_template = tmp_path / "no_template"
    shutil.copytree(random_llava, no_template)
    (no_template / "chat_template.jinja").unlink()
    with pytest.raises(BackendError, match="chat template"):
        _answers(no_template, images, 2)
