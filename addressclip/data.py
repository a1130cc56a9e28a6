"""Torch datasets over a built IAL dataset folder: images, address labels, captions, UTM positions.

- **Classes** are the distinct canonical addresses of ``addresses.json`` (``{street} & {cross},
  {district}``), in file order. Every image's ``address`` must be one of them, otherwise a
  :class:`~ial_core.errors.DataError` names the split, row and address (no silent relabelling). An
  empty split is an error too (raised by ``IALDataset.split``).
- **Address text** encoded for the image-address loss and for prediction is the canonical address as
  is, with no prompt template (the paper aligns images with "the address text").
- **Caption text** is ``"{caption}, {address}"`` with the column chosen by ``caption_address``
  (canonical address by default; the paper appends the address to the caption).
- **Positions** are UTM easting/northing in metres, shifted by the training split's minimum so float32
  keeps centimetre precision; only differences matter to the geography loss.
- **Pixels.** Training: a random resized crop (area ``crop_scale_min``..1, aspect 3/4..4/3) of the
  decoded JPEG, resized to the model's size with bicubic resampling; its randomness comes from a seed
  per (run seed, epoch, image), so results do not depend on the number of workers and a resumed run
  sees exactly the crops it would have seen. Evaluation: open_clip's own eval transform for the model
  (resize shortest side, centre crop, normalise), which ``CLIPImageProcessor`` reproduces after export.
  JPEG decoding, cropping and tokenisation run in DataLoader workers.
- **Batches.** :class:`EpochBatchSampler` shuffles with a generator seeded by (seed, epoch), cuts the
  permutation into global batches of ``batch_size * world_size`` (the last incomplete one is dropped:
  contrastive batches keep a constant size) and gives each rank its slice; ``set_epoch(e, start)``
  skips batches already consumed, which is how ``--resume`` continues mid-epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from data_gen.dataset import IALDataset
from ial_core.errors import DataError
from ial_core.images import open_rgb


@dataclass
class CandidateSet:
    """The closed set of candidate addresses (classes) and what SA and per-district scores need."""

    addresses: list[str]
    streets: list[str]
    districts: list[str]
    street_ids: np.ndarray      # [C] index into sorted unique streets
    district_ids: np.ndarray    # [C] index into ``district_names``
    district_names: list[str]
    index: dict[str, int]

    @classmethod
    def from_dataset(cls, ial: IALDataset) -> CandidateSet:
        addresses, streets, districts, index = [], [], [], {}
        for i, rec in enumerate(ial.sub_streets):
            for key in ("address", "street", "district"):
                if not isinstance(rec.get(key), str) or not rec[key]:
                    raise DataError(f"sub-street record {i} has no {key!r}",
                                    path=ial.root / "addresses.json", row=i)
            if rec["address"] in index:
                continue  # the same canonical address twice is the same class
            index[rec["address"]] = len(addresses)
            addresses.append(rec["address"])
            streets.append(rec["street"])
            districts.append(rec["district"])
        street_names = sorted(set(streets))
        district_names = sorted(set(districts))
        return cls(addresses=addresses, streets=streets, districts=districts,
                   street_ids=np.array([street_names.index(s) for s in streets], dtype=np.int64),
                   district_ids=np.array([district_names.index(d) for d in districts], dtype=np.int64),
                   district_names=district_names, index=index)

    def __len__(self) -> int:
        return len(self.addresses)

    def labels(self, ial: IALDataset, split: str) -> np.ndarray:
        """Class index of every image of ``split``; a missing address is a :class:`DataError`."""
        column = ial.split(split)["address"]
        labels = np.fromiter((self.index.get(a, -1) for a in column), dtype=np.int64, count=len(column))
        bad = np.flatnonzero(labels < 0)
        if bad.size:
            first = int(bad[0])
            missing = sorted({column[int(i)] for i in bad})
            raise DataError(
                f"split {split!r}: {bad.size} images have an address missing from the candidate "
                f"addresses in addresses.json ({len(missing)} distinct, e.g. {missing[0]!r} at row "
                f"{first}); every label must be a candidate", path=ial.root / "addresses.json")
        return labels

    def tokens(self, tokenizer) -> torch.Tensor:
        return tokenizer(self.addresses)


def _to_tensor(img: Image.Image, mean, std) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255)
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return (x - m) / s


def random_crop_box(width: int, height: int, seed: int, scale_min: float,
                    ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """A RandomResizedCrop box (left, top, right, bottom) drawn from its own generator."""
    g = torch.Generator().manual_seed(seed)
    area = width * height
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        u = torch.rand(4, generator=g).tolist()
        target = area * (scale_min + (1 - scale_min) * u[0])
        aspect = math.exp(log_r[0] + (log_r[1] - log_r[0]) * u[1])
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            left = int(u[2] * (width - w + 1))
            top = int(u[3] * (height - h + 1))
            return left, top, left + w, top + h
    side = min(width, height)  # fallback: the central square
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return ((seed * 1_000_003 + epoch) * 1_000_003 + index) % (2 ** 62)


class IALImageDataset(Dataset):
    """One split as tensors. ``ds[(i, seed)]`` gives a training sample, ``ds[i]`` an eval sample."""

    def __init__(self, ial: IALDataset, split: str, candidates: CandidateSet, *,
                 preprocess_cfg: dict, train: bool, tokenizer=None, augment: bool = True,
                 crop_scale_min: float = 0.8, caption_address: str = "address",
                 limit: int | None = None, origin: tuple[float, float] | None = None):
        rows = ial.split(split)
        if limit is not None:
            rows = rows.select(range(min(limit, len(rows))))
        self.split = split
        self.source = f"{ial.root} [{split}]"
        self.labels = candidates.labels(ial, split)[:len(rows)]
        self.ids = list(rows["id"])
        self.paths = [str(ial.image_path(p, row=rid)) for p, rid in zip(rows["image"], self.ids)]
        east = np.asarray(rows["utm_easting"], dtype=np.float64)
        north = np.asarray(rows["utm_northing"], dtype=np.float64)
        self.utm = np.stack([east, north], axis=1)
        self.origin = origin if origin is not None else (float(east.min()), float(north.min()))
        self.coords = (self.utm - np.asarray(self.origin)).astype(np.float32)
        self.districts = list(rows["district"])
        self.tokenizer = tokenizer
        self.captions = None
        if tokenizer is not None:
            self.captions = [f"{c.rstrip(' .')}, {a}"
                             for c, a in zip(rows["caption"], rows[caption_address])]
        self.train = train
        self.augment = augment
        self.crop_scale_min = crop_scale_min
        size = preprocess_cfg["size"]
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.mean, self.std = tuple(preprocess_cfg["mean"]), tuple(preprocess_cfg["std"])
        self.eval_transform = None if train else image_transform_v2(
            PreprocessCfg(**preprocess_cfg), is_train=False)

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, i: int) -> Image.Image:
        """The image as RGB; a file that does not decode is a DataError naming the dataset, split,
        image id and path, so that even from inside a DataLoader worker the bad file is known."""
        return open_rgb(self.paths[i], source=self.source, row=self.ids[i])

    def __getitem__(self, key):
        i, seed = key if isinstance(key, tuple) else (key, None)
        img = self._load(i)
        if self.train:
            w, h = img.size
            if self.augment and seed is not None:
                box = random_crop_box(w, h, seed, self.crop_scale_min)
            else:
                side = min(w, h)
                box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
            img = img.resize((self.size[1], self.size[0]), Image.Resampling.BICUBIC, box=box)
            pixels = _to_tensor(img, self.mean, self.std)
        else:
            pixels = self.eval_transform(img)
        out = {"image": pixels, "label": torch.tensor(self.labels[i]),
               "coords": torch.from_numpy(self.coords[i]), "index": torch.tensor(i)}
        if self.captions is not None:
            out["caption_tokens"] = self.tokenizer([self.captions[i]])[0]
        return out


class EpochBatchSampler(Sampler):
    """Deterministic per-epoch shuffled batches of ``(index, augmentation_seed)`` for one rank."""

    def __init__(self, n: int, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0
        if self.batches_per_epoch == 0:
            raise DataError(f"{n} training images cannot fill one batch of {batch_size} x "
                            f"{world_size} processes; lower --batch-size")

    @property
    def batches_per_epoch(self) -> int:
        return self.n // (self.batch_size * self.world_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start = epoch, start_batch

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        gb = self.batch_size * self.world_size
        for b in range(self.start, self.batches_per_epoch):
            lo = b * gb + self.rank * self.batch_size
            yield [(i, sample_seed(self.seed, self.epoch, i)) for i in perm[lo:lo + self.batch_size]]


def train_loader(ds: IALImageDataset, sampler: EpochBatchSampler, workers: int,
                 pin_memory: bool) -> DataLoader:
    return DataLoader(ds, batch_sampler=sampler, num_workers=workers, pin_memory=pin_memory,
                      persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None)


def eval_loader(ds: IALImageDataset, batch_size: int, workers: int, pin_memory: bool) -> DataLoader:
    return DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers,
                      pin_memory=pin_memory, prefetch_factor=4 if workers > 0 else None)
