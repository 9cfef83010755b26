import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import norm

from iriflow.judgments import (
    TRIAL_COLUMNS,
    _thurstone,
    build_trials,
    calibrate_sigma,
    distances_for_trials,
    noise_level,
    observer_choice_probs,
    other_class_images,
    psychometric_curve,
    simulate_population,
    split_options,
    validate_metric,
)
from iriflow.metrics import get_metric
from iriflow.responses import RESPONSE_COLUMNS, RESPONSE_DTYPES
from iriflow.scoring import catch_pass_rates, crossed_bootstrap_ci, exclude_failed_catch, score

# --- observer choice rule ------------------------------------------------------


def test_two_option_probabilities_follow_the_formula():
    p = observer_choice_probs(np.array([[0.3, 0.3]]), sigma=0.1, lapse=0.1)
    np.testing.assert_allclose(p, [[0.5, 0.5]])
    p = observer_choice_probs(np.array([[0.0, 1.0]]), sigma=0.05, lapse=0.0)
    assert p[0, 0] > 1 - 1e-12
    # with lapses the asymptote is 1 - lapse/2
    np.testing.assert_allclose(observer_choice_probs(np.array([[0.0, 5.0]]), 0.05, 0.1), [[0.95, 0.05]])
    # hand-computed: Phi(1) = 0.841344746...; 0.02 + 0.96 * Phi(1)
    p = observer_choice_probs(np.array([[0.2, 0.3]]), sigma=0.1, lapse=0.04)
    np.testing.assert_allclose(p[0], [0.02 + 0.96 * 0.8413447460685429, 1 - 0.02 - 0.96 * 0.8413447460685429])
    d = np.random.default_rng(0).random((50, 2))
    p, q = observer_choice_probs(d, 0.2, 0.05), observer_choice_probs(d[:, ::-1], 0.2, 0.05)
    np.testing.assert_allclose(p, q[:, ::-1])  # symmetric in the option order
    np.testing.assert_allclose(p[:, 0], 0.025 + 0.95 * norm.cdf((d[:, 1] - d[:, 0]) / 0.2))


def test_many_option_rule_is_thurstonian_and_reduces_to_two_options():
    rng = np.random.default_rng(1)
    d2 = rng.random((20, 2))
    # the K>2 quadrature at K=2 equals the closed form
    np.testing.assert_allclose(_thurstone(d2, 0.15)[:, 0], norm.cdf((d2[:, 1] - d2[:, 0]) / 0.15), atol=1e-9)
    # an option that is never chosen leaves the two-option probabilities
    far = np.column_stack([d2, np.full(20, 1e3)])
    np.testing.assert_allclose(
        observer_choice_probs(far, 0.15, 0.0)[:, :2], observer_choice_probs(d2, 0.15, 0.0), atol=1e-9
    )
    p = observer_choice_probs(np.full((3, 4), 0.2), 0.1, 0.2)
    np.testing.assert_allclose(p, 0.25)
    p = observer_choice_probs(np.array([[0.0, 9.0, 9.0, 9.0]]), 0.1, 0.2)
    np.testing.assert_allclose(p, [[0.85, 0.05, 0.05, 0.05]])
    # Monte Carlo: internal distance d_k + N(0, sigma^2/2), pick the smallest
    d = np.array([0.10, 0.15, 0.20, 0.12])
    noisy = d + rng.normal(0, 0.1 / np.sqrt(2), (200_000, 4))
    mc = np.bincount(noisy.argmin(1), minlength=4) / len(noisy)
    np.testing.assert_allclose(observer_choice_probs(d[None], 0.1, 0.0)[0], mc, atol=0.005)
    # NaN-padded rows are two-option trials
    mixed = np.array([[0.1, 0.3, np.nan, np.nan], [0.1, 0.3, 0.5, 0.2]])
    p = observer_choice_probs(mixed, 0.1, 0.0)
    np.testing.assert_allclose(p[0], [norm.cdf(2), norm.cdf(-2), 0, 0])
    np.testing.assert_allclose(p.sum(1), 1)
    with pytest.raises(ValueError, match="sigma"):
        observer_choice_probs(mixed, 0.0, 0.0)


# --- simulated observers on real tensors --------------------------------------


