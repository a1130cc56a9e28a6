"""Export the trained vision tower for stage two: ``python -m addressclip.export --run RUN_DIR``.

(``--full`` writes the whole model instead, both towers as a HF ``CLIPModel``: see
:mod:`addressclip.export_full`.)

Writes a Hugging Face ``CLIPVisionModel`` directory that stock ``transformers`` (and vLLM's CLIP
vision tower loader) read without custom code:

- ``config.json``: ``CLIPVisionConfig`` (hidden size, layers, heads, MLP size, patch and image size,
  ``hidden_act`` = ``gelu`` for open_clip's exact ``nn.GELU`` or ``quick_gelu`` for QuickGELU
  models, LayerNorm epsilon, ``projection_dim`` = the CLIP embedding size);
- ``model.safetensors``: the weights under ``vision_model.*`` names: transformers 5.x loads them into
  ``CLIPVisionModel`` with no missing or unexpected keys, and they are the names vLLM looks for;
- ``preprocessor_config.json``: ``CLIPImageProcessor`` with the model's size, mean, std and bicubic
  resize of the shortest side plus centre crop (open_clip's eval transform);
- ``addressclip_export.json``: provenance (run, checkpoint, step) and the parity check below.

Mapping (open_clip -> HF): ``conv1`` -> ``embeddings.patch_embedding``, ``class_embedding`` and
``positional_embedding`` -> embeddings, ``ln_pre`` -> ``pre_layrnorm``; per block ``ln_1/ln_2`` ->
``layer_norm1/2``, ``attn.in_proj_{weight,bias}`` split in thirds -> ``q_proj/k_proj/v_proj``,
``attn.out_proj`` -> ``out_proj``, ``mlp.c_fc/c_proj`` -> ``mlp.fc1/fc2``; ``ln_post`` ->
``post_layernorm``. The projection to the joint space has no place in ``CLIPVisionModel`` and is
not exported (stage two uses hidden states). Only plain ViTs export: class token, ln_pre, token
pooling, no attentional pooler, no layer scale or custom blocks, a square image.

Parity (checked at every export, and in tests): for the same pixels, the output of open_clip's
resblock ``i`` equals ``hidden_states[i + 1]`` of the exported model, and ``hidden_states[0]`` equals
the ln_pre output; max abs difference <= 1e-4.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from open_clip.transformer import QuickGELU, ResidualAttentionBlock, VisionTransformer
from safetensors.torch import save_file
from torch import nn

from addressclip import checkpoint as ckpt
from addressclip.model import load_clip_dir
from ial_core.config import option, parse_config
from ial_core.files import atomic_dir

HF_PREFIX = "vision_model."
PARITY_TOL = 1e-4


class ExportError(ValueError):
    """The vision tower cannot be expressed as a HF CLIPVisionModel."""


def _check_exportable(visual: nn.Module) -> None:
    if not isinstance(visual, VisionTransformer):
        raise ExportError(f"only open_clip VisionTransformer towers export, got {type(visual).__name__}")
    problems = []
    if visual.attn_pool is not None:
        problems.append("attentional pooler")
    if visual.pool_type != "tok":
        problems.append(f"pool_type {visual.pool_type!r} (needs 'tok')")
    if isinstance(visual.ln_pre, nn.Identity):
        problems.append("no ln_pre")
    if not isinstance(visual.patch_dropout, nn.Identity):
        problems.append("patch dropout")
    if visual.image_size[0] != visual.image_size[1] or visual.patch_size[0] != visual.patch_size[1]:
        problems.append(f"non-square image/patch {visual.image_size}/{visual.patch_size}")
    for i, blk in enumerate(visual.transformer.resblocks):
        if not isinstance(blk, ResidualAttentionBlock):
            problems.append(f"block {i} is {type(blk).__name__}")
            break
        if not isinstance(blk.ls_1, nn.Identity) or hasattr(blk, "ln_1_kv"):
            problems.append(f"block {i} has layer scale / cross attention")
            break
        act = blk.mlp.gelu
        if not (isinstance(act, QuickGELU) or (isinstance(act, nn.GELU) and act.approximate == "none")):
            problems.append(f"activation {act!r} (needs nn.GELU or QuickGELU)")
            break
    if problems:
        raise ExportError("vision tower is not a plain ViT: " + ", ".join(problems))


def hf_vision_config(visual: VisionTransformer):
    from transformers import CLIPVisionConfig
    _check_exportable(visual)
    blk = visual.transformer.resblocks[0]
    cfg = CLIPVisionConfig(
        hidden_size=visual.transformer.width,
        intermediate_size=blk.mlp.c_fc.out_features,
        num_hidden_layers=len(visual.transformer.resblocks),
        num_attention_heads=blk.attn.num_heads,
        image_size=visual.image_size[0],
        patch_size=visual.patch_size[0],
        num_channels=3,
        hidden_act="quick_gelu" if isinstance(blk.mlp.gelu, QuickGELU) else "gelu",
        layer_norm_eps=visual.ln_pre.eps,
        projection_dim=visual.output_dim,
        attention_dropout=0.0,
    )
    cfg.architectures = ["CLIPVisionModel"]
    return cfg


def _tensor(x: torch.Tensor) -> torch.Tensor:
    return x.detach().to("cpu", torch.float32).contiguous()


def hf_encoder_layers(resblocks, prefix: str = "") -> dict[str, torch.Tensor]:
    """open_clip residual attention blocks under HF CLIP encoder names (``{prefix}encoder.layers.N.``);
    the same mapping serves the vision and the text tower."""
    t, sd = _tensor, {}
    for i, blk in enumerate(resblocks):
        p = f"{prefix}encoder.layers.{i}."
        for name, w, b in zip(("q_proj", "k_proj", "v_proj"), blk.attn.in_proj_weight.chunk(3, dim=0),
                              blk.attn.in_proj_bias.chunk(3, dim=0)):
            sd[p + f"self_attn.{name}.weight"], sd[p + f"self_attn.{name}.bias"] = t(w), t(b)
        sd[p + "self_attn.out_proj.weight"] = t(blk.attn.out_proj.weight)
        sd[p + "self_attn.out_proj.bias"] = t(blk.attn.out_proj.bias)
        for ours, theirs in (("ln_1", "layer_norm1"), ("ln_2", "layer_norm2")):
            sd[p + f"{theirs}.weight"] = t(getattr(blk, ours).weight)
            sd[p + f"{theirs}.bias"] = t(getattr(blk, ours).bias)
        sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"] = t(blk.mlp.c_fc.weight), t(blk.mlp.c_fc.bias)
        sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"] = t(blk.mlp.c_proj.weight), t(blk.mlp.c_proj.bias)
    return sd


def hf_vision_state_dict(visual: VisionTransformer) -> dict[str, torch.Tensor]:
    """open_clip vision tower weights under CLIPVisionModel names (without ``vision_model.``)."""
    _check_exportable(visual)
    t = _tensor
    sd = {"embeddings.class_embedding": t(visual.class_embedding),
          "embeddings.patch_embedding.weight": t(visual.conv1.weight),
          "embeddings.position_embedding.weight": t(visual.positional_embedding),
          "pre_layrnorm.weight": t(visual.ln_pre.weight), "pre_layrnorm.bias": t(visual.ln_pre.bias),
          "post_layernorm.weight": t(visual.ln_post.weight),
          "post_layernorm.bias": t(visual.ln_post.bias)}
    sd.update(hf_encoder_layers(visual.transformer.resblocks))
    return sd


def image_processor(preprocess_cfg: dict, image_size: int):
    from transformers import CLIPImageProcessor
    mode = preprocess_cfg.get("resize_mode", "shortest")
    if preprocess_cfg.get("interpolation", "bicubic") != "bicubic":
        raise ExportError(f"interpolation {preprocess_cfg['interpolation']!r}: only bicubic exports")
    common = dict(do_resize=True, resample=3, do_rescale=True, rescale_factor=1 / 255,
                  do_normalize=True, image_mean=list(preprocess_cfg["mean"]),
                  image_std=list(preprocess_cfg["std"]), do_convert_rgb=True)
    if mode == "shortest":
        return CLIPImageProcessor(size={"shortest_edge": image_size}, do_center_crop=True,
                                  crop_size={"height": image_size, "width": image_size}, **common)
    if mode == "squash":
        return CLIPImageProcessor(size={"height": image_size, "width": image_size},
                                  do_center_crop=False, **common)
    raise ExportError(f"resize_mode {mode!r} has no CLIPImageProcessor equivalent")


@torch.no_grad()
def open_clip_hidden_states(visual: VisionTransformer, pixels: torch.Tensor) -> list[torch.Tensor]:
    """[ln_pre output, resblock 0 output, ..., resblock L-1 output], all tokens (class token first)."""
    out = visual.forward_intermediates(pixels, indices=len(visual.transformer.resblocks),
                                       output_fmt="NLC", intermediates_only=True,
                                       output_extra_tokens=True)
    blocks = [torch.cat([c, s], dim=1) for c, s in zip(out["image_intermediates_prefix"],
                                                        out["image_intermediates"])]
    return [visual._embeds(pixels)] + blocks


@torch.no_grad()
def parity(visual: VisionTransformer, hf_model, pixels: torch.Tensor) -> dict:
    """Max abs difference per hidden-state index between open_clip and the HF model, and pooled."""
    visual.eval()
    hf_model.eval()
    ours = open_clip_hidden_states(visual, pixels)
    theirs = hf_model(pixel_values=pixels, output_hidden_states=True)
    diffs = [float((a - b).abs().max()) for a, b in zip(ours, theirs.hidden_states)]
    pooled_ours = visual.ln_post(ours[-1][:, 0])
    return {"hidden_states_max_abs_diff": diffs, "n_hidden_states": len(theirs.hidden_states),
            "pooler_max_abs_diff": float((pooled_ours - theirs.pooler_output).abs().max()),
            "max_abs_diff": max(diffs)}


def export_vision_tower(clip: nn.Module, preprocess_cfg: dict, out: str | Path, *,
                        provenance: dict | None = None, check: bool = True) -> dict:
    """Write the HF directory atomically (temporary folder, then swapped in) and verify parity."""
    visual = clip.visual
    config = hf_vision_config(visual)
    state = hf_vision_state_dict(visual)
    with atomic_dir(out) as tmp:      # an older export is swapped aside, never deleted first
        return _write_vision_export(tmp, visual, config, state, preprocess_cfg, provenance, check)


def _write_vision_export(tmp: Path, visual: nn.Module, config, state: dict, preprocess_cfg: dict,
                         provenance: dict | None, check: bool) -> dict:
    """The files of a vision-tower export, written into ``tmp`` and checked there."""
    from transformers import CLIPVisionModel
    config.save_pretrained(tmp)
    save_file({HF_PREFIX + k: v for k, v in state.items()}, str(tmp / "model.safetensors"),
              metadata={"format": "pt"})
    image_processor(preprocess_cfg, config.image_size).save_pretrained(tmp)
    report = {"provenance": provenance or {}, "hf_class": "CLIPVisionModel",
              "hidden_size": config.hidden_size, "num_hidden_layers": config.num_hidden_layers,
              "hidden_act": config.hidden_act, "image_size": config.image_size}
    if check:
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
        hf, info = CLIPVisionModel.from_pretrained(tmp, output_loading_info=True,
                                                   use_safetensors=True)
        bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys",
                                                               "mismatched_keys")}
        if bad:
            raise ExportError(f"transformers did not load the export cleanly: {bad}")
        g = torch.Generator().manual_seed(0)
        pixels = torch.randn(2, 3, config.image_size, config.image_size, generator=g)
        report["parity"] = parity(visual.float().eval(), hf, pixels)
        if report["parity"]["max_abs_diff"] > PARITY_TOL:
            raise ExportError(f"exported model differs from open_clip: {report['parity']}")
    (tmp / "addressclip_export.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def export_run(run_dir: str | Path, out: str | Path | None = None, checkpoint: str = "latest") -> dict:
    run_dir = Path(run_dir)
    path = ckpt.resolve_checkpoint(run_dir, checkpoint)
    clip, config = load_clip_dir(path)
    state = path / "state.json"
    step = json.loads(state.read_text())["step"] if state.is_file() else 0
    out = Path(out) if out is not None else run_dir / "hf_vision"
    return export_vision_tower(clip, config["preprocess_cfg"], out, provenance={
        "run": str(run_dir), "checkpoint": str(path), "step": step})


@dataclass
class ExportArgs:
    run: str = option(help="run directory written by addressclip.train")
    out: str | None = option(None, "output directory (default RUN/hf_vision, with --full RUN/hf_full)")
    checkpoint: str = option("latest", "latest, init, step_NNNNNN or a directory")
    full: bool = option(False, "both towers as CLIPModel + CLIPProcessor, with the candidate addresses "
                        "(zero-shot-image-classification pipeline, AddressPredictor)")
    data: str | None = option(None, "with --full: dataset whose addresses.json is copied (default: "
                              "the run's)")


def main(argv: list[str] | None = None) -> int:
    a = parse_config(ExportArgs, argv, prog="python -m addressclip.export",
                     description="Write the vision tower as a HF CLIPVisionModel directory "
                                 "(or, with --full, the whole model as a CLIPModel).")
    if a.full:
        from addressclip.export_full import export_full_run
        out = a.out or str(Path(a.run) / "hf_full")
        report = export_full_run(a.run, out, a.checkpoint, data=a.data)
        par = report["parity"]
        print(f"wrote {out}: CLIPModel + CLIPProcessor, {report['n_candidates']} candidate addresses"
              f"{', calibration' if report['calibration'] else ''}; parity max abs diff image "
              f"{par['image_max_abs_diff']:.2e}, text {par['text_max_abs_diff']:.2e}")
        return 0
    report = export_run(a.run, a.out, a.checkpoint)
    out = a.out or str(Path(a.run) / "hf_vision")
    print(f"wrote {out}: CLIPVisionModel, {report['num_hidden_layers']} layers, width "
          f"{report['hidden_size']}, act {report['hidden_act']}; parity max abs diff "
          f"{report['parity']['max_abs_diff']:.2e} over {report['parity']['n_hidden_states']} "
          "hidden states")
    return 0


if __name__ == "__main__":
    sys.exit(main())
