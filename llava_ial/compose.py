"""Compose a LLaVA-IAL model from a vision tower and a causal LM:
``python -m llava_ial.compose --vision VISION_DIR --lm LM_DIR --out DIR``.

- vision: a Hugging Face ``CLIPVisionModel`` directory (``python -m addressclip.export``) with its
  image processor; SigLIP vision towers work too (vLLM serves CLIP, SigLIP and Pixtral towers);
- lm: any causal-LM directory (Llama/Vicuna, Qwen2, SmolLM2, a tiny registry model, ...).

The tokenizer gets ``<image>``, the chat template's turn tokens and a pad token when missing, and the
chat template (``--chat_template chatml``, the default: the toolkit's ChatML, with BOS in front for
tokenizers that add one; ``own``: keep an instruct LM's own template, which must render image parts
or ``<image>`` strings). The language model's embeddings are resized to the tokenizer (new rows: the
mean of the old ones); the ids of the template tokens added here are recorded in ``llava_ial.json``
(``new_token_ids``) so that LoRA/QLoRA fine-tuning trains their embedding and ``lm_head`` rows.
The projector is ``mlp2x_gelu`` (``LlavaMultiModalProjector``, freshly initialised); features come
from ``vision_feature_layer`` (-2); the ``auto`` strategy drops CLIP's CLS token (``default``) and
keeps all of SigLIP's patches (``full``: SigLIP has no CLS). Weights load in ``--dtype`` from the
start (bfloat16 for a 7B LM keeps host memory near one copy of its weights). The result is a
complete HF LLaVA directory (see :mod:`llava_ial.layout`) that stock transformers and ``vllm serve``
load with no conversion.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ial_core.config import option
from llava_ial.layout import save_full
from llava_ial.template import (
    IMAGE_TOKEN,
    PAD_TOKEN,
    TURN_END,
    TURN_START,
    accept_content_parts,
    adds_bos,
    chat_template,
)

# Vision towers vLLM's LLaVA implementation accepts, and the extra (CLS) tokens each puts in front.
VISION_MODEL_TYPES = {"clip_vision_model": 1, "siglip_vision_model": 0}
STRATEGIES = ("auto", "default", "full")
TEMPLATES = ("chatml", "own")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# vLLM's LLaVA maps ``language_model.model.*`` onto its text model: the LM's base must be ``model``
SERVABLE_BASE_PREFIX = "model"


class ComposeError(ValueError):
    """Inputs that cannot make a LLaVA model; the message names the folder."""


@dataclass
class ComposeConfig:
    vision: Path = option(None, "vision tower directory (CLIPVisionModel)")
    lm: Path = option(None, "causal language model directory")
    out: Path = option(None, "LLaVA-IAL directory to write")
    tokenizer: Path | None = option(None, "tokenizer directory (default: the LM's)")
    vision_feature_layer: int = option(-2, "hidden state of the vision tower fed to the projector")
    vision_feature_select_strategy: str = option("auto", "auto: default for CLIP, full for SigLIP; "
                                                 "default: drop the first token (CLIP's CLS); "
                                                 "full: keep every token")
    chat_template: str = option("chatml", "chatml: the toolkit's ChatML template (BOS first where "
                                "the tokenizer adds one); own: keep the LM tokenizer's chat "
                                "template (an instruct LM's)")
    dtype: str = option("float32", "float32 | bfloat16 | float16: the weights are loaded and "
                        "written in it")
    projector_hidden_act: str = option("gelu", "projector activation")
    random_vision_init: bool = option(False, "ignore the vision weights and initialise the tower "
                                      "randomly (an untuned baseline)")
    seed: int = option(0, "seed of the projector (and random tower) init")
    trust_remote_code: bool = option(False, "allow code shipped inside the LM/tokenizer folders "
                                     "to run")

    def __post_init__(self):
        missing = [n for n in ("vision", "lm", "out") if getattr(self, n) is None]
        if missing:
            raise ComposeError(f"missing required settings: {', '.join('--' + m for m in missing)}")
        if self.vision_feature_select_strategy not in STRATEGIES:
            raise ComposeError(f"vision_feature_select_strategy must be one of {STRATEGIES}")
        if self.chat_template not in TEMPLATES:
            raise ComposeError(f"chat_template must be one of {TEMPLATES}, got {self.chat_template!r}")
        if self.dtype not in DTYPES:
            raise ComposeError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")


def prepare_tokenizer(tokenizer, template: str = "chatml") -> list[int]:
    """Add the template's special tokens, ``<image>`` and a pad token if missing; set the template.

    Returns the ids of the template tokens added (they need training: the stop token above all).
    """
    vocab = tokenizer.get_vocab()
    if template == "own" and not tokenizer.chat_template:
        raise ComposeError(f"--chat_template own: the tokenizer {tokenizer.name_or_path} has no chat "
                           "template (use --chat_template chatml)")
    turn = [t for t in (TURN_START, TURN_END) if t not in vocab] if template == "chatml" else []
    missing = turn + [t for t in (IMAGE_TOKEN,) if t not in vocab]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    if tokenizer.pad_token is None:
        if PAD_TOKEN not in vocab:
            tokenizer.add_tokens([PAD_TOKEN], special_tokens=True)
        tokenizer.pad_token = PAD_TOKEN
    if template == "own":
        tokenizer.chat_template = accept_content_parts(tokenizer.chat_template)
    else:
        bos = adds_bos(tokenizer)
        tokenizer.eos_token = TURN_END      # generation ends where the template ends an assistant turn
        tokenizer.chat_template = chat_template(bos=bos)
    return tokenizer.convert_tokens_to_ids(turn)


def vision_config_of(vision_dir: Path):
    from transformers import AutoConfig
    if not (vision_dir / "config.json").is_file():
        raise ComposeError(f"{vision_dir}: no config.json (expected a CLIPVisionModel directory "
                           "from `python -m addressclip.export`)")
    config = AutoConfig.from_pretrained(vision_dir, trust_remote_code=False)
    if config.model_type in ("clip", "siglip"):           # a full CLIP/SigLIP: take its vision part
        config = config.vision_config
    if config.model_type not in VISION_MODEL_TYPES:
        raise ComposeError(f"{vision_dir}/config.json: model_type {config.model_type!r}; expected one "
                           f"of {sorted(VISION_MODEL_TYPES)}")
    return config


def load_vision_tower(vision_dir: Path, config, random_init: bool, dtype=torch.float32):
    from transformers import AutoModel
    if random_init:
        return AutoModel.from_config(config, dtype=dtype)
    model, info = AutoModel.from_pretrained(vision_dir, config=config, dtype=dtype,
                                            output_loading_info=True, use_safetensors=True,
                                            trust_remote_code=False)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys",
                                                         "mismatched_keys")}
    if bad:
        raise ComposeError(f"{vision_dir}: the vision weights do not fit the config: {bad}")
    return model


def check_image_size(image_processor, vision_config, vision_dir: Path) -> None:
    """The processor must output the tower's input size, or the image-token counts disagree."""
    from PIL import Image
    pixels = image_processor(images=Image.new("RGB", (97, 61)), return_tensors="pt")["pixel_values"]
    size = vision_config.image_size
    if tuple(pixels.shape[-2:]) != (size, size):
        raise ComposeError(f"{vision_dir}: the image processor outputs {tuple(pixels.shape[-2:])} "
                           f"pixels but the vision tower takes {size}x{size}")