def smooth_images(n, seed, size=28):
    """Smooth random images (upsampled 7x7 noise) spanning [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(n, 1, 7, 7, generator=g), size=size, mode="bicubic", align_corners=False)
    x = x - x.amin((1, 2, 3), keepdim=True)
    return x / x.amax((1, 2, 3), keepdim=True)


def test_ssim_observer_picks_the_target_over_a_noise_alternative():
    targets = smooth_images(12, 0)
    g = torch.Generator().manual_seed(1)
    iris = (targets + 0.05 * torch.randn(targets.shape, generator=g)).clamp(0, 1)
    seeds = torch.rand(targets.shape, generator=g)
    trials = build_trials(
        12, np.arange(12) % 4, np.ones(12, bool), alternatives=("seed",), matching_k=0, n_catch=0, set_id="S"
    )
    images = {"iri": iris, "target": targets, "seed": seeds}
    d = distances_for_trials(trials, images, "ssim")
    resp = simulate_population(
        trials, d, n_participants=10, sigma=0.05, sigma_spread=0.3, lapse=0.0, seed=0, observer="simulated:ssim"
    )
    assert resp["correct"].mean() > 0.95
    assert list(resp.columns) == list(RESPONSE_COLUMNS)
    assert resp.dtypes.astype(str).to_dict() == RESPONSE_DTYPES
    assert len(resp) == 10 * 12 and resp["participant"].nunique() == 10
    assert resp["rt_ms"].isna().all() and (resp["observer"] == "simulated:ssim").all()
    # distances follow the option order: the target column holds D(iri_i, target_i)
    r = trials.iloc[3]
    i = r.target
    expect = get_metric("ssim")(iris[i : i + 1], targets[i : i + 1]).item()
    assert d[3, r.correct] == pytest.approx(expect, rel=1e-5)


def test_distances_cover_every_option_and_pad_short_trials():
    targets = smooth_images(8, 2, size=16)
    iris, seeds = targets.flip(-1), torch.zeros_like(targets)
    trials = build_trials(8, np.arange(8) % 4, np.ones(8, bool), matching_k=4, n_catch=2, set_id="S")
    images = {"iri": iris, "target": targets, "seed": seeds}
    d = distances_for_trials(trials, images, "l2")
    assert d.shape == (len(trials), 4)
    two = trials["n_options"].to_numpy() == 2
    assert np.isnan(d[two, 2:]).all() and not np.isnan(d[~two]).any()
    pairs = [(q, o) for q, opts in zip(trials["query"], split_options(trials)) for o in opts]
    assert len(set(pairs)) < len(pairs)  # repeated pairs (computed once) get the same value in every cell
    bank = {k: v.flatten(1) for k, v in images.items()}
    ref = lambda s: bank[s.split(":")[0]][int(s.split(":")[1])]  # noqa: E731
    for row, opts in zip(range(len(trials)), split_options(trials)):
        q = ref(trials["query"].iloc[row])
        np.testing.assert_allclose(
            d[row, : len(opts)], [(q - ref(o)).pow(2).mean().sqrt().item() for o in opts], rtol=1e-5
        )


def test_simulation_is_seeded_and_noise_matters():
    trials = build_trials(20, np.arange(20) % 5, np.ones(20, bool), set_id="S")
    d = np.where(np.arange(4) == trials["correct"].to_numpy()[:, None], 0.10, 0.14)
    d[trials["n_options"].to_numpy() == 2, 2:] = np.nan
    a = simulate_population(trials, d, n_participants=30, sigma=0.02, sigma_spread=0.3, lapse=0.0, seed=3)
    b = simulate_population(trials, d, n_participants=30, sigma=0.02, sigma_spread=0.3, lapse=0.0, seed=3)
    pd.testing.assert_frame_equal(a, b)
    noisy = simulate_population(trials, d, n_participants=30, sigma=1.0, sigma_spread=0.0, lapse=0.0, seed=3)
    assert a["correct"].mean() > 0.85
    # near-random observers: 2AFC near 1/2, 4-way matching near 1/4
    m = noisy.merge(trials[["trial_id", "kind"]], on="trial_id").groupby("kind")["correct"].mean()
    assert abs(m["2afc"] - 0.5) < 0.08 and abs(m["matching"] - 0.25) < 0.08


def test_psychometric_curves_recover_the_known_answers():
    targets = smooth_images(16, 4)
    noise = torch.rand(targets.shape, generator=torch.Generator().manual_seed(5))
    curve = psychometric_curve(targets, "ssim", kind="noise", levels=[0.0, 0.05, 0.2], other_images=noise, sigma=0.05)
    assert list(curve["level"]) == [0.0, 0.05, 0.2]
    assert curve["p_target"].iloc[0] == 1.0 and curve["p_target"].iloc[1] == 1.0
    assert curve["d_target"].is_monotonic_increasing and curve["d_target"].iloc[0] == pytest.approx(0, abs=1e-6)
    assert np.isinf(curve["snr_db"].iloc[0]) and curve["snr_db"].iloc[1] > curve["snr_db"].iloc[2]
    assert curve["p_target_model"].iloc[0] > 0.99
    others = smooth_images(16, 6)
    blend = psychometric_curve(targets, "l2", kind="blend", levels=[0.1, 0.4, 0.6, 0.9], other_images=others)
    assert list(blend["p_target"]) == [1.0, 1.0, 0.0, 0.0]
    assert blend["p_target_model"].isna().all() and blend["snr_db"].isna().all()


def test_calibrated_observer_hits_its_anchor_and_is_graded_around_it():
    targets, labels = smooth_images(20, 7), np.arange(20) % 5
    others = other_class_images(targets, labels, seed=0)
    assert all(not torch.equal(o, t) for o, t in zip(others, targets))
    sigma = calibrate_sigma(targets, others, "l2", snr_db=-8.0, p_correct=0.8, repeats=5, seed=3)
    # the same constructed trials (same seed) give back the anchor ...
    at = psychometric_curve(
        targets.repeat(5, 1, 1, 1),
        "l2",
        kind="noise",
        levels=[noise_level(targets, -8.0)],
        other_images=others.repeat(5, 1, 1, 1),
        sigma=sigma,
        seed=3,
    )
    assert at["p_target_model"].iloc[0] == pytest.approx(0.8, abs=1e-6)
    # ... and the observer is better with less noise, worse with more, never below chance
    curve = validate_metric(
        targets, labels, "l2", snr_db=[-20, -8, 5], blend=[0.2, 0.8], repeats=5, sigma=sigma, seed=3
    )
    noise = curve.loc[curve["trial"] == "noise", "p_target_model"].to_numpy()
    assert 0.5 <= noise[0] < 0.8 - 0.05 and noise[2] > 0.8 + 0.05
    blend = curve.loc[curve["trial"] == "blend-other", "p_target_model"].to_numpy()
    assert blend[0] > 0.5 > blend[1]
    assert set(curve["trial"]) == {"noise", "blend-other", "blend-noise"}
    # a stricter anchor (75% at a lower SNR) needs a more sensitive observer: smaller sigma
    assert calibrate_sigma(targets, others, "l2", snr_db=-12.0, p_correct=0.8, repeats=5, seed=3) < sigma


def test_calibration_refuses_an_anchor_the_metric_cannot_reach():
    targets, labels = smooth_images(10, 8), np.arange(10) % 5
    others = other_class_images(targets, labels)
    with pytest.raises(ValueError, match=r"metric 'l2': even without decision noise .* at -40.0 dB"):
        calibrate_sigma(targets, others, "l2", snr_db=-40.0, p_correct=0.75)
    with pytest.raises(ValueError, match="p_correct"):
        calibrate_sigma(targets, others, "l2", snr_db=0.0, p_correct=0.5)


def glyphs(n, seed, size=28):
    """Digit-like images: three thick white bars on black."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, size, size)
    for i in range(n):
        for _ in range(3):
            r, c = torch.randint(4, size - 8, (2,), generator=g).tolist()
            if torch.rand(1, generator=g) < 0.5:
                x[i, 0, r : r + 3, c - 2 : c + 8] = 1
            else:
                x[i, 0, r - 2 : r + 8, c : c + 3] = 1
    return x


