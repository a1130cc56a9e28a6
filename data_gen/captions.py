"""Scene captions for real photos, from an image-captioning model in a LOCAL folder.

The toolkit's rendered images come with captions written by the renderer; users' real photos need a
captioner. AddressCLIP captioned its street-view images with BLIP-large prompted with
``"a street view of"`` (captions of 10-30 words). :class:`LocalCaptioner` does the same, batched, with
a model loaded only from a local directory (``local_files_only=True``, ``trust_remote_code=False``;
nothing is ever downloaded).

Get a model on a machine with internet, e.g.::

    hf download Salesforce/blip-image-captioning-large --local-dir blip-large

copy the folder over and pass it to the dataset builder with ``--captioner blip-large``.

Model support
    BLIP captioning checkpoints (``config.model_type == "blip"``, architecture
    ``BlipForConditionalGeneration``). transformers 5.x has no ``image-to-text`` pipeline any more; the
    model is loaded with ``AutoModelForImageTextToText`` (BLIP is in that mapping in 5.24) and, should a
    version drop it from the mapping, with ``BlipForConditionalGeneration`` chosen by
    ``config.model_type`` (never by folder name). Other model types are refused with a
    :class:`~ial_core.errors.DataError`: the prompt handling below is BLIP's.

Prompt handling (conditional captioning)
    BLIP's ``generate`` returns the prompt tokens followed by the continuation. The caption returned is
    always ``prompt + " " + continuation``, where the prompt is the ``prompt`` argument VERBATIM
    (whitespace-normalised, case kept) and the continuation is decoded from the generated tokens after
    the prompt only (special tokens dropped, whitespace collapsed). So captions read
    ``"a street view of a busy road with parked cars"`` whatever the tokenizer does to the prompt
    (BLIP's uncased BERT tokenizer lower-cases it and splits punctuation). If the model generates
    nothing after the prompt the caption is the prompt alone. With ``prompt=""`` (or ``None``) the
    captioning is unconditional and the caption is just the decoded text.

Decoding is greedy (``do_sample=False, num_beams=1``), so captions are deterministic, and batching does
not change them: every image in a batch gets the same prompt, hence no padding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from PIL import Image

from ial_core.errors import DataError, SkipReport, handle

DEFAULT_PROMPT = "a street view of"
DEFAULT_MODEL_ID = "Salesforce/blip-image-captioning-large"
SUPPORTED_MODEL_TYPES = ("blip",)
CAPTIONING_ARCHITECTURES = ("BlipForConditionalGeneration",)

HOW_TO_GET = (f"download {DEFAULT_MODEL_ID} on a machine with internet (e.g. `hf download "
              f"{DEFAULT_MODEL_ID} --local-dir blip-large`), copy the folder here and pass it with "
              f"--captioner")

# More than this fraction of the model's weights missing from the checkpoint means it is not a
# captioning checkpoint (e.g. a BLIP retrieval model); a few missing keys are tolerated.
_MAX_MISSING_FRACTION = 0.05


def no_captioner_message() -> str:
    """What the builder prints when real images are added without ``--captioner``."""
    return ("No --captioner given: real (non-rendered) images get EMPTY captions, so the image-caption "
            "loss sees only the address for them (no scene description). To caption them as AddressCLIP "
            f"did (BLIP-large, prompt {DEFAULT_PROMPT!r}), {HOW_TO_GET} <folder>.")


def _norm(text: str) -> str:
    return " ".join(text.split())


def _model_error(model_dir: Path, what: str) -> DataError:
    return DataError(f"{what}; no image-captioning model could be loaded from this folder. "
                     f"To get one, {HOW_TO_GET} <folder>.", path=model_dir)


def _auto_or_blip_class(model_type: str):
    """``AutoModelForImageTextToText`` when it maps ``model_type``, else BLIP's class by model type."""
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    if model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        return transformers.AutoModelForImageTextToText
    return {"blip": transformers.BlipForConditionalGeneration}[model_type]


