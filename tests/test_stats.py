"""Statistics (iriflow.stats) against simulated answers with known effects:
a planted factor effect is detected, a null one is not (at the nominal rate,
over repeated simulations with participant and item random effects), Holm
values, contrasts, and agreement."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.stats.multitest import multipletests

from iriflow.stats import (
    aggregate,
    agreement,
    analyse,
    build_design,
    cell_means,
    fit_binomial,
    holm,
    lr_test,
    model_terms,
    ordered_levels,
    select_factors,
)
from simulated import simulate_answers

ALPHA = 0.05


def simulate(seed: int, effect_a: float = 1.2, effect_b: float = 0.0, b0: float = 0.2, **kw) -> pd.DataFrame:
    """Answers of a crossed design: factors A and B (2 x 2 cells of
    ``n_items`` items each, like models x IRIs), every participant answers
    every item; logit P(correct) = b0 + effect_a [A=a1] + effect_b [B=b1]
    + u_participant + v_item (random intercepts; simulated.simulate_answers)."""
    sets = [
        (
            {"A": a, "B": b, "set_id": f"{a}{b}", "model": f"{a}{b}"},
            b0 + effect_a * (a == "a1") + effect_b * (b == "b1"),
        )
        for a in ("a0", "a1")
        for b in ("b0", "b1")
    ]
    return simulate_answers(sets, seed, **kw)


# --- Holm ----------------------------------------------------------------------------


def test_holm_hand_computed_values():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1
    out = holm([0.01, np.nan, 0.02])  # NaN is not counted in the family
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.02])
    assert np.isnan(out[1])
    assert holm([]).shape == (0,)


def test_holm_equals_statsmodels():
    p = np.random.default_rng(0).random(37) ** 3
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1])


# --- the GLM on counts per IRI set equals the GLM on single answers ---------------------


def test_aggregated_fit_and_cluster_covariance_equal_statsmodels_on_single_answers():
    d = simulate(5, n_participants=8, n_items=6)
    levels = ordered_levels(d, ["A", "B"])
    design = build_design(d, model_terms(["A", "B"], None, (), True), levels)
    cells = aggregate(d, ["A", "B"])
    fit = fit_binomial(cells, design)
    x = design.matrix(d)
    groups = np.column_stack([pd.factorize(d["participant"])[0], pd.factorize(d["item"])[0]])
    ref = sm.GLM(d["correct"].to_numpy(float), x, family=sm.families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": groups}
    )
    np.testing.assert_allclose(fit.params, ref.params, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fit.cov, ref.cov_params(), rtol=1e-4, atol=1e-10)  # IRLS tolerance
    np.testing.assert_allclose(
        fit.cov_naive,
        sm.GLM(d["correct"].to_numpy(float), x, family=sm.families.Binomial()).fit().cov_params(),
        rtol=1e-4,
    )
    # LR statistics: the binomial constants cancel
    reduced = sm.GLM(d["correct"].to_numpy(float), x[:, :2], family=sm.families.Binomial()).fit()
    lr = lr_test(cells, fit, [2, 3])["lr"]
    naive = sm.GLM(d["correct"].to_numpy(float), x, family=sm.families.Binomial()).fit()
    assert lr == pytest.approx(2 * (naive.llf - reduced.llf), rel=1e-6)
    # cell means: a linear probability model with one indicator per set
    mean, cov = cell_means(cells)
    dummies = pd.get_dummies(d["set_id"]).to_numpy(float)
    ols = sm.OLS(d["correct"].to_numpy(float), dummies).fit(cov_type="cluster", cov_kwds={"groups": groups})
    np.testing.assert_allclose(mean, ols.params, rtol=1e-9)
    np.testing.assert_allclose(cov, ols.cov_params(), rtol=1e-6, atol=1e-12)


# --- planted vs null effects ------------------------------------------------------------


@pytest.fixture(scope="module")
def repeated_tests():
    """200 simulated experiments (20 participants x 80 items each): factor A
    has a planted effect of 1.2 log-odds, factor B none."""
    rows = []
    for seed in range(200):
        an = analyse(simulate(seed), ["A", "B"], by=None, covariates=(), contrasts=False)
        t = an.tests.set_index("term")
        rows.append(
            {
                "p_a": t.loc["A", "p"],
                "p_b": t.loc["B", "p"],
                "p_b_naive": t.loc["B", "p_naive"],
                "deff": t.loc["B", "deff"],
            }
        )
    return pd.DataFrame(rows)


def test_planted_factor_effect_is_detected(repeated_tests):
    power = (repeated_tests["p_a"] < ALPHA).mean()
    assert power >= 0.9, power


def test_null_factor_is_rejected_at_the_nominal_rate(repeated_tests):
    # the stated rate: alpha = 0.05, within 3 Monte-Carlo standard errors of 200 runs
    size = (repeated_tests["p_b"] < ALPHA).mean()
    assert size <= ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / len(repeated_tests)), size
    assert size > 0  # not absurdly conservative
    # the p-values of a true null are roughly uniform
    assert 0.35 < repeated_tests["p_b"].median() < 0.65


def test_uncorrected_lr_test_would_be_far_too_liberal(repeated_tests):
    """Why the Rao-Scott correction: the same IRIs are judged by every
    participant, so answers cluster (design effect > 1)."""
    assert (repeated_tests["p_b_naive"] < ALPHA).mean() > 0.25
    assert repeated_tests["deff"].median() > 2


# --- design, contrasts, loss interactions ---------------------------------------------------


def test_aliased_and_constant_factors_are_left_out_and_named():
    d = pd.DataFrame(
        {
            "objective": ["ce", "ce", "simclr", "simclr"],
            "base_augmentation": ["standard", "standard", "simclr", "simclr"],
            "adversarial": ["standard", "adversarial"] * 2,
            "arch": ["resnet18"] * 4,
        }
    )
    levels = ordered_levels(d, d.columns, {"adversarial": ["standard", "adversarial"]})
    kept, notes = select_factors(d, ["arch", "objective", "adversarial", "base_augmentation"], levels)
    assert kept == ["objective", "adversarial"]
    assert notes["arch"].startswith("one level") and notes["base_augmentation"].startswith("aliased with")
    design = build_design(d, model_terms(kept, None, (), True), levels)
    assert design.columns == (
        "Intercept",
        "objective[simclr]",
        "adversarial[adversarial]",
        "objective[simclr]:adversarial[adversarial]",
    )
    np.testing.assert_array_equal(design.matrix(d)[:, 3], [0, 0, 0, 1])


def _two_losses(seed: int = 0, n_participants: int = 15, n_items: int = 30) -> pd.DataFrame:
    """Adversarial training helps under 'regfree' (0.5 -> 0.85) but not under
    'adversarial' (0.5 and 0.5); two architectures with no effect; no
    random effects."""
    logit = {"standard": 0.0, "adversarial": np.log(0.85 / 0.15)}
    sets = [
        (
            {
                "arch": arch,
                "adversarial": adv,
                "loss": loss,
                "model": f"{arch}-{adv}",
                "set_id": f"{arch}-{adv}/{loss}",
            },
            logit[adv] if loss == "regfree" else 0.0,
        )
        for loss in ("regfree", "adversarial")
        for adv in ("standard", "adversarial")
        for arch in ("resnet18", "vgg16bn")
    ]
    return simulate_answers(sets, seed, n_participants=n_participants, n_items=n_items, sd_participant=0.0, sd_item=0.0)


@pytest.fixture(scope="module")
def loss_analysis():
    return analyse(
        _two_losses(),
        ["arch", "adversarial"],
        by="loss",
        covariates=(),
        preferred_levels={"adversarial": ["standard", "adversarial"], "loss": ["regfree", "adversarial"]},
    )


def test_loss_interaction_and_within_loss_tests(loss_analysis):
    t = loss_analysis.tests.set_index(["scope", "term"])
    assert t.loc[("all", "adversarial x loss"), "p"] < 0.001
    assert t.loc[("loss=regfree", "adversarial"), "p"] < 0.001
    assert t.loc[("loss=adversarial", "adversarial"), "p"] > 0.01
    assert t.loc[("all", "arch"), "p"] > 0.001  # one draw of a null factor (the rate is tested above)


def test_contrasts_recover_the_planted_differences(loss_analysis):
    c = loss_analysis.contrasts
    f = c.loc[(c["family"] == "factor") & (c["factor"] == "adversarial")].set_index("condition")
    assert f.loc["loss=regfree", "level_a"] == "adversarial" and f.loc["loss=regfree", "level_b"] == "standard"
    assert f.loc["loss=regfree", "diff_pp"] == pytest.approx(35, abs=4)
    assert f.loc["loss=regfree", "diff_pp_lo"] < 35 < f.loc["loss=regfree", "diff_pp_hi"]
    assert f.loc["loss=adversarial", "diff_pp"] == pytest.approx(0, abs=5)
    assert f.loc["loss=regfree, arch=vgg16bn", "p_holm"] < 0.001
    assert (c["p_holm"].dropna() >= c.loc[c["p_holm"].notna(), "p"] - 1e-12).all()
    chance = c.loc[c["family"] == "vs-chance"].set_index(["level_a", "condition"])
    assert chance.loc[("resnet18-adversarial", "loss=regfree"), "p_holm"] < 0.001
    assert chance.loc[("resnet18-standard", "loss=regfree"), "p_holm"] > 0.05
    pairs = c.loc[c["family"] == "model-pairs"]
    assert len(pairs) == 2 * 6  # 4 models -> 6 pairs, within each of 2 losses
    row = pairs.set_index(["level_a", "level_b", "condition"]).loc[
        ("resnet18-adversarial", "resnet18-standard", "loss=regfree")
    ]
    d = _two_losses()
    cell = d.loc[d["loss"] == "regfree"].groupby("model")["correct"].mean()
    # cell means are exactly the observed proportions
    assert row["diff_pp"] == pytest.approx(100 * (cell["resnet18-adversarial"] - cell["resnet18-standard"]))
    assert row["diff_pp"] > 20 and row["p_holm"] < 0.001


def test_agreement_between_observer_kinds():
    rng = np.random.default_rng(1)
    truth = rng.random(30)
    scores = pd.DataFrame(
        {
            "set_id": np.tile(np.arange(30), 3),
            "measure": "2afc:seed",
            "observer": np.repeat(["a", "b", "c"], 30),
            "prop_correct": np.concatenate([truth, truth + 0.1, rng.random(30)]),
        }
    )
    a = agreement(scores, "set_id").set_index(["observer_a", "observer_b"])
    assert a.loc[("a", "b"), "pearson_r"] == pytest.approx(1.0)
    assert a.loc[("a", "b"), "mean_diff"] == pytest.approx(-0.1)
    assert abs(a.loc[("a", "c"), "pearson_r"]) < 0.5
    assert a.loc[("a", "b"), "n"] == 30


# --- one level of the IRI loss; fit warnings -------------------------------------------


def test_one_iri_loss_still_names_its_scope_and_conditions():
    """A grid with one IRI loss (the common first run): the loss is not
    crossed with the factors, but the tests within it and the contrasts name
    it, and they equal the tests of the whole data."""
    d = _two_losses()
    d = d.loc[d["loss"] == "regfree"]
    an = analyse(
        d,
        ["arch", "adversarial"],
        by="loss",
        covariates=(),
        preferred_levels={"adversarial": ["standard", "adversarial"]},
    )
    assert an.notes["loss"] == "one level only (regfree)"
    t = an.tests.set_index(["scope", "term"])
    assert set(t.index) == {(s, f) for s in ("all", "loss=regfree") for f in ("arch", "adversarial")}
    pd.testing.assert_series_equal(
        t.loc[("loss=regfree", "adversarial")].drop("note"),
        t.loc[("all", "adversarial")].drop("note"),
        check_names=False,
    )
    assert t.loc[("loss=regfree", "adversarial"), "p"] < 0.001
    c = an.contrasts
    f = c.loc[(c["family"] == "factor") & (c["factor"] == "adversarial")].set_index("condition")
    assert {"loss=regfree", "loss=regfree, arch=resnet18", "loss=regfree, arch=vgg16bn"} <= set(f.index)
    assert f.loc["loss=regfree", "diff_pp"] == pytest.approx(35, abs=4)
    assert set(c.loc[c["family"] != "factor", "condition"]) == {"loss=regfree"}


def test_a_saturated_fit_has_no_warnings_and_real_separation_names_its_sets():
    # two models, one loss, one seed type: one coefficient per IRI set, fitted = observed proportions
    d = simulate(0).query("B == 'b0'")
    an = analyse(d, ["A"], by=None, covariates=())
    assert "fit warnings" not in an.notes and an.tests.loc[0, "df_resid"] == 19
    # every answer to the IRIs of one set right: that is perfect prediction, and the note says where
    d.loc[d["set_id"] == "a1b0", "correct"] = 1
    an = analyse(d, ["A"], by=None, covariates=())
    assert an.notes["fit warnings"].startswith("perfect prediction: 1 of 2 IRI sets fitted at P(correct) 0 or 1")
    assert an.notes["fit warnings"].endswith("(a1b0)")


def test_contrasts_of_named_factors_only_equal_those_of_every_family():
    """The power planner asks for the adversarial contrasts alone: the same
    estimates, SEs and p-values as in the full families, Holm-adjusted
    within the smaller family, and no model pairs or comparisons with chance."""
    d = _two_losses()
    kw = {"by": "loss", "covariates": (), "preferred_levels": {"adversarial": ["standard", "adversarial"]}}
    full = analyse(d, ["arch", "adversarial"], **kw)
    only = analyse(d, ["arch", "adversarial"], contrasts=("adversarial",), **kw)
    pd.testing.assert_frame_equal(only.tests, full.tests)
    assert set(only.contrasts["family"]) == {"factor"} and set(only.contrasts["factor"]) == {"adversarial"}
    cols = ["estimate", "se", "z", "p", "diff_pp", "diff_pp_lo", "diff_pp_hi", "n_a", "n_b"]
    keys = ["factor", "level_a", "level_b", "condition"]
    f = full.contrasts.loc[full.contrasts["factor"] == "adversarial"].set_index(keys)
    o = only.contrasts.set_index(keys)
    assert len(o) == len(f) > 3
    pd.testing.assert_frame_equal(o[cols], f.loc[o.index, cols])
    assert (o["p_holm"] <= f.loc[o.index, "p_holm"] + 1e-12).all()


def test_tests_and_contrasts_asked_for_equal_those_of_the_full_analysis():
    """The power planner computes only what a verdict reads: the adversarial
    LR tests (in every scope) and the adversarial contrasts over all answers
    of each loss. They equal the full analysis' rows; nothing else is there."""
    d = _two_losses()
    kw = {"by": "loss", "covariates": (), "preferred_levels": {"adversarial": ["standard", "adversarial"]}}
    full = analyse(d, ["arch", "adversarial"], **kw)
    few = analyse(d, ["arch", "adversarial"], contrasts=("adversarial",), tests=("adversarial",), within=False, **kw)
    full_tests = full.tests.loc[full.tests["term"] == "adversarial"].reset_index(drop=True)
    assert set(full.tests["term"]) > {"adversarial"}  # arch, loss and the interactions were tested too
    assert sorted(few.tests["scope"]) == ["all", "loss=adversarial", "loss=regfree"]
    pd.testing.assert_frame_equal(few.tests, full_tests)
    assert few.tests.set_index("scope").loc["loss=regfree", "p"] < 1e-6  # the planted effect
    assert few.tests.set_index("scope").loc["loss=adversarial", "p"] > 0.01
    keys = ["factor", "level_a", "level_b", "condition"]
    cols = ["estimate", "se", "z", "p", "diff_pp", "diff_pp_lo", "diff_pp_hi", "n_a", "n_b"]
    assert sorted(few.contrasts["condition"]) == ["loss=adversarial", "loss=regfree"]
    f = full.contrasts.loc[full.contrasts["family"] == "factor"].set_index(keys)
    o = few.contrasts.set_index(keys)
    pd.testing.assert_frame_equal(o[cols], f.loc[o.index, cols])
    assert o.loc[("adversarial", "adversarial", "standard", "loss=regfree"), "diff_pp"] > 20
    assert (full.contrasts["condition"].str.contains("arch=")).any()  # the full one has them within arch
    nothing = analyse(d, ["arch", "adversarial"], contrasts=False, tests=False, **kw)
    assert nothing.tests.empty and nothing.contrasts.empty
    pd.testing.assert_frame_equal(nothing.coefficients, full.coefficients)