def test_validation_flags_a_metric_that_prefers_the_wrong_image():
    # GMSD compares gradient maps: pixel noise on a glyph with flat background
    # adds gradients everywhere, which another clean glyph does not, so GMSD
    # prefers the wrong image; L2 and SSIM do not. The curves must show it.
    targets, labels = glyphs(20, 9), np.arange(20) % 5
    curves = {
        m: validate_metric(targets, labels, m, snr_db=[-5.0, 0.0], blend=[0.3], repeats=3)
        for m in ("gmsd", "l2", "ssim")
    }
    noise = {m: c.loc[c["trial"] == "noise", "p_target"].to_numpy() for m, c in curves.items()}
    assert (noise["l2"] == 1.0).all() and (noise["ssim"] == 1.0).all() and (noise["gmsd"] < 0.1).all()
    # a 30% blend with a noise image is still the target for L2, not for GMSD
    blend = {m: c.loc[c["trial"] == "blend-noise", "p_target"].iloc[0] for m, c in curves.items()}
    assert blend["l2"] == 1.0 and blend["gmsd"] < 0.1


# --- scoring -------------------------------------------------------------------


def simulated_matrix(rng, n_p, n_i, rate=0.7, sd=0.1):
    p = rate + rng.normal(0, sd, (n_p, 1)) + rng.normal(0, sd, (1, n_i))
    return (rng.random((n_p, n_i)) < p.clip(0, 1)).astype(float)


