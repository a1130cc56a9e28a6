"""What a LLaVA-IAL folder holds and how it is written: atomically, in names vLLM and transformers load.

Every folder the toolkit writes carries ``llava_ial.json`` saying what it is, so loaders never guess
from folder names:

- ``kind: "full"``: a complete Hugging Face LLaVA directory (``LlavaForConditionalGeneration``): loads
  with stock transformers and ``vllm serve``;
- ``kind: "lora"``: a peft adapter (``adapter_config.json``) for the full model in ``base_model``;
- ``kind: "projector"``: only ``projector.safetensors`` (a pre-training run) for ``base_model``.

Weights are written by :func:`write_weights` from a state dict in transformers' module names, in the
names of the original ``llava-hf`` checkpoints: ``language_model.model.*``, ``language_model.lm_head.*``,
``multi_modal_projector.*`` and ``vision_tower.vision_model.*``. vLLM looks for exactly these (it
refuses the ``vision_tower.embeddings...`` that transformers 5.x's own ``save_pretrained`` writes), and
transformers maps them back on load with no missing or unexpected keys. Writing them ourselves also
sidesteps ``save_pretrained(state_dict=...)`` under ZeRO-3, which in transformers 5.24 writes
``language_model.model.model.*`` names that nothing loads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from ial_core.files import atomic_dir

META_FILE = "llava_ial.json"
KINDS = ("full", "lora", "projector")
PROJECTOR_FILE = "projector.safetensors"
_VISION_KEY = re.compile(r"^((?:model\.)?vision_tower\.)(?!vision_model\.)")


class LayoutError(ValueError):
    """A folder that is not what the caller needs; the message names it."""


def write_meta(folder: str | Path, kind: str, **info) -> dict:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    meta = {"format": "llava_ial", "kind": kind, **info}
    (Path(folder) / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n",
                                         encoding="utf-8")
    return meta


def read_meta(folder: str | Path) -> dict:
    """The folder's ``llava_ial.json``; a stock HF LLaVA folder without one counts as ``full``."""
    folder = Path(folder)
    path = folder / META_FILE
    if path.is_file():
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("kind") not in KINDS:
            raise LayoutError(f"{path}: kind {meta.get('kind')!r} is not one of {KINDS}")
        return meta
    if (folder / "config.json").is_file():
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        if config.get("model_type") == "llava":
            return {"format": "hf", "kind": "full"}
    hint = " (a training run keeps its final model in OUTPUT_DIR/model)" \
        if (folder / "model" / META_FILE).is_file() else ""
    raise LayoutError(f"{folder}: neither a LLaVA-IAL folder ({META_FILE}) nor a HF LLaVA "
                      f"directory{hint}")


# transformers module name prefix -> checkpoint name prefix (llava-hf / vLLM layout)
_WEIGHT_PREFIXES = (("model.language_model.", "language_model.model."),
                    ("lm_head.", "language_model.lm_head."),
                    ("model.vision_tower.", "vision_tower.vision_model."),
                    ("model.multi_modal_projector.", "multi_modal_projector."))
MAX_SHARD_BYTES = 5 * 2**30


def checkpoint_name(name: str) -> str:
    """The llava-hf/vLLM name of a ``LlavaForConditionalGeneration`` parameter or buffer."""
    for ours, theirs in _WEIGHT_PREFIXES:
        if name.startswith(ours):
            return theirs + name[len(ours):]
    raise LayoutError(f"no checkpoint name for weight {name!r} (not a LLaVA model part)")


def write_weights(state_dict: dict, folder: str | Path, *, tie_word_embeddings: bool,
                  max_shard_bytes: int = MAX_SHARD_BYTES) -> list[str]:
    """Write ``state_dict`` (module names) as safetensors shards in checkpoint names."""
    folder = Path(folder)
    # no copies: safetensors writes from the tensors' memory (a clone doubled peak memory)
    tensors = {checkpoint_name(k): v.detach().to("cpu").contiguous()
               for k, v in state_dict.items()
               if not (tie_word_embeddings and k.startswith("lm_head."))}
    shards: list[dict] = [{}]
    size = 0
    for name in sorted(tensors):
        nbytes = tensors[name].numel() * tensors[name].element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensors[name]
        size += nbytes
    if len(shards) == 1:
        save_file(shards[0], str(folder / "model.safetensors"), metadata={"format": "pt"})
        return ["model.safetensors"]
    files = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    for file, shard in zip(files, shards):
        save_file(shard, str(folder / file), metadata={"format": "pt"})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total},
             "weight_map": {name: file for file, shard in zip(files, shards) for name in shard}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return files


def checkpoint_keys(folder: str | Path) -> list[str]:
    """Every weight name in a folder's safetensors files."""
    keys = []
    for path in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(path), "pt") as f:
            keys += list(f.keys())
    return keys


def tied_embeddings(model) -> bool:
    """Whether the output head shares the input embedding (then only the embedding is written)."""
    out = model.get_output_embeddings()
    return out is not None and out.weight is model.get_input_embeddings().weight


def write_full(model, processor, folder: str | Path, *, state_dict: dict | None = None,
               **meta) -> None:
    """Write a complete HF LLaVA directory into ``folder``: config, generation config, weights (from
    ``state_dict``, default the model's own; under ZeRO-3 pass the gathered one), processor files
    (tokenizer, image processor, chat template) and ``llava_ial.json``."""
    folder = Path(folder)
    state_dict = model.state_dict() if state_dict is None else state_dict
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(folder)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(folder)
    write_weights(state_dict, folder, tie_word_embeddings=tied_embeddings(model))
    processor.save_pretrained(folder)
    write_meta(folder, "full", **meta)


def save_full(model, processor, out: str | Path, *, state_dict: dict | None = None, **meta) -> Path:
    """:func:`write_full` into ``out`` atomically (temporary folder, then rename)."""
    with atomic_dir(out) as tmp:
        write_full(model, processor, tmp, state_dict=state_dict, **meta)
    return Path(out)
