"""Ask a LLaVA-IAL model about a photo: ``python -m llava_ial.chat --model DIR --image PATH``.

Greedy decoding by default (``--sample`` for sampling). ``--model`` is any folder the toolkit writes
(full model, LoRA adapter or pretrain projector: its ``llava_ial.json`` says which) or a stock HF
LLaVA directory. Prints the answer only.
"""

from __future__ import annotations

import argparse
import sys

from llava_ial.inference import DEFAULT_QUESTION, answer, load_for_inference, read_image


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m llava_ial.chat", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="LLaVA-IAL or HF LLaVA directory")
    p.add_argument("--image", required=True, help="photo to ask about")
    p.add_argument("--question", default=DEFAULT_QUESTION, help="question (default: %(default)r)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=0.7, help="with --sample")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow code shipped inside the model folder to run")
    a = p.parse_args(argv)
    model, processor = load_for_inference(a.model, trust_remote_code=a.trust_remote_code)
    extra = {"temperature": a.temperature} if a.sample else {}
    text = answer(model, processor, [read_image(a.image)], a.question,
                  max_new_tokens=a.max_new_tokens, do_sample=a.sample, **extra)[0]
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
