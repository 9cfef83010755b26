"""The input-space optimiser: PGD attacks and IRI generation on tiny models."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from iriflow.losses import ce_attack_loss, relative_distance_loss
from iriflow.optim import STEP_RULES, NormalizedStep, Stop, coarse_to_fine_filter, optimize, pgd

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


class DeviceReads:
    """Counts the calls that copy a tensor's values to the host (each one
    waits for the device): Tensor.item, Tensor.tolist, float(Tensor), bool(Tensor)."""

    NAMES = ("item", "tolist", "__float__", "__bool__")

    def __init__(self, monkeypatch):
        self.calls = {name: 0 for name in self.NAMES}
        for name in self.NAMES:
            original = getattr(Tensor, name)

            def counted(t, *a, _name=name, _original=original, **k):
                self.calls[_name] += 1
                return _original(t, *a, **k)

            monkeypatch.setattr(Tensor, name, counted)


def test_optimize_reads_the_device_once_without_on_log_and_once_per_logged_step_with(monkeypatch):
    model = tiny_net(out=6, size=8, seed=1)
    target = model(batch(seed=2)).detach()
    loss_fn = relative_distance_loss(model, target)
    seeds = batch(seed=3)
    kw = dict(rule="l2", steps=20, step_size=0.2, keep_best=True, log_every=5)
    reference = optimize(loss_fn, seeds, **kw)
    reference_history = reference.history  # read before counting
    reads = DeviceReads(monkeypatch)
    quiet = optimize(loss_fn, seeds, **kw)
    assert sum(reads.calls.values()) == 0  # the loop itself never waits for the device
    assert quiet.history == reference_history and torch.equal(quiet.x, reference.x)
    assert reads.calls == {"item": 0, "tolist": 1, "__float__": 0, "__bool__": 0}  # the whole history in one go
    logged = []
    reads = DeviceReads(monkeypatch)
    optimize(loss_fn, seeds, on_log=lambda s, m: logged.append((s, m)), **kw)
    assert [s for s, _ in logged] == [0, 5, 10, 15, 20]
    assert reads.calls["item"] == 5 and reads.calls["tolist"] == 0 and reads.calls["__bool__"] == 0
    assert logged == reference_history


def test_pgd_as_used_in_training_never_reads_the_device(monkeypatch):
    model, x, y = classification_setup()
    reads = DeviceReads(monkeypatch)
    pgd(ce_attack_loss(model, y), x, ATTACKS["l2"], generator=torch.Generator().manual_seed(0), evaluate_last=False)
    assert sum(reads.calls.values()) == 0


def quadratic(targets: Tensor):
    """Per-example 0.5 ||x - t||^2 (no example depends on another), and its narrowing."""
    rows = {"now": torch.arange(len(targets))}

    def loss(x: Tensor) -> Tensor:
        return 0.5 * (x - targets[rows["now"]]).pow(2).flatten(1).sum(1)

    def narrow(active: Tensor):
        rows["now"] = active
        return loss

    return loss, narrow, rows


@pytest.mark.parametrize("rule, momentum", [("l2", 0.0), ("l2", 0.9), ("adam", 0.0)], ids=["l2", "l2-momentum", "adam"])
def test_stop_freezes_finished_examples_and_leaves_the_others_paths_unchanged(rule, momentum):
    n = 6
    targets = batch(n, seed=4)
    seeds = batch(n, seed=5)
    # examples 0-2 start close to their targets, 3-5 far: the close ones finish early
    seeds[:3] = (targets[:3] + 0.02 * (seeds[:3] - 0.5)).clamp(0, 1)
    loss, narrow, rows = quadratic(targets)
    sizes = []

    def counted(x):
        sizes.append(len(x))
        return loss(x)

    def done(x, active):
        return loss(x) < 1e-3

    kw = dict(
        rule=rule, steps=60, step_size=lambda t: 0.05 * (1 - t / 60), keep_best=True, log_every=10, momentum=momentum
    )
    stopped = optimize(counted, seeds, stop=Stop(10, done, lambda a: (narrow(a), counted)[1]), **kw)
    rows["now"] = torch.arange(n)
    full = optimize(loss, seeds, **kw)
    first_check = sizes[:11]
    assert first_check == [n] * 11 and min(sizes) == 3 and sum(sizes) < n * 61
    frozen = stopped.loss[:3] < 1e-3
    assert frozen.all() and (stopped.loss[3:] > 1e-3).all()
    # the unfinished examples took exactly the steps they take in the full batch
    assert torch.equal(stopped.x[3:], full.x[3:]) and torch.equal(stopped.loss[3:], full.loss[3:])
    # a frozen example is its kept iterate at the check where it finished: no better than the full run's
    assert (stopped.loss[:3] >= full.loss[:3]).all()
    assert [s for s, _ in stopped.history] == [s for s, _ in full.history]


def test_stop_needs_keep_best():
    with pytest.raises(ValueError, match="keep_best"):
        optimize(lambda x: x.sum((1, 2, 3)), batch(), steps=2, step_size=0.1, stop=Stop(1, None, None))


def test_momentum_turns_the_step_but_keeps_its_length():
    x0 = torch.zeros(2, 1, 2, 2)
    step = NormalizedStep(x0, 0.5, momentum=0.5)
    g1 = torch.zeros_like(x0)
    g1[:, 0, 0, 0] = 3.0  # unit direction e1 (any length)
    x1 = step(x0, g1)
    assert torch.allclose(x1[:, 0, 0, 0], torch.full((2,), -0.5)) and x1.flatten(1)[:, 1:].abs().max() == 0
    g2 = torch.zeros_like(x0)
    g2[:, 0, 0, 1] = 0.1  # e2: the direction is now 0.5 * e1 + e2, normalised
    x2 = step(x1, g2)
    d = torch.tensor([0.5, 1.0]) / math.sqrt(1.25)
    assert torch.allclose((x1 - x2)[0, 0, 0, :2], 0.5 * d) and torch.allclose(
        (x1 - x2).flatten(1).norm(dim=1), torch.full((2,), 0.5)
    )
    # each example's heavy ball is its own: narrowing keeps the rows asked for
    step.narrow(torch.tensor([1]))
    assert step.d.shape[0] == 1 and torch.allclose(step.d[0, 0, 0, :2], torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="momentum"):
        NormalizedStep(x0, 0.5, momentum=1.0)
    with pytest.raises(ValueError, match="momentum is a setting of the l2 step rule"):
        optimize(lambda x: x.sum((1, 2, 3)), x0, rule="adam", steps=1, step_size=0.1, momentum=0.5)


def test_coarse_to_fine_keeps_only_coarse_detail_early_then_lets_the_gradient_be():
    filt = coarse_to_fine_filter(100, [0.25, 0.5])
    gen = torch.Generator().manual_seed(0)
    i, j = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    fine = ((-1.0) ** (i + j)).expand(3, 2, 8, 8)  # a checkerboard: no 2x2 block has any of it
    level = torch.randn(3, 2, 1, 1, generator=gen)  # one value per image and channel
    g = level + fine
    # steps 0-24 (4x4 blocks) and 25-49 (2x2): the checkerboard is gone, each image's level stays
    for step in (0, 24, 25, 49):
        assert torch.allclose(filt(step, g), level.expand(-1, -1, 8, 8), atol=1e-6)
    # a left-right ramp: every pixel of a block gets the block's mean (4x4 blocks, then 2x2)
    ramp = j.to(torch.float32).expand(1, 1, 8, 8)
    coarse, middle = filt(0, ramp)[0, 0], filt(30, ramp)[0, 0]
    assert torch.equal(coarse[:, :4], torch.full((8, 4), 1.5)) and torch.equal(coarse[:, 4:], torch.full((8, 4), 5.5))
    assert middle[0].tolist() == [0.5, 0.5, 2.5, 2.5, 4.5, 4.5, 6.5, 6.5] and torch.equal(
        middle, middle[:1].expand(8, 8)
    )
    # from step 50 on: the gradient itself
    assert torch.equal(filt(50, g), g) and torch.equal(filt(99, g), g)
    # each image (and channel) alone: filtering the batch equals filtering each image
    noise = torch.randn(3, 2, 8, 8, generator=gen)
    assert torch.equal(torch.cat([filt(0, noise[k : k + 1]) for k in range(3)]), filt(0, noise))
    # sizes that the blocks do not divide keep their shape
    assert filt(0, torch.ones(1, 1, 7, 5)).shape == (1, 1, 7, 5)
    assert coarse_to_fine_filter(100, []) is None
    for bad in ([0.5, 0.25], [0.5, 0.5], [0.0], [1.5]):
        with pytest.raises(ValueError, match="coarse_to_fine"):
            coarse_to_fine_filter(100, bad)
