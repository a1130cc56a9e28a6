"""Create and load AddressCLIP models: open_clip models by name, tag or local checkpoint.

- ``create_clip("ViT-B-16", "openai")`` builds an open_clip model exactly as
  ``open_clip.create_model`` does (weights from open_clip's cache/hub for a tag). When the tag was
  trained with QuickGELU (OpenAI's weights) and the user did not say otherwise, QuickGELU is switched
  on, as open_clip's ``-quickgelu`` model names do; the training config records the choice.
- ``pretrained`` may also be a local file: ``.safetensors`` or a ``.pt/.bin`` read with
  ``torch.load(..., weights_only=True)``: loading never executes pickled code. A checkpoint made for
  another architecture raises :class:`CheckpointError` naming the mismatching tensors.
- The CPU configuration ``AddressCLIP-Tiny`` (8 M parameters, 64 px, patch 8, width 128, 4 layers per
  tower, exact GELU) is an open_clip model-config JSON in ``addressclip/model_configs/``, registered
  with ``open_clip.add_model_config`` when this module is imported. Its vision tower is a plain ViT
  (class token, ln_pre, token pooling, no attentional pooler) so it exports to HF ``CLIPVisionModel``.
- :class:`AddressCLIP` wraps the open_clip model for training: one ``forward`` that encodes images,
  the batch's distinct addresses and the captions, so DDP sees every parameter use. Text encoding of
  the built-in CLIP text tower is trimmed to the longest sequence in the batch: with its causal mask
  and EOT (argmax) pooling the result equals ``encode_text`` on the padded tokens (tested), while an
  address of ~15 tokens no longer pays for 77 positions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import text_global_pool
from torch import nn

log = logging.getLogger(__name__)

REGISTRY_DIR = Path(__file__).parent / "model_configs"


def register_model_configs() -> None:
    """Add ``addressclip/model_configs`` to open_clip's registry (idempotent)."""
    from open_clip import factory
    if not any(Path(p).resolve() == REGISTRY_DIR.resolve() for p in factory._MODEL_CONFIG_PATHS):
        open_clip.add_model_config(REGISTRY_DIR)


register_model_configs()


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded into the requested model."""


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file without executing pickled code (safetensors or weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            return load_file(str(path))
        except Exception as exc:  # SafetensorError, OSError: e.g. a pickle renamed .safetensors
            raise CheckpointError(f"{path}: not a readable safetensors file "
                                  f"({type(exc).__name__}: {exc})") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError and friends: refuse, never fall back
        raise CheckpointError(f"{path}: refused to load: not a plain-tensor checkpoint readable with "
                              f"weights_only=True ({type(exc).__name__}: {exc})") from exc
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    if obj and next(iter(obj)).startswith("module."):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def describe_mismatch(model: nn.Module, state: dict[str, torch.Tensor], limit: int = 5) -> str:
    """A short human summary of how ``state`` differs from ``model.state_dict()``."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = []
    if shapes:
        parts.append(f"{len(shapes)} tensors differ in shape (" + "; ".join(shapes[:limit]) + ")")
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:limit])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:limit])})")
    return "; ".join(parts) or "no difference in names or shapes"


def load_weights(model: nn.Module, path: str | Path, *, what: str = "model") -> None:
    """Load a weights file into an open_clip model, strictly; clear error for another architecture."""
    state = load_state_dict_file(path)
    try:
        open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)
    except (RuntimeError, AssertionError, ValueError, KeyError) as exc:  # open_clip's strict load
        raise CheckpointError(
            f"{path}: checkpoint does not fit the {what} architecture: "
            f"{describe_mismatch(model, state)}. Was it saved for another --model?") from exc


_URL_SHA256 = re.compile(r"/([0-9a-f]{64})/[^/]+$")


def openai_release_sha256(model_name: str) -> str | None:
    """The SHA-256 of OpenAI's own release file of ``model_name`` (its download URL names it)."""
    if "openai" not in open_clip.list_pretrained_tags_by_model(model_name):
        return None
    match = _URL_SHA256.search((open_clip.get_pretrained_cfg(model_name, "openai") or {}).get("url", ""))
    return match.group(1) if match else None


