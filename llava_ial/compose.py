"""Compose a LLaVA-IAL model from a vision tower and a causal LM:
``python -m llava_ial.compose --vision VISION_DIR --lm LM_DIR --out DIR``.

- vision: a Hugging Face ``CLIPVisionModel`` directory (``python -m addressclip.export``) with its
  image processor; SigLIP vision towers work too (vLLM serves CLIP, SigLIP and Pixtral towers);
- lm: any causal-LM directory (Llama/Vicuna, Qwen2, SmolLM2, a tiny registry model, ...).

The tokenizer gets ``<image>``, the chat template's turn tokens and a pad token when missing, and the
chat template; the language model's embeddings are resized to the tokenizer (new rows: the mean of
the old ones); the projector is ``mlp2x_gelu`` (``LlavaMultiModalProjector``, freshly initialised);
features come from ``vision_feature_layer`` (-2) with the ``default`` strategy (CLS dropped). The
result is a complete HF LLaVA directory (see :mod:`llava_ial.layout`) that stock transformers and
``vllm serve`` load with no conversion.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from llava_ial.layout import save_full
from llava_ial.template import IMAGE_TOKEN, PAD_TOKEN, TURN_END, TURN_START, chat_template

# Vision towers vLLM's LLaVA implementation accepts, and the extra (CLS) tokens each puts in front.
VISION_MODEL_TYPES = {"clip_vision_model": 1, "siglip_vision_model": 0}


class ComposeError(ValueError):
    """Inputs that cannot make a LLaVA model; the message names the folder."""


@dataclass
class ComposeConfig:
    vision: Path = field(default=None, metadata={"help": "vision tower directory (CLIPVisionModel)"})
    lm: Path = field(default=None, metadata={"help": "causal language model directory"})
    out: Path = field(default=None, metadata={"help": "LLaVA-IAL directory to write"})
    tokenizer: Path | None = field(default=None, metadata={
        "help": "tokenizer directory (default: the LM's)"})
    vision_feature_layer: int = field(default=-2, metadata={
        "help": "hidden state of the vision tower fed to the projector"})
    vision_feature_select_strategy: str = field(default="default", metadata={
        "help": "default: drop the CLS token; full: keep it"})
    projector_hidden_act: str = field(default="gelu", metadata={"help": "projector activation"})
    random_vision_init: bool = field(default=False, metadata={
        "help": "ignore the vision weights and initialise the tower randomly (an untuned baseline)"})
    seed: int = field(default=0, metadata={"help": "seed of the projector (and random tower) init"})
    trust_remote_code: bool = field(default=False, metadata={
        "help": "allow code shipped inside the LM/tokenizer folders to run"})

    def __post_init__(self):
        missing = [n for n in ("vision", "lm", "out") if getattr(self, n) is None]
        if missing:
            raise ComposeError(f"missing required settings: {', '.join('--' + m for m in missing)}")
        if self.vision_feature_select_strategy not in ("default", "full"):
            raise ComposeError("vision_feature_select_strategy must be 'default' or 'full'")


def prepare_tokenizer(tokenizer):
    """Add the template's special tokens, ``<image>`` and a pad token if missing; set the template."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in (TURN_START, TURN_END, IMAGE_TOKEN) if t not in vocab]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    if tokenizer.pad_token is None:
        if PAD_TOKEN not in vocab:
            tokenizer.add_tokens([PAD_TOKEN], special_tokens=True)
        tokenizer.pad_token = PAD_TOKEN
    # Generation ends where the template ends an assistant turn.
    tokenizer.eos_token = TURN_END
    tokenizer.chat_template = chat_template()
    return tokenizer


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