def resolve_strategy(vision_config, strategy: str) -> str:
    """``auto``: drop CLIP's CLS token (``default``), keep all of SigLIP's patches (``full``)."""
    if strategy == "auto":
        return "default" if VISION_MODEL_TYPES[vision_config.model_type] else "full"
    return strategy


def num_image_tokens(vision_config, strategy: str) -> int:
    """Image tokens per image, counted as ``LlavaProcessor`` and the model count them: the tower's
    patches plus its extra (CLS) tokens, less one with ``default`` (which drops the first token,
    whatever it is: for SigLIP a real patch)."""
    patches = (vision_config.image_size // vision_config.patch_size) ** 2
    extra = VISION_MODEL_TYPES[vision_config.model_type]
    return patches + extra - (1 if strategy == "default" else 0)


@torch.no_grad()
def resize_to_mean(lm, size: int, chunk: int = 8192) -> None:
    """Grow the embeddings (and an untied head) to ``size`` rows; new rows are the mean of the old.

    transformers' ``mean_resizing`` samples from the old rows' Gaussian and makes float32 copies of
    the whole matrix to do it (for a 7B LM two extra 0.5 GB matrices; for SmolLM2 nearly the bf16
    size of the model); the mean alone is summed in float32 chunks, with no copy.
    """
    old = lm.get_input_embeddings().num_embeddings
    lm.resize_token_embeddings(size, mean_resizing=False)
    matrices = [lm.get_input_embeddings().weight]
    head = lm.get_output_embeddings()
    if head is not None and head.weight is not matrices[0]:
        matrices.append(head.weight)
    for w in matrices:
        total = torch.zeros(w.shape[1], dtype=torch.float32)
        for i in range(0, old, chunk):
            total += w[i:min(i + chunk, old)].sum(0, dtype=torch.float32)
        w[old:] = (total / old).to(w.dtype)


def check_servable(lm, lm_dir: Path) -> None:
    """vLLM loads the LM's weights from ``language_model.model.*``: refuse LMs with another base
    (GPT-2's ``transformer``, ...), which would compose and train but never serve."""
    prefix = getattr(lm, "base_model_prefix", None)
    if prefix != SERVABLE_BASE_PREFIX:
        raise ComposeError(f"{lm_dir}: {type(lm).__name__} keeps its body under {prefix!r}, not "
                           f"{SERVABLE_BASE_PREFIX!r}; vLLM's LLaVA cannot load such a checkpoint. "
                           "Use a Llama/Mistral/Qwen2/Gemma-style causal LM")


def compose(cfg: ComposeConfig):
    """Build the in-memory ``LlavaForConditionalGeneration`` and its ``LlavaProcessor``; the ids of
    the template tokens added to the vocabulary are in ``model.new_token_ids``."""
    from transformers import (
        AutoImageProcessor,
        AutoModelForCausalLM,
        AutoTokenizer,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    vision_dir, lm_dir = Path(cfg.vision), Path(cfg.lm)
    for d in (vision_dir, lm_dir):
        if not d.is_dir():
            raise ComposeError(f"{d}: no such directory")
    dtype = DTYPES[cfg.dtype]
    tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer or lm_dir,
                                              trust_remote_code=cfg.trust_remote_code)
    new_token_ids = prepare_tokenizer(tokenizer, cfg.chat_template)
    vision_config = vision_config_of(vision_dir)
    strategy = resolve_strategy(vision_config, cfg.vision_feature_select_strategy)
    image_processor = AutoImageProcessor.from_pretrained(vision_dir, trust_remote_code=False)
    check_image_size(image_processor, vision_config, vision_dir)

    torch.manual_seed(cfg.seed)
    vision = load_vision_tower(vision_dir, vision_config, cfg.random_vision_init, dtype)
    lm = AutoModelForCausalLM.from_pretrained(lm_dir, dtype=dtype, use_safetensors=True,
                                              trust_remote_code=cfg.trust_remote_code)
    check_servable(lm, lm_dir)
    if len(tokenizer) > lm.get_input_embeddings().num_embeddings:
        resize_to_mean(lm, len(tokenizer))
    lm.config.pad_token_id = tokenizer.pad_token_id

    n_tokens = num_image_tokens(vision_config, strategy)
    config = LlavaConfig(vision_config=vision_config.to_dict(), text_config=lm.config.to_dict(),
                         image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                         projector_hidden_act=cfg.projector_hidden_act,
                         vision_feature_layer=cfg.vision_feature_layer,
                         vision_feature_select_strategy=strategy,
                         image_seq_length=n_tokens,
                         tie_word_embeddings=lm.config.tie_word_embeddings)
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    # Take the loaded towers whole (weights and buffers); only the projector is new.
    model.model.vision_tower = vision
    model.model.language_model = lm.base_model
    model.lm_head = lm.get_output_embeddings()
    model.model.multi_modal_projector = LlavaMultiModalProjector(config).to(dtype)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.language_model.get_input_embeddings().weight
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ComposeError(f"parts of the model were not filled from the inputs: {left[:5]}")
    model.config.dtype = dtype
    model.generation_config = generation_config(lm, tokenizer)
    model.new_token_ids = new_token_ids

    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               patch_size=vision_config.patch_size,
                               vision_feature_select_strategy=strategy,
                               num_additional_image_tokens=VISION_MODEL_TYPES[vision_config.model_type],
                               chat_template=tokenizer.chat_template)
    return model.eval(), processor


