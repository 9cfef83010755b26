import copy

import numpy as np
import pytest
import torch

from iriflow.archs import build_model
from iriflow.iri import (
    IRI_LOSSES,
    SEEDS,
    ExampleStreams,
    JobInputs,
    LossContext,
    SeedContext,
    alpha_norm,
    build_loss,
    generate,
    job_batches,
    make_seeds,
    pool_without,
    run_job,
    seed_generator,
    total_variation,
)
from iriflow.metrics import METRICS, get_metric
from iriflow.represent import extract, representation


def small_model(seed=0):
    torch.manual_seed(seed)
    return build_model("resnet18", 3, 1, [0.3], [0.3], 0.125, stem_stride=2).eval()


def images(n=6, seed=1, size=16):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g)


def test_registries_are_complete():
    assert set(SEEDS) == {"super-noise", "light-noise", "grey-noise", "other-image", "white", "black"}
    assert set(IRI_LOSSES) == {"regfree", "regfree-transforms", "tv-l6", "freq", "adversarial", "adversarial-seed"}


def test_seeds_follow_their_definitions_and_are_reproducible():
    targets = images(50)
    labels = torch.arange(50) % 5
    pool, pool_y = images(40, seed=3), torch.arange(40) % 5
    ctx = lambda: SeedContext(targets, labels, pool, pool_y, seed_generator(0, "x"))  # noqa: E731
    sn = make_seeds("super-noise", ctx())
    assert torch.equal(sn, make_seeds("super-noise", ctx()))
    # N(0,1) clamped: about half the pixels are exactly 0 and ~16% exactly 1
    assert 0.45 < (sn == 0).float().mean() < 0.55 and 0.13 < (sn == 1).float().mean() < 0.19
    grey = make_seeds("grey-noise", ctx())
    assert abs(grey.mean().item() - 0.5) < 0.01 and abs(grey.std().item() - 0.05) < 0.005
    light = make_seeds("light-noise", ctx())
    assert light.max() < 0.06 and (light == 0).float().mean() > 0.45
    assert torch.equal(make_seeds("white", ctx()), torch.ones_like(targets))
    assert torch.equal(make_seeds("black", ctx()), torch.zeros_like(targets))
    other = make_seeds("other-image", ctx())
    idx = [next(j for j in range(40) if torch.equal(pool[j], other[i])) for i in range(50)]
    assert all(pool_y[j] != labels[i] for i, j in enumerate(idx))
    assert not torch.equal(
        make_seeds("super-noise", SeedContext(targets, labels, pool, pool_y, seed_generator(1, "x"))), sn
    )


def test_pool_without_excludes_targets():
    x, y = images(10), torch.arange(10)
    px, py = pool_without(x, y, torch.tensor([2, 5]))
    assert py.tolist() == [0, 1, 3, 4, 6, 7, 8, 9] and torch.equal(px[2], x[3])


def test_tv_and_alpha_norm_on_hand_computable_images():
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, :, 2] = 1.0  # a vertical edge between columns 1 and 2
    # dx is 1 at the two positions (rows 0,1; col 1) that see the edge; dy is 0
    assert total_variation(x, beta=2.0).item() == pytest.approx(2.0, abs=1e-5)
    assert total_variation(x, beta=1.0).item() == pytest.approx(2.0, abs=1e-4)
    assert alpha_norm(x, 6.0).item() == pytest.approx(3 ** (1 / 6))
    assert alpha_norm(torch.full((1, 1, 2, 2), 0.5), 2.0).item() == pytest.approx(1.0)
    # a black image: the norm's gradient is zero, not NaN (a NaN would turn the IRI into NaN for good)
    black = torch.zeros(1, 1, 3, 3, requires_grad=True)
    (g,) = torch.autograd.grad(alpha_norm(black, 6.0).sum(), black)
    assert torch.equal(g, torch.zeros_like(g)) and alpha_norm(black, 6.0).item() == pytest.approx(0.01)


def loss_ctx(rep, targets, seeds, metric="ssim", groups=None):
    with torch.no_grad():
        tr = rep(targets)
    return LossContext(rep, tr, targets, seeds, metric, ExampleStreams(0, torch.arange(len(targets))), groups)


