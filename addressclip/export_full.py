"""The whole AddressCLIP model as a Hugging Face ``CLIPModel`` folder: ``python -m addressclip.export
--run RUN --full [--out DIR]`` (default ``RUN/hf_full``).

Why: so that stock ``transformers`` ranks a photo's candidate addresses with no toolkit code,

```python
import json
from transformers import pipeline
clf = pipeline("zero-shot-image-classification", model=DIR)
labels = json.load(open(f"{DIR}/candidate_addresses.json"))
clf("photo.jpg", candidate_labels=labels, hypothesis_template="{}")  # addresses as is, no prompt
```

and ranks them exactly as ``addressclip.evaluate`` does (tested on the embedded city), and so that
:class:`addressclip.predict.AddressPredictor` loads the folder too.

Folder: ``config.json`` (``CLIPConfig``), ``model.safetensors`` (``vision_model.*`` as in
:mod:`addressclip.export`, ``text_model.*``, ``visual_projection``, ``text_projection``,
``logit_scale``), the ``CLIPProcessor`` files (``CLIPTokenizer`` built from open_clip's own BPE
vocabulary and merges; ``CLIPImageProcessorPil``, whose PIL bicubic resize gives open_clip's eval
pixels exactly, where the torchvision-backed ``CLIPImageProcessor`` differs visibly on
non-square photos), ``addresses.json`` (the dataset's candidates with geometry),
``candidate_addresses.json`` (the labels in class order), ``calibration.json`` when the run has one
(and ``open_set.safetensors`` when it names an open-set score),
and ``addressclip_full_export.json`` (provenance, parity figures).

Mapping of the text tower (open_clip -> HF ``text_model``): ``token_embedding`` ->
``embeddings.token_embedding``, ``positional_embedding`` -> ``embeddings.position_embedding``,
``transformer.resblocks.i`` -> ``encoder.layers.i`` (as for the vision tower), ``ln_final`` ->
``final_layer_norm``; ``text_projection`` [width, D] -> ``text_projection.weight`` [D, width] (and
``visual.proj`` likewise). Pooling: open_clip takes the argmax token (the end-of-text id is the
largest), HF the first ``eos_token_id``; with ``eos_token_id`` = open_clip's end-of-text and
right padding with that same id, both pick the same position. Only open_clip's built-in CLIP text
tower (causal mask, argmax pooling, plain blocks) and its default tokenizer export.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from addressclip.export import (
    ExportError,
    hf_encoder_layers,
    hf_vision_config,
    hf_vision_state_dict,
    image_processor,
)
from addressclip.predict import CANDIDATE_LABELS_FILE, FULL_EXPORT_FILE
from ial_core.files import atomic_dir

PARITY_TOL = 1e-4


def _check_text_exportable(clip: nn.Module, tokenizer) -> None:
    import open_clip
    from open_clip.tokenizer import SimpleTokenizer
    from open_clip.transformer import ResidualAttentionBlock
    problems = []
    if type(clip) is not open_clip.CLIP:
        problems.append(f"model class {type(clip).__name__} (needs open_clip.CLIP's built-in text tower)")
    else:
        if clip.attn_mask is None:
            problems.append("text tower without causal mask")
        if clip.text_pool_type != "argmax":
            problems.append(f"text pool_type {clip.text_pool_type!r} (needs 'argmax')")
        if not isinstance(clip.text_projection, nn.Parameter):
            problems.append("text projection is not a plain matrix")
        if not isinstance(getattr(clip.visual, "proj", None), nn.Parameter):
            problems.append("vision projection is not a plain matrix")
        if getattr(clip, "logit_bias", None) is not None:
            problems.append("logit_bias (SigLIP-style) has no CLIPModel equivalent")
        for i, blk in enumerate(clip.transformer.resblocks):
            if not isinstance(blk, ResidualAttentionBlock) or not isinstance(blk.ls_1, nn.Identity):
                problems.append(f"text block {i} is not a plain block")
                break
    if not isinstance(tokenizer, SimpleTokenizer):
        problems.append(f"tokenizer {type(tokenizer).__name__} (needs open_clip's SimpleTokenizer)")
    elif tokenizer.context_length != getattr(clip, "context_length", None):
        problems.append(f"tokenizer context {tokenizer.context_length} vs model {clip.context_length}")
    if problems:
        raise ExportError("cannot export as CLIPModel: " + ", ".join(problems))


def hf_tokenizer(tokenizer):
    """``CLIPTokenizer`` with open_clip's vocabulary, merges and special tokens (same ids)."""
    from transformers import CLIPTokenizer
    merges = [pair for pair, _ in sorted(tokenizer.bpe_ranks.items(), key=lambda kv: kv[1])]
    sot, eot = tokenizer.decoder[tokenizer.sot_token_id], tokenizer.decoder[tokenizer.eot_token_id]
    return CLIPTokenizer(vocab=dict(tokenizer.encoder), merges=merges,
                         model_max_length=tokenizer.context_length,
                         bos_token=sot, eos_token=eot, pad_token=eot, unk_token=eot)


