"""Where was this photo taken? ``AddressPredictor`` and ``python -m addressclip.predict``.

```python
from addressclip.predict import AddressPredictor
p = AddressPredictor.from_pretrained("runs/helsinki/addressclip")   # a stage-one run, or
p = AddressPredictor.from_pretrained("runs/helsinki/addressclip/hf_full")  # export --full
[pred] = p.predict(["photo.jpg"], top_k=5)
pred.unknown, pred.candidates[0].address, pred.candidates[0].lat, pred.candidates[0].probability
```

- **Ranking** is ``addressclip.evaluate``'s: cosine similarity of the normalised image embedding to
  every candidate address's text embedding (candidates encoded once, in ``addresses.json`` order).
- **Probabilities** are ``softmax(logit_scale * cosine / T)`` with the temperature ``T`` and the
  open-set threshold stored beside the model in ``calibration.json`` (``python -m
  addressclip.calibrate``, see :mod:`addressclip.calibration`); without that file ``T = 1`` and
  nothing is called unknown (a warning says so).
- **Unknown**: when ``calibration.json`` names an open-set score (:mod:`addressclip.open_set`, by
  default the Mahalanobis distance to the nearest training class mean), a photo is unknown when
  that score is below its validation threshold; its tensors are read from
  ``open_set.safetensors`` and checked against the model (a file from another model is an error).
  An older ``calibration.json`` without one keeps the rule "top probability below ``threshold``".
  A group of n views is scored on the plain mean of its normalised view embeddings, against the
  threshold fitted on the validation split's groups of n views (``grouped_thresholds``).
- **Location** of a candidate: the point of its sub-street geometry (``geometry_wkt``, in the
  dataset's UTM CRS) nearest the geometry's centroid, in WGS 84; data without geometry (released
  annotation sets) fall back to the mean position of the dataset's images of that address.
- **Several views** of one place (``group_by``, one key per image): their normalised embeddings
  are averaged and renormalised, one prediction per group, in order of first appearance.
- **CLI**: ``python -m addressclip.predict --model PATH IMAGES_OR_DIR ... [--top-k 5]
  [--out preds.csv|preds.geojson|preds.jsonl]``. Folders are searched recursively for image
  files. A file that does not decode is reported (stderr and the output, with its reason) and the
  rest goes on; the exit status is 1 when any file failed, 0 otherwise.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from addressclip.calibration import Calibration
from addressclip.open_set import load_open_set
from ial_core.config import option, parse_config, usage_error
from ial_core.errors import DataError
from ial_core.files import write_text
from ial_core.images import open_rgb
from ial_core.images import to_rgb as pil_to_rgb

log = logging.getLogger("addressclip.predict")

FULL_EXPORT_FILE = "addressclip_full_export.json"   # marks a folder written by ``export --full``
CANDIDATE_LABELS_FILE = "candidate_addresses.json"  # the labels, in class order, for the HF pipeline
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


@dataclass(frozen=True)
class Candidate:
    """One candidate address (a sub-street) and its representative point."""

    address: str
    street: str
    cross_street: str
    sub_street: str
    district: str
    city: str
    lat: float | None
    lon: float | None


@dataclass(frozen=True)
class Ranking:
    """A place in a ranking and its probability."""

    rank: int
    probability: float


@dataclass(frozen=True)
class RankedAddress(Candidate, Ranking):
    """A candidate at its rank. Dataclass fields follow the reversed method resolution order, so
    the fields are ``rank, probability`` and then :class:`Candidate`'s, in that order
    (``RankedAddress(1, 0.8, address, street, ...)``)."""


@dataclass
class Prediction:
    """Ranked candidates for one image (or one group of views); ``unknown`` below the threshold."""

    candidates: list[RankedAddress]
    unknown: bool
    top_probability: float
    group: object = None
    n_views: int = 1
    open_set_score: float | None = None      # the calibration's open-set score, when it names one
    open_set_threshold: float | None = None  # ... and the threshold it was held to
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {"unknown": self.unknown, "top_probability": self.top_probability,
               "candidates": [asdict(c) for c in self.candidates], **self.extra}
        if self.open_set_score is not None:
            out["open_set_score"], out["open_set_threshold"] = self.open_set_score, self.open_set_threshold
        if self.group is not None:
            out["group"], out["n_views"] = self.group, self.n_views
        return out


# ---- candidates ----------------------------------------------------------------------------------

def load_candidates(addresses: dict, *, source: str | Path = "addresses.json",
                    fallback_lonlat: dict[str, tuple[float, float]] | None = None) -> list[Candidate]:
    """Candidates of an ``addresses.json`` document, deduplicated by canonical address in file order
    (the class order of :class:`addressclip.data.CandidateSet`), with their WGS 84 points."""
    import shapely
    from pyproj import Transformer

    records, seen = [], set()
    for i, rec in enumerate(addresses.get("sub_streets") or []):
        for key in ("address", "street", "district"):
            if not isinstance(rec.get(key), str) or not rec[key]:
                raise DataError(f"sub-street record {i} has no {key!r}", path=source, row=i)
        if rec["address"] not in seen:
            seen.add(rec["address"])
            records.append(rec)
    if not records:
        raise DataError("no sub-streets (candidate addresses) listed", path=source)
    city = addresses.get("city", "")
    lat = np.full(len(records), np.nan)
    lon = np.full(len(records), np.nan)
    has_geom = np.array([bool(r.get("geometry_wkt")) for r in records])
    if has_geom.any():
        if not addresses.get("crs"):
            raise DataError("sub-streets have geometry_wkt but the file names no 'crs'", path=source)
        wkts = [r["geometry_wkt"] for r, g in zip(records, has_geom) if g]
        try:
            geoms = shapely.from_wkt(wkts)
        except shapely.errors.GEOSException as exc:
            raise DataError(f"unreadable geometry_wkt ({exc})", path=source) from exc
        nearest = shapely.get_coordinates(shapely.get_point(
            shapely.shortest_line(geoms, shapely.centroid(geoms)), 0))
        to_wgs84 = Transformer.from_crs(addresses["crs"], "EPSG:4326", always_xy=True)
        lon[has_geom], lat[has_geom] = to_wgs84.transform(nearest[:, 0], nearest[:, 1])
    for j, rec in enumerate(records):
        if not has_geom[j] and fallback_lonlat and rec["address"] in fallback_lonlat:
            lon[j], lat[j] = fallback_lonlat[rec["address"]]
    fin = lambda x: float(x) if np.isfinite(x) else None  # noqa: E731
    return [Candidate(address=r["address"], street=r["street"],
                      cross_street=r.get("cross_street") or "", sub_street=r.get("sub_street") or "",
                      district=r["district"], city=r.get("city") or city, lat=fin(la), lon=fin(lo))
            for r, la, lo in zip(records, lat, lon)]


def _image_lonlat_by_address(ial) -> dict[str, tuple[float, float]]:
    """Mean (lon, lat) of every split's images per canonical address (fallback without geometry)."""
    sums: dict[str, np.ndarray] = {}
    for split in ial.splits.values():
        if len(split) == 0:
            continue
        addr = np.asarray(split["address"])
        lonlat = np.stack([np.asarray(split["lon"], float), np.asarray(split["lat"], float)], 1)
        keys, inv = np.unique(addr, return_inverse=True)
        acc = np.zeros((len(keys), 3))
        np.add.at(acc, inv, np.concatenate([lonlat, np.ones((len(addr), 1))], 1))
        for k, a in zip(keys, acc):
            sums[str(k)] = sums.get(str(k), np.zeros(3)) + a
    return {k: (v[0] / v[2], v[1] / v[2]) for k, v in sums.items()}


