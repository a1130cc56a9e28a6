"""The one chat template used for training labels and for serving, and its special tokens.

The template (``chat_template.jinja``, ChatML) is stored with the tokenizer and the processor of every
LLaVA-IAL directory, so transformers, vLLM and the training labels all render a conversation the same
way. Assistant turns are wrapped in ``{% generation %}`` so that ``return_assistant_tokens_mask``
gives the learned tokens without hand-counted offsets.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

IMAGE_TOKEN = "<image>"
PAD_TOKEN = "<pad>"
TURN_START = "<|im_start|>"
TURN_END = "<|im_end|>"            # ends every turn; generation stops on it
ROLE_OF = {"human": "user", "gpt": "assistant", "system": "system"}
TEMPLATE_PATH = Path(__file__).with_name("chat_template.jinja")


@cache
def chat_template() -> str:
    return TEMPLATE_PATH.read_text(encoding="utf-8")


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
