"""The one chat template used for training labels and for serving, and its special tokens.

The template (``chat_template.jinja``, ChatML) is stored with the tokenizer and the processor of every
LLaVA-IAL directory, so transformers, vLLM and the training labels all render a conversation the same
way. Assistant turns are wrapped in ``{% generation %}`` so that ``return_assistant_tokens_mask``
gives the learned tokens without hand-counted offsets.

The template writes every special token itself, BOS included for tokenizers that want one (Llama,
Mistral, Gemma): every path then tokenises the rendered text with ``add_special_tokens=False``
(training through ``apply_chat_template``, inference through :func:`encode_prompts`), as vLLM does
for chat requests, so all of them see the same ids.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

IMAGE_TOKEN = "<image>"
PAD_TOKEN = "<pad>"
TURN_START = "<|im_start|>"
TURN_END = "<|im_end|>"            # ends every turn; generation stops on it
ROLE_OF = {"human": "user", "gpt": "assistant", "system": "system"}
TEMPLATE_PATH = Path(__file__).with_name("chat_template.jinja")


BOS_PREFIX = "{{- bos_token -}}\n"      # a whitespace-trimmed line: renders the tokenizer's BOS only


@cache
def chat_template(bos: bool = False) -> str:
    """The ChatML template; with ``bos`` it starts with the tokenizer's BOS token."""
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    return BOS_PREFIX + text if bos else text


def adds_bos(tokenizer) -> bool:
    """Whether ``tokenizer(text)`` puts BOS in front (Llama-2/3, Mistral, Gemma do; GPT-2 BPE,
    Qwen2 and SmolLM2 do not): such an LM was pre-trained on BOS-prefixed text."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0] == bos


def encode_prompts(processor, images, texts: list[str], **kwargs):
    """``processor(images, texts)`` without the tokenizer's own special tokens: the rendered chat
    template already holds them (BOS included), exactly as training tokenised it."""
    return processor(images=images, text=texts, add_special_tokens=False, return_tensors="pt",
                     **kwargs)


class ConversationError(ValueError):
    """A conversation record that cannot be rendered; the message names the sample id."""


def user_message(question: str, *, image: bool = True) -> dict:
    """A user turn in the OpenAI/transformers content-parts form (what vLLM passes too)."""
    parts = [{"type": "image"}] if image else []
    return {"role": "user", "content": parts + [{"type": "text", "text": question}]}


def llava_to_messages(conversations: list[dict], sample_id: str = "?") -> list[dict]:
    """LLaVA ``[{from, value}]`` turns -> chat messages; ``"<image>\\n"`` becomes an image part.

    The template renders an image part as ``"<image>\\n"``, so the rendered text equals the LLaVA value.
    """
    if not conversations:
        raise ConversationError(f"sample {sample_id!r}: no turns")
    messages = []
    for i, turn in enumerate(conversations):
        role = ROLE_OF.get(turn.get("from"))
        value = turn.get("value")
        if role is None or not isinstance(value, str):
            raise ConversationError(f"sample {sample_id!r}, turn {i}: expected {{from: human|gpt|system, "
                                    f"value: str}}, got {turn!r}")
        if role == "user" and value.startswith(IMAGE_TOKEN + "\n"):
            messages.append(user_message(value[len(IMAGE_TOKEN) + 1:]))
        else:
            messages.append({"role": role, "content": value})
    if messages[-1]["role"] != "assistant":
        raise ConversationError(f"sample {sample_id!r}: the last turn is not an answer (from: gpt)")
    return messages


# Put in front of an LM's own template (``compose --chat_template own``): image parts become
# "<image>\n" and text parts their text, so a template written for string content (most text LMs')
# renders the content-parts messages that transformers and vLLM pass for images.
PARTS_TO_STRINGS = """{#- llava_ial: content parts -> strings (image parts render as <image>) -#}
{%- set ns = namespace(messages=[]) -%}
{%- for m in messages -%}
{%- if m['content'] is string -%}{%- set ns.messages = ns.messages + [m] -%}
{%- else -%}{%- set text = namespace(value='') -%}
{%- for part in m['content'] -%}
{%- if part['type'] in ['image', 'image_url'] -%}{%- set text.value = text.value + '<image>\\n' -%}
{%- elif part['type'] == 'text' -%}{%- set text.value = text.value + part['text'] -%}{%- endif -%}
{%- endfor -%}
{%- set ns.messages = ns.messages + [{'role': m['role'], 'content': text.value}] -%}
{%- endif -%}
{%- endfor -%}
{%- set messages = ns.messages -%}
"""
_GENERATION_BLOCK = re.compile(r"\{%-?\s*generation\s*-?%\}")


def accept_content_parts(template: str) -> str:
    """An LM's own template that also renders content-parts messages (idempotent)."""
    return template if template.startswith(PARTS_TO_STRINGS) else PARTS_TO_STRINGS + template


def marks_generation(template: str) -> bool:
    """Whether the template wraps assistant text in ``{% generation %}`` (assistant masks)."""
    return bool(_GENERATION_BLOCK.search(template or ""))
