"""Ask a LLaVA-IAL model about a photo: ``python -m llava_ial.chat --model DIR --image PATH``.

Greedy decoding by default (``--sample true`` for sampling). ``--model`` is any folder the toolkit writes
(full model, LoRA adapter or pretrain projector: its ``llava_ial.json`` says which) or a stock HF
LLaVA directory. Prints the answer only.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from ial_core.config import option, parse_config
from llava_ial.inference import DEFAULT_QUESTION, answer, load_for_inference, read_image


@dataclass
class ChatConfig:
    model: str = option(help="LLaVA-IAL or HF LLaVA directory")
    image: str = option(help="photo to ask about")
    question: str = option(DEFAULT_QUESTION, "question")
    max_new_tokens: int = option(64, "longest answer in tokens")
    sample: bool = option(False, "sample instead of greedy decoding")
    temperature: float = option(0.7, "with --sample true")
    trust_remote_code: bool = option(False, "allow code shipped inside the model folder to run")


def main(argv: list[str] | None = None) -> int:
    a = parse_config(ChatConfig, argv, prog="python -m llava_ial.chat",
                     description=__doc__.split("\n")[0])
    model, processor = load_for_inference(a.model, trust_remote_code=a.trust_remote_code)
    extra = {"temperature": a.temperature} if a.sample else {}
    text = answer(model, processor, [read_image(a.image)], a.question,
                  max_new_tokens=a.max_new_tokens, do_sample=a.sample, **extra)[0]
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
