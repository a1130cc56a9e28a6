"""LocalCaptioner on a tiny random BLIP saved to a temporary folder (no hub, no download)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from data_gen.captions import DEFAULT_PROMPT, LocalCaptioner, no_captioner_message
from helpers.blip import WORDS
from ial_core.errors import DataError, SkipReport


def _images(n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    sizes = [(40, 50), (32, 32), (64, 48)]
    return [Image.fromarray(rng.integers(0, 256, (*sizes[i % 3], 3), dtype=np.uint8)) for i in range(n)]


def test_captions_batched_deterministic_and_prompted(tiny_blip):
    images = _images(3)
    cap3 = LocalCaptioner(tiny_blip, batch_size=3, max_new_tokens=6)
    first = cap3.caption(images)
    assert len(first) == 3 and all(isinstance(c, str) for c in first)
    assert cap3.caption(images) == first                              # deterministic (greedy)
    cap1 = LocalCaptioner(tiny_blip, batch_size=1, max_new_tokens=6)
    assert cap1.caption(images) == first                              # batching changes nothing
    assert len(set(first)) > 1                                        # captions depend on the image
    for c in first:
        assert c.startswith(DEFAULT_PROMPT + " ")                     # "a street view of ..."
        continuation = c[len(DEFAULT_PROMPT):].split()
        assert 1 <= len(continuation) <= 6 and set(continuation) <= set(WORDS)
    assert cap3.caption([]) == []


def test_caption_paths_opens_files_and_keeps_order(tiny_blip, tmp_path):
    images = _images(3)
    paths = []
    for i, im in enumerate(images):
        p = tmp_path / f"im{i}.png"
        (im.convert("L") if i == 1 else im).save(p)                   # a grey one: converted to RGB
        paths.append(p)
    cap = LocalCaptioner(tiny_blip, batch_size=2, max_new_tokens=4)
    expected = cap.caption([Image.open(p).convert("RGB") for p in paths])
    assert cap.caption_paths(paths, progress=False) == expected

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.jpg"):
        cap.caption_paths([paths[0], bad], progress=False)
    skip = SkipReport()
    assert cap.caption_paths([paths[0], bad], progress=False, skip=skip) == [expected[0], ""]
    assert skip.counts["unreadable image"] == 1


def test_custom_and_empty_prompt(tiny_blip):
    images = _images(2)
    custom = LocalCaptioner(tiny_blip, prompt="  a   road ", max_new_tokens=3).caption(images)
    assert all(c.startswith("a road ") for c in custom)
    bare = LocalCaptioner(tiny_blip, prompt="", max_new_tokens=3).caption(images)
    assert all(c and set(c.split()) <= set(WORDS) for c in bare)


def test_missing_dir_names_it(tmp_path):
    missing = tmp_path / "no_such_blip"
    with pytest.raises(DataError) as err:
        LocalCaptioner(missing)
    msg = str(err.value)
    assert str(missing) in msg and "Salesforce/blip-image-captioning-large" in msg and "--captioner" in msg


def test_dir_without_model(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(DataError, match="config.json") as err:
        LocalCaptioner(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_non_captioning_checkpoint_refused(tmp_path):
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=64).save_pretrained(tmp_path)
    with pytest.raises(DataError, match="not a supported captioning model"):
        LocalCaptioner(tmp_path)


def test_no_captioner_message():
    msg = no_captioner_message()
    assert "--captioner" in msg and "empty captions" in msg.lower() and "address" in msg


def test_blip_of_another_kind_refused(tiny_blip, tmp_path):
    import json

    config = json.loads((tiny_blip / "config.json").read_text())
    config["architectures"] = ["BlipForQuestionAnswering"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match="BlipForQuestionAnswering, not a captioning model"):
        LocalCaptioner(tmp_path)
