"""A local Hugging Face LLaVA folder (stage two's export): batched greedy generation with transformers.

The folder must hold what ``LlavaForConditionalGeneration`` and ``AutoProcessor`` load (config,
weights, tokenizer with ``<image>``, processor config and a chat template); no remote code is run.
Each batch is one left-padded ``generate`` call; if a batch fails (an unreadable image, an input the
processor refuses), its items are retried one by one so that only the bad item gets the error.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from eval.backends.base import Backend, BackendError, Item, Result, split_by_image
from ial_core.config import option


@dataclass
class HFOptions:
    batch_size: int = option(8, "images per batch (hf generate call, addressclip)")
    device: str = option("auto", "auto | cpu | cuda (hf, addressclip)")
    dtype: str = option("auto", "auto | float32 | bfloat16 | float16 (auto: bfloat16 on a CUDA GPU "
                                "that has it, else float32)")


class HFBackend(Backend):
    kind = "hf"
    target_flag = "--model DIR"

    @classmethod
    def flag_targets(cls, cfg) -> list[str]:
        return [cfg.model]

    @classmethod
    def from_config(cls, target, cfg, *, base_url, cache_dir) -> HFBackend:
        return cls(target, max_new_tokens=cfg.max_new_tokens, options=cfg.hf_options())

    def __init__(self, model_dir: str | Path, *, max_new_tokens: int, options: HFOptions):
        self.model_dir = Path(model_dir)
        self.max_new_tokens = max_new_tokens
        self.options = options
        self.model = self.processor = None

    def fingerprint(self) -> dict:
        weights = sorted(self.model_dir.glob("*.safetensors")) if self.model_dir.is_dir() else []
        return {"kind": self.kind, "model_dir": str(self.model_dir.resolve()),
                "max_new_tokens": self.max_new_tokens,
                "weights": [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in weights]}

    def generate(self, items: Sequence[Item]) -> Iterator[Result]:
        self._load()
        ready, refused = split_by_image(items)
        yield from refused
        size = max(1, self.options.batch_size)
        for i in range(0, len(ready), size):
            batch = ready[i:i + size]
            try:
                answers = self._generate(batch)
            except Exception:  # noqa: BLE001 - isolate the item that broke the batch
                yield from (self._one(item) for item in batch)
            else:
                yield from (Result(item.id, answer=a) for item, a in zip(batch, answers))

    def close(self) -> None:
        self.model = self.processor = None

    def _one(self, item: Item) -> Result:
        try:
            return Result(item.id, answer=self._generate([item])[0])
        except Exception as exc:  # noqa: BLE001
            return Result(item.id, error=f"generation failed: {type(exc).__name__}: {exc}")

    def _load(self) -> None:
        if self.model is not None:
            return
        if not (self.model_dir / "config.json").is_file():
            raise BackendError(f"{self.model_dir}: not a Hugging Face model folder (no config.json)")
        import torch
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        device = self.options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = self.options.dtype
        if dtype == "auto":
            dtype = ("bfloat16" if device.startswith("cuda") and torch.cuda.is_bf16_supported()
                     else "float32")
        try:
            processor = AutoProcessor.from_pretrained(str(self.model_dir), trust_remote_code=False)
            model = LlavaForConditionalGeneration.from_pretrained(   # never pickles, never code
                str(self.model_dir), dtype=getattr(torch, dtype), trust_remote_code=False,
                use_safetensors=True)
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            raise BackendError(f"{self.model_dir}: cannot load as a LLaVA model ({exc})") from exc
        if getattr(processor, "chat_template", None) is None:
            raise BackendError(f"{self.model_dir}: no chat template (the export should write "
                               "chat_template.jinja)")
        tokenizer = processor.tokenizer
        tokenizer.padding_side = "left"          # generation continues from the right end
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.processor, self.model, self.device = processor, model.to(device).eval(), device

    def encode(self, images, texts: list[str]):
        """Model inputs for rendered prompts. The chat template writes the special tokens itself
        (BOS for Llama/Mistral/Gemma tokenizers), so the tokenizer adds none: adding them again
        would feed a Llama a second BOS it never saw in training, and vLLM (which also renders the
        template and adds nothing) would answer a different prompt."""
        return self.processor(images=images, text=texts, padding=True, return_tensors="pt",
                              add_special_tokens=False)

    def _generate(self, batch: list[Item]) -> list[str]:
        import torch

        from ial_core.images import open_rgb

        images = [open_rgb(item.image, source=item.image, row=item.id) for item in batch]
        texts = [self.processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": item.prompt}]}],
            add_generation_prompt=True, tokenize=False) for item in batch]
        inputs = self.encode(images, texts).to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        tok = self.processor.tokenizer
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      num_beams=1, pad_token_id=tok.pad_token_id)
        new = out[:, inputs["input_ids"].shape[1]:]
        return [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
