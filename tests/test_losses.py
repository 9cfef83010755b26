"""Training losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from iriflow.losses import (
    ce_attack_loss,
    mart_loss,
    nt_xent,
    relative_distance,
    relative_distance_loss,
    trades_attack_loss,
    trades_kl,
    trades_loss,
)


def nt_xent_reference(z1: list[list[float]], z2: list[list[float]], t: float) -> float:
    """NT-Xent written out anchor by anchor from its definition."""
    z = [[c / math.hypot(*v) for c in v] for v in z1 + z2]
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        sims = {k: sum(a * b for a, b in zip(z[i], z[k])) / t for k in range(2 * n) if k != i}
        positive = (i + n) % (2 * n)
        total += -math.log(math.exp(sims[positive]) / sum(math.exp(s) for s in sims.values()))
    return total / (2 * n)


def test_nt_xent_coinciding_orthogonal_views_hand_value():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # Each anchor: positive similarity 1, two negatives with similarity 0.
    expected = math.log(1 + 2 * math.exp(-1 / 0.5))
    assert nt_xent(z, z.clone(), 0.5).item() == pytest.approx(expected, rel=1e-6)


def test_nt_xent_matches_explicit_formula_and_normalises():
    z1 = [[1.0, 0.0], [0.0, 2.0]]
    z2 = [[3.0, 3.0], [2.0, -2.0]]
    for t in (0.1, 0.5, 1.0):
        got = nt_xent(torch.tensor(z1), torch.tensor(z2), t).item()
        assert got == pytest.approx(nt_xent_reference(z1, z2, t), rel=1e-5)


def test_nt_xent_smallest_for_coinciding_views():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    best = nt_xent(z, z, 0.5)
    assert best < nt_xent(z, z.flip(0), 0.5)  # positives swapped with negatives
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        assert best < nt_xent(torch.randn(2, 2, generator=g), torch.randn(2, 2, generator=g), 0.5)


def test_nt_xent_symmetric_in_views():
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    assert nt_xent(z1, z2, 0.2).item() == pytest.approx(nt_xent(z2, z1, 0.2).item(), rel=1e-6)


def test_trades_beta_zero_is_cross_entropy():
    g = torch.Generator().manual_seed(2)
    clean, adv = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    y = torch.tensor([0, 1, 2, 3, 0])
    assert trades_loss(clean, adv, y, 0.0).item() == pytest.approx(F.cross_entropy(clean, y).item())


def test_trades_kl_zero_iff_same_logits_and_hand_value():
    g = torch.Generator().manual_seed(3)
    clean, adv = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    assert torch.allclose(trades_kl(clean, clean), torch.zeros(5), atol=1e-6)
    assert (trades_kl(clean, adv) > 0).all()
    # p_clean = (1/2, 1/2), p_adv = (3/4, 1/4): KL = 1/2 log(4/3).
    clean2, adv2 = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])
    y = torch.tensor([0])
    expected = math.log(2) + 6.0 * 0.5 * math.log(4 / 3)
    assert trades_loss(clean2, adv2, y, 6.0).item() == pytest.approx(expected, rel=1e-6)


def test_mart_two_class_hand_value():
    # p_clean = (1/2, 1/2), p_adv = (3/4, 1/4), y = 0:
    # boosted CE = -log(3/4) - log(1 - 1/4) = 2 log(4/3);
    # KL(p_clean || p_adv) = 1/2 log(4/3), weighted by 1 - p_clean_y = 1/2.
    clean, adv, y = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]]), torch.tensor([0])
    assert mart_loss(clean, adv, y, 2.0).item() == pytest.approx(2.5 * math.log(4 / 3), rel=1e-6)
    assert mart_loss(clean, adv, y, 0.0).item() == pytest.approx(2 * math.log(4 / 3), rel=1e-6)


def test_mart_excludes_true_class_from_max():
    # p_adv = (0.5, 0.3, 0.2), y = 1: the largest wrong probability is 0.5.
    adv = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    got = mart_loss(adv, adv, torch.tensor([1]), 5.0).item()  # KL term is 0
    assert got == pytest.approx(-math.log(0.3) - math.log(0.5), rel=1e-5)


def test_relative_distance_values():
    b = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    a = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    assert torch.allclose(relative_distance(a, b), torch.tensor([1.0, 2.0]))
    imgs = torch.rand(3, 2, 4, 4)
    assert torch.allclose(relative_distance(imgs, imgs), torch.zeros(3))


def test_attack_loss_fns_are_per_example():
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 3)
    x, y = torch.rand(4, 6), torch.tensor([0, 1, 2, 0])
    ce = ce_attack_loss(model, y)(x)
    assert ce.shape == (4,)
    assert ce.mean().item() == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-6)
    kl = trades_attack_loss(model, model(x))(x)
    assert kl.shape == (4,) and torch.allclose(kl, torch.zeros(4), atol=1e-6)
    rep = relative_distance_loss(model, model(x))
    assert torch.allclose(rep(x), torch.zeros(4)) and (rep(x + 1) > 0).all()
