"""Speed of LLaVA-IAL on this machine: training tokens/s (full and LoRA fine-tuning) and generation
latency, for the tiny CPU configuration (``llama-tiny`` + an AddressCLIP-Tiny-shaped vision tower:
64 px, patch 8, width 128, 4 layers -> 64 image tokens), or any composed model with ``--model``:

    python benchmarks/bench_llava.py [--model LLAVA_DIR] [--batch 16] [--steps 10]

Training steps run on fixed random batches (64 image tokens + ``--text-tokens`` text tokens, of which
the last third are labels), so data loading is excluded; tokens/s counts every position, image tokens
included. Generation is greedy with the processor's real prompt, batch 1 and batch ``--batch``.
Threads: torch's setting (``OMP_NUM_THREADS``).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from common import write_results

from ial_core.config import option, parse_config


@dataclass
class LlavaBenchConfig:
    model: Path | None = option(None, "composed LLaVA-IAL directory (default: build the tiny CPU "
                                "configuration in a temporary folder)")
    batch: int = option(16, "training batch and the larger generation batch")
    steps: int = option(10, "timed training steps per mode")
    text_tokens: int = option(40, "text tokens per sample")
    new_tokens: int = option(20, "generated tokens")
    json: Path | None = option(None, "also write the results here")


def tiny_model_dir(root: Path) -> Path:
    """Compose the default tiny model (random tower of AddressCLIP-Tiny's shape) from scratch."""
    from llava_ial.compose import ComposeConfig, compose_to_dir
    from llava_ial.testing import make_vision_dir
    from llava_ial.tiny_lm import create_tiny_lm, load_entry
    from llava_ial.tokenizer import train_tokenizer
    words = ["Where was this photo taken? The address might be Aleksanterinkatu, Kluuvi, Helsinki, "
             "Finland.", "a street view of tall ochre brick buildings with mansard roofs"] * 50
    tokenizer = train_tokenizer(words, 2048)
    lm = create_tiny_lm(load_entry("llama-tiny"), tokenizer)
    lm.save_pretrained(root / "lm")
    tokenizer.save_pretrained(root / "lm")
    vision = make_vision_dir(root / "vision", image_size=64, patch_size=8, hidden_size=128, layers=4,
                             heads=4)
    return compose_to_dir(ComposeConfig(vision=vision, lm=root / "lm", out=root / "llava"))


def batch_for(model, batch: int, text_tokens: int) -> dict:
    config = model.config
    n_image = config.image_seq_length
    vocab = config.text_config.vocab_size
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, vocab - 10, (batch, n_image + text_tokens), generator=g)
    ids[:, 2:2 + n_image] = config.image_token_index
    labels = ids.clone()
    labels[:, :-(text_tokens // 3)] = -100
    size = config.vision_config.image_size
    return {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids),
            "pixel_values": torch.randn(batch, 3, size, size, generator=g)}


def train_speed(model_dir: Path, *, lora: bool, batch: int, steps: int, text_tokens: int) -> dict:
    from types import SimpleNamespace

    from llava_ial.model import apply_lora, count_trainable, load_llava, set_trainable
    model = load_llava(model_dir)
    set_trainable(model, "finetune")
    if lora:
        model = apply_lora(model, SimpleNamespace(lora_r=16, lora_alpha=32, lora_dropout=0.05,
                                                  lora_target="all-linear"))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    inputs = batch_for(model, batch, text_tokens)
    times = []
    for i in range(steps + 2):                    # two warm-up steps
        start = time.perf_counter()
        loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= 2:
            times.append(time.perf_counter() - start)
    step = sorted(times)[len(times) // 2]
    tokens = inputs["input_ids"].numel()
    return {"mode": "lora r=16" if lora else "full", "trainable": count_trainable(model),
            "batch": batch, "seq_len": inputs["input_ids"].shape[1], "median_step_s": round(step, 4),
            "tokens_per_s": round(tokens / step), "samples_per_s": round(batch / step, 1)}


@torch.no_grad()
def generation_latency(model_dir: Path, *, batch: int, new_tokens: int) -> list[dict]:
    from PIL import Image

    from llava_ial.inference import load_for_inference
    from llava_ial.template import user_message
    model, processor = load_for_inference(model_dir)
    text = processor.apply_chat_template([user_message("Where was this photo taken?")],
                                         add_generation_prompt=True)
    rows = []
    for n in (1, batch):
        images = [Image.new("RGB", (128, 128), (i * 7 % 255, 90, 160)) for i in range(n)]
        inputs = processor(images=images, text=[text] * n, return_tensors="pt", padding=True,
                           add_special_tokens=False)
        kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        model.generate(**inputs, **kwargs)                       # warm-up
        start = time.perf_counter()
        model.generate(**inputs, **kwargs)
        seconds = time.perf_counter() - start
        rows.append({"batch": n, "new_tokens": new_tokens, "seconds": round(seconds, 3),
                     "ms_per_token_step": round(1000 * seconds / new_tokens, 2),
                     "ms_per_answer": round(1000 * seconds / n, 1)})
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_config(LlavaBenchConfig, argv, description=__doc__.splitlines()[0])
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or tiny_model_dir(Path(tmp))
        results = {"model": str(args.model or "tiny (llama-tiny + AddressCLIP-Tiny shape)"),
                   "threads": torch.get_num_threads(),
                   "train": [train_speed(model_dir, lora=lora, batch=args.batch, steps=args.steps,
                                         text_tokens=args.text_tokens) for lora in (False, True)],
                   "generate": generation_latency(model_dir, batch=args.batch,
                                                  new_tokens=args.new_tokens)}
    for r in results["train"]:
        print(f"train {r['mode']:10s} batch {r['batch']} x {r['seq_len']} tokens: "
              f"{r['tokens_per_s']} tokens/s ({r['samples_per_s']} samples/s, step "
              f"{r['median_step_s']} s), trainable {r['trainable']}")
    for r in results["generate"]:
        print(f"generate batch {r['batch']:3d}: {r['new_tokens']} tokens in {r['seconds']} s "
              f"({r['ms_per_token_step']} ms per step, {r['ms_per_answer']} ms per answer)")
    if args.json:
        write_results(args.json, results, announce=False)


if __name__ == "__main__":
    main()
