"""Tiny stand-ins for tests and benchmarks: a random CLIP vision tower directory and a composed
LLaVA-IAL model on top of a conversations folder, each built in seconds on a CPU.

The vision directory has the layout ``python -m addressclip.export`` writes (``CLIPVisionModel``
config and safetensors weights under ``vision_model.*``, a ``CLIPImageProcessor``), so everything
downstream takes the same path as with a trained AddressCLIP tower.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from llava_ial.layout import atomic_dir


def make_vision_dir(out: str | Path, *, image_size: int = 32, patch_size: int = 8,
                    hidden_size: int = 32, layers: int = 2, heads: int = 2, seed: int = 0) -> Path:
    """A randomly initialised ``CLIPVisionModel`` with a CLIP image processor, saved to ``out``."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel
    config = CLIPVisionConfig(hidden_size=hidden_size, intermediate_size=4 * hidden_size,
                              num_hidden_layers=layers, num_attention_heads=heads,
                              image_size=image_size, patch_size=patch_size, projection_dim=hidden_size,
                              hidden_act="gelu")
    torch.manual_seed(seed)
    model = CLIPVisionModel(config)
    processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                   crop_size={"height": image_size, "width": image_size},
                                   do_center_crop=True, resample=3)
    with atomic_dir(out) as tmp:
        config.architectures = ["CLIPVisionModel"]
        config.save_pretrained(tmp)
        state = {f"vision_model.{k}": v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        processor.save_pretrained(tmp)
    return Path(out)


@dataclass
class TinyStack:
    conversations: Path      # folder from data_gen.conversations
    vision: Path             # CLIPVisionModel directory
    lm: Path                 # tiny causal LM + trained tokenizer
    model: Path              # composed LLaVA-IAL directory (kind "full")


def build_tiny_stack(root: str | Path, dataset: str | Path, *, lm: str = "llama-micro",
                     vision: str | Path | None = None, seed: int = 0) -> TinyStack:
    """Conversations, (vision tower), tiny LM and the composed model under ``root``."""
    from data_gen.conversations import ConversationConfig, write_conversations
    from llava_ial.compose import ComposeConfig, compose_to_dir
    from llava_ial.tiny_lm import build_tiny_lm_dir

    root = Path(root)
    conversations = write_conversations(ConversationConfig(data=Path(dataset), out=root / "conv",
                                                           seed=seed))
    vision = Path(vision) if vision else make_vision_dir(root / "vision", seed=seed)
    lm_dir = build_tiny_lm_dir(lm, conversations, root / "lm", seed=seed)
    model = compose_to_dir(ComposeConfig(vision=vision, lm=lm_dir, out=root / "llava", seed=seed))
    return TinyStack(conversations=conversations, vision=vision, lm=lm_dir, model=model)


def cached_tiny_stack(base: str | Path, make_dataset, *, name: str = "llava_stack",
                      **kwargs) -> tuple[Path, TinyStack]:
    """Build (once per ``base`` folder, e.g. a pytest session's base temp) a dataset with
    ``make_dataset(folder)`` and the tiny stack on it; later calls reuse both."""
    import json
    root = Path(base) / name
    done = root / "stack.json"
    if done.is_file():
        info = json.loads(done.read_text())
        return Path(info["dataset"]), TinyStack(**{k: Path(v) for k, v in info["stack"].items()})
    dataset = Path(make_dataset(root / "data"))
    stack = build_tiny_stack(root, dataset, **kwargs)
    done.write_text(json.dumps({"dataset": str(dataset),
                                "stack": {k: str(v) for k, v in vars(stack).items()}}))
    return dataset, stack


@contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` torch CPU threads, then restore the previous count. On small shared
    CPUs one thread per process avoids oversubscription (several times faster under load)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