def load_vision_tower(vision_dir: Path, config, random_init: bool):
    from transformers import AutoModel
    if random_init:
        return AutoModel.from_config(config, dtype=torch.float32)
    model, info = AutoModel.from_pretrained(vision_dir, config=config, dtype=torch.float32,
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


def num_image_tokens(vision_config, strategy: str) -> int:
    patches = (vision_config.image_size // vision_config.patch_size) ** 2
    extra = VISION_MODEL_TYPES[vision_config.model_type]
    return patches + extra - (1 if strategy == "default" and extra else 0)


def compose(cfg: ComposeConfig):
    """Build the in-memory ``LlavaForConditionalGeneration`` and its ``LlavaProcessor``."""
    from transformers import (AutoImageProcessor, AutoModelForCausalLM, AutoTokenizer, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    vision_dir, lm_dir = Path(cfg.vision), Path(cfg.lm)
    for d in (vision_dir, lm_dir):
        if not d.is_dir():
            raise ComposeError(f"{d}: no such directory")
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(
        cfg.tokenizer or lm_dir, trust_remote_code=cfg.trust_remote_code))
    vision_config = vision_config_of(vision_dir)
    image_processor = AutoImageProcessor.from_pretrained(vision_dir, trust_remote_code=False)
    check_image_size(image_processor, vision_config, vision_dir)

    torch.manual_seed(cfg.seed)
    vision = load_vision_tower(vision_dir, vision_config, cfg.random_vision_init)
    lm = AutoModelForCausalLM.from_pretrained(lm_dir, dtype=torch.float32, use_safetensors=True,
                                              trust_remote_code=cfg.trust_remote_code)
    if len(tokenizer) > lm.get_input_embeddings().num_embeddings:
        lm.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    lm.config.pad_token_id = tokenizer.pad_token_id

    n_tokens = num_image_tokens(vision_config, cfg.vision_feature_select_strategy)
    config = LlavaConfig(vision_config=vision_config.to_dict(), text_config=lm.config.to_dict(),
                         image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                         projector_hidden_act=cfg.projector_hidden_act,
                         vision_feature_layer=cfg.vision_feature_layer,
                         vision_feature_select_strategy=cfg.vision_feature_select_strategy,
                         image_seq_length=n_tokens,
                         tie_word_embeddings=lm.config.tie_word_embeddings)
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    # Take the loaded towers whole (weights and buffers); only the projector is new.
    model.model.vision_tower = vision
    model.model.language_model = lm.base_model
    model.lm_head = lm.get_output_embeddings()
    model.model.multi_modal_projector = LlavaMultiModalProjector(config)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.language_model.get_input_embeddings().weight
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ComposeError(f"parts of the model were not filled from the inputs: {left[:5]}")
    model.generation_config = generation_config(lm, tokenizer)

    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               patch_size=vision_config.patch_size,
                               vision_feature_select_strategy=cfg.vision_feature_select_strategy,
                               num_additional_image_tokens=VISION_MODEL_TYPES[vision_config.model_type],
                               chat_template=chat_template())
    return model.eval(), processor


def generation_config(lm, tokenizer):
    """Greedy by default; stop at the end of an assistant turn (and at the LM's own end tokens)."""
    from transformers import GenerationConfig
    eos = [tokenizer.convert_tokens_to_ids(TURN_END)]
    own = lm.generation_config.eos_token_id if lm.generation_config is not None else None
    for tid in (own if isinstance(own, list) else [own]):
        if tid is not None and tid not in eos:
            eos.append(tid)
    return GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                            pad_token_id=tokenizer.pad_token_id, do_sample=False)


def compose_to_dir(cfg: ComposeConfig) -> Path:
    model, processor = compose(cfg)
    provenance = {"vision": str(Path(cfg.vision).resolve()), "lm": str(Path(cfg.lm).resolve()),
                  "random_vision_init": cfg.random_vision_init, "seed": cfg.seed, "stage": "composed"}
    return save_full(model, processor, cfg.out, composed_from=provenance)


def main(argv: list[str] | None = None) -> int:
    from data_gen.cli import parse_config
    cfg = parse_config(ComposeConfig, argv, description=__doc__.split("\n")[0])
    out = compose_to_dir(cfg)
    config = json.loads((out / "config.json").read_text())
    print(f"wrote {out}: vision {config['vision_config']['model_type']} + "
          f"{config['text_config']['model_type']} ({config['text_config']['vocab_size']} tokens), "
          f"{config['image_seq_length']} image tokens, image token id {config['image_token_index']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
