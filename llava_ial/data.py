"""Training data: LLaVA-format conversations + images -> token ids, labels and pixel values.

Labels come from the serving chat template itself: the tokenizer renders every conversation with
``return_assistant_tokens_mask=True`` (the template's ``{% generation %}`` blocks), so exactly the
assistant turns (and their end-of-turn token) are learned and everything else is -100. No offsets
are counted by hand. An LM's own template without ``{% generation %}`` blocks (``compose
--chat_template own``) gets its masks from the template too: each answer is what rendering the
conversation up to and including it adds to the rendering up to its generation prompt.

Each ``<image>`` is then expanded into the model's number of image tokens, as ``LlavaProcessor`` does
before tokenising (``<image>`` is a special token, so expanding ids equals expanding text; a test
checks the two give identical ids). Every sample is checked once, up front: one image, at least one
learned token, and nothing cut by ``model_max_length``; a failing sample is an error naming its id.
Without ``model_max_length`` the longest sample sets it (image tokens plus text), so a real tower's
576 image tokens never refuse every sample.
Counts of learned and masked tokens are returned for the training log.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from ial_core.errors import DataError
from ial_core.images import open_rgb
from ial_core.paths import resolve_in_root, safe_relative_path
from llava_ial.template import IMAGE_TOKEN, llava_to_messages, marks_generation

IGNORE_INDEX = -100


class SampleError(ValueError):
    """A training sample that cannot be learned from; the message names its id and file."""


@dataclass
class TokenStats:
    samples: int = 0
    tokens: int = 0
    learned_tokens: int = 0         # assistant tokens (labels != -100)
    masked_tokens: int = 0          # everything else: prompts, template markers, image tokens
    image_tokens: int = 0
    max_length: int = 0

    def as_dict(self) -> dict:
        return {**asdict(self), "learned_fraction": self.learned_tokens / max(self.tokens, 1)}


def read_conversations(path: str | Path, limit: int | None = None) -> list[dict]:
    """The samples of a LLaVA conversation file, each checked for an id and a safe image path.

    Image paths are checked here, before any training step, rather than when a DataLoader worker
    first reads them: ``..`` and absolute paths are refused (SampleError naming file and sample).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such conversation file (write one with "
                                "`python -m data_gen.conversations`)")
    try:
        samples = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SampleError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise SampleError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(samples, list):
        raise SampleError(f"{path}: expected a JSON list of {{id, image, conversations}}")
    samples = samples[:limit] if limit else samples
    for i, s in enumerate(samples):
        if not isinstance(s, dict) or not {"id", "image", "conversations"} <= s.keys():
            raise SampleError(f"{path}: item {i} lacks id, image or conversations")
        try:
            safe_relative_path(s["image"], source=path, row=str(s["id"]))
        except DataError as exc:
            raise SampleError(f"{path}: item {i} (sample {s['id']!r}): {exc}") from None
    return samples


def default_image_root(conversations: str | Path) -> Path:
    """The dataset folder recorded in the ``meta.json`` beside the conversation file."""
    meta = Path(conversations).with_name("meta.json")
    if not meta.is_file():
        raise FileNotFoundError(f"{meta}: missing; pass --image_root (the folder image paths are "
                                "relative to)")
    return Path(json.loads(meta.read_text(encoding="utf-8"))["image_root"])


