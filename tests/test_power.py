"""The power planner (iriflow.power) on pools of trials with known answer
probabilities: power rises with the number of participants, a null is
rejected at about alpha, a large planted effect reaches 80% with few
participants, the smallest number is read right off a curve; and an
observer that failed its validity check gives no answers where it failed."""

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, SCHEMA
from iriflow.analysis import model_factors, preferred_levels
from iriflow.config import validate_config
from iriflow.judgments import build_trials
from iriflow.power import (
    needed_table,
    plan,
    planned_findings,
    scenarios,
    shift_for_effect,
    shuffled_within,
    simulate_answers,
    smallest_n,
    trial_pool,
)
from iriflow.stats import expit
from simulated import rate_in_binomial_ci

ALPHA = 0.05
MEASURE = "2afc:other-target"


@pytest.fixture(scope="module")
def cfg():
    return validate_config(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()), SCHEMA)


def pool_of(cfg, effect: float, *, n_items: int = 30, seed: int = 0, item_sd: float = 1.0):
    """A pool of 2AFC trials (two architectures, standard and adversarial
    training, two seed types, the regfree loss) and their probabilities:
    logit p = 0.3 + effect * adversarial + v_item, v ~ N(0, item_sd)."""
    rng = np.random.default_rng(seed)
    rows = []
    for arch in ("resnet18", "vgg16bn"):
        for aug in ("standard", "adv_l2"):
            model = f"mnist5k/{arch}-ce-{aug}-s0"
            factors = model_factors(model, cfg["models"])
            for seed_type in ("super-noise", "other-image"):
                set_id = f"{model}/penultimate/regfree/{seed_type}"
                for i in range(n_items):
                    rows.append(
                        {
                            "set_id": set_id,
                            "trial_id": f"{set_id}/2afc-other-target/{i}",
                            "measure": MEASURE,
                            "chance": 0.5,
                            "item": f"{set_id}#{i}",
                            "dataset": "mnist5k",
                            "model": model,
                            "layer": "penultimate",
                            "loss": "regfree",
                            "seed_type": seed_type,
                            **factors,
                        }
                    )
    pool = pd.DataFrame(rows)
    eta = 0.3 + effect * (pool["adversarial"] == "adversarial").to_numpy() + rng.normal(0, item_sd, len(pool))
    return pool, expit(eta)


def run_plan(cfg, pool, scs, participants, n_studies, seed=0):
    levels = preferred_levels(cfg)
    return plan(
        pool,
        scs,
        planned_findings(pool, MEASURE, "regfree", ALPHA),
        participants=participants,
        per_participant=54,
        n_studies=n_studies,
        participant_sd=0.5,
        analysis_kw={
            "factors": cfg["analysis"]["factors"],
            "interactions": True,
            "preferred_levels": levels,
            "level": 0.95,
        },
        alpha=ALPHA,
        seed=seed,
    )


def test_power_rises_with_participants(cfg):
    pool, p = pool_of(cfg, 0.5)
    table = run_plan(cfg, pool, scenarios(pool, {"simulated:x": p}, None), [10, 40, 160], 30)
    print(table[["n_participants", "power", "reject", "effect_pp", "answers"]].to_string(index=False))
    power = table.set_index("n_participants")["power"]
    assert power[160] > power[10] + 0.4
    assert power[40] > power[10] - 0.1 and power[160] > power[40] - 0.1  # Monte Carlo noise of 30 studies
    # the studies really grow: answers per study in proportion to the participants while lists remain
    answers = table.set_index("n_participants")["answers"]
    assert answers[40] == pytest.approx(4 * answers[10], rel=0.05)
    # the figure draws these values
    from iriflow.plots import power_figure

    ax = power_figure(table, 0.8, ALPHA).axes[0]
    drawn = [line for line in ax.lines if len(line.get_xdata()) == 3]
    np.testing.assert_allclose(np.asarray(drawn[0].get_ydata(), float), table["power"])
    np.testing.assert_allclose(np.asarray(drawn[0].get_xdata(), float), [10, 40, 160])
    # the scenario's effect is the pool's difference in mean probability (adversarial - standard)
    adv = (pool["adversarial"] == "adversarial").to_numpy()
    assert table["effect_pp"].iloc[0] == pytest.approx(100 * (p[adv].mean() - p[~adv].mean()))


def test_null_is_rejected_at_about_alpha(cfg):
    pool, p = pool_of(cfg, 0.8, seed=1)  # an effect in the observer: the null shuffles it away
    null = [s for s in scenarios(pool, {"simulated:x": p}, "simulated:x") if s.name == "null"]
    n_studies = 200
    table = run_plan(cfg, pool, null, [40], n_studies, seed=3)
    row = table.iloc[0]
    print(f"null: p < alpha in {row['reject']:.3f}, supported in {row['power']:.3f} of {n_studies} studies")
    ok, ci = rate_in_binomial_ci(round(row["reject"] * n_studies), n_studies, ALPHA)
    assert ok, (row["reject"], ci)
    assert row["power"] <= row["reject"]  # supported needs the positive direction as well
    assert abs(row["effect_pp"]) < 1.5  # the shuffled probabilities have no effect on average


