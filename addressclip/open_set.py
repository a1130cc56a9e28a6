"""Open-set scores: how much a photo looks like the trained city, higher = more in-city.

Why: the predictor must say "unknown" for a photo from elsewhere. The calibrated top probability
does not do it for a small model (another city's photos get confident answers just as often, see
README), so the scores here are measured against each other (``benchmarks/bench_open_set.py``) and
the best one is stored beside the model. Each score is a small torch module, batched and vectorised:

- ``top_probability``, ``max_logit``, ``energy``: from the logits over the candidate addresses
  (``T * logsumexp(logits / T)`` is the negative energy of Liu et al. 2020);
- ``knn_kth@k`` / ``knn_mean@k``: cosine similarity to the k-th nearest / mean over the k nearest
  training photos (Sun et al. 2022; embeddings are normalised, so cosine = dot product);
- ``mahalanobis``: minus the Mahalanobis distance to the nearest training class mean under one
  shared within-class covariance (Lee et al. 2018); ``relative_mahalanobis`` subtracts the distance
  to one class-agnostic Gaussian of all training photos (Ren et al. 2021).

A fitted score is saved as ``open_set.safetensors`` (tensors only, no pickle) with a *probe*: the
model's embedding of a fixed synthetic image. :func:`load_open_set` re-embeds the probe with the
model it is given and refuses a file made by another model (a stale gallery would score every
photo against the wrong space and abstain at random).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ial_core.files import atomic_file

OPEN_SET_FILE = "open_set.safetensors"
DEFAULT_SCORE = "mahalanobis"  # the best measured on the embedded city (README, bench_open_set)
DEFAULT_RIDGE = 1.0
PROBE_TOL = 2e-3  # max |difference| of the probe's normalised embedding (open_clip vs HF export),
                  # far above their float rounding

CANDIDATE_SCORES = ("top_probability", "max_logit", "energy",
                    "knn_kth@1", "knn_kth@10", "knn_kth@50", "knn_mean@10", "knn_mean@50",
                    "mahalanobis", "relative_mahalanobis")


class OpenSetError(ValueError):
    """An open-set file that does not belong to the model, or is damaged."""


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve of ``positive`` (should score higher) vs ``negative``: the
    Mann-Whitney U statistic over ``n_pos * n_neg``, ties counted half (average ranks)."""
    from scipy.stats import rankdata
    pos, neg = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if pos.size == 0 or neg.size == 0:
        raise ValueError("AUROC needs at least one positive and one negative score")
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[:pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def probe_image(size: int = 96) -> Image.Image:
    """A fixed image (smooth colour ramps and stripes, no RNG) whose embedding fingerprints a model."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size
    rgb = np.stack([x, y, 0.5 + 0.5 * np.sin(12 * x + 7 * y)], axis=-1)
    return Image.fromarray((255 * rgb).round().astype(np.uint8), "RGB")


# ---- scores ----------------------------------------------------------------------------------------

class _Score(torch.nn.Module):
    name = ""

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: v.contiguous() for k, v in self.state_dict().items()}


class LogitScore(_Score):
    """``top_probability``, ``max_logit`` or ``energy`` of ``logit_scale * cosine`` to the candidates."""

    def __init__(self, kind: str, text: torch.Tensor, logit_scale: float, temperature: float = 1.0):
        super().__init__()
        if kind not in ("top_probability", "max_logit", "energy"):
            raise ValueError(f"unknown logit score {kind!r}")
        self.name, self.logit_scale, self.temperature = kind, float(logit_scale), float(temperature)
        self.register_buffer("text", text.float())

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        z = self.logit_scale * emb.float() @ self.text.t() / self.temperature
        if self.name == "top_probability":
            return torch.softmax(z, dim=1).amax(1)
        if self.name == "max_logit":
            return z.amax(1) * self.temperature
        return self.temperature * torch.logsumexp(z, dim=1)


class KNNScore(_Score):
    """Cosine similarity to the k-th nearest (``kth``) or the mean of the k nearest (``mean``)
    training photos; the gallery is scanned in chunks so memory stays ``batch x chunk``."""

    def __init__(self, gallery: torch.Tensor, k: int, reduce: str = "kth", chunk: int = 65536):
        super().__init__()
        if reduce not in ("kth", "mean"):
            raise ValueError(f"reduce must be 'kth' or 'mean', got {reduce!r}")
        if not 1 <= k <= gallery.shape[0]:
            raise ValueError(f"k={k} needs at least k gallery photos, the gallery has {gallery.shape[0]}")
        self.k, self.reduce, self.chunk = int(k), reduce, int(chunk)
        self.name = f"knn_{reduce}@{k}"
        self.register_buffer("gallery", gallery.float())

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        emb = emb.float()
        best = None
        for i in range(0, self.gallery.shape[0], self.chunk):
            sims = emb @ self.gallery[i:i + self.chunk].t()
            cand = sims if best is None else torch.cat([best, sims], dim=1)
            best = cand.topk(min(self.k, cand.shape[1]), dim=1).values
        return best[:, -1] if self.reduce == "kth" else best.mean(1)


class MahalanobisScore(_Score):
    """Minus the squared Mahalanobis distance to the nearest class mean (shared covariance), or,
    ``relative``, minus its excess over the distance to the class-agnostic Gaussian."""

    def __init__(self, means: torch.Tensor, whiten: torch.Tensor, global_mean: torch.Tensor | None = None,
                 global_whiten: torch.Tensor | None = None):
        super().__init__()
        self.relative = global_mean is not None
        self.name = "relative_mahalanobis" if self.relative else "mahalanobis"
        # distances as Euclidean ones after whitening: (x - mu) P (x - mu)^T = |(x - mu) L|^2, P = L L^T
        self.register_buffer("whiten", whiten.float())
        self.register_buffer("means_w", means.float() @ whiten.float())
        if self.relative:
            self.register_buffer("global_whiten", global_whiten.float())
            self.register_buffer("global_mean_w", global_mean.float().reshape(1, -1) @ global_whiten.float())

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        emb = emb.float()
        d = torch.cdist(emb @ self.whiten, self.means_w).square().amin(1)
        if self.relative:
            d = d - (emb @ self.global_whiten - self.global_mean_w).square().sum(1)
        return -d


def _whitening(cov: np.ndarray, ridge: float) -> np.ndarray:
    """``L`` with ``L L^T = (cov + ridge * mean eigenvalue * I)^-1`` (Cholesky of the precision)."""
    d = cov.shape[0]
    cov = cov + ridge * np.trace(cov) / d * np.eye(d)
    return np.linalg.cholesky(np.linalg.inv(cov))


def fit_open_set(name: str, train_emb, train_labels=None, *, text=None, logit_scale: float = 1.0,
                 temperature: float = 1.0, ridge: float = DEFAULT_RIDGE) -> _Score:
    """The score ``name`` (one of :data:`CANDIDATE_SCORES`, or ``knn_kth@K``/``knn_mean@K``) fitted
    on the training photos' normalised embeddings [N, D] and class labels [N]. ``ridge`` shrinks the
    Mahalanobis covariances towards the identity (times their mean eigenvalue): the embeddings
    span few directions, and without shrinkage the near-empty ones dominate the distance."""
    emb = np.asarray(train_emb, np.float64)
    if name in ("top_probability", "max_logit", "energy"):
        if text is None:
            raise ValueError(f"score {name!r} needs the candidates' text embeddings")
        return LogitScore(name, torch.as_tensor(np.asarray(text), dtype=torch.float32), logit_scale,
                          temperature)
    if name.startswith("knn_"):
        reduce, _, k = name[4:].partition("@")
        return KNNScore(torch.as_tensor(emb, dtype=torch.float32), int(k), reduce)
    if name in ("mahalanobis", "relative_mahalanobis"):
        if train_labels is None:
            raise ValueError(f"score {name!r} needs the training photos' class labels")
        labels = np.asarray(train_labels, np.int64)
        if labels.shape != (emb.shape[0],):
            raise ValueError(f"{emb.shape[0]} training embeddings but {labels.shape} labels")
        classes, inv = np.unique(labels, return_inverse=True)
        sums = np.zeros((len(classes), emb.shape[1]))
        np.add.at(sums, inv, emb)
        means = sums / np.bincount(inv)[:, None]
        centred = emb - means[inv]
        whiten = _whitening(centred.T @ centred / len(emb), ridge)
        t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        if name == "mahalanobis":
            return MahalanobisScore(t(means), t(whiten))
        g_mean = emb.mean(0)
        g_whiten = _whitening(np.cov(emb, rowvar=False, bias=True), ridge)
        return MahalanobisScore(t(means), t(whiten), t(g_mean), t(g_whiten))
    raise ValueError(f"unknown open-set score {name!r}; choose from {', '.join(CANDIDATE_SCORES)}")


# ---- storage -----------------------------------------------------------------------------------------

def save_open_set(score: _Score, directory: str | Path, *, probe: torch.Tensor,
                  info: dict | None = None) -> Path:
    """Atomic write of ``DIR/open_set.safetensors``: the score's tensors, the probe embedding, and
    in the metadata the score's name and constructor settings."""
    from safetensors.torch import save_file
    path = Path(directory) / OPEN_SET_FILE
    settings = {"name": score.name}
    if isinstance(score, LogitScore):
        settings |= {"logit_scale": score.logit_scale, "temperature": score.temperature}
    elif isinstance(score, KNNScore):
        settings |= {"k": score.k, "reduce": score.reduce}
    tensors = {f"score.{k}": v.cpu() for k, v in score.tensors().items()}
    tensors["probe"] = probe.detach().float().cpu().reshape(1, -1).contiguous()
    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata={"settings": json.dumps(settings),
                                               "info": json.dumps(info or {})})
    return path


