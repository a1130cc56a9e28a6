"""Train a small byte-level BPE tokenizer on the conversation corpus (for the tiny CPU language model).

A random-initialised tiny LM learns faster with a vocabulary fitted to its text: street names become
one or two tokens. The result is a fast tokenizer directory (``tokenizer.json``,
``tokenizer_config.json``, ``chat_template.jinja``) that ``AutoTokenizer.from_pretrained`` loads, with
the chat template's turn tokens, ``<image>`` and ``<pad>`` as special tokens. It adds no special tokens
when encoding (the template writes every marker itself), so tokenizer and processor paths agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from llava_ial.template import IMAGE_TOKEN, PAD_TOKEN, ROLE_OF, TURN_END, TURN_START, chat_template

END_OF_TEXT = "<|endoftext|>"
SPECIAL_TOKENS = (END_OF_TEXT, TURN_START, TURN_END, IMAGE_TOKEN, PAD_TOKEN)


def corpus_texts(conversation_files: Iterable[str | Path]) -> Iterator[str]:
    """Every turn as the template writes it (role line, then text), without special tokens."""
    for path in conversation_files:
        for sample in json.loads(Path(path).read_text(encoding="utf-8")):
            for turn in sample["conversations"]:
                role = ROLE_OF.get(turn["from"], turn["from"])
                yield f"{role}\n" + turn["value"].replace(IMAGE_TOKEN, "")


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2):
    """A ``PreTrainedTokenizerFast`` with a BPE vocabulary of at most ``vocab_size`` entries."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=END_OF_TEXT, eos_token=TURN_END, pad_token=PAD_TOKEN,
        unk_token=None, extra_special_tokens=[TURN_START, IMAGE_TOKEN],
        model_max_length=2048, padding_side="right", clean_up_tokenization_spaces=False)
    tokenizer.chat_template = chat_template()
    return tokenizer


def train_and_save(conversation_files: list[str | Path], out: str | Path, vocab_size: int):
    tokenizer = train_tokenizer(corpus_texts(conversation_files), vocab_size)
    tokenizer.save_pretrained(out)
    return tokenizer