def file_sha256(path: str | Path, chunk: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def resolve_quick_gelu(model_name: str, pretrained: str | None, force_quick_gelu: bool | None) -> bool:
    """QuickGELU as the user asked, else as the pretrained tag (or OpenAI's release file, known by
    its SHA-256) was trained, else the config's."""
    if force_quick_gelu is not None:
        return force_quick_gelu
    cfg = open_clip.get_model_config(model_name) or {}
    if pretrained and Path(pretrained).is_file():
        # A file does not say how its weights were trained; OpenAI's releases used QuickGELU, and
        # OpenAI's own file is known by the hash in its download URL.
        release = None if cfg.get("quick_gelu") else openai_release_sha256(model_name)
        if release and file_sha256(pretrained) == release:
            log.info("%s is OpenAI's %s release (SHA-256 %s...): QuickGELU, as it was trained",
                     pretrained, model_name, release[:12])
            return True
        if not cfg.get("quick_gelu") and "openai" in open_clip.list_pretrained_tags_by_model(model_name):
            log.warning("%s: weights from a file get %s's plain GELU; OpenAI CLIP weights were "
                        "trained with QuickGELU and need --force-quick-gelu", pretrained, model_name)
    elif pretrained:
        tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
        if tag_cfg and tag_cfg.get("quick_gelu"):
            return True
    return bool(cfg.get("quick_gelu", False))


def model_config(model_name: str, quick_gelu: bool) -> dict:
    """The open_clip model config dict the model is built from (stored with every checkpoint)."""
    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        raise CheckpointError(f"unknown model {model_name!r}; open_clip knows "
                              f"{len(open_clip.list_models())} names, e.g. ViT-B-16, ViT-B-32, "
                              "AddressCLIP-Tiny")
    cfg["quick_gelu"] = quick_gelu
    return cfg


def create_clip(model_name: str, pretrained: str | None = None, *,
                force_quick_gelu: bool | None = None, device: str | torch.device = "cpu",
                precision: str = "fp32") -> tuple[nn.Module, dict]:
    """An open_clip model and the config it was built from (``{"model_cfg", "preprocess_cfg"}``)."""
    quick_gelu = resolve_quick_gelu(model_name, pretrained, force_quick_gelu)
    model_cfg = model_config(model_name, quick_gelu)
    is_file = bool(pretrained) and Path(pretrained).is_file()
    if pretrained and not is_file and not open_clip.get_pretrained_cfg(model_name, pretrained):
        raise CheckpointError(
            f"pretrained {pretrained!r} is neither a file nor a tag of {model_name}; tags: "
            f"{open_clip.list_pretrained_tags_by_model(model_name)}")
    model = open_clip.create_model(
        model_name, pretrained=None if is_file else pretrained, precision=precision, device=device,
        force_quick_gelu=quick_gelu, weights_only=True)
    if is_file:
        load_weights(model, pretrained, what=model_name)
    return model, {"model_cfg": model_cfg, "preprocess_cfg": dict(model.visual.preprocess_cfg)}


def create_clip_from_config(config: dict, *, device="cpu") -> nn.Module:
    """Rebuild an open_clip model from a stored ``{"model_cfg", "preprocess_cfg"}`` (random weights)."""
    model_cfg = dict(config["model_cfg"])
    custom_text = model_cfg.pop("custom_text", False) or "hf_model_name" in model_cfg.get("text_cfg", {})
    cls = open_clip.CustomTextCLIP if custom_text else open_clip.CLIP
    model = cls(**model_cfg).to(device)
    from open_clip.model import set_model_preprocess_cfg
    set_model_preprocess_cfg(model, dict(config["preprocess_cfg"]))
    return model


def load_clip_dir(ckpt_dir: str | Path, *, device="cpu") -> tuple[nn.Module, dict]:
    """Load a checkpoint directory written by :func:`addressclip.checkpoint.save_model_dir`.

    The same directory also loads with stock open_clip: ``open_clip.create_model('local-dir:DIR')``.
    """
    ckpt_dir = Path(ckpt_dir)
    cfg_path = ckpt_dir / "open_clip_config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path}: missing; not a checkpoint directory")
    config = json.loads(cfg_path.read_text(encoding="utf-8"))
    config["preprocess_cfg"] = {k: tuple(v) if isinstance(v, list) else v
                                for k, v in config["preprocess_cfg"].items()}
    model = create_clip_from_config(config, device=device)
    load_weights(model, ckpt_dir / "open_clip_model.safetensors", what=str(cfg_path))
    return model.to(device), config


def apply_locks(model: nn.Module, *, lock_image: bool, image_unlocked_groups: int,
                lock_text: bool, text_unlocked_layers: int) -> None:
    """open_clip's LiT-style tower locking (``lock_image_tower`` / ``lock_text_tower``)."""
    if lock_image:
        model.lock_image_tower(unlocked_groups=image_unlocked_groups)
    if lock_text:
        model.lock_text_tower(unlocked_layers=text_unlocked_layers)


# a text-tower call costs about this many token positions beyond its tokens (launches, small matmuls)
CALL_OVERHEAD_POSITIONS = 64
MAX_LENGTH_GROUPS = 4


