"""The input-space optimiser: PGD attacks and IRI generation on tiny models."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from iriflow.losses import ce_attack_loss, relative_distance_loss
from iriflow.optim import STEP_RULES, optimize, pgd

ATTACKS = {
    "l2": {"norm": "l2", "eps": 0.5, "steps": 10, "step_size": 0.125, "random_start": True},
    "linf": {"norm": "linf", "eps": 8 / 255, "steps": 10, "step_size": 2 / 255, "random_start": True},
}


def tiny_net(out: int, size: int, seed: int, gain: float = 1.0) -> nn.Module:
    """Two convs and a linear head (weights scaled by ``gain``) on size x size images."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * (size // 2) ** 2, out),
    ).eval()
    with torch.no_grad():
        model[-1].weight.mul_(gain)
    return model


def batch(n: int = 8, size: int = 8, seed: int = 0) -> Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def dist(x: Tensor, x0: Tensor, norm: str) -> Tensor:
    return (x - x0).flatten(1).norm(p=2 if norm == "l2" else math.inf, dim=1)


def assert_no_param_grads(model: nn.Module) -> None:
    assert all(p.grad is None for p in model.parameters())


def classification_setup() -> tuple[nn.Module, Tensor, Tensor]:
    model = tiny_net(out=10, size=8, seed=0, gain=30.0)  # confident enough for attacks to bite
    x = batch()
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    return model, x, y