def expand_image_tokens(ids: np.ndarray, mask: np.ndarray, image_token_id: int,
                        n_image_tokens: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Repeat every ``<image>`` id ``n_image_tokens`` times; mask entries follow their token.

    Returns the new ids, mask and the per-position repeat counts (to recount sample lengths).
    """
    repeats = np.where(ids == image_token_id, n_image_tokens, 1)
    return np.repeat(ids, repeats), np.repeat(mask, repeats), repeats


@dataclass
class Encoded:
    """All samples' ids and labels in two flat arrays; sample ``i`` is ``[starts[i], ends[i])``."""

    ids: np.ndarray
    labels: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        sl = slice(self.starts[i], self.ends[i])
        return torch.from_numpy(self.ids[sl]), torch.from_numpy(self.labels[sl])


def _first_bad(bad: np.ndarray, samples: list[dict], source: str, message) -> None:
    """Raise for the first sample flagged in ``bad``; ``message(i)`` says what is wrong with it."""
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SampleError(f"{source}: sample {samples[i]['id']!r}: {message(i)} "
                          f"({int(bad.sum())} bad sample(s) in all)")


def masks_by_prefix(tokenizer, chat_template: str, messages: list[list[dict]],
                    samples: list[dict], source: str) -> dict:
    """``input_ids`` and ``assistant_masks`` for a template without ``{% generation %}``: answer
    ``k`` is the tokens that rendering turns ``..k`` adds to rendering turns ``..k-1`` with the
    generation prompt. The prefix must tokenise to a prefix of the whole (special tokens at turn
    boundaries make it so); where it does not, the sample is an error, never a shifted mask."""
    def ids(conversation, prompt):
        return tokenizer.apply_chat_template(conversation, chat_template=chat_template, tokenize=True,
                                             add_generation_prompt=prompt, return_dict=False)
    all_ids, all_masks = [], []
    for sample, conversation in zip(samples, messages):
        full = list(ids(conversation, False))
        mask = [0] * len(full)
        for k, message in enumerate(conversation):
            if message["role"] != "assistant":
                continue
            head = ids(conversation[:k], True)
            start, end = len(head), len(ids(conversation[:k + 1], False))
            if list(full[:start]) != list(head):
                raise SampleError(f"{source}: sample {sample['id']!r}: the chat template's prompt "
                                  f"for turn {k} does not tokenise to a prefix of the conversation; "
                                  "cannot mark the answer (use compose --chat_template chatml)")
            mask[start:end] = [1] * (end - start)
        all_ids.append(full)
        all_masks.append(mask)
    return {"input_ids": all_ids, "assistant_masks": all_masks}


def tokenize_samples(samples: list[dict], tokenizer, chat_template: str, image_token_id: int,
                     n_image_tokens: int, max_length: int | None,
                     source: str = "") -> tuple[Encoded, TokenStats]:
    """Token ids and labels for every sample, checked, in whole-corpus array operations;
    ``max_length`` None: the longest sample's length."""
    messages = [llava_to_messages(s["conversations"], s["id"]) for s in samples]
    if marks_generation(chat_template):
        enc = tokenizer.apply_chat_template(messages, chat_template=chat_template, tokenize=True,
                                            return_dict=True, return_assistant_tokens_mask=True)
    else:
        enc = masks_by_prefix(tokenizer, chat_template, messages, samples, source)
    lengths = np.fromiter(map(len, enc["input_ids"]), dtype=np.int64, count=len(samples))
    ids = np.fromiter(itertools.chain.from_iterable(enc["input_ids"]), dtype=np.int64,
                      count=int(lengths.sum()))
    mask = np.fromiter(itertools.chain.from_iterable(enc["assistant_masks"]), dtype=bool,
                       count=len(ids))
    owner = np.repeat(np.arange(len(samples)), lengths)
    n = len(samples)
    n_images = np.bincount(owner, weights=ids == image_token_id, minlength=n)
    _first_bad(n_images != 1, samples, source, lambda i: (
        f"{int(n_images[i])} {IMAGE_TOKEN} markers; every sample needs exactly one (its 'image'), "
        "in the first human turn"))
    learned = np.bincount(owner, weights=mask, minlength=n)
    _first_bad(learned == 0, samples, source, lambda i: (
        "no assistant tokens after applying the chat template; the template and tokenizer "
        "disagree (nothing would be learned)"))
    ids, mask, repeats = expand_image_tokens(ids, mask, image_token_id, n_image_tokens)
    owner = np.repeat(owner, repeats)
    lengths = np.bincount(owner, minlength=n)
    if max_length is None:
        max_length = int(lengths.max()) if n else 0
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    position = np.arange(len(ids)) - starts[owner]
    cut = np.bincount(owner, weights=mask & (position >= max_length), minlength=n)
    _first_bad(cut > 0, samples, source, lambda i: (
        f"{int(lengths[i])} tokens; model_max_length {max_length} would cut {int(cut[i])} answer "
        "tokens; raise --model_max_length or shorten the conversation"))
    ends = starts + np.minimum(lengths, max_length)
    labels = np.where(mask, ids, IGNORE_INDEX)
    kept = int((ends - starts).sum())
    learned_total = int(learned.sum())
    stats = TokenStats(samples=n, tokens=kept, learned_tokens=learned_total,
                       masked_tokens=kept - learned_total, image_tokens=n * n_image_tokens,
                       max_length=int((ends - starts).max()) if n else 0)
    return Encoded(ids, labels, starts, ends), stats


class ConversationDataset(torch.utils.data.Dataset):
    """LLaVA-format samples, tokenised once at start; images are read and processed per item."""

    def __init__(self, conversations: str | Path, processor, *, image_root: str | Path | None = None,
                 max_length: int | None = None, image_token_id: int, n_image_tokens: int,
                 limit: int | None = None):
        self.source = str(conversations)
        samples = read_conversations(conversations, limit)
        self.image_root = Path(image_root) if image_root else default_image_root(conversations)
        self.images = [s["image"] for s in samples]
        self.ids = [s["id"] for s in samples]
        self.image_processor = processor.image_processor
        self.encoded, self.stats = tokenize_samples(
            samples, processor.tokenizer, processor.chat_template, image_token_id, n_image_tokens,
            max_length, source=self.source)

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, i: int) -> dict:
        """Ids, labels and pixels of sample ``i``. An image that is missing, leaves the image root
        (a symlink) or does not decode is a SampleError naming the file, sample id and image, also
        when raised inside a DataLoader worker."""
        try:
            path = resolve_in_root(self.image_root, self.images[i], source=self.source,
                                   row=self.ids[i])
            image = open_rgb(path, source=self.source, row=self.ids[i])
        except DataError as exc:
            raise SampleError(str(exc)) from exc
        pixels = self.image_processor(images=image, return_tensors="pt")["pixel_values"][0]
        ids, labels = self.encoded[i]
        return {"input_ids": ids, "labels": labels, "pixel_values": pixels}


@dataclass
class Collator:
    """Right-pads ids (pad id) and labels (-100) to the longest sample; stacks the images."""

    pad_token_id: int
    pad_to_multiple_of: int | None = 8

    def __call__(self, batch: list[dict]) -> dict:
        lengths = torch.tensor([len(b["input_ids"]) for b in batch])
        width = int(lengths.max())
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        ids = pad_sequence([b["input_ids"] for b in batch], batch_first=True,
                           padding_value=self.pad_token_id)
        labels = pad_sequence([b["labels"] for b in batch], batch_first=True,
                              padding_value=IGNORE_INDEX)
        extra = width - ids.shape[1]
        ids = torch.nn.functional.pad(ids, (0, extra), value=self.pad_token_id)
        labels = torch.nn.functional.pad(labels, (0, extra), value=IGNORE_INDEX)
        attention_mask = torch.arange(width)[None, :] < lengths[:, None]
        return {"input_ids": ids, "labels": labels, "attention_mask": attention_mask.long(),
                "pixel_values": torch.stack([b["pixel_values"] for b in batch])}
