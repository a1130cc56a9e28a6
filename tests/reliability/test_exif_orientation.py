"""A phone photo stored sideways with EXIF orientation 6 reaches every model upright."""

from __future__ import annotations

import shutil

import numpy as np
import torch
from PIL import Image

from helpers.synthetic import make_synthetic_dataset
from ial_core.images import open_rgb

PRE = {"size": (32, 32), "mode": "RGB", "mean": (0.48145466, 0.4578275, 0.40821073),
       "std": (0.26862954, 0.26130258, 0.27577711), "interpolation": "bicubic",
       "resize_mode": "shortest", "fill_color": 0}


def _upright() -> Image.Image:
    """48 x 32, bright red on top, dark blue below: 'up' is unmistakable."""
    pixels = np.zeros((32, 48, 3), dtype=np.uint8)
    pixels[:16] = (230, 30, 30)
    pixels[16:] = (20, 20, 120)
    return Image.fromarray(pixels)


def _phone_photo(path, upright: Image.Image) -> None:
    """Stored as a camera sensor writes it: turned 90 degrees counter-clockwise, tagged 6
    ("rotate 90 degrees clockwise to display")."""
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, format="JPEG", quality=95, exif=exif.tobytes())


def _close(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and np.abs(np.asarray(a, float) - np.asarray(b, float)).mean() < 4


def test_every_reader_turns_the_photo_upright(tmp_path):
    from data_gen.captions import _open_rgb as caption_reader
    from eval.backends.openai import jpeg_bytes
    from llava_ial.inference import read_image

    upright, path = _upright(), tmp_path / "phone.jpg"
    _phone_photo(path, upright)
    with Image.open(path) as stored:
        assert stored.size == (32, 48)                 # the pixels really are stored sideways
    for reader in (open_rgb, caption_reader, read_image):
        assert _close(reader(path), upright), reader
    sent = tmp_path / "sent.jpg"                       # what an OpenAI-compatible server receives
    sent.write_bytes(jpeg_bytes(path))
    with Image.open(sent) as image:
        assert image.getexif().get(0x0112, 1) == 1 and _close(image.convert("RGB"), upright)


def test_orientation_6_reaches_stage_one_upright(tmp_path):
    from addressclip.data import CandidateSet, IALImageDataset
    from data_gen.dataset import load_dataset_dir

    phone = make_synthetic_dataset(tmp_path / "phone", n_districts=1, headings=1, image_size=32)
    reference = shutil.copytree(phone, tmp_path / "reference")
    image = load_dataset_dir(phone).split("train")["image"][0]
    _phone_photo(phone / image, _upright())
    _upright().save(reference / image, format="JPEG", quality=95)

    def pixels(root, train):
        ial = load_dataset_dir(root)
        ds = IALImageDataset(ial, "train", CandidateSet.from_dataset(ial), preprocess_cfg=PRE,
                             train=train, augment=False)
        return ds[(0, 0)]["image"] if train else ds[0]["image"]

    for train in (False, True):
        seen, expected = pixels(phone, train), pixels(reference, train)
        assert torch.allclose(seen, expected, atol=0.1), train
        top, bottom = seen[0, :8].mean(), seen[0, -8:].mean()     # red channel: high on top
        assert top > bottom + 1.0, train