def test_each_loss_value_on_constructed_inputs():
    model = small_model()
    rep = representation(model)
    targets, seeds = images(4), images(4, seed=9)
    ctx = loss_ctx(rep, targets, seeds)
    with torch.no_grad():
        l_rep = ctx.l_rep(seeds)
        # at the target itself L_rep is 0
        assert torch.allclose(build_loss({"kind": "regfree"}, ctx)(targets), torch.zeros(4), atol=1e-6)
        assert torch.allclose(build_loss({"kind": "regfree"}, ctx)(seeds), l_rep)
        tv = build_loss(
            {
                "kind": "tv-l6",
                "rep_weight": 10.0,
                "tv_weight": 5e-4,
                "tv_beta": 2.0,
                "norm_weight": 1.0,
                "norm_alpha": 6.0,
            },
            ctx,
        )(seeds)
        assert torch.allclose(tv, 10 * l_rep + 5e-4 * total_variation(seeds) + alpha_norm(seeds, 6.0))
        d = get_metric("ssim")
        adv = build_loss({"kind": "adversarial", "lam": 10.0}, ctx)(seeds)
        assert torch.allclose(adv, l_rep - 10 * d(seeds, targets))
        adv_seed = build_loss({"kind": "adversarial-seed", "lam": 2.0}, ctx)(seeds)
        assert torch.allclose(adv_seed, l_rep, atol=1e-6)  # D(x0, x0) = 0 at the seed
        auto = build_loss({"kind": "adversarial", "lam": "auto"}, ctx)(seeds)
        lam = l_rep.mean() / d(seeds, targets).mean()
        assert torch.allclose(auto, l_rep - lam * d(seeds, targets), atol=1e-5)
        fr = build_loss(
            {"kind": "freq", "rep_weight": 10.0, "tv_weight": 0.0, "blur_weight": 0.0, "l1_weight": 1.0}, ctx
        )(seeds)
        assert torch.allclose(fr, 10 * l_rep + (seeds - 0.5).abs().flatten(1).sum(1), atol=1e-4)
        # transformations: the identity transform would give L_rep; random ones differ but stay close
        tr = build_loss(
            {"kind": "regfree-transforms", "jitter": 0, "scale": [1.0, 1.0], "rotation": 0.0, "jitter2": 0}, ctx
        )(seeds)
        assert torch.allclose(tr, l_rep, atol=1e-5)


def test_regfree_optimiser_lowers_the_representation_distance():
    model = small_model()
    rep = representation(model)
    targets = images(6)
    seeds = make_seeds(
        "super-noise", SeedContext(targets, torch.zeros(6), targets, torch.ones(6), seed_generator(0, "super-noise"))
    )
    with torch.no_grad():
        start = loss_ctx(rep, targets, seeds).l_rep(seeds)
    res = generate(rep, targets, seeds, {"kind": "regfree"}, steps=150, step_size=0.5, schedule="cosine", threshold=0.1)
    assert (res.rel_dist < 0.25 * start).all(), (start, res.rel_dist)
    assert res.history[0][2] > res.history[-1][2]
    assert torch.equal(res.converged, res.rel_dist < 0.1)
    assert all(p.grad is None for p in model.parameters())


def test_non_converged_iris_are_flagged():
    model = small_model()
    rep = representation(model)
    targets, seeds = images(4), images(4, seed=5)
    res = generate(rep, targets, seeds, {"kind": "regfree"}, steps=2, step_size=0.01, threshold=0.05)
    assert not res.converged.any() and (res.rel_dist > 0.05).all()


def test_adversarial_loss_moves_away_from_the_target_compared_with_regfree():
    model = small_model()
    rep = representation(model)
    targets = images(6)
    seeds = images(6, seed=11)
    kw = dict(steps=150, step_size=0.5, schedule="cosine", metric="ssim")
    reg = generate(rep, targets, seeds, {"kind": "regfree"}, **kw)
    adv = generate(rep, targets, seeds, {"kind": "adversarial", "lam": 1.0}, **kw)
    d = get_metric("ssim")
    with torch.no_grad():
        assert d(adv.iris, targets).mean() > d(reg.iris, targets).mean() + 0.05


def test_named_layers_and_extract():
    model = small_model()
    x = images(5)
    feats = extract(model, x, "penultimate", batch_size=2)
    with torch.no_grad():
        assert torch.allclose(feats, model.features(x), atol=1e-6)
        l2 = extract(model, x, "layer2")
        assert l2.shape[0] == 5 and l2.shape[1] > feats.shape[1]
    with pytest.raises(KeyError, match="not a layer of resnet18"):
        representation(model, "fc7")


