"""A tiny causal LM from the registry, with a tokenizer trained on the conversations:
``python -m llava_ial.tiny_lm --name llama-tiny --conversations CONV_DIR --out LM_DIR``.

Architectures live in ``llava_ial/registry/*.json`` (``{"description", "tokenizer": {"vocab_size"},
"config": {model_type, sizes...}}``), never in code; ``--name`` is a registry name or a path to such
a JSON/YAML file. The output is an ordinary Hugging Face causal-LM directory (config, safetensors
weights, fast tokenizer with the chat template) that :mod:`llava_ial.compose` treats like any other.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from ial_core.config import option
from ial_core.files import atomic_dir
from llava_ial.tokenizer import corpus_texts, train_tokenizer

REGISTRY_DIR = Path(__file__).with_name("registry")


class RegistryError(ValueError):
    """An unknown or malformed registry entry; the message names the file."""


def registry_names() -> list[str]:
    return sorted(p.stem for p in REGISTRY_DIR.glob("*.json"))


def load_entry(name: str) -> dict:
    """A registry entry by name (``llama-tiny``) or by path to a JSON/YAML file."""
    path = Path(name)
    if not path.is_file():
        path = REGISTRY_DIR / f"{name}.json"
    if not path.is_file():
        raise RegistryError(f"no tiny LM {name!r}: not a file and not in the registry "
                            f"{REGISTRY_DIR} (have {registry_names()})")
    text = path.read_text(encoding="utf-8")
    entry = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict) \
            or "model_type" not in entry["config"]:
        raise RegistryError(f"{path}: expected {{'config': {{'model_type': ..., ...}}, "
                            "'tokenizer': {'vocab_size': N}}")
    return entry


def create_tiny_lm(entry: dict, tokenizer, seed: int = 0):
    """A randomly initialised causal LM whose vocabulary and special ids match ``tokenizer``."""
    from transformers import AutoConfig, AutoModelForCausalLM

    kwargs = dict(entry["config"])
    model_type = kwargs.pop("model_type")
    config = AutoConfig.for_model(model_type, vocab_size=len(tokenizer),
                                  bos_token_id=tokenizer.bos_token_id,
                                  eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.pad_token_id, **kwargs)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def conversation_files(conversations: str | Path, split: str = "train") -> list[Path]:
    """The ``pretrain_{split}.json`` and ``instruct_{split}.json`` of a conversations folder."""
    folder = Path(conversations)
    files = [folder / f"{kind}_{split}.json" for kind in ("pretrain", "instruct")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"missing conversation files {missing}; write them with "
                                "`python -m data_gen.conversations --data DATASET --out DIR`")
    return files


def build_tiny_lm_dir(name: str, conversations: str | Path, out: str | Path, seed: int = 0) -> Path:
    """Train the tokenizer on the training conversations, create the LM, write both atomically."""
    entry = load_entry(name)
    texts = corpus_texts(conversation_files(conversations))
    tokenizer = train_tokenizer(texts, entry.get("tokenizer", {}).get("vocab_size", 2048))
    model = create_tiny_lm(entry, tokenizer, seed)
    out = Path(out)
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "tiny_lm.json").write_text(json.dumps(
            {"registry_entry": entry, "name": name, "seed": seed,
             "parameters": model.num_parameters()}, indent=2))
    return out


@dataclass
class TinyLMConfig:
    name: str = option("llama-tiny", "registry name or JSON/YAML file")
    conversations: Path = option(Path("runs/helsinki/data/conversations"), "folder from `python -m "
                                 "data_gen.conversations` (its train files feed the tokenizer)")
    out: Path = option(Path("runs/helsinki/tiny_lm"), "output folder")
    seed: int = option(0, "weight initialisation seed")


def main(argv: list[str] | None = None) -> int:
    from ial_core.config import parse_config
    config = parse_config(TinyLMConfig, argv, description=__doc__.split("\n")[0])
    out = build_tiny_lm_dir(config.name, config.conversations, config.out, config.seed)
    info = json.loads((out / "tiny_lm.json").read_text())
    print(f"wrote {out}: {config.name}, {info['parameters'] / 1e6:.2f}M parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
