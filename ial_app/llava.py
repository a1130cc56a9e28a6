"""LLaVA-IAL's free-form answer for the app: a local exported folder, or an OpenAI-compatible server.

Local: :func:`llava_ial.inference.load_for_inference` / :func:`~llava_ial.inference.answer` (the
folder loads once, at start-up). Server (e.g. ``scripts/serve_vllm.sh``): one chat completion per
question through :class:`eval.backends.openai.OpenAIBackend`, which handles retries, time-outs and
error replies; a failure comes back as a message, never an exception in the app.
"""

from __future__ import annotations

from pathlib import Path

from data_gen.questions import DESIGN_QUESTION as DEFAULT_QUESTION  # the one question constant

__all__ = ["DEFAULT_QUESTION", "LocalLlava", "ServedLlava"]


class LocalLlava:
    def __init__(self, model_dir: str | Path, *, max_new_tokens: int = 48):
        from llava_ial.inference import load_for_inference
        self.model, self.processor = load_for_inference(model_dir)
        self.max_new_tokens = max_new_tokens
        self.name = f"local {model_dir}"

    def ask(self, image, question: str) -> str:
        from llava_ial.inference import answer
        return answer(self.model, self.processor, [image], question or DEFAULT_QUESTION,
                      max_new_tokens=self.max_new_tokens)[0]


class ServedLlava:
    def __init__(self, base_url: str, model: str = "llava-ial", *, api_key: str | None = None,
                 max_tokens: int = 64, timeout_s: float = 60.0):
        from eval.backends.openai import OpenAIBackend, OpenAIOptions
        opts = OpenAIOptions(base_url=base_url, api_key=api_key, concurrency=1, timeout_s=timeout_s,
                             max_retries=1)
        self.backend = OpenAIBackend(model, max_tokens=max_tokens, options=opts)
        self.name = f"{model} at {base_url}"

    def ask(self, image_path, question: str) -> str:
        from eval.backends.base import Item
        [result] = list(self.backend.generate([Item("app", Path(image_path), question or DEFAULT_QUESTION)]))
        return result.answer if result.ok else f"(no answer: {result.error})"
