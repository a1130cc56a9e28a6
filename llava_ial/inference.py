"""Load any LLaVA-IAL folder for inference and answer questions about images (batched, greedy).

The folder's ``llava_ial.json`` says what it holds (see :mod:`llava_ial.layout`): a full model loads
directly; a LoRA adapter or a pretrained projector loads on top of its ``base_model``. Prompts are
rendered with the processor's chat template (the one used in training), and ``LlavaProcessor`` expands
``<image>`` into the image tokens.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from data_gen.questions import DESIGN_QUESTION as DEFAULT_QUESTION  # the one question constant
from llava_ial.layout import read_meta
from llava_ial.template import encode_prompts, user_message


def load_for_inference(model_dir: str | Path, *, dtype: torch.dtype = torch.float32,
                       trust_remote_code: bool = False):
    """``(model, processor)`` for a full, LoRA or projector folder; the model is in eval mode."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration
    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    source = model_dir if meta["kind"] == "full" else Path(meta["base_model"])
    if not source.is_dir():
        raise FileNotFoundError(f"{model_dir}: its base model {source} (llava_ial.json) is missing")
    if meta["kind"] == "lora" and not (model_dir / "adapter_model.safetensors").is_file():
        # peft would fall back to torch.load on adapter_model.bin; only safetensors are read
        raise FileNotFoundError(f"{model_dir}: no adapter_model.safetensors (only safetensors "
                                "adapters are read; pickled .bin files are refused)")
    model = LlavaForConditionalGeneration.from_pretrained(source, dtype=dtype, use_safetensors=True)
    if meta["kind"] == "lora":
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, model_dir)
    elif meta["kind"] == "projector":
        from llava_ial.model import load_projector
        load_projector(model, model_dir)
    processor = AutoProcessor.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    return model.eval(), processor


def read_image(path: str | Path) -> Image.Image:
    """RGB pixels as training saw them (:func:`ial_core.images.open_rgb`); DataError naming it."""
    from ial_core.images import open_rgb
    return open_rgb(path)


@torch.no_grad()
def answer(model, processor, images: list[Image.Image], questions: list[str] | str = DEFAULT_QUESTION,
           *, max_new_tokens: int = 48, do_sample: bool = False, batch_size: int = 32,
           **generate_kwargs) -> list[str]:
    """One answer per image (greedy unless ``do_sample``); prompts are left-padded in batches."""
    if isinstance(questions, str):
        questions = [questions] * len(images)
    if len(questions) != len(images):
        raise ValueError(f"{len(images)} images but {len(questions)} questions")
    tokenizer = processor.tokenizer
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        answers = []
        for i in range(0, len(images), batch_size):
            texts = [processor.apply_chat_template([user_message(q)], add_generation_prompt=True)
                     for q in questions[i:i + batch_size]]
            inputs = encode_prompts(processor, images[i:i + batch_size], texts,
                                    padding=True).to(model.device)
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=do_sample,
                                 **generate_kwargs)
            new = out[:, inputs["input_ids"].shape[1]:]
            answers += [a.strip() for a in tokenizer.batch_decode(new, skip_special_tokens=True)]
        return answers
    finally:
        tokenizer.padding_side = side
