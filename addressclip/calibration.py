"""Confidence for address predictions: temperature scaling, calibration error and the open-set threshold.

Why: a CLIP model's softmax over candidate addresses is not a probability one can act on (a
contrastively trained ``logit_scale`` makes it over- or under-confident), and a photo from another
city still gets *some* top address. Decisions:

- **Temperature** (Guo et al. 2017): one scalar ``T`` dividing the model's logits
  (``logit_scale * cosine``), fitted on the validation split by minimising the negative
  log-likelihood of the true address (bounded 1-D search over ``log T``); it changes the
  probabilities, never the ranking.
- **ECE**: expected calibration error of the top-1 probability in ``bins`` equal-width bins,
  ``sum_b |acc_b - conf_b| * n_b / n`` (in [0, 1]).
- **Open set**: "unknown" when the calibrated top probability is below ``threshold``. The threshold
  is chosen on validation (trained-city photos only, as a user has no photos of "elsewhere"): the
  ``1 - accept_rate`` quantile of the validation top probabilities, so that ``accept_rate`` of
  in-city photos are answered. How well it rejects other cities is measured, not assumed.
  A calibration may name a better open-set score (``open_set``: its name, the threshold on it for
  one photo and for each size of a group of views, its tensors in ``open_set.safetensors``, see
  :mod:`addressclip.open_set`); it then decides "unknown" instead of the top probability. A file
  without ``open_set`` (written before it existed) keeps the top-probability rule.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ial_core.files import write_text

CALIBRATION_FILE = "calibration.json"
DEFAULT_ACCEPT_RATE = 0.9


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / T)``."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    m = z.max(axis=1, keepdims=True)
    log_z = (m[:, 0] + np.log(np.exp(z - m).sum(axis=1)))
    return float((log_z - z[np.arange(len(labels)), labels]).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *, bounds=(0.02, 50.0)) -> float:
    """The ``T`` minimising validation NLL (``logits`` [N, C], ``labels`` [N] class indices)."""
    from scipy.optimize import minimize_scalar
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        raise ValueError("cannot fit a temperature on zero images")
    res = minimize_scalar(lambda log_t: nll(logits, labels, math.exp(log_t)),
                          bounds=(math.log(bounds[0]), math.log(bounds[1])), method="bounded",
                          options={"xatol": 1e-4})
    return float(math.exp(res.x))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE of top-1 ``confidence`` [N] against ``correct`` [N] (bool), equal-width bins."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if confidence.size == 0:
        return 0.0
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    conf_sum = np.bincount(which, weights=confidence, minlength=bins)
    acc_sum = np.bincount(which, weights=correct, minlength=bins)
    return float(np.abs(acc_sum - conf_sum).sum() / confidence.size)


def choose_threshold(top_probability: np.ndarray, accept_rate: float = DEFAULT_ACCEPT_RATE) -> float:
    """The top-probability threshold that answers ``accept_rate`` of the (in-city) validation images."""
    if not 0.0 < accept_rate <= 1.0:
        raise ValueError(f"accept_rate must be in (0, 1], got {accept_rate}")
    if accept_rate == 1.0:
        return 0.0
    return float(np.quantile(np.asarray(top_probability, dtype=np.float64), 1.0 - accept_rate))


@dataclass
class Calibration:
    """What the predictor stores beside the model: ``probabilities = softmax(logits / temperature)``,
    "unknown" below ``threshold``; ``report`` keeps how they were chosen and measured."""

    temperature: float = 1.0
    threshold: float = 0.0
    accept_rate: float = DEFAULT_ACCEPT_RATE
    fitted_on: str = ""
    report: dict = field(default_factory=dict)
    open_set: dict = field(default_factory=dict)   # {} = unknown when top probability < threshold

    @property
    def open_set_score(self) -> str:
        """The score that decides "unknown"."""
        return self.open_set.get("score", "top_probability")

    def save(self, directory: str | Path) -> Path:
        """Atomic write of ``DIR/calibration.json``."""
        path = Path(directory) / CALIBRATION_FILE
        write_text(path, json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Calibration | None:
        """The stored calibration, None when the folder has none; a damaged file is an error."""
        path = Path(directory) / CALIBRATION_FILE
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a JSON object")
        for key in ("temperature", "threshold"):
            value = raw.get(key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"{path}: field {key!r} must be a finite number, got {value!r}")
        if raw["temperature"] <= 0:
            raise ValueError(f"{path}: field 'temperature' must be > 0, got {raw['temperature']}")
        if not 0.0 <= raw["threshold"] <= 1.0:
            raise ValueError(f"{path}: field 'threshold' must be a probability, got {raw['threshold']}")
        open_set = raw.get("open_set", {})
        if not isinstance(open_set, dict):
            raise ValueError(f"{path}: field 'open_set' must be an object, got {open_set!r}")
        if open_set:
            if not isinstance(open_set.get("score"), str) or not open_set["score"]:
                raise ValueError(f"{path}: field 'open_set.score' must name a score, got "
                                 f"{open_set.get('score')!r}")
            grouped = open_set.get("grouped_thresholds", {})
            if not isinstance(grouped, dict) or not all(k.isdigit() and int(k) >= 2 for k in grouped):
                raise ValueError(f"{path}: field 'open_set.grouped_thresholds' must map group sizes "
                                 f"(\"2\", \"3\", ...) to thresholds, got {grouped!r}")
            for key, value in [("threshold", open_set.get("threshold"))] + [
                    (f"grouped_thresholds.{k}", v) for k, v in grouped.items()]:
                if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                    raise ValueError(f"{path}: field 'open_set.{key}' must be a finite number, got {value!r}")
        known = {k: raw[k] for k in ("temperature", "threshold", "accept_rate", "fitted_on", "report")
                 if k in raw}
        return cls(**known, open_set=open_set)
