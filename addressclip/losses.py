"""AddressCLIP's three losses, each a small function, and the weighted sum over the global batch.

Decisions on what the paper leaves open (each is tested in ``tests/test_addressclip_losses.py``):

- **Contrastive form.** Symmetric InfoNCE (CLIP): logits = s * I T^T with L2-normalised features and
  the model's own learned temperature s = exp(logit_scale), clamped to 100 as in CLIP; the loss is the
  mean of the image->text and text->image cross entropies. Both contrastive losses share s.
- **Duplicate addresses in a batch.** Many images of a batch share an address (each sub-street is
  photographed from many places). The loss keeps CLIP's per-image N x N form with ``arange``
  labels, one address text per image. This needs no special handling: identical texts have
  identical embeddings, so a duplicate
  column has exactly the positive's logit, and the loss (value and gradient) equals the multi-positive
  form in which every same-address text is a positive with an equal share of the target (tested). Its
  floor is log(copies) instead of 0, a constant. The text tower encodes each distinct address of the
  batch once and the features are spread to the images (``AddressCLIP.forward``).
- **Caption text** is "caption, address" (see ``addressclip.data``).
- **Geography matching, sign.** The printed equation subtracts a pairwise *cosine similarity* matrix
  from a pairwise *distance* matrix; minimising it would make near images dissimilar. We compare
  distance with distance: D_V = 1 - cos(v_i, v_j) (range [0, 2]) against D_U = pairwise L1 (Manhattan)
  UTM distance divided by its maximum in the (global) batch (range [0, 1]). Scaling by the maximum
  pairwise distance is one isotropic "min-max" normalisation: it keeps the shape of the point cloud
  (per-axis min-max would stretch a long thin batch) and maps the farthest pair to 1 (orthogonal
  features). If every image of a batch has the same position D_U is all zero.
- **Reduction.** The mean over all N x N entries, as printed (the zero diagonal included).
- **Weights.** alpha * L_address + beta * L_caption + gamma * L_geography, defaults 1, 0.2, 0.8; a
  weight of 0 switches a loss off and its inputs are not even computed by the training step. Each
  term is declared once in :data:`LOSS_TERMS` (name, weight field, paper weight, the batch input it
  needs); the trainer and the ablation read that list.
- **Several processes.** Features are all-gathered *with gradient* (:func:`gather_with_grad`), so
  negatives and the geography matrix span the global batch; each rank computes the same global loss,
  and the backward of the gather sums every rank's gradient into the local features. DDP's gradient
  averaging then yields exactly the single-process gradient of the global batch (tested with 2 gloo
  processes). Gradient accumulation does not widen the contrastive batch: each micro-batch is its
  own contrastive problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from addressclip import distributed


def contrastive_loss(image_features: torch.Tensor, text_features: torch.Tensor,
                     logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE between L2-normalised image and text features of the same N samples."""
    logits = logit_scale * image_features @ text_features.t()
    labels = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def image_address_loss(image_features, address_features, logit_scale) -> torch.Tensor:
    """L_address: images against their address texts (one row of ``address_features`` per image)."""
    return contrastive_loss(image_features, address_features, logit_scale)


def image_caption_loss(image_features, caption_features, logit_scale) -> torch.Tensor:
    """L_caption: images against their "caption, address" texts."""
    return contrastive_loss(image_features, caption_features, logit_scale)


def geography_matrix(coords: torch.Tensor) -> torch.Tensor:
    """D_U: pairwise L1 distances of UTM positions [N, 2], divided by the batch maximum (in [0, 1])."""
    coords = coords.to(torch.float64)
    dist = (coords[:, None, :] - coords[None, :, :]).abs().sum(-1)
    return (dist / dist.max().clamp_min(1e-12)).to(torch.float32)


def feature_distance_matrix(image_features: torch.Tensor) -> torch.Tensor:
    """D_V: pairwise cosine distances 1 - cos of L2-normalised features [N, D] (in [0, 2])."""
    return 1.0 - image_features @ image_features.t()


def image_geography_loss(image_features: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """L_geography: mean over all N x N entries of (D_V - D_U)^2."""
    d_u = geography_matrix(coords).to(image_features.dtype)
    return (feature_distance_matrix(image_features) - d_u).pow(2).mean()


# The batch inputs a loss term can need; the training step prepares only those of the active terms.
ADDRESS_TOKENS = "address"      # the tokens of each image's address (text tower, one per distinct address)
CAPTION_TOKENS = "caption"      # the tokens of each image's "caption, address" text
COORDS = "coords"               # each image's UTM position


@dataclass(frozen=True)
class LossTerm:
    """One term of the weighted sum: ``weight * compute(image_features, input, logit_scale)``."""
    name: str                   # key of the loss dict and of the ablation's rows
    weight_field: str           # its weight in LossWeights / LossConfig
    paper_weight: float
    input: str                  # ADDRESS_TOKENS, CAPTION_TOKENS or COORDS
    compute: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    gather_grad: bool = True    # all-gather the input with gradient (features) or without (positions)


LOSS_TERMS: tuple[LossTerm, ...] = (
    LossTerm("address", "alpha", 1.0, ADDRESS_TOKENS, image_address_loss),
    LossTerm("caption", "beta", 0.2, CAPTION_TOKENS, image_caption_loss),
    LossTerm("geography", "gamma", 0.8, COORDS,
             lambda image, coords, logit_scale: image_geography_loss(image, coords), gather_grad=False),
)
PAPER_WEIGHTS: dict[str, float] = {t.weight_field: t.paper_weight for t in LOSS_TERMS}


@dataclass
class LossWeights:
    alpha: float = PAPER_WEIGHTS["alpha"]
    beta: float = PAPER_WEIGHTS["beta"]
    gamma: float = PAPER_WEIGHTS["gamma"]

    def active(self) -> list[LossTerm]:
        """The terms with a weight above 0, in the order they are summed."""
        return [t for t in LOSS_TERMS if getattr(self, t.weight_field) > 0]

    def inputs(self) -> set[str]:
        """The batch inputs the active terms need."""
        return {t.input for t in self.active()}


class AddressCLIPLoss(nn.Module):
    """alpha * L_address + beta * L_caption + gamma * L_geography over the global batch.

    ``forward`` takes this rank's normalised features and UTM positions, gathers them from every rank
    (features with gradient, positions without), and returns a dict with ``total`` and each active
    component.
    """

    def __init__(self, weights: LossWeights, world_size: int = 1):
        super().__init__()
        self.weights = weights
        self.world_size = world_size

    def _gather(self, t: torch.Tensor | None, grad: bool) -> torch.Tensor | None:
        if t is None or self.world_size == 1:
            return t
        return distributed.gather_with_grad(t) if grad else distributed.gather_nograd(t)

    def forward(self, image: torch.Tensor, logit_scale: torch.Tensor, *,
                address: torch.Tensor | None = None, caption: torch.Tensor | None = None,
                coords: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        given = {ADDRESS_TOKENS: address, CAPTION_TOKENS: caption, COORDS: coords}
        image = self._gather(image, grad=True)
        out: dict[str, torch.Tensor] = {}
        total = image.new_zeros(())
        for term in self.weights.active():
            out[term.name] = term.compute(image, self._gather(given[term.input], term.gather_grad),
                                          logit_scale)
            total = total + getattr(self.weights, term.weight_field) * out[term.name]
        out["total"] = total
        return out