class LocalCaptioner:
    """Batched, greedy, prompted scene captions from a BLIP captioning model in ``model_dir``.

    ``caption(images)`` captions PIL images; ``caption_paths(paths)`` opens image files in batches.
    See the module docstring for the prompt convention: every caption starts with ``prompt``.
    """

    def __init__(self, model_dir: str | Path, batch_size: int = 16, prompt: str | None = DEFAULT_PROMPT,
                 max_new_tokens: int = 30, device: str = "cpu"):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if int(max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.model_dir = Path(model_dir).expanduser()
        self.batch_size = int(batch_size)
        self.prompt = _norm(prompt or "")
        self.max_new_tokens = int(max_new_tokens)
        self.device = device
        self.processor, self.model = self._load()

    # -- loading ---------------------------------------------------------------------------------
    def _load(self):
        d = self.model_dir
        if not d.exists():
            raise _model_error(d, "captioning model folder not found")
        if not d.is_dir():
            raise _model_error(d, "expected a model folder, got a file")
        if not (d / "config.json").is_file():
            raise _model_error(d, "the folder holds no config.json")

        from transformers import AutoConfig, AutoProcessor

        try:
            config = AutoConfig.from_pretrained(d, local_files_only=True, trust_remote_code=False)
        except Exception as e:  # unreadable / unknown config
            raise _model_error(d, f"config.json could not be read ({type(e).__name__}: {e})") from e
        model_type = getattr(config, "model_type", None)
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise _model_error(d, f"model type {model_type!r} is not a supported captioning model "
                                  f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})")
        archs = list(getattr(config, "architectures", None) or [])
        if archs and not set(archs) & set(CAPTIONING_ARCHITECTURES):
            raise _model_error(d, f"the checkpoint is a {'/'.join(archs)}, not a captioning model "
                                  f"({' or '.join(CAPTIONING_ARCHITECTURES)})")

        try:
            processor = AutoProcessor.from_pretrained(d, local_files_only=True, trust_remote_code=False)
        except Exception as e:
            raise _model_error(d, f"no usable processor (tokenizer + image processor) "
                                  f"({type(e).__name__}: {e})") from e
        if (getattr(processor, "image_processor", None) is None
                or getattr(processor, "tokenizer", None) is None):
            raise _model_error(d, f"the processor ({type(processor).__name__}) lacks a tokenizer or "
                                  f"an image processor")

        cls = _auto_or_blip_class(model_type)
        try:
            model, info = cls.from_pretrained(d, local_files_only=True, trust_remote_code=False,
                                              use_safetensors=True, output_loading_info=True)
        except Exception as e:  # no weights, corrupt weights, ...
            raise _model_error(d, f"the model weights could not be loaded ({type(e).__name__}: {e})") from e
        missing = sorted(info.get("missing_keys") or [])
        n_params = max(1, len(model.state_dict()))
        if len(missing) > _MAX_MISSING_FRACTION * n_params:
            raise _model_error(d, f"{len(missing)} of {n_params} weights are missing from the checkpoint "
                                  f"(e.g. {', '.join(missing[:3])}), so it is not a captioning checkpoint")
        model.to(self.device).eval()
        return processor, model

    # -- captioning ------------------------------------------------------------------------------
    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        """One caption per image (order kept), computed in batches of ``batch_size``."""
        images = list(images)
        for i, im in enumerate(images):
            if not isinstance(im, Image.Image):
                raise TypeError(f"caption() takes PIL images; item {i} is a {type(im).__name__}")
        out: list[str] = []
        for start in range(0, len(images), self.batch_size):
            out.extend(self._caption_batch(images[start:start + self.batch_size]))
        return out

    def caption_paths(self, paths: Iterable[str | Path], progress: bool = True,
                      skip: SkipReport | None = None) -> list[str]:
        """Caption image files, opened ``batch_size`` at a time (EXIF-rotated, converted to RGB).

        An unreadable image raises :class:`DataError` naming it, unless ``skip`` is given: then it is
        counted there under ``"unreadable image"`` and gets an empty caption.
        """
        from tqdm.auto import tqdm

        paths = [Path(p) for p in paths]
        captions: list[str] = [""] * len(paths)
        with tqdm(total=len(paths), desc="captioning", unit="img", disable=not progress) as bar:
            for start in range(0, len(paths), self.batch_size):
                chunk = paths[start:start + self.batch_size]
                kept, images = [], []
                for j, p in enumerate(chunk):
                    try:
                        images.append(_open_rgb(p))
                        kept.append(start + j)
                    except DataError as e:
                        handle(e, skip, "unreadable image")
                if images:
                    for idx, cap in zip(kept, self._caption_batch(images)):
                        captions[idx] = cap
                bar.update(len(chunk))
        return captions

    def _caption_batch(self, images: list[Image.Image]) -> list[str]:
        import torch

        if not images:
            return []
        images = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
        kwargs = {"images": images, "return_tensors": "pt"}
        if self.prompt:
            kwargs["text"] = [self.prompt] * len(images)
        inputs = self.processor(**kwargs)
        model_dtype = next(self.model.parameters()).dtype
        batch = {k: v.to(self.device) for k, v in inputs.items()}
        batch["pixel_values"] = batch["pixel_values"].to(model_dtype)
        if "input_ids" in batch:
            # BLIP's generate writes BOS into input_ids[:, 0] in place: hand it a copy.
            batch["input_ids"] = batch["input_ids"].clone()
        with torch.inference_mode():
            out = self.model.generate(**batch, do_sample=False, num_beams=1,
                                      max_new_tokens=self.max_new_tokens)
        out = out.cpu()
        # BLIP drops the prompt's trailing [SEP] and puts BOS in place of [CLS]: the output starts with
        # the prompt's first len-1 positions ([BOS] alone when unprompted).
        n_prompt = inputs["input_ids"].shape[1] - 1 if self.prompt else 1
        tokenizer = self.processor.tokenizer
        prompt_ids = inputs["input_ids"][:, 1:n_prompt] if self.prompt else None
        captions = []
        for i, seq in enumerate(out):
            if prompt_ids is None or (seq.shape[0] >= n_prompt
                                      and torch.equal(seq[1:n_prompt], prompt_ids[i])):
                text = tokenizer.decode(seq[n_prompt:], skip_special_tokens=True)
            else:  # unexpected layout: decode everything and drop the prompt's text
                text = _strip_prefix(_norm(tokenizer.decode(seq, skip_special_tokens=True)),
                                     _norm(tokenizer.decode(inputs["input_ids"][i],
                                                            skip_special_tokens=True)))
            captions.append(_join(self.prompt, _norm(text)))
        return captions


def _strip_prefix(text: str, prefix: str) -> str:
    if prefix and text.lower().startswith(prefix.lower()):
        return text[len(prefix):].strip()
    return text


def _join(prompt: str, continuation: str) -> str:
    return _norm(f"{prompt} {continuation}")


def _open_rgb(path: Path) -> Image.Image:
    """The toolkit's one image reader (EXIF orientation applied, any mode to RGB), naming ``path``."""
    from ial_core.images import open_rgb

    if not Path(path).is_file():
        raise DataError("image file not found", path=path)
    return open_rgb(path, source=path)


__all__ = ["DEFAULT_PROMPT", "DEFAULT_MODEL_ID", "LocalCaptioner", "no_captioner_message"]