@pytest.mark.parametrize("name", sorted(set(METRICS) - {"lpips"}))
@pytest.mark.parametrize("shape", [(1, 28), (3, 32)])
def test_metrics_run_at_dataset_sizes_and_grow_with_distortion(name, shape):
    c, s = shape
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, c, s, s, generator=g) * 0.6 + 0.2
    small = (x + 0.02 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    large = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    d = get_metric(name)
    same = d(x, x)
    assert same.shape == (4,) and torch.all(same.abs() < 1e-3)
    assert torch.all(d(x, small) < d(x, large))
    xg = x.clone().requires_grad_()
    d(xg, large).sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


def test_lpips_without_weights_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    import piq  # the whole package: LPIPS is the one metric that needs piq's __init__ (and torchvision)

    import iriflow.metrics as m

    monkeypatch.setattr(piq, "LPIPS", lambda **kw: (_ for _ in ()).throw(OSError("no network")))
    m._LPIPS.clear()
    with pytest.raises(RuntimeError, match="needs pretrained weights") as err:
        get_metric("lpips")(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    assert str(tmp_path) in str(err.value) and "ssim" in str(err.value)


# --- jobs: one batch for every seed type of a model, layer and loss ------------------


def job_sets(n=5):
    targets = images(n)
    labels = torch.arange(n) % 3
    pool, pool_y = images(12, seed=3), torch.arange(12) % 3
    return [
        JobInputs(
            kind,
            targets,
            labels,
            np.arange(n),
            make_seeds(kind, SeedContext(targets, labels, pool, pool_y, seed_generator(0, kind))),
        )
        for kind in ("super-noise", "other-image", "grey-noise")
    ]


def job_settings(loss_spec):
    return {
        "loss_spec": loss_spec,
        "steps": 10,
        "step_size": 1.0,
        "optimizer": "normalized",
        "momentum": 0.9,
        "coarse_to_fine": [0.25, 0.5],
        "step_schedule": "cosine",
        "keep_best": True,
        "threshold": 0.1,
        "metric": "ssim",
        "seed": 0,
        "stop_every": 4,  # (grouping, stopping and restarting together)
        "restarts": 1,
        "amp": "off",
        "channels_last": True,
    }


def test_job_batches_cut_each_set_alike_whatever_shares_the_job():
    batches, groups = job_batches([5, 5, 5], max_batch=1024)
    assert batches == [slice(0, 15)] and groups.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    # sets larger than a batch are cut into equal parts; whole parts are packed
    batches, groups = job_batches([5, 5, 3], max_batch=4)
    assert batches == [slice(0, 2), slice(2, 5), slice(5, 7), slice(7, 10), slice(10, 13)]
    assert groups.tolist() == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 4]
    alone, _ = job_batches([5], max_batch=4)
    assert alone == [slice(0, 2), slice(2, 5)]  # the first set's parts, alone or in company
    assert job_batches([2, 2, 2], max_batch=4)[0] == [slice(0, 4), slice(4, 6)]


@pytest.mark.parametrize(
    "loss_spec",
    [
        {"kind": "regfree"},
        {"kind": "regfree-transforms"},
        {"kind": "tv-l6"},
        {"kind": "freq"},
        {"kind": "adversarial", "lam": "auto"},
        {"kind": "adversarial-seed", "lam": 1.0},
    ],
    ids=lambda spec: spec["kind"],
)
@pytest.mark.usefixtures("one_thread")
def test_a_grouped_job_makes_the_sets_of_one_job_per_set(loss_spec):
    """Every seed type's set optimised in one job (one batch, or batches that
    mix parts of sets: max_batch 4) equals the set made by a job of its own:
    no example's update depends on the other examples of its batch."""
    max_batch = 4 if loss_spec["kind"] in ("regfree-transforms", "adversarial") else 1024
    model, sets, s = small_model(), job_sets(), job_settings(loss_spec)
    grouped, history = run_job(model, "penultimate", sets, s, "cpu", max_batch, log_every=4)
    assert len(grouped) == 3 and {b for b, *_ in history} == set(range(len(job_batches([5] * 3, max_batch)[0])))
    for inputs, together in zip(sets, grouped):
        (alone,), _ = run_job(model, "penultimate", [inputs], s, "cpu", max_batch, log_every=4)
        torch.testing.assert_close(together.rel_dist, alone.rel_dist, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(together.iris, alone.iris, rtol=0, atol=1e-4)
        assert torch.equal(together.converged, alone.converged)
        assert torch.equal(together.restarts, alone.restarts)
    # the optimisation did something: the IRIs left their seeds, and some were restarted
    assert all((r.iris - j.seeds).abs().amax() > 0.05 for r, j in zip(grouped, sets))
    assert any(r.restarts.any() for r in grouped) and {p for _, p, _, _ in history} == {0, 1}


@pytest.mark.parametrize("loss", ["regfree", "tv-l6"])
def test_per_example_stop_freezes_converged_iris_and_leaves_the_others_unchanged(loss):
    model = small_model()
    rep = representation(model)
    targets = images(6)
    seeds = images(6, seed=7)
    seeds[:2] = (targets[:2] + 0.02 * (seeds[:2] - 0.5)).clamp(0, 1)  # two start close to their targets
    kw = dict(steps=60, step_size=0.5, schedule="cosine", threshold=0.1, log_every=20)
    full = generate(rep, targets, seeds, {"kind": loss}, **kw)
    stopped = generate(rep, targets, seeds, {"kind": loss}, stop_every=10, **kw)
    assert stopped.converged[:2].all() and torch.equal(stopped.converged, stopped.rel_dist < 0.1)
    # an IRI that never converged took every step, exactly as in the full batch
    never = ~stopped.converged
    assert never.any() or loss == "tv-l6"  # (tv-l6: these settings converge all six)
    # (within float tolerance: CPU convolutions round differently for other batch sizes)
    assert torch.allclose(stopped.iris[never], full.iris[never], atol=1e-4)
    assert torch.allclose(stopped.loss[never], full.loss[never], rtol=1e-4)
    assert (stopped.converged >= full.converged).all()  # an IRI converged in the full run was frozen converged
    assert [(p, s) for p, s, _ in stopped.history] == [(0, 0), (0, 20), (0, 40), (0, 60)]


@pytest.mark.usefixtures("one_thread")
def test_a_restart_runs_only_the_iris_above_threshold_and_can_bring_them_below():
    """iris.restarts: the IRIs still above the threshold after the schedule
    run it again from their kept iterate; the others are left exactly as
    they were, and each IRI's restarts are counted."""
    rep = representation(small_model())
    targets, seeds = images(8), images(8, seed=5)
    kw = dict(steps=20, step_size=1.0, schedule="cosine", momentum=0.9, threshold=0.1, stop_every=5, log_every=10)
    once = generate(rep, targets, seeds, {"kind": "regfree"}, **kw)
    again = generate(rep, targets, seeds, {"kind": "regfree"}, restarts=2, **kw)
    stuck = ~once.converged
    assert 0 < stuck.sum() < 8  # (here 2 of 8)
    assert torch.equal(again.iris[~stuck], once.iris[~stuck])  # converged IRIs: untouched
    assert torch.equal(again.rel_dist[~stuck], once.rel_dist[~stuck])
    assert torch.equal(once.restarts, torch.zeros(8, dtype=torch.int64))
    assert (again.restarts[~stuck] == 0).all() and (again.restarts[stuck] >= 1).all()
    # a restart starts from the kept iterate, so it can only lower the loss (here L_rep itself) ...
    assert (again.rel_dist[stuck] < once.rel_dist[stuck]).all()
    # ... and brought at least one below the threshold; an IRI above it after both restarts had both
    assert (again.converged & stuck).any() and (again.restarts[~again.converged] == 2).all()
    # the provenance's summary counts the same
    c = again.counts()
    assert c == {
        "median_rel_dist": pytest.approx(float(again.rel_dist.median())),
        "converged": int(again.converged.sum()),
        "restarted": int(stuck.sum()),
        "n": 8,
    }
    assert c["converged"] > once.counts()["converged"] and once.counts()["restarted"] == 0
    # the curve: the first pass over all 8, then each restart over the IRIs it ran
    passes = [p for p, _, _ in again.history]
    assert passes[:3] == [0, 0, 0] and set(passes[3:]) <= {1, 2} and passes[3:6] == [1, 1, 1]
    assert [s for _, s, _ in again.history[3:6]] == [0, 10, 20]
    assert again.history[3][2] == pytest.approx(once.rel_dist[stuck].mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match="restarts must be >= 0"):
        generate(rep, targets, seeds, {"kind": "regfree"}, restarts=-1, **kw)


@pytest.mark.parametrize(
    "loss_spec", [{"kind": "regfree-transforms"}, {"kind": "adversarial", "lam": "auto"}], ids=["transforms", "auto"]
)
def test_stopping_keeps_each_examples_draws_and_weights(loss_spec):
    """Frozen examples leave the batch, but the others keep their own random
    transformations (ExampleStreams) and their set's 'auto' weight (cut at
    build, per example): an IRI that never converged is the full run's."""
    model = small_model()
    rep = representation(model)
    targets, seeds = images(6), images(6, seed=7)
    seeds[:2] = (targets[:2] + 0.02 * (seeds[:2] - 0.5)).clamp(0, 1)
    groups = torch.tensor([0, 1, 0, 1, 0, 1])
    kw = dict(steps=20, step_size=0.1, schedule="cosine", threshold=0.1, groups=groups)
    full = generate(rep, targets, seeds, loss_spec, **kw)
    stopped = generate(rep, targets, seeds, loss_spec, stop_every=10, **kw)
    never = ~stopped.converged
    assert stopped.converged[:2].all() and never.sum() >= 2
    assert torch.allclose(stopped.iris[never], full.iris[never], atol=1e-4)
    assert torch.allclose(stopped.rel_dist[never], full.rel_dist[never], rtol=1e-4, atol=1e-6)


def test_amp_is_ignored_on_the_cpu():
    model = small_model()
    rep = representation(model)
    targets, seeds = images(4), images(4, seed=8)
    kw = dict(steps=5, step_size=0.5)
    plain = generate(rep, targets, seeds, {"kind": "regfree"}, **kw)
    amp = generate(rep, targets, seeds, {"kind": "regfree"}, amp="bf16", **kw)
    assert torch.equal(plain.iris, amp.iris) and plain.iris.dtype == torch.float32


@pytest.mark.usefixtures("one_thread")
def test_channels_last_iris_equal_contiguous_ones_up_to_rounding():
    """iris.channels_last acts on the CPU too (it is faster there): the same
    IRIs as in the contiguous format, up to float rounding."""
    model, sets = small_model(), job_sets()
    s = job_settings({"kind": "regfree"})
    last, _ = run_job(copy.deepcopy(model), "penultimate", sets, s, "cpu")
    contiguous, _ = run_job(copy.deepcopy(model), "penultimate", sets, {**s, "channels_last": False}, "cpu")
    for a, b in zip(last, contiguous):
        # unit-length steps carry rounding differences along the 20 steps (up to 2e-3 relative seen)
        torch.testing.assert_close(a.rel_dist, b.rel_dist, rtol=1e-2, atol=1e-3)
        assert torch.equal(a.converged, b.converged) and torch.equal(a.restarts, b.restarts)


def test_iris_csv_holds_each_observers_distance_to_seed_and_target(tmp_path):
    import numpy as np
    import pandas as pd

    from iriflow.iri import save_job
    from iriflow.iriset import IRISet

    rng = np.random.default_rng(0)
    img = lambda: rng.random((4, 1, 28, 28)).astype(np.float32)  # noqa: E731
    seeds, targets = img(), img()
    iris = np.concatenate([seeds[:2], targets[2:]])  # two IRIs are their seeds, two their targets
    iri_set = IRISet(
        "mnist5k/resnet18-ce-adv_l2-s0/penultimate/regfree/other-image",
        iris=iris,
        seeds=seeds,
        targets=targets,
        target_index=np.arange(4),
        target_label=np.arange(4),
        rel_dist=np.zeros(4),
        loss=np.zeros(4),
        converged=np.ones(4, bool),
        settings={},
        extra={"restarts": np.array([0, 1, 0, 2])},
    )
    out = {k: tmp_path / f"{k}.{e}" for k, e in (("iris", "npz"), ("table", "csv"), ("grid", "png"))}
    save_job(iri_set, distances=["ssim", "fsim"], **out)
    table = pd.read_csv(out["table"])
    assert table["restarts"].tolist() == [0, 1, 0, 2]
    assert IRISet.load(out["iris"]).extra["restarts"].tolist() == [0, 1, 0, 2]
    for name in ("ssim", "fsim"):
        d = get_metric(name)
        to_seed = d(torch.from_numpy(iris), torch.from_numpy(seeds)).numpy()
        assert np.allclose(table[f"{name}_to_seed"], to_seed, rtol=1e-4, atol=1e-6)
        assert np.allclose(table[f"{name}_to_seed"][:2], 0, atol=1e-4)
        assert np.allclose(table[f"{name}_to_target"][2:], 0, atol=1e-4)
        assert (table[f"{name}_to_seed"][2:] > 0.1).all() and (table[f"{name}_to_target"][:2] > 0.1).all()