def test_crossed_bootstrap_covers_the_true_rate():
    rng = np.random.default_rng(0)
    cis = np.array([crossed_bootstrap_ci(simulated_matrix(rng, 20, 30), n_boot=1000, seed=s) for s in range(200)])
    coverage = np.mean((cis[:, 1] <= 0.7) & (0.7 <= cis[:, 2]))
    assert 0.90 <= coverage <= 0.995
    assert (cis[:, 1] <= cis[:, 0]).all() and (cis[:, 0] <= cis[:, 2]).all()
    width = (
        lambda n_p: np.mean(
            [
                np.subtract(
                    *crossed_bootstrap_ci(
                        simulated_matrix(rng, n_p, 30),  # noqa: E731
                        500,
                        seed=s,
                    )[2:0:-1]
                )
                for s in range(20)
            ]
        )
    )
    assert width(80) < 0.7 * width(5)


def test_crossed_bootstrap_handles_missing_cells():
    m = np.array([[1.0, 0.0, np.nan], [1.0, np.nan, 1.0]])
    mean, lo, hi = crossed_bootstrap_ci(m, n_boot=200)
    assert mean == pytest.approx(0.75) and 0 <= lo <= mean <= hi <= 1
    assert all(np.isnan(crossed_bootstrap_ci(np.full((2, 2), np.nan))))
    assert crossed_bootstrap_ci(np.ones((4, 5))) == (1.0, 1.0, 1.0)


def responses_for(trials, participants, correct_fn):
    """Every participant answers every trial; correct_fn(participant, trial row) -> bool."""
    rows = []
    for p in participants:
        for _, t in trials.iterrows():
            ok = correct_fn(p, t)
            rows.append(
                {
                    "participant": p,
                    "set_id": t.set_id,
                    "trial_id": t.trial_id,
                    "response": t.correct if ok else (t.correct + 1) % t.n_options,
                    "correct": ok,
                    "rt_ms": 500.0,
                    "observer": "real",
                }
            )
    return pd.DataFrame(rows)


def test_score_per_condition_leaves_catch_trials_out():
    trials = build_trials(10, np.arange(10) % 5, np.ones(10, bool), matching_k=5, n_catch=3, set_id="S")
    resp = responses_for(
        trials, ["a", "b", "c"], lambda p, t: t.alternative == "seed" or (t.kind == "matching" and t.target < 5)
    )
    s = score(resp, trials, n_boot=200).set_index(["kind", "alternative"])
    assert set(s.index) == {("2afc", "seed"), ("2afc", "other-target"), ("matching", "")}
    assert s.loc[("2afc", "seed"), ["prop_correct", "ci_lo", "ci_hi"]].tolist() == [1.0, 1.0, 1.0]
    assert s.loc[("2afc", "other-target"), "prop_correct"] == 0.0
    assert s.loc[("matching", ""), "prop_correct"] == 0.5
    assert s.loc[("2afc", "seed"), ["n_participants", "n_targets", "n_trials"]].tolist() == [3, 10, 30]
    assert (s["observer"] == "real").all()
    with pytest.raises(ValueError, match="not in the table"):
        score(resp.assign(trial_id="S/nope"), trials)