def hf_clip_config(clip: nn.Module, tokenizer):
    from transformers import CLIPConfig, CLIPTextConfig
    vision = hf_vision_config(clip.visual)
    blk = clip.transformer.resblocks[0]
    act = vision.hidden_act  # open_clip builds both towers with the same activation
    text = CLIPTextConfig(
        vocab_size=clip.vocab_size, hidden_size=clip.transformer.width,
        intermediate_size=blk.mlp.c_fc.out_features, num_hidden_layers=len(clip.transformer.resblocks),
        num_attention_heads=blk.attn.num_heads, max_position_embeddings=clip.context_length,
        hidden_act=act, layer_norm_eps=clip.ln_final.eps, projection_dim=clip.text_projection.shape[1],
        attention_dropout=0.0, bos_token_id=tokenizer.sot_token_id,
        eos_token_id=tokenizer.eot_token_id, pad_token_id=tokenizer.eot_token_id)
    cfg = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(),
                     projection_dim=clip.text_projection.shape[1],
                     logit_scale_init_value=float(clip.logit_scale.detach()))
    cfg.architectures = ["CLIPModel"]
    return cfg


def hf_clip_state_dict(clip: nn.Module) -> dict[str, torch.Tensor]:
    """open_clip CLIP weights under ``CLIPModel`` names."""
    t = lambda x: x.detach().to("cpu", torch.float32).contiguous()  # noqa: E731
    sd = {"vision_model." + k: v for k, v in hf_vision_state_dict(clip.visual).items()}
    sd["visual_projection.weight"] = t(clip.visual.proj.t())
    sd["text_projection.weight"] = t(clip.text_projection.t())
    sd["logit_scale"] = t(clip.logit_scale.reshape(()))
    p = "text_model."
    sd[p + "embeddings.token_embedding.weight"] = t(clip.token_embedding.weight)
    sd[p + "embeddings.position_embedding.weight"] = t(clip.positional_embedding)
    sd[p + "final_layer_norm.weight"], sd[p + "final_layer_norm.bias"] = t(clip.ln_final.weight), t(clip.ln_final.bias)
    sd.update(hf_encoder_layers(clip.transformer.resblocks, p))
    return sd