def test_shuffling_keeps_each_stratum_and_planted_effect_is_in_pp():
    rng = np.random.default_rng(0)
    strata = np.repeat([0, 1, 2], [5, 7, 4])
    p = rng.random(16)
    q = shuffled_within(p, strata, rng)
    for s in range(3):
        assert sorted(q[strata == s]) == sorted(p[strata == s])
    assert not np.array_equal(p, q)
    d = shift_for_effect(p, 10.0)
    assert expit(np.log(p / (1 - p)) + d).mean() - p.mean() == pytest.approx(0.10, abs=1e-9)


def test_a_large_planted_effect_reaches_80_percent_with_few_participants(cfg):
    pool, p = pool_of(cfg, 0.0, seed=2)
    scs = [s for s in scenarios(pool, {"simulated:x": p}, "simulated:x", [25.0]) if s.name.startswith("effect")]
    assert [s.name for s in scs] == ["effect +25 pp"]
    table = run_plan(cfg, pool, scs, [10, 20], 30, seed=4)
    print(table[["n_participants", "power", "effect_pp"]].to_string(index=False))
    assert table["effect_pp"].mean() == pytest.approx(25, abs=3)
    assert table.set_index("n_participants")["power"][20] >= 0.8
    assert needed_table(table)["n_needed"].iloc[0] <= 20


def test_smallest_n_on_constructed_curves():
    n = [20, 40, 80, 160, 320]
    grid, est = smallest_n(n, [0.1, 0.5, 0.7, 0.9, 0.99])
    assert grid == 160
    assert est == pytest.approx(80 * 2 ** ((0.8 - 0.7) / (0.9 - 0.7)))  # halfway in log2 n: 80 * sqrt(2)
    # a dip below the target after reaching it: the count from which it stays there
    assert smallest_n(n, [0.1, 0.82, 0.79, 0.9, 0.95])[0] == 160
    assert smallest_n(n, [0.85, 0.9, 0.95, 0.99, 1.0]) == (20, 20)
    assert all(np.isnan(smallest_n(n, [0.1, 0.2, 0.3, 0.5, 0.79])))
    assert smallest_n(n[::-1], [0.99, 0.9, 0.7, 0.5, 0.1])[0] == 160  # any order
    assert smallest_n(n, [0.1, 0.5, 0.7, 0.8, 0.99])[1] == pytest.approx(160)


def raw_study(cfg):
    """Trials tables (iriflow.judgments.build_trials) of a standard and a
    robust model with two seed types, answered by two simulated observers:
    ``simulated:good`` and ``simulated:planted`` (which fails its check on
    2afc:seed trials with super-noise seeds)."""
    rng = np.random.default_rng(0)
    trials, responses = [], []
    for aug in ("standard", "adv_l2"):
        for seed_type in ("super-noise", "other-image"):
            set_id = f"mnist5k/resnet18-ce-{aug}-s0/penultimate/regfree/{seed_type}"
            t = build_trials(20, np.arange(20) % 4, np.ones(20, bool), matching_k=0, n_catch=2, set_id=set_id)
            trials.append(t)
            for obs in ("simulated:good", "simulated:planted"):
                for j in range(5):
                    correct = rng.random(len(t)) < 0.7
                    responses.append(
                        pd.DataFrame(
                            {
                                "participant": f"{obs}/p{j:03d}",
                                "set_id": set_id,
                                "trial_id": t["trial_id"],
                                "response": np.where(correct, t["correct"], 1 - t["correct"]),
                                "correct": correct,
                                "rt_ms": np.nan,
                                "observer": obs,
                            }
                        )
                    )
    validity = pd.DataFrame(
        [
            {
                "dataset": "mnist5k",
                "observer": obs,
                "measure": m,
                "seed_type": st,
                "passed": not (obs == "simulated:planted" and m == "2afc:seed" and st == "super-noise"),
                "reason": "planted",
            }
            for obs in ("simulated:good", "simulated:planted")
            for m in ("2afc:seed", "2afc:other-target")
            for st in ("super-noise", "other-image")
        ]
    )
    return pd.concat(trials, ignore_index=True), pd.concat(responses, ignore_index=True), validity