def test_participants_failing_catch_trials_are_excluded_and_counted():
    trials = build_trials(10, np.arange(10) % 5, np.ones(10, bool), matching_k=0, n_catch=4, set_id="S")
    resp = responses_for(
        trials,
        ["good", "sloppy", "bad"],
        lambda p, t: t.kind != "catch" or p == "good" or (p == "sloppy" and t.trial_id.endswith("catch/0")),
    )
    rates = catch_pass_rates(resp, trials).set_index("participant")
    assert rates.loc["good", "pass_rate"] == 1.0 and rates.loc["sloppy", "pass_rate"] == 0.25
    assert rates.loc["bad", "n_catch"] == 4 and rates.loc["bad", "n_catch_correct"] == 0
    kept, report = exclude_failed_catch(resp, trials, 0.75)
    assert report["n_participants"] == 3 and report["n_excluded"] == 2 and report["n_kept"] == 1
    assert report["excluded"] == ["bad", "sloppy"]
    assert set(kept["participant"]) == {"good"} and len(kept) == len(trials)
    no_catch = trials[trials.kind != "catch"]
    kept, report = exclude_failed_catch(resp[~resp.trial_id.str.contains("catch")], no_catch, 0.75)
    assert report["n_excluded"] == 0 and report["n_catch_trials"] == 0


# --- trial builder -------------------------------------------------------------


def test_trial_builder_counts_and_structure():
    n = 40
    labels = np.arange(n) % 10
    converged = np.ones(n, bool)
    converged[[1, 5, 12, 30, 33]] = False
    t = build_trials(n, labels, converged, matching_k=4, n_catch=6, seed=7, set_id="m/l/regfree/noise")
    assert list(t.columns) == list(TRIAL_COLUMNS) and t["trial_id"].is_unique
    assert t.attrs["n_not_converged"] == 5 and t.attrs["not_converged"] == [1, 5, 12, 30, 33]
    counts = t["kind"].value_counts()
    assert counts["2afc"] == 2 * 35 and counts["catch"] == 6
    assert (t.loc[t.kind == "2afc", "alternative"].value_counts() == 35).all()
    iri_rows = t[t.kind != "catch"]
    assert not iri_rows["target"].isin([1, 5, 12, 30, 33]).any()
    opts = split_options(t)
    assert [o[c] for o, c in zip(opts, t["correct"])] == [f"target:{i}" for i in t["target"]]
    assert (t["n_options"] == [len(o) for o in opts]).all()
    # other-target options are targets of another class
    other = t[(t.alternative == "other-target") | (t.kind == "catch")]
    for o, c, i in zip(split_options(other), other["correct"], other["target"]):
        j = int(o[1 - c].split(":")[1])
        assert o[1 - c].startswith("target:") and labels[j] != labels[i]
    seed_rows = t[t.alternative == "seed"]
    assert all(
        o[1 - c] == f"seed:{i}" for o, c, i in zip(split_options(seed_rows), seed_rows.correct, seed_rows.target)
    )
    assert (iri_rows["query"] == "iri:" + iri_rows["target"].astype(str)).all()
    catch = t[t.kind == "catch"]
    assert (catch["query"] == "target:" + catch["target"].astype(str)).all()
    # the target's side is balanced within each 2-option condition
    for _, g in t[t.n_options == 2].groupby(["kind", "alternative"]):
        assert abs((g["correct"] == 0).sum() - (g["correct"] == 1).sum()) <= 1
    # matching: disjoint groups of 4 converged targets of 4 classes, shared display order
    m = t[t.kind == "matching"]
    assert len(m) == 32 and m["target"].is_unique  # 35 converged -> 8 groups of 4
    for _, g in m.groupby("group"):
        assert len(g) == 4 and g["target_label"].nunique() == 4 and g["options"].nunique() == 1
        assert sorted(g["correct"]) == [0, 1, 2, 3]


def test_trial_builder_is_seeded():
    args = (30, np.arange(30) % 6, np.ones(30, bool))
    a, b = build_trials(*args, seed=1), build_trials(*args, seed=1)
    pd.testing.assert_frame_equal(a, b)
    c = build_trials(*args, seed=2)
    assert not a["options"].equals(c["options"])
    assert a["kind"].value_counts().equals(c["kind"].value_counts())
    assert sorted(a.loc[a.kind != "matching", "trial_id"]) == sorted(c.loc[c.kind != "matching", "trial_id"])


def test_trial_builder_rejects_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        build_trials(5, np.arange(4), np.ones(5, bool))
    with pytest.raises(ValueError, match="unknown 2AFC alternatives"):
        build_trials(4, np.arange(4), np.ones(4, bool), alternatives=("noise",))
    with pytest.raises(ValueError, match="two classes"):
        build_trials(4, np.zeros(4), np.ones(4, bool), alternatives=("other-target",))


# --- observer validity per trial kind and seed type ------------------------------------


