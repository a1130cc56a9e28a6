"""Labels from the serving chat template, image-token expansion, hard errors, collator."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from llava_ial.data import IGNORE_INDEX, Collator, ConversationDataset, SampleError, tokenize_samples
from llava_ial.template import TURN_END, llava_to_messages


@pytest.fixture(scope="session")
def processor(stack):
    from transformers import AutoProcessor
    return AutoProcessor.from_pretrained(stack[1].model)


@pytest.fixture(scope="session")
def config(stack):
    return json.loads((stack[1].model / "config.json").read_text())


def samples(stack, name="instruct_train.json"):
    return json.loads((stack[1].conversations / name).read_text())


def encode(processor, config, items, max_length=512, template=None):
    return tokenize_samples(items, processor.tokenizer, template or processor.chat_template,
                            config["image_token_index"], config["image_seq_length"], max_length,
                            source="test.json")


def multi_turn(stack):
    return next(s for s in samples(stack) if len(s["conversations"]) == 4)


def test_learned_tokens_are_exactly_the_answers(stack, processor, config):
    sample = multi_turn(stack)
    encoded, stats = encode(processor, config, [sample])
    ids, labels = encoded[0]
    learned = labels[labels != IGNORE_INDEX]
    answers = [t["value"] for t in sample["conversations"] if t["from"] == "gpt"]
    assert processor.tokenizer.decode(learned) == "".join(a + TURN_END for a in answers)
    assert stats.learned_tokens == len(learned)
    assert stats.masked_tokens == len(ids) - len(learned) == stats.tokens - stats.learned_tokens
    assert int((ids == config["image_token_index"]).sum()) == config["image_seq_length"]


def test_same_ids_and_mask_as_the_llava_processor(stack, processor, config):
    """Our expansion of <image> ids equals LlavaProcessor expanding the text before tokenising."""
    from PIL import Image
    dataset, st = stack
    sample = multi_turn(stack)
    image = Image.open(dataset / sample["image"]).convert("RGB")
    messages = llava_to_messages(sample["conversations"])
    messages[0]["content"][0] = {"type": "image", "image": image}
    ref = processor.apply_chat_template(messages, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True, return_tensors="pt")
    encoded, _ = encode(processor, config, [sample])
    ids, labels = encoded[0]
    assert torch.equal(ids, ref["input_ids"][0])
    assert torch.equal(labels != IGNORE_INDEX, ref["assistant_masks"][0].bool())


def test_fully_masked_sample_is_an_error_naming_it(stack, processor, config):
    broken = processor.chat_template.replace("{{ render(message['content']) }}{{ '<|im_end|>' }}",
                                             "").replace("{% generation %}{% endgeneration %}",
                                                         "{% generation %}{% endgeneration %}{{ "
                                                         "render(message['content']) }}")
    assert broken != processor.chat_template
    items = samples(stack)[:3]
    with pytest.raises(SampleError, match=f"{items[0]['id']}.*no assistant tokens"):
        encode(processor, config, items, template=broken)


def test_truncated_answer_is_an_error_naming_it(stack, processor, config):
    items = samples(stack)[:4]
    _, stats = encode(processor, config, items)
    with pytest.raises(SampleError, match=r"would cut \d+ answer tokens"):
        encode(processor, config, items, max_length=stats.max_length - 2)


def test_missing_image_marker_is_an_error(stack, processor, config):
    item = dict(samples(stack)[0])
    item["conversations"] = [{"from": "human", "value": "no image here"},
                             {"from": "gpt", "value": "fine"}]
    with pytest.raises(SampleError, match="0 <image> markers"):
        encode(processor, config, [samples(stack)[1], item])


def test_dataset_and_collator(stack, processor, config):
    dataset, st = stack
    ds = ConversationDataset(st.conversations / "instruct_train.json", processor,
                             image_token_id=config["image_token_index"],
                             n_image_tokens=config["image_seq_length"], limit=5)
    assert ds.image_root == dataset.resolve()
    items = [ds[i] for i in range(len(ds))]
    size = config["vision_config"]["image_size"]
    assert items[0]["pixel_values"].shape == (3, size, size)
    batch = Collator(processor.tokenizer.pad_token_id)(items)
    lengths = torch.tensor([len(i["input_ids"]) for i in items])
    assert batch["input_ids"].shape[1] % 8 == 0
    assert torch.equal(batch["attention_mask"].sum(1), lengths)
    pad = batch["attention_mask"] == 0
    assert (batch["labels"][pad] == IGNORE_INDEX).all()
    assert (batch["input_ids"][pad] == processor.tokenizer.pad_token_id).all()
    assert batch["pixel_values"].shape == (5, 3, size, size)


def test_stats_cover_whole_corpus(stack, processor, config):
    items = samples(stack, "pretrain_train.json")
    encoded, stats = encode(processor, config, items)
    lengths = np.asarray(encoded.ends) - np.asarray(encoded.starts)
    assert stats.samples == len(items) == len(encoded)
    assert stats.tokens == lengths.sum() and stats.max_length == lengths.max()
    assert 0 < stats.as_dict()["learned_fraction"] < 1
