"""AddressCLIP losses on hand-computed cases, and the behaviour each is meant to have."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from addressclip.losses import (
    AddressCLIPLoss,
    LossWeights,
    contrastive_loss,
    feature_distance_matrix,
    geography_matrix,
    image_address_loss,
    image_caption_loss,
    image_geography_loss,
)

E = math.e


def test_contrastive_two_orthogonal_pairs_by_hand():
    eye = torch.eye(2)
    # logits [[1, 0], [0, 1]] at scale 1: each row's CE is -log(e / (e + 1)) = log(1 + e^-1)
    assert contrastive_loss(eye, eye, 1.0).item() == pytest.approx(math.log(1 + 1 / E), abs=1e-6)
    # scale 10 sharpens: log(1 + e^-10)
    assert contrastive_loss(eye, eye, torch.tensor(10.0)).item() == pytest.approx(
        math.log(1 + math.exp(-10)), abs=1e-6)


def test_contrastive_is_symmetric_mean_of_both_directions():
    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    txt = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    logits = 3.0 * img @ txt.t()
    labels = torch.arange(5)
    expected = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))
    assert contrastive_loss(img, txt, 3.0).item() == pytest.approx(expected.item(), abs=1e-6)


def test_shared_address_by_hand():
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    img = torch.stack([e1, e2, -e1])
    txt = torch.stack([e1, e1, -e1])  # images 0 and 1 share one address: the same text embedding
    # logits rows: [1, 1, -1], [0, 0, 0], [-1, -1, 1]; each CE = logsumexp(row) - row[label]
    i2t = (math.log(2 * E + 1 / E) - 1) + math.log(3) + (math.log(E + 2 / E) - 1)
    # columns (text -> image): [1, 0, -1], [1, 0, -1], [-1, 0, 1]
    t2i = (math.log(E + 1 + 1 / E) - 1) + (math.log(E + 1 + 1 / E) - 0) + (math.log(E + 1 + 1 / E) - 1)
    got = image_address_loss(img, txt, 1.0)
    assert got.item() == pytest.approx(0.5 * (i2t + t2i) / 3, abs=1e-6)


def _multi_positive(img, txt, scale, groups):
    """The alternative the docstring rejects as unnecessary: every same-address text is a positive."""
    same = (groups[:, None] == groups[None, :]).float()
    targets = same / same.sum(1, keepdim=True)
    logits = scale * img @ txt.t()
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets))


def test_duplicate_addresses_need_no_special_targets():
    """With one embedding per distinct address, CLIP's arange labels equal the multi-positive loss
    in value and in gradient (to images and to the distinct address embeddings)."""
    g = torch.Generator().manual_seed(3)
    ids = torch.tensor([0, 1, 0, 2, 1, 0, 3, 3])
    img = torch.randn(8, 6, generator=g).requires_grad_()
    uniq = torch.randn(4, 6, generator=g).requires_grad_()
    grads = []
    for fn in (lambda i, t: image_address_loss(i, t, 7.0), lambda i, t: _multi_positive(i, t, 7.0, ids)):
        loss = fn(F.normalize(img, dim=-1), F.normalize(uniq, dim=-1)[ids])
        grads.append((loss.item(), *torch.autograd.grad(loss, [img, uniq])))
    assert grads[0][0] == pytest.approx(grads[1][0], abs=1e-5)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-6)
    assert torch.allclose(grads[0][2], grads[1][2], atol=1e-6)


def test_caption_loss_is_the_same_contrastive_form():
    g = torch.Generator().manual_seed(2)
    img, cap = (F.normalize(torch.randn(4, 8, generator=g), dim=-1) for _ in range(2))
    assert image_caption_loss(img, cap, 2.0).item() == pytest.approx(
        contrastive_loss(img, cap, 2.0).item())


def test_geography_matrix_by_hand():
    coords = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
    # L1: d01 = 3, d02 = 1, d12 = 4; divided by the maximum 4
    expected = torch.tensor([[0, 0.75, 0.25], [0.75, 0, 1.0], [0.25, 1.0, 0]])
    assert torch.allclose(geography_matrix(coords), expected)
    # metres far from the origin (UTM) give the same matrix: only differences matter
    assert torch.allclose(geography_matrix(coords + torch.tensor([385000.0, 6672000.0])), expected)
    # everyone at one spot: zeros, not NaN
    assert torch.equal(geography_matrix(torch.ones(3, 2)), torch.zeros(3, 3))


def test_geography_loss_by_hand():
    coords = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
    feats = torch.eye(3)  # orthogonal: D_V = 1 off the diagonal
    assert torch.allclose(feature_distance_matrix(feats), 1 - torch.eye(3))
    # (1-.75)^2 + (1-.25)^2 + (1-1)^2, twice (symmetric), over 9 entries
    expected = 2 * (0.0625 + 0.5625 + 0.0) / 9
    assert image_geography_loss(feats, coords).item() == pytest.approx(expected, abs=1e-6)


def _optimise_geography(form: str, steps: int = 300):
    torch.manual_seed(0)
    # two clusters of three images, 1 km apart; within a cluster 10-20 m apart
    coords = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 20.0],
                           [1000.0, 0.0], [1010.0, 5.0], [1000.0, 15.0]])
    raw = torch.randn(6, 16, requires_grad=True)
    opt = torch.optim.Adam([raw], lr=0.05)
    for _ in range(steps):
        f = F.normalize(raw, dim=-1)
        if form == "ours":
            loss = image_geography_loss(f, coords)
        else:  # the equation as printed: similarity compared with distance
            loss = ((f @ f.t()) - geography_matrix(coords)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    f = F.normalize(raw.detach(), dim=-1)
    cos = f @ f.t()
    near = torch.tensor([[0, 1], [0, 2], [1, 2], [3, 4], [3, 5], [4, 5]])
    far = torch.tensor([[i, j] for i in range(3) for j in range(3, 6)])
    return cos[near[:, 0], near[:, 1]].mean().item(), cos[far[:, 0], far[:, 1]].mean().item()


def test_geography_loss_pulls_near_images_together_and_pushes_far_ones_apart():
    near, far = _optimise_geography("ours")
    assert near > 0.9       # images metres apart end up with nearly the same features
    assert far < 0.1        # a kilometre apart: about orthogonal (distance 1 = batch maximum)
    printed_near, printed_far = _optimise_geography("printed")
    assert printed_near < printed_far  # the printed sign does the opposite


def test_weighted_total_and_switching_off():
    g = torch.Generator().manual_seed(1)
    n = 6
    img, addr, cap = (F.normalize(torch.randn(n, 8, generator=g), dim=-1) for _ in range(3))
    coords = torch.randn(n, 2, generator=g) * 100
    scale = torch.tensor(5.0)
    full = AddressCLIPLoss(LossWeights())(img, scale, address=addr, caption=cap, coords=coords)
    expected = (1.0 * image_address_loss(img, addr, scale)
                + 0.2 * image_caption_loss(img, cap, scale)
                + 0.8 * image_geography_loss(img, coords))
    assert full["total"].item() == pytest.approx(expected.item(), abs=1e-6)
    only_addr_geo = AddressCLIPLoss(LossWeights(1.0, 0.0, 0.8))(
        img, scale, address=addr, coords=coords)
    assert set(only_addr_geo) == {"address", "geography", "total"}
    assert only_addr_geo["total"].item() == pytest.approx(
        (full["address"] + 0.8 * full["geography"]).item(), abs=1e-6)


def test_address_loss_gradient_pulls_matching_pairs_together():
    torch.manual_seed(0)
    raw_img = torch.randn(4, 8, requires_grad=True)
    txt = F.normalize(torch.randn(4, 8), dim=-1)

    def matched_cos():
        return (F.normalize(raw_img, dim=-1) * txt).sum(-1).mean().item()

    before = matched_cos()
    opt = torch.optim.SGD([raw_img], lr=0.5)
    for _ in range(20):
        loss = image_address_loss(F.normalize(raw_img, dim=-1), txt, 10.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert matched_cos() > before + 0.3
