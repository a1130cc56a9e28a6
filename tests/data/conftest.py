"""Fixtures of the data-stage tests: a tiny random BLIP captioner saved to a folder (no download)."""

from __future__ import annotations

import pytest

from helpers.blip import WORDS


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    d = tmp_path_factory.mktemp("tiny_blip")
    (d / "vocab.txt").write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    tok = BertTokenizer(str(d / "vocab.txt"))
    tok.add_special_tokens({"bos_token": "[DEC]"})
    (d / "vocab.txt").unlink()  # the processor saves its own copy

    # initializer_range 0.5 (not 0.02): large enough random weights that captions depend on the image
    text = dict(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64, encoder_hidden_size=32, max_position_embeddings=64,
                initializer_range=0.5,
                bos_token_id=tok.bos_token_id, sep_token_id=tok.sep_token_id,
                eos_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id)
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                  image_size=32, patch_size=8, initializer_range=0.5)
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision,
                                                    projection_dim=32)).eval()
    # A random decoder tends to stop at once; forbid [SEP] so captions have real continuations.
    with torch.no_grad():
        model.text_decoder.cls.predictions.decoder.bias[tok.sep_token_id] = -1e4
    model.save_pretrained(d)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                  tokenizer=tok).save_pretrained(d)
    return d
