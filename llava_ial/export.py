"""Export any LLaVA-IAL training output as one servable HF LLaVA directory:
``python -m llava_ial.export --model RUN/model --out DIR``.

What the input is comes from its ``llava_ial.json`` (never from folder names): a LoRA adapter is
merged into its ``base_model`` (``merge_and_unload``; the projector, trained fully through peft's
``modules_to_save``, is taken over); a pretrain projector is copied into its base; a full model is
rewritten as is. QLoRA adapters merge into the full-precision base (the quantized copy trained
against differs from it by the quantization error; merging into 4-bit weights would lose more).

Before the output is moved into place (temporary folder, then rename) it is reloaded with stock
``LlavaForConditionalGeneration`` and checked: no missing or unexpected keys, and the logits on a
probe input equal the source's (adapter + base) within ``--tolerance``.

Memory: the model is loaded once in ``--dtype`` (bfloat16 for a 7B LM), merged in place, written
with no copies, and released before the check reloads it, so the peak stays near one copy of the
weights in that dtype (``benchmarks/bench_llava_memory.py`` measures it).
"""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ial_core.config import option, parse_config
from ial_core.files import atomic_dir
from llava_ial.inference import load_for_inference
from llava_ial.layout import read_meta, write_full, write_meta
from llava_ial.model import base_of

DEFAULT_TOLERANCE = 1e-4     # max abs logit difference, float32
PROBE_POSITIONS = 16
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ExportError(RuntimeError):
    """The exported folder does not reproduce its source."""


@torch.no_grad()
def probe_logits(model, processor) -> torch.Tensor:
    """Logits of a fixed prompt with a fixed image (the processor sizes it; values are seeded), at
    the last :data:`PROBE_POSITIONS` positions: every weight shapes them (through attention over the
    image and the prompt), and the whole vocabulary at every position would cost more memory than
    the weights of a small LM."""
    from PIL import Image

    from llava_ial.inference import DEFAULT_QUESTION
    from llava_ial.template import encode_prompts, user_message
    g = torch.Generator().manual_seed(0)
    pixels = (torch.rand(96, 128, 3, generator=g) * 255).to(torch.uint8).numpy()
    text = processor.apply_chat_template([user_message(DEFAULT_QUESTION)], add_generation_prompt=True)
    inputs = encode_prompts(processor, [Image.fromarray(pixels)], [text]).to(model.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    return model(**inputs, logits_to_keep=PROBE_POSITIONS).logits.float()


def merged_model(model):
    """A plain ``LlavaForConditionalGeneration``: LoRA merged, peft wrappers removed."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return base_of(model)


def export(model_dir: str | Path, out: str | Path, *, tolerance: float = DEFAULT_TOLERANCE,
           trust_remote_code: bool = False, dtype: str = "float32") -> dict:
    from transformers import LlavaForConditionalGeneration
    meta = read_meta(model_dir)
    torch_dtype = DTYPES[dtype]
    source, processor = load_for_inference(model_dir, dtype=torch_dtype,
                                           trust_remote_code=trust_remote_code)
    reference = probe_logits(source, processor)
    model = merged_model(source)
    report = {"source": str(Path(model_dir).resolve()), "source_kind": meta["kind"],
              "base_model": meta.get("base_model"), "stage": meta.get("stage"),
              "tolerance": tolerance, "dtype": dtype}
    with atomic_dir(out) as tmp:
        model.config.dtype = torch_dtype
        write_full(model, processor, tmp, exported_from=report, summary=meta.get("summary"))
        del model, source                  # one copy at a time: release before reloading
        gc.collect()
        reloaded, info = LlavaForConditionalGeneration.from_pretrained(
            tmp, dtype=torch_dtype, output_loading_info=True, use_safetensors=True)
        bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys",
                                                             "mismatched_keys")}
        if bad:
            raise ExportError(f"stock transformers does not load the export cleanly: {bad}")
        diff = float((probe_logits(reloaded.eval(), processor) - reference).abs().max())
        report["max_abs_logit_diff"] = diff
        if diff > tolerance:
            raise ExportError(f"exported logits differ from {model_dir} by {diff} > {tolerance}")
        write_meta(tmp, "full", exported_from=report, summary=meta.get("summary"))
    return report


@dataclass
class ExportConfig:
    model: str = option(help="training output (OUTPUT_DIR/model) or any LLaVA-IAL folder")
    out: str = option(help="directory to write (replaced atomically)")
    tolerance: float = option(DEFAULT_TOLERANCE, "largest allowed logit difference to the source")
    dtype: str = option("float32", "dtype the model is loaded, merged and written in (bfloat16 "
                        "halves the memory of a large LM; compare at a looser --tolerance)",
                        choices=sorted(DTYPES))
    trust_remote_code: bool = option(False, "allow code shipped inside the model folder to run")


def main(argv: list[str] | None = None) -> int:
    a = parse_config(ExportConfig, argv, prog="python -m llava_ial.export",
                     description=__doc__.split("\n")[0])
    report = export(a.model, a.out, tolerance=a.tolerance, trust_remote_code=a.trust_remote_code,
                    dtype=a.dtype)
    print(f"wrote {a.out}: {report['source_kind']} -> full HF LLaVA directory; logits match the "
          f"source within {report['max_abs_logit_diff']:.2e} (tolerance {a.tolerance:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
