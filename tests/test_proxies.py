"""Human-free proxies: linear CKA on hand-computable cases, and the 2AFC
proxy on constructed images with known answers."""

import numpy as np
import pytest
import torch

from iriflow.judgments import build_trials
from iriflow.proxies import linear_cka, proxy_2afc, summarise_proxy


def test_cka_of_identical_representations_is_one():
    x = np.random.default_rng(0).normal(size=(50, 8))
    assert linear_cka(x, x) == pytest.approx(1.0)


def test_cka_one_dimensional_is_the_squared_correlation():
    # centred x = [-1.5, -0.5, 0.5, 1.5], y = [-1.5, 0.5, -0.5, 1.5]: x.y = 4, |x|^2 = |y|^2 = 5 -> r = 0.8
    assert linear_cka(np.array([[1.0], [2], [3], [4]]), np.array([[1.0], [3], [2], [4]])) == pytest.approx(0.64)


def test_cka_of_orthogonal_centred_columns_is_zero():
    x = np.array([[1.0], [-1], [1], [-1]])
    y = np.array([[1.0], [1], [-1], [-1]])
    assert linear_cka(x, y) == pytest.approx(0.0, abs=1e-12)


def test_cka_of_independent_representations_is_near_zero():
    rng = np.random.default_rng(1)
    assert linear_cka(rng.normal(size=(4000, 3)), rng.normal(size=(4000, 3))) < 0.01


def test_cka_is_invariant_to_isotropic_scaling_and_orthogonal_transforms():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 10))
    y = x @ rng.normal(size=(10, 6)) + 0.5 * rng.normal(size=(60, 6))
    base = linear_cka(x, y)
    q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    assert linear_cka(3.7 * x, y) == pytest.approx(base)
    assert linear_cka(x, 0.01 * y) == pytest.approx(base)
    assert linear_cka(x @ q, y) == pytest.approx(base)
    assert linear_cka(x + 5.0, y) == pytest.approx(base)  # centring: shifts do not matter
    assert 0.0 < base < 1.0
    # not invariant to anisotropic scaling
    assert linear_cka(x * np.arange(1, 11), y) != pytest.approx(base, abs=1e-3)


def test_cka_gram_and_feature_forms_agree():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(5, 40)), rng.normal(size=(5, 30))  # n < p: the Gram form
    xc, yc = x - x.mean(0), y - y.mean(0)
    direct = np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    assert linear_cka(x, y) == pytest.approx(direct)


def test_cka_degenerate_inputs():
    assert np.isnan(linear_cka(np.ones((5, 2)), np.random.default_rng(0).normal(size=(5, 2))))
    with pytest.raises(ValueError, match="different numbers"):
        linear_cka(np.zeros((4, 2)), np.zeros((5, 2)))


def _images(n=8, seed=0):
    """Smooth random 'targets' (blurred noise) and noise seeds, 1 x 28 x 28."""
    g = torch.Generator().manual_seed(seed)
    t = torch.nn.functional.avg_pool2d(torch.rand(n, 1, 32, 32, generator=g), 5, stride=1)[..., :28, :28]
    t = (t - t.amin((2, 3), keepdim=True)) / (t.amax((2, 3), keepdim=True) - t.amin((2, 3), keepdim=True))
    seeds = torch.rand(n, 1, 28, 28, generator=g)
    return t, seeds


@pytest.mark.parametrize("metric", ["ssim", "l2"])
def test_2afc_proxy_on_constructed_images(metric):
    targets, seeds = _images()
    labels = np.arange(len(targets)) % 4
    trials = build_trials(len(targets), labels, np.ones(len(targets), bool), matching_k=0, n_catch=0, set_id="toy")
    g = torch.Generator().manual_seed(1)
    near_target = (targets + 0.05 * torch.randn(targets.shape, generator=g)).clamp(0, 1)
    near_seed = (seeds + 0.05 * torch.randn(seeds.shape, generator=g)).clamp(0, 1)
    good = summarise_proxy(proxy_2afc(trials, {"iri": near_target, "target": targets, "seed": seeds}, metric))
    bad = summarise_proxy(proxy_2afc(trials, {"iri": near_seed, "target": targets, "seed": seeds}, metric))
    good = good.set_index("alternative")["proxy"]
    bad = bad.set_index("alternative")["proxy"]
    assert good["seed"] == 1.0 and good["other-target"] == 1.0  # an IRI that looks like its target
    assert bad["seed"] == 0.0  # an IRI that stayed its seed
    per_trial = proxy_2afc(trials, {"iri": targets, "target": targets, "seed": seeds}, metric)
    assert (per_trial["d_target"].abs() < 1e-5).all() and per_trial["correct"].all()  # the target itself
    assert len(per_trial) == 2 * len(targets)  # one 2afc trial per IRI and alternative