def test_an_observer_that_failed_its_check_gives_no_answers_there(cfg):
    trials, responses, validity = raw_study(cfg)
    pool, probs, usage = trial_pool(trials, responses, cfg["models"], validity)
    assert len(pool) == 4 * 2 * 20 and set(probs) == {"simulated:good", "simulated:planted"}
    failed = ((pool["measure"] == "2afc:seed") & (pool["seed_type"] == "super-noise")).to_numpy()
    assert np.isfinite(probs["simulated:good"]).all()
    assert np.isnan(probs["simulated:planted"][failed]).all() and np.isfinite(probs["simulated:planted"][~failed]).all()
    # the probabilities are the observers' shares correct, (k + 0.5) / (n + 1) of 5 answers
    r = responses.merge(trials[["trial_id", "kind"]], on="trial_id")
    r = r.loc[(r["kind"] != "catch") & (r["observer"] == "simulated:good")]
    k = r.groupby("trial_id")["correct"].sum().reindex(pool["trial_id"]).to_numpy()
    np.testing.assert_allclose(probs["simulated:good"], (k + 0.5) / 6)
    # the usage table says where, and why
    left_out = usage.loc[~usage["used"]]
    assert left_out[["observer", "measure", "seed_type"]].values.tolist() == [
        ["simulated:planted", "2afc:seed", "super-noise"]
    ]
    # simulated studies of the planted observer never answer there; the good one does
    rng = np.random.default_rng(0)
    for obs, n_failed in (("simulated:planted", 0), ("simulated:good", None)):
        data = simulate_answers(pool, probs[obs], 20, 54, 0.5, rng)
        there = ((data["measure"] == "2afc:seed") & (data["seed_type"] == "super-noise")).sum()
        assert there == n_failed if n_failed is not None else there > 0
    # and its power for finding 1 on 2afc:seed rests on the other-image trials alone
    fs = planned_findings(pool, "2afc:seed", "regfree", ALPHA)
    assert [f.number for f in fs] == [1]
    planted = [s for s in scenarios(pool, probs, None) if s.name == "simulated:planted"]
    table = run_plan_on(cfg, pool, planted, fs)
    good = run_plan_on(cfg, pool, [s for s in scenarios(pool, probs, None) if s.name == "simulated:good"], fs)
    assert table["answers"].iloc[0] == pytest.approx(good["answers"].iloc[0] / 2, rel=0.2)


def run_plan_on(cfg, pool, scs, fs):
    return plan(
        pool,
        scs,
        fs,
        participants=[20],
        per_participant=54,
        n_studies=10,
        participant_sd=0.5,
        analysis_kw={"factors": cfg["analysis"]["factors"], "preferred_levels": preferred_levels(cfg)},
        alpha=ALPHA,
    )


def test_participants_are_counted_only_where_the_null_is_rejected_at_alpha():
    """Power counts p < alpha in the claimed direction; where the simulated
    null is rejected more often than alpha beyond Monte Carlo error, that
    count includes false positives. The planner counts participants only
    above the largest such count, and gives no number when even the largest
    count of the grid is liberal."""
    from iriflow.power import POWER_COLUMNS, power_markdown, type_i_excess

    rows = []
    for finding, null_reject in ((1, [0.04, 0.06, 0.02]), (2, [0.22, 0.06, 0.02]), (4, [0.06, 0.20, 0.48])):
        for n, power, reject in zip([20, 40, 80], [0.3, 0.85, 0.99], null_reject):
            rows.append([finding, "simulated:x", "simulated:x", "m", n, 50, power, 0.05, power, 10.0, 100])
            rows.append([finding, "null", "simulated:x", "m", n, 50, reject / 2, 0.05, reject, 0.0, 100])
    table = pd.DataFrame(rows, columns=list(POWER_COLUMNS))
    null4 = table.loc[(table["scenario"] == "null") & (table["finding"] == 4)]
    assert type_i_excess(null4, 0.05)["n_participants"].tolist() == [40, 80]  # 6% of 50 is within MC error
    needed = needed_table(table, 0.8, 0.05).set_index(["finding", "scenario"])
    assert needed.loc[(1, "simulated:x"), "n_needed"] == 40 and needed.loc[(1, "simulated:x"), "type_i_controlled"]
    assert needed.loc[(1, "simulated:x"), "type_i_from"] == 20
    # finding 2: liberal at 20 (22% of 50), controlled from 40 on: 40 reaches 80% power, and is no interpolation
    assert needed.loc[(2, "simulated:x"), ["n_needed", "n_interpolated", "type_i_from"]].tolist() == [40, 40, 40]
    assert needed.loc[(2, "simulated:x"), "type_i_controlled"]
    assert np.isnan(needed.loc[(4, "simulated:x"), "n_needed"])
    assert not needed.loc[(4, "simulated:x"), "type_i_controlled"]
    md = power_markdown(table, needed.reset_index(), target=0.8, alpha=0.05, seconds=1.0, design="d")
    assert "| 4 | simulated:x | +10.0 | none (type-I rate above alpha) |" in md
    assert "| 1 | simulated:x | +10.0 | 40 |" in md and "| 2 | simulated:x | +10.0 | 40 |" in md
    assert "Finding 4: its test rejected the null" in md and "40 (20%), 80 (48%)" in md
    assert "not counted for it at all" in md.split("Finding 4:")[1].split("\n")[0]
    assert "Finding 2: its test rejected the null" in md and "20 (22%) participants" in md
    assert "counted only above 20." in md.split("Finding 2:")[1].split("\n")[0]