def generation_config(lm, tokenizer):
    """Greedy by default; stop at the end of an assistant turn (and at the LM's own end tokens)."""
    from transformers import GenerationConfig
    eos = [tokenizer.eos_token_id]
    own = lm.generation_config.eos_token_id if lm.generation_config is not None else None
    for tid in (own if isinstance(own, list) else [own]):
        if tid is not None and tid not in eos:
            eos.append(tid)
    return GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                            pad_token_id=tokenizer.pad_token_id, do_sample=False)


def compose_to_dir(cfg: ComposeConfig) -> Path:
    model, processor = compose(cfg)
    provenance = {"vision": str(Path(cfg.vision).resolve()), "lm": str(Path(cfg.lm).resolve()),
                  "random_vision_init": cfg.random_vision_init, "seed": cfg.seed, "stage": "composed",
                  "chat_template": cfg.chat_template, "dtype": cfg.dtype}
    return save_full(model, processor, cfg.out, composed_from=provenance,
                     new_token_ids=model.new_token_ids)


def main(argv: list[str] | None = None) -> int:
    from ial_core.config import parse_config
    cfg = parse_config(ComposeConfig, argv, description=__doc__.split("\n")[0])
    out = compose_to_dir(cfg)
    config = json.loads((out / "config.json").read_text())
    print(f"wrote {out}: vision {config['vision_config']['model_type']} + "
          f"{config['text_config']['model_type']} ({config['text_config']['vocab_size']} tokens), "
          f"{config['image_seq_length']} image tokens, image token id {config['image_token_index']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