# ---- model backends: one for open_clip checkpoints, one for the HF CLIPModel export ---------------

class _OpenClipBackend:
    """A stage-one checkpoint, encoded exactly as ``addressclip.evaluate`` does."""

    def __init__(self, clip, preprocess_cfg: dict, tokenizer, device):
        from open_clip.transform import PreprocessCfg, image_transform_v2

        from addressclip.model import AddressCLIP
        self.model = AddressCLIP(clip).to(device).eval()
        self.transform = image_transform_v2(PreprocessCfg(**preprocess_cfg), is_train=False)
        self.tokenizer, self.device = tokenizer, device
        self.logit_scale = float(clip.logit_scale.detach().exp())

    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.transform(im) for im in images])

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels.to(self.device)).float()

    @torch.no_grad()
    def encode_texts(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        return torch.cat([self.model.encode_text(self.tokenizer(texts[i:i + batch_size])
                                                 .to(self.device)).float()
                          for i in range(0, len(texts), batch_size)])


class _HFBackend:
    """The ``export --full`` folder through stock ``CLIPModel``, its image processor and tokenizer."""

    def __init__(self, directory: Path, device):
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel
        self.model = CLIPModel.from_pretrained(directory, use_safetensors=True).to(device).eval()
        self.image_processor = AutoImageProcessor.from_pretrained(directory, backend="pil",
                                                                   trust_remote_code=False)  # exact pixels
        self.tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
        self.device = device
        self.logit_scale = float(self.model.logit_scale.detach().exp())

    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.image_processor(images=list(images), return_tensors="pt")["pixel_values"]

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model.get_image_features(pixel_values=pixels.to(self.device))
        out = getattr(out, "pooler_output", out)
        return torch.nn.functional.normalize(out.float(), dim=-1)

    @torch.no_grad()
    def encode_texts(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        feats = []
        for i in range(0, len(texts), batch_size):
            tok = self.tokenizer(texts[i:i + batch_size], padding=True, return_tensors="pt")
            out = self.model.get_text_features(**tok.to(self.device))
            feats.append(torch.nn.functional.normalize(
                getattr(out, "pooler_output", out).float(), dim=-1))
        return torch.cat(feats)


# ---- the predictor -------------------------------------------------------------------------------

def to_rgb(image) -> Image.Image:
    """A path (decoded fully by :func:`ial_core.images.open_rgb`, DataError naming it) or a PIL
    image (converted to 8-bit RGB as in training)."""
    if isinstance(image, Image.Image):
        return pil_to_rgb(image)
    if isinstance(image, (str, os.PathLike)):
        return open_rgb(image)
    raise TypeError(f"expected an image path or a PIL image, got {type(image).__name__}")


def group_mean(embeddings: torch.Tensor, keys: Sequence, *, normalize: bool = True
               ) -> tuple[list, torch.Tensor, np.ndarray]:
    """Unique keys (first-appearance order), their renormalised (``normalize=False``: plain) mean
    embeddings and view counts."""
    if len(keys) != embeddings.shape[0]:
        raise ValueError(f"group_by has {len(keys)} keys for {embeddings.shape[0]} images")
    order: dict = {}
    index = torch.tensor([order.setdefault(k, len(order)) for k in keys], dtype=torch.long)
    sums = torch.zeros(len(order), embeddings.shape[1], dtype=embeddings.dtype)
    sums.index_add_(0, index, embeddings.cpu())
    counts = np.bincount(index.numpy(), minlength=len(order))
    if not normalize:
        return list(order), sums / torch.from_numpy(counts).to(sums.dtype)[:, None], counts
    return list(order), torch.nn.functional.normalize(sums, dim=-1), counts


class AddressPredictor:
    """Ranked, calibrated addresses for photos from a stage-one run or a full export."""

    def __init__(self, backend, candidates: list[Candidate], calibration: Calibration | None = None,
                 *, source: str = "", addresses: dict | None = None,
                 open_set: torch.nn.Module | None = None):
        self.backend = backend
        self.open_set = open_set  # scores embeddings, higher = more like the trained city
        self.candidates = candidates
        self.calibration = calibration or Calibration()
        self.calibrated = calibration is not None
        self.source = source
        self.addresses = addresses or {}
        self._text: torch.Tensor | None = None

    # -- loading --
    @classmethod
    def from_pretrained(cls, path: str | Path, *, checkpoint: str = "latest", data: str | Path | None = None,
                        device: str = "cpu", calibration: bool = True) -> AddressPredictor:
        """``path``: a run directory of ``addressclip.train`` (its dataset's ``addresses.json`` gives
        the candidates; ``data`` overrides it) or a folder of ``addressclip.export --full``."""
        path = Path(path)
        dev = torch.device(device)
        if (path / FULL_EXPORT_FILE).is_file():
            addresses = _read_json(path / "addresses.json")
            candidates = load_candidates(addresses, source=path / "addresses.json",
                                         fallback_lonlat=_fallback_from_export(path))
            backend = _HFBackend(path, dev)
            cal_dir = path
        elif (path / "config.yaml").is_file():
            import open_clip

            from addressclip import checkpoint as ckpt
            from addressclip.config import load_run_config
            from addressclip.model import load_clip_dir
            from data_gen.dataset import load_dataset_dir
            cfg = load_run_config(path)
            ial = load_dataset_dir(data or cfg.dataset_root)
            addresses = ial.addresses
            candidates = load_candidates(addresses, source=ial.root / "addresses.json",
                                         fallback_lonlat=_image_lonlat_by_address(ial))
            clip, mcfg = load_clip_dir(ckpt.resolve_checkpoint(path, checkpoint), device=dev)
            backend = _OpenClipBackend(clip, mcfg["preprocess_cfg"],
                                       open_clip.get_tokenizer(cfg.model.model), dev)
            cal_dir = path
        else:
            raise FileNotFoundError(f"{path}: neither a stage-one run (config.yaml) nor a folder of "
                                    f"`addressclip.export --full` ({FULL_EXPORT_FILE})")
        cal = Calibration.load(cal_dir) if calibration else None
        if calibration and cal is None:
            log.warning("%s: no calibration.json; probabilities are uncalibrated (T=1) and no photo is "
                        "called unknown. Run `python -m addressclip.calibrate --run RUN`.", cal_dir)
        predictor = cls(backend, candidates, cal, source=str(path), addresses=addresses)
        if cal is not None and cal.open_set:
            predictor.open_set = load_open_set(cal_dir, lambda im: predictor.embed([im]),
                                               expected_name=cal.open_set["score"])
        return predictor

    # -- embeddings --
    @property
    def text_features(self) -> torch.Tensor:
        if self._text is None:
            self._text = self.backend.encode_texts([c.address for c in self.candidates]).cpu()
        return self._text

    def embed(self, images: Iterable, batch_size: int = 64) -> torch.Tensor:
        """Normalised image embeddings [N, D] of paths or PIL images (decoded per batch)."""
        images = list(images)
        out = [self.backend.encode_images(self.backend.pixels([to_rgb(im) for im in images[i:i + batch_size]])).cpu()
               for i in range(0, len(images), batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.text_features.shape[1])

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Uncalibrated logits [N, C]: ``logit_scale * cosine``, the model's own softmax input."""
        return self.backend.logit_scale * (embeddings.float() @ self.text_features.t())

    def probabilities(self, embeddings: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(embeddings) / self.calibration.temperature, dim=1)

    # -- predictions --
    def open_set_scores(self, embeddings: torch.Tensor, n_views: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray] | None:
        """(score, threshold) per row from the calibration's open-set score, None without one;
        ``n_views`` [N] gives the views averaged into each row: a mean of n > 1 views is held to the
        threshold fitted for n (for more views than calibrated, to the largest n's)."""
        if self.open_set is None:
            return None
        score = self.open_set(embeddings.float()).numpy()
        cfg = self.calibration.open_set
        by_size = {int(k): float(v) for k, v in cfg.get("grouped_thresholds", {}).items()}
        table = np.full(max(by_size, default=1) + 1, float(cfg["threshold"]))
        for n in sorted(by_size):
            table[n:] = by_size[n]
        n = np.ones(len(score), dtype=np.int64) if n_views is None else np.asarray(n_views, dtype=np.int64)
        return score, table[np.minimum(n, len(table) - 1)]

    def rank(self, embeddings: torch.Tensor, top_k: int = 5, *, scored: torch.Tensor | None = None,
             n_views: np.ndarray | None = None) -> list[Prediction]:
        """Predictions of rows of normalised ``embeddings``; the open-set score is taken of
        ``scored`` (default: the same rows; for groups, the plain means of their views)."""
        probs = self.probabilities(embeddings)
        k = max(1, min(top_k, probs.shape[1]))
        top_p, top_i = probs.topk(k, dim=1)
        top_p, top_i = top_p.numpy(), top_i.numpy()
        open_set = self.open_set_scores(embeddings if scored is None else scored, n_views)
        if open_set is None:
            unknown = top_p[:, 0] < self.calibration.threshold
            score = thr = [None] * len(top_p)
        else:
            score, thr = open_set
            unknown = score < thr
        preds = []
        for j, (p_row, i_row) in enumerate(zip(top_p, top_i)):
            cands = [RankedAddress(rank=r + 1, probability=float(p), **asdict(self.candidates[i]))
                     for r, (p, i) in enumerate(zip(p_row, i_row))]
            preds.append(Prediction(cands, unknown=bool(unknown[j]), top_probability=float(p_row[0]),
                                    open_set_score=None if score[j] is None else float(score[j]),
                                    open_set_threshold=None if thr[j] is None else float(thr[j])))
        return preds

    def predict(self, images, top_k: int = 5, *, group_by: Sequence | None = None,
                batch_size: int = 64) -> list[Prediction]:
        """One :class:`Prediction` per image, or per distinct ``group_by`` key (views averaged)."""
        if isinstance(images, (str, os.PathLike, Image.Image)):
            images = [images]
        emb = self.embed(images, batch_size)
        if group_by is None:
            return self.rank(emb, top_k)
        keys, mean, counts = group_mean(emb, list(group_by))
        plain = group_mean(emb, list(group_by), normalize=False)[1] if self.open_set is not None else None
        preds = self.rank(mean, top_k, scored=plain, n_views=counts)
        for p, k, n in zip(preds, keys, counts):
            p.group, p.n_views = k, int(n)
        return preds


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError("missing file", path=path) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"not valid UTF-8 JSON ({exc})", path=path) from exc


def _fallback_from_export(path: Path) -> dict[str, tuple[float, float]] | None:
    meta = _read_json(path / FULL_EXPORT_FILE)
    pts = meta.get("candidate_lonlat") or {}
    return {k: (float(v[0]), float(v[1])) for k, v in pts.items()}


# ---- command line ----------------------------------------------------------------------------------

def collect_images(inputs: Sequence[str]) -> list[Path]:
    """Files as given (tried even without an image suffix) and image files under folders, sorted."""
    out = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


CSV_FIELDS = ("image", "rank", "address", "street", "cross_street", "district", "city", "lat", "lon",
              "probability", "unknown", "open_set_score", "error")


def format_results(results: list[tuple[str, Prediction | str]], fmt: str) -> str:
    """``results``: (image, Prediction or error message) in input order, as csv, jsonl or geojson."""
    if fmt == "jsonl":
        return "".join(json.dumps({"image": img, **(r.to_dict() if isinstance(r, Prediction)
                                                   else {"error": r})}, ensure_ascii=False) + "\n"
                       for img, r in results)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for img, r in results:
            if isinstance(r, str):
                w.writerow({"image": img, "error": r})
                continue
            score = "" if r.open_set_score is None else f"{r.open_set_score:.6g}"
            for c in r.candidates:
                w.writerow({"image": img, **asdict(c), "probability": f"{c.probability:.6f}",
                            "unknown": int(r.unknown), "open_set_score": score, "error": ""})
        return buf.getvalue()
    if fmt == "geojson":
        feats = []
        for img, r in results:
            if isinstance(r, str):
                feats.append({"type": "Feature", "geometry": None, "properties": {"image": img, "error": r}})
                continue
            top = r.candidates[0]
            geom = ({"type": "Point", "coordinates": [top.lon, top.lat]}
                    if top.lat is not None and top.lon is not None else None)
            feats.append({"type": "Feature", "geometry": geom, "properties": {
                "image": img, "address": None if r.unknown else top.address, "unknown": r.unknown,
                "top_probability": r.top_probability, "open_set_score": r.open_set_score,
                "candidates": [asdict(c) for c in r.candidates]}})
        return json.dumps({"type": "FeatureCollection", "features": feats}, ensure_ascii=False, indent=1)
    raise ValueError(f"unknown output format {fmt!r}")


def output_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    fmt = {"csv": "csv", "jsonl": "jsonl", "geojson": "geojson", "json": "geojson"}.get(suffix)
    if fmt is None:
        raise ValueError(f"--out {path}: unknown extension; use .csv, .geojson or .jsonl")
    return fmt


def predict_files(predictor: AddressPredictor, files: Sequence[Path], *, top_k: int = 5,
                  batch_size: int = 64, progress: bool = True) -> list[tuple[str, Prediction | str]]:
    """Per-file results in input order; a file that does not decode becomes its error message."""
    from tqdm.auto import tqdm
    results: list[tuple[str, Prediction | str]] = []
    bar = tqdm(total=len(files), unit="img", disable=not progress, file=sys.stderr)
    for i in range(0, len(files), batch_size):
        chunk = files[i:i + batch_size]
        good, slots = [], []
        for f in chunk:
            try:
                good.append(to_rgb(f))
                slots.append((str(f), None))
            except DataError as exc:
                msg = str(exc)
                tqdm.write(f"error: {f}: {msg}", file=sys.stderr)
                slots.append((str(f), msg))
        preds = iter(predictor.predict(good, top_k, batch_size=batch_size) if good else [])
        results += [(name, err if err is not None else next(preds)) for name, err in slots]
        bar.update(len(chunk))
    bar.close()
    return results


@dataclass
class PredictArgs:
    images: list[str] = option(help="image files or folders of them", metavar="IMAGES_OR_DIR")
    model: str = option(help="stage-one run directory or `export --full` folder")
    top_k: int = option(5, "addresses listed per image")
    out: str | None = option(None, "write predictions to FILE.csv, FILE.geojson or FILE.jsonl")
    batch_size: int = option(64, "images per forward pass")
    checkpoint: str = option("latest", "for a run directory: latest, init, step_N")
    data: str | None = option(None, "for a run directory: dataset folder (default: the run's)")
    device: str = option("cpu", "cpu | cuda | auto")
    progress: bool = option(True, "tqdm progress bar")


def main(argv: list[str] | None = None) -> int:
    prog = "python -m addressclip.predict"
    a = parse_config(PredictArgs, argv, prog=prog, positional=["images"],
                     description="Predict the address of photos with AddressCLIP.")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    fmt = None
    if a.out:
        try:
            fmt = output_format(Path(a.out))
        except ValueError as exc:
            usage_error(prog, str(exc))
    if a.top_k < 1:
        usage_error(prog, "--top-k must be >= 1")
    files = collect_images(a.images)
    if not files:
        usage_error(prog, "no image files found in " + ", ".join(a.images))
    predictor = AddressPredictor.from_pretrained(a.model, checkpoint=a.checkpoint, data=a.data,
                                                 device=a.device)
    results = predict_files(predictor, files, top_k=a.top_k, batch_size=a.batch_size,
                            progress=a.progress)
    n_bad = sum(isinstance(r, str) for _, r in results)
    if a.out:
        write_text(Path(a.out), format_results(results, fmt))
        print(f"wrote {a.out}: {len(results) - n_bad} predictions, {n_bad} unreadable files")
    else:
        for img, r in results:
            if isinstance(r, str):
                print(f"{img}\terror: {r}")
            else:
                top = r.candidates[0]
                label = "unknown (not from this city?)" if r.unknown else top.address
                print(f"{img}\t{label}\tp={r.top_probability:.3f}\t"
                      + " | ".join(f"{c.address} {c.probability:.3f}" for c in r.candidates[1:]))
    return 1 if n_bad else 0


if __name__ == "__main__":
    sys.exit(main())