def pil_image_processor(preprocess_cfg: dict, image_size: int):
    """The export's ``CLIPImageProcessor`` settings on the PIL backend (open_clip's exact pixels)."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    keys = ("do_resize", "size", "resample", "do_center_crop", "crop_size", "do_rescale",
            "rescale_factor", "do_normalize", "image_mean", "image_std", "do_convert_rgb")
    settings = image_processor(preprocess_cfg, image_size).to_dict()
    return CLIPImageProcessorPil(**{k: settings[k] for k in keys if k in settings})


@torch.no_grad()
def parity(clip: nn.Module, hf_model, tokenizer, hf_tok, texts: list[str], pixels: torch.Tensor) -> dict:
    """Max abs difference of normalised image and text embeddings, open_clip vs ``CLIPModel``."""
    from addressclip.model import AddressCLIP
    ours = AddressCLIP(clip.float().eval())
    hf_model.eval()
    norm = lambda x: torch.nn.functional.normalize(getattr(x, "pooler_output", x), dim=-1)  # noqa: E731
    img = (ours.encode_image(pixels) - norm(hf_model.get_image_features(pixel_values=pixels))).abs().max()
    tok = hf_tok(texts, padding=True, return_tensors="pt")
    txt = (ours.encode_text(tokenizer(texts)) - norm(hf_model.get_text_features(**tok))).abs().max()
    return {"image_max_abs_diff": float(img), "text_max_abs_diff": float(txt),
            "n_texts": len(texts), "n_images": int(pixels.shape[0])}


def export_full(clip: nn.Module, preprocess_cfg: dict, tokenizer, addresses: dict, out: str | Path, *,
                calibration_dir: str | Path | None = None, provenance: dict | None = None,
                candidate_lonlat: dict | None = None) -> dict:
    """Write the folder atomically (temporary name, then rename) after checking parity."""
    from transformers import AutoTokenizer, CLIPModel

    from addressclip.calibration import CALIBRATION_FILE, Calibration
    from addressclip.open_set import OPEN_SET_FILE
    from addressclip.predict import load_candidates
    _check_text_exportable(clip, tokenizer)
    candidates = load_candidates(addresses, fallback_lonlat=candidate_lonlat)
    config = hf_clip_config(clip, tokenizer)
    hf_tok = hf_tokenizer(tokenizer)
    with atomic_dir(out) as tmp:      # an older export is swapped aside, never deleted first
        config.save_pretrained(tmp)
        save_file(hf_clip_state_dict(clip), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        # The two halves of a CLIPProcessor folder, saved one by one: building CLIPProcessor itself
        # checks its tokenizer against every tokenizer class, importing optional backends.
        pil_image_processor(preprocess_cfg, config.vision_config.image_size).save_pretrained(tmp)
        hf_tok.save_pretrained(tmp)
        (tmp / "addresses.json").write_text(json.dumps(addresses, ensure_ascii=False, indent=1),
                                            encoding="utf-8")
        labels = [c.address for c in candidates]
        (tmp / CANDIDATE_LABELS_FILE).write_text(json.dumps(labels, ensure_ascii=False, indent=1),
                                                 encoding="utf-8")
        has_cal = calibration_dir is not None and (Path(calibration_dir) / CALIBRATION_FILE).is_file()
        if has_cal:
            shutil.copyfile(Path(calibration_dir) / CALIBRATION_FILE, tmp / CALIBRATION_FILE)
            if Calibration.load(calibration_dir).open_set:   # the predictor abstains the same way
                if not (Path(calibration_dir) / OPEN_SET_FILE).is_file():
                    raise ExportError(f"{Path(calibration_dir) / CALIBRATION_FILE} names an open-set "
                                      f"score but {OPEN_SET_FILE} is missing; rerun addressclip.calibrate")
                shutil.copyfile(Path(calibration_dir) / OPEN_SET_FILE, tmp / OPEN_SET_FILE)
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
        hf, info = CLIPModel.from_pretrained(tmp, output_loading_info=True, use_safetensors=True)
        bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys",
                                                               "mismatched_keys")}
        if bad:
            raise ExportError(f"transformers did not load the export cleanly: {bad}")
        g = torch.Generator().manual_seed(0)
        size = config.vision_config.image_size
        report = {"provenance": provenance or {}, "hf_class": "CLIPModel",
                  "n_candidates": len(labels), "calibration": has_cal,
                  "candidate_lonlat": {k: list(v) for k, v in (candidate_lonlat or {}).items()},
                  "parity": parity(clip, hf, tokenizer, AutoTokenizer.from_pretrained(tmp, trust_remote_code=False),
                                   labels[:64], torch.randn(4, 3, size, size, generator=g))}
        if max(report["parity"]["image_max_abs_diff"], report["parity"]["text_max_abs_diff"]) > PARITY_TOL:
            raise ExportError(f"exported CLIPModel differs from open_clip: {report['parity']}")
        (tmp / FULL_EXPORT_FILE).write_text(json.dumps(report, indent=2, ensure_ascii=False),
                                            encoding="utf-8")
    return report


def export_full_run(run_dir: str | Path, out: str | Path | None = None, checkpoint: str = "latest", *,
                    data: str | Path | None = None) -> dict:
    import open_clip

    from addressclip import checkpoint as ckpt
    from addressclip.config import load_run_config
    from addressclip.model import load_clip_dir
    from addressclip.predict import _image_lonlat_by_address
    from data_gen.dataset import load_dataset_dir
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    ial = load_dataset_dir(data or cfg.dataset_root)
    path = ckpt.resolve_checkpoint(run_dir, checkpoint)
    clip, mcfg = load_clip_dir(path)
    state = path / "state.json"
    step = json.loads(state.read_text())["step"] if state.is_file() else 0
    no_geometry = any(not r.get("geometry_wkt") for r in ial.sub_streets)
    return export_full(clip, mcfg["preprocess_cfg"], open_clip.get_tokenizer(cfg.model.model),
                       ial.addresses, out if out is not None else run_dir / "hf_full",
                       calibration_dir=run_dir,
                       candidate_lonlat=_image_lonlat_by_address(ial) if no_geometry else None,
                       provenance={"run": str(run_dir), "checkpoint": str(path), "step": step,
                                   "dataset": str(ial.root)})
