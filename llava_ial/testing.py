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

from ial_core.files import atomic_dir


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
    return _write_vision_dir(out, "CLIPVisionModel", config, model, processor)


def _write_vision_dir(out, architecture: str, config, model, processor) -> Path:
    """``out`` as a vision-tower folder: config, ``vision_model.*`` safetensors, image processor."""
    with atomic_dir(out) as tmp:
        config.architectures = [architecture]
        config.save_pretrained(tmp)
        state = {f"vision_model.{k}": v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        processor.save_pretrained(tmp)
    return Path(out)


def make_siglip_vision_dir(out: str | Path, *, image_size: int = 32, patch_size: int = 8,
                           hidden_size: int = 32, layers: int = 2, heads: int = 2,
                           seed: int = 0) -> Path:
    """A randomly initialised ``SiglipVisionModel`` (no CLS token) with a SigLIP image processor."""
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel
    config = SiglipVisionConfig(hidden_size=hidden_size, intermediate_size=4 * hidden_size,
                                num_hidden_layers=layers, num_attention_heads=heads,
                                image_size=image_size, patch_size=patch_size)
    torch.manual_seed(seed)
    model = SiglipVisionModel(config)
    processor = SiglipImageProcessor(size={"height": image_size, "width": image_size})
    return _write_vision_dir(out, "SiglipVisionModel", config, model, processor)


def llama_sentencepiece_model() -> Path:
    """A real Llama-2-style sentencepiece model (32,000 pieces, ``<s>`` = 1, ``</s>`` = 2) from the
    ``mistral-common`` package's data files.

    Set-up unpacks that package beside the venv (``VENV/fixtures/mistral-common``), not into
    site-packages: transformers switches to its mistral-common tokenizer backend whenever the package
    can be imported, and that backend's dependencies are not installed."""
    import sys
    path = Path(sys.prefix) / "fixtures" / "mistral-common" / "mistral_common" / "data" / "tokenizer.model.v1"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; `make setup` unpacks mistral-common there (its "
                                "tokenizer.model.v1 is the Llama-style tokenizer of the BOS tests)")
    return path


# An instruct template written for string content, Mistral-style: BOS first, answers end in EOS.
INST_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] "
                 "{{ m['content'] }} [/INST]{% elif m['role'] == 'assistant' %} {{ m['content'] }}"
                 "{{ eos_token }}{% endif %}{% endfor %}")


def make_bos_llama_dir(out: str | Path, *, hidden_size: int = 64, layers: int = 2, heads: int = 2,
                       seed: int = 0) -> Path:
    """A tiny random ``LlamaForCausalLM`` with a real Llama tokenizer that adds BOS (as Llama-2,
    Mistral and Vicuna folders do) and a Mistral-style instruct chat template; untied head."""
    import shutil

    from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizerFast
    out = Path(out)
    with atomic_dir(out) as tmp:
        shutil.copyfile(llama_sentencepiece_model(), tmp / "tokenizer.model")
        tokenizer = LlamaTokenizerFast.from_pretrained(tmp, add_bos_token=True, legacy=False)
        tokenizer.chat_template = INST_TEMPLATE
        (tmp / "tokenizer.model").unlink()
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size,
                             intermediate_size=2 * hidden_size, num_hidden_layers=layers,
                             num_attention_heads=heads, num_key_value_heads=heads,
                             max_position_embeddings=1024, bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
        torch.manual_seed(seed)
        LlamaForCausalLM(config).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out


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