def test_step_rules_registered():
    assert {"l2", "linf", "adam"} <= set(STEP_RULES)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_pgd_iterates_stay_in_ball_and_box(norm):
    model, x0, y = classification_setup()
    ce = ce_attack_loss(model, y)
    iterates = []

    def recording_loss(x: Tensor) -> Tensor:
        iterates.append(x.detach().clone())
        return ce(x)

    cfg = ATTACKS[norm]
    res = pgd(recording_loss, x0, cfg, generator=torch.Generator().manual_seed(0))
    assert len(iterates) == cfg["steps"] + 1
    for x in iterates + [res.x]:
        assert (dist(x, x0, norm) <= cfg["eps"] * (1 + 1e-5)).all()
        assert x.min() >= 0 and x.max() <= 1
    assert_no_param_grads(model)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_pgd_raises_loss_over_clean_and_random_noise(norm):
    model, x0, y = classification_setup()
    ce = ce_attack_loss(model, y)
    res = pgd(ce, x0, ATTACKS[norm], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        clean = ce(x0)
        g = torch.Generator().manual_seed(1)
        noise = torch.randn(x0.shape, generator=g)
        noise = noise if norm == "l2" else noise.sign()
        noise = noise * (dist(res.x, x0, norm) / dist(noise, torch.zeros_like(noise), norm)).view(-1, 1, 1, 1)
        noisy = ce((x0 + noise).clamp(0, 1))
        assert torch.allclose(res.loss, ce(res.x), atol=1e-5)
    assert (res.loss > clean).all() and res.loss.mean() > 1.5 * clean.mean()
    assert res.loss.mean() > 1.5 * noisy.mean()


def test_random_start_reproducible_with_generator():
    model, x0, y = classification_setup()
    ce = ce_attack_loss(model, y)

    def run(seed):
        return pgd(ce, x0, ATTACKS["l2"], generator=torch.Generator().manual_seed(seed))

    a, b, c = run(5), run(5), run(6)
    assert torch.equal(a.x, b.x) and torch.equal(a.loss, b.loss)
    assert not torch.equal(a.x, c.x)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_random_start_lies_in_ball(norm):
    x0 = torch.full((64, 3, 4, 4), 0.5)
    eps = 0.3 if norm == "l2" else 0.1
    res = optimize(
        lambda x: x.sum(dim=(1, 2, 3)) * 0,
        x0,
        rule=norm,
        steps=0,
        step_size=1.0,
        eps=eps,
        random_start=True,
        generator=torch.Generator().manual_seed(0),
    )
    d = dist(res.x, x0, norm)
    assert (d <= eps * (1 + 1e-5)).all() and (d > 0).all()
    if norm == "l2":  # radii are spread over [0, eps]
        assert d.min() < 0.3 * eps and d.max() > 0.7 * eps


def test_keep_best_maximising_not_below_last_iterate():
    model, x0, y = classification_setup()
    ce = ce_attack_loss(model, y)
    cfg = {**ATTACKS["l2"], "step_size": 0.5, "steps": 8}
    last = pgd(ce, x0, cfg, generator=torch.Generator().manual_seed(0))
    best = pgd(ce, x0, cfg, generator=torch.Generator().manual_seed(0), keep_best=True)
    assert (best.loss >= last.loss - 1e-6).all()
    with torch.no_grad():
        assert torch.allclose(best.loss, ce(best.x), atol=1e-5)


def iri_problem(size: int = 16) -> tuple[nn.Module, Tensor, Tensor]:
    """A random conv net, a target image and a noise seed."""
    model = tiny_net(out=16, size=size, seed=1)
    target = batch(4, size, seed=2)
    seed = batch(4, size, seed=3)
    with torch.no_grad():
        rep = model(target)
    return model, relative_distance_loss(model, rep), seed


def test_keep_best_minimising_not_above_last_iterate():
    model, loss_fn, seed = iri_problem()
    kw = dict(rule="l2", steps=30, step_size=2.0)
    last = optimize(loss_fn, seed, **kw)
    best = optimize(loss_fn, seed, keep_best=True, **kw)
    assert (best.loss <= last.loss + 1e-6).all()
    assert (best.loss < last.loss).any()  # large steps oscillate
    with torch.no_grad():
        assert torch.allclose(best.loss, loss_fn(best.x), atol=1e-6)


def test_iri_inversion_lowers_relative_distance():
    model, loss_fn, seed = iri_problem()
    # Normalised steps stall at a distance set by step_size / ||x||: 0.1 suits 3x16x16 images.
    res = optimize(loss_fn, seed, rule="l2", steps=300, step_size=0.1, keep_best=True, log_every=50)
    with torch.no_grad():
        start = loss_fn(seed)
    assert (res.loss < 0.2 * start).all()
    assert res.x.min() >= 0 and res.x.max() <= 1 and not res.x.requires_grad
    assert_no_param_grads(model)
    steps = [s for s, _ in res.history]
    assert steps == [0, 50, 100, 150, 200, 250, 300]
    assert res.history[0][1] == pytest.approx(start.mean().item(), rel=1e-5)


def test_adam_lowers_loss():
    model, loss_fn, seed = iri_problem()
    res = optimize(loss_fn, seed, rule="adam", steps=150, step_size=0.01)
    with torch.no_grad():
        start = loss_fn(seed)
    assert (res.loss < 0.5 * start).all()
    assert res.x.min() >= 0 and res.x.max() <= 1
    assert_no_param_grads(model)


def test_history_keeps_first_and_last_step():
    _, loss_fn, seed = iri_problem()
    res = optimize(loss_fn, seed, rule="l2", steps=7, step_size=0.5, log_every=3)
    assert [s for s, _ in res.history] == [0, 3, 6, 7]
    assert optimize(loss_fn, seed, rule="l2", steps=4, step_size=0.5).history[-1][0] == 4


def test_zero_gradient_is_a_zero_step():
    x0 = batch(2, 4)
    res = optimize(lambda x: x.sum(dim=(1, 2, 3)) * 0, x0, rule="l2", steps=3, step_size=1.0)
    assert torch.equal(res.x, x0)


def test_bad_settings_raise():
    x0 = batch(2, 4)

    def zero(x):
        return x.sum(dim=(1, 2, 3)) * 0

    with pytest.raises(ValueError, match="finite eps"):
        optimize(zero, x0, steps=1, step_size=1.0, random_start=True)
    with pytest.raises(ValueError, match="unknown attack"):
        pgd(zero, x0, {"norm": "l2", "eps": 1.0, "stepsize": 0.1})
    with pytest.raises(ValueError, match="norm"):
        pgd(zero, x0, {"norm": "l1", "eps": 1.0})
    with pytest.raises(KeyError, match="step rule"):
        optimize(zero, x0, rule="sgd", steps=1, step_size=1.0)


def test_evaluate_last_false_returns_the_same_point_without_a_loss():
    torch.manual_seed(0)
    w = torch.randn(3 * 4 * 4)
    loss_fn = lambda x: x.flatten(1) @ w  # noqa: E731
    x0 = torch.rand(5, 3, 4, 4)
    kw = dict(rule="l2", steps=3, step_size=0.1, eps=0.5, maximize=True)
    full = optimize(loss_fn, x0, **kw)
    fast = optimize(loss_fn, x0, evaluate_last=False, **kw)
    assert torch.equal(full.x, fast.x) and fast.loss is None
    with pytest.raises(ValueError, match="keep_best"):
        optimize(loss_fn, x0, evaluate_last=False, keep_best=True, **kw)