def _texture_metric(x, y):
    """A planted observer's distance: L2, minus a bonus for an option with
    noise texture (mean absolute pixel step above 0.2; the smooth images of
    the test have about 0.1). It prefers a noise image to a clean one, as
    fsim does on MNIST, and is L2 between clean images."""
    texture = (y[..., 1:, :] - y[..., :-1, :]).abs().flatten(1).mean(1)
    return (x - y).pow(2).flatten(1).mean(1).sqrt() - 10 * (texture - 0.2).clamp(min=0)


def test_validity_check_fails_an_observer_only_where_it_prefers_the_wrong_image(monkeypatch):
    from iriflow.judgments import VALIDITY_COLUMNS, observer_validity, pseudo_iris
    from iriflow.metrics import METRICS

    monkeypatch.setitem(METRICS, "texture", _texture_metric)
    g = torch.Generator().manual_seed(0)
    n = 24
    labels = np.arange(n) % 4
    shapes = F.interpolate(torch.rand(4, 1, 4, 4, generator=g).round(), scale_factor=4)  # smooth 16 px "digits"
    targets = (0.8 * shapes[labels] + 0.2 * torch.rand(n, 1, 1, 1, generator=g)).clamp(0, 1)
    seeds = {
        "super-noise": torch.randn(n, 1, 16, 16, generator=g).clamp(0, 1),
        "other-image": targets[torch.randperm(n, generator=g)],
    }
    np.testing.assert_allclose(
        pseudo_iris(targets, seeds["super-noise"], 0.25), 0.75 * targets + 0.25 * seeds["super-noise"]
    )
    observers = {
        "l2": {"metric": "l2", "sigma": 0.05, "lapse": 0.02},
        "planted": {"metric": "texture", "sigma": 0.05, "lapse": 0.02},
    }
    table = observer_validity(
        targets,
        labels,
        seeds,
        observers,
        seed_types=["super-noise", "other-image"],
        alternatives=["seed", "other-target"],
        matching_k=4,
        weights=[0.2, 0.35],
        margin_pp=10,
        feature_seed_type="super-noise",
    )
    print(table.drop(columns="reason").round(3).to_string(index=False))
    assert list(table.columns) == list(VALIDITY_COLUMNS)
    key = table.set_index(["observer", "measure", "seed_type"])
    # every (trial kind, seed type) is checked for both observers, on trials of every target at both weights
    assert len(key) == 2 * (3 * 2 + 1) and (table["n_trials"].loc[table["kind"] == "2afc"] == 2 * n).all()
    assert (key.loc[("simulated:l2", "matching", "super-noise"), "chance"]) == 0.25
    assert key["passed"].loc["simulated:l2"].all()
    failed = table.loc[~table["passed"], ["observer", "measure", "seed_type"]].values.tolist()
    assert failed == [["simulated:planted", "2afc:seed", "super-noise"]]
    bad = key.loc[("simulated:planted", "2afc:seed", "super-noise")]
    assert bad["p_correct"] < 0.1 and bad["ci_hi"] < bad["threshold"] == 0.6
    assert "not above chance + 10 pp (60.0%)" in bad["reason"]
    # a pass: the interval's lower bound above chance + margin
    ok = table.loc[table["passed"]]
    assert (ok["ci_lo"] > ok["chance"] + 0.1).all() and (ok["ci_lo"] <= ok["p_correct"]).all()


def test_metrics_load_piq_without_torchvision_and_leave_piq_importable():
    """iriflow.metrics loads piq's metric modules without piq's __init__
    (which imports torchvision and torch._dynamo: ~2 s per job); a later
    ``import piq`` must still give the whole package, with the same functions."""
    code = (
        "import sys, torch\n"
        "from iriflow.metrics import METRICS, PIQ_MODULES\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torchvision', 'piq') and m.count('.') == 0))\n"
        "x, y = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.rand(3, 1, 28, 28)\n"
        "mine = {k: METRICS[k](x, y) for k in PIQ_MODULES}\n"
        "import piq\n"
        "print(hasattr(piq, 'LPIPS'), 'torchvision' in sys.modules, piq.ssim is sys.modules['piq.ssim'].ssim)\n"
        "print(torch.equal(mine['ssim'], 1 - piq.ssim(x, y, data_range=1.0, reduction='none', kernel_size=7)),"
        " torch.equal(mine['gmsd'], piq.gmsd(x, y, reduction='none', data_range=1.0)),"
        " torch.equal(mine['fsim'], 1 - piq.fsim(x, y, reduction='none', data_range=1.0, chromatic=False)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split("\n")[:3] == ["[]", "True True True", "True True True"]