def load_open_set(directory: str | Path, embed_probe=None, *, expected_name: str | None = None) -> _Score:
    """The stored score; ``embed_probe(image) -> [1, D]`` re-embeds :func:`probe_image` with the
    model at hand, and a file whose probe differs (another model) is an :class:`OpenSetError`."""
    from safetensors import SafetensorError, safe_open
    path = Path(directory) / OPEN_SET_FILE
    if not path.is_file():
        raise OpenSetError(f"{path}: missing (calibration.json names an open-set score stored there); "
                           f"rerun `python -m addressclip.calibrate --run RUN`")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        settings = json.loads(meta["settings"])
    except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as exc:
        raise OpenSetError(f"{path}: not a readable open-set file ({type(exc).__name__}: {exc})") from exc
    name = settings.get("name")
    if expected_name is not None and name != expected_name:
        raise OpenSetError(f"{path}: holds score {name!r} but calibration.json names {expected_name!r}")
    if "probe" not in tensors:
        raise OpenSetError(f"{path}: no 'probe' tensor")
    if embed_probe is not None:
        now = embed_probe(probe_image()).detach().float().cpu().reshape(1, -1)
        stored = tensors["probe"]
        if now.shape != stored.shape:
            raise OpenSetError(f"{path}: made for {stored.shape[1]}-d embeddings, this model has "
                               f"{now.shape[1]}; rerun `python -m addressclip.calibrate`")
        diff = float((now - stored).abs().max())
        if not math.isfinite(diff) or diff > PROBE_TOL:
            raise OpenSetError(f"{path}: computed with another model (probe embedding differs by "
                               f"{diff:.3g} > {PROBE_TOL}): stale; rerun `python -m addressclip.calibrate`")
    t = {k[len("score."):]: v for k, v in tensors.items() if k.startswith("score.")}
    try:
        if name in ("top_probability", "max_logit", "energy"):
            score = LogitScore(name, t["text"], settings["logit_scale"], settings["temperature"])
        elif name and name.startswith("knn_"):
            score = KNNScore(t["gallery"], int(settings["k"]), settings["reduce"])
        elif name == "mahalanobis":
            score = MahalanobisScore(torch.zeros_like(t["means_w"]), t["whiten"])
        elif name == "relative_mahalanobis":
            score = MahalanobisScore(torch.zeros_like(t["means_w"]), t["whiten"],
                                     torch.zeros(t["whiten"].shape[0]), t["global_whiten"])
        else:
            raise OpenSetError(f"{path}: unknown score {name!r}")
        score.load_state_dict(t, strict=True)
    except (KeyError, RuntimeError) as exc:
        raise OpenSetError(f"{path}: tensors do not fit score {name!r} ({exc})") from exc
    return score.eval()