def length_groups(lengths: torch.Tensor, max_groups: int = MAX_LENGTH_GROUPS,
                  overhead: int = CALL_OVERHEAD_POSITIONS) -> list[torch.Tensor]:
    """Row indices of ``lengths`` [N] split into 1..max_groups groups of similar length.

    Rows are sorted by length and cut into k groups of equal count; k minimises the positions the
    tower runs, sum over groups of (rows x longest row), plus ``overhead`` per extra call. One group
    (the whole batch at its longest length) whenever splitting does not pay.
    """
    order = torch.argsort(lengths, stable=True)
    srt = lengths[order]
    n = int(lengths.numel())
    best_k, best_cost = 1, n * int(srt[-1]) if n else 0
    for k in range(2, min(max_groups, n) + 1):
        bounds = torch.linspace(0, n, k + 1).round().long()
        ends = bounds[1:] - 1
        cost = int(((bounds[1:] - bounds[:-1]) * srt[ends]).sum()) + (k - 1) * overhead
        if cost < best_cost:
            best_k, best_cost = k, cost
    if best_k == 1:
        return [torch.arange(n, device=lengths.device)]
    bounds = torch.linspace(0, n, best_k + 1).round().long().tolist()
    return [order[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _encode_text_at(clip: nn.Module, tokens: torch.Tensor, length: int) -> torch.Tensor:
    """The CLIP text tower over the first ``length`` positions of ``tokens``."""
    tokens = tokens[:, :length]
    cast_dtype = clip.transformer.get_cast_dtype()
    x = clip.token_embedding(tokens).to(cast_dtype)
    x = x + clip.positional_embedding[:length].to(cast_dtype)
    x = clip.transformer(x, attn_mask=clip.attn_mask[:length, :length])
    x = clip.ln_final(x)
    x = text_global_pool(x, tokens, clip.text_pool_type, eos_token_id=clip.text_eos_id)
    if clip.text_projection is not None:
        x = clip.text_projection(x) if isinstance(clip.text_projection, nn.Linear) \
            else x @ clip.text_projection
    return x


def encode_text(clip: nn.Module, tokens: torch.Tensor, group_lengths: bool = False) -> torch.Tensor:
    """``clip.encode_text(tokens)`` (unnormalised), computed only over the used positions.

    Valid for open_clip's built-in CLIP text tower with a causal mask and EOT/argmax pooling: token
    ``t`` only attends to positions ``<= t``, so dropping trailing columns beyond the last pooled
    position changes nothing. Other text towers fall back to ``clip.encode_text``. With
    ``group_lengths`` the rows are also split into groups of similar length (:func:`length_groups`),
    each run at its own longest length: captions of 30 to 66 tokens no longer all pay for 66. The
    result is the same up to float rounding (matmuls of other shapes sum in another order), not
    bit for bit, which is why it is opt-in (``--text-length-groups``).
    """
    trimmable = (isinstance(clip, open_clip.CLIP) and getattr(clip, "attn_mask", None) is not None
                 and clip.text_pool_type in ("argmax", "eos"))
    if not trimmable:
        return clip.encode_text(tokens)
    if clip.text_pool_type == "argmax":
        last = tokens.argmax(dim=-1)
    else:
        last = (tokens == clip.text_eos_id).int().argmax(dim=-1)
    lengths = last + 1
    groups = length_groups(lengths) if group_lengths else []
    if len(groups) <= 1:
        return _encode_text_at(clip, tokens, int(lengths.max()))
    order = torch.cat(groups)
    feats = torch.cat([_encode_text_at(clip, tokens[g], int(lengths[g].max())) for g in groups])
    return feats[torch.argsort(order)]


class AddressCLIP(nn.Module):
    """The open_clip model plus AddressCLIP's training forward (no extra parameters or modules)."""

    def __init__(self, clip: nn.Module, text_length_groups: bool = False):
        super().__init__()
        self.clip = clip
        self.text_length_groups = text_length_groups

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        x = self.clip.encode_image(images)
        return F.normalize(x, dim=-1) if normalize else x

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        x = encode_text(self.clip, tokens, self.text_length_groups)
        return F.normalize(x, dim=-1) if normalize else x

    def forward(self, images: torch.Tensor, address_tokens: torch.Tensor | None = None,
                address_index: torch.Tensor | None = None,
                caption_tokens: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Normalised features: ``image`` [B, D]; ``address`` [B, D] (the distinct addresses
        ``address_tokens`` [U, L] encoded once and spread by ``address_index`` [B]); ``caption`` [B, D];
        and the model's ``logit_scale`` (already exponentiated)."""
        out = {"image": self.encode_image(images), "logit_scale": self.clip.logit_scale.exp()}
        if address_tokens is not None:
            out["address"] = self.encode_text(address_tokens)[address_index]
        if caption_tokens is not None:
            out["caption"] = self.encode_text(caption_tokens)
        return out


def count_parameters(model: nn.Module) -> dict[str, int]:
    visual = sum(p.numel() for p in model.visual.parameters())
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "visual": visual, "text": total - visual, "trainable": trainable}
