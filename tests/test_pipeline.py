"""End to end on a tiny configuration: data -> models -> IRIs -> simulated
judgments, for real, in about a minute. Checks values along the chain, not
only that files exist."""

import re

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, run_snakemake
from iriflow.io import read_json
from iriflow.iriset import IRISet
from iriflow.metrics import get_metric

TINY = {
    "targets": {"n": 4},
    "models": {
        "width": 0.125,
        "stem_stride": 2,
        "grid": [
            {
                "datasets": ["mnist5k"],
                "archs": ["resnet18"],
                "objectives": ["ce"],
                "augmentations": ["none", "adv_l2"],
                "seeds": [0],
            }
        ],
        "train": {"epochs": 3, "batch_size": 128},
        "augmentations": {
            "adv_l2": {
                "kind": "adversarial",
                "base": "standard",
                "attack": {"norm": "l2", "eps": 1.0, "steps": 1, "step_size": 1.0},
            }
        },
        "eval": {"n_test": 200, "attacks": {"l2": {"norm": "l2", "eps": 1.0, "steps": 3, "step_size": 0.5}}},
    },
    "iris": {
        "losses": ["regfree", "adversarial"],
        "seed_types": ["other-image"],
        # 60 steps decaying from 2.0: every IRI of both tiny models converges with a margin (relative
        # distance at most 0.41 against the threshold 0.5). 30 steps from 0.5 converged none of the
        # robust model's on one CPU and enough on another: the tests must not turn on the CPU.
        "steps": 60,
        "step_size": 2.0,
        "step_schedule": "cosine",
        # the plain optimiser (momentum and coarse-to-fine: tests/test_optim.py, test_iri.py)
        "momentum": 0,
        "coarse_to_fine": [],
        "threshold": 0.5,
        "log_every": 10,
    },
    # 4 targets are too few for fsim to pass 75% at the default's -5 dB anchor
    "judgments": {
        "observers": {
            "simulated": [{"metric": "ssim"}, {"metric": "fsim", "calibration": {"snr_db": 0.0}}],
            "validation": {"metrics": ["gmsd"], "repeats": 5},
        }
    },
    # the human-similarity stage on the real 92 images, with fewer resamples and triplets
    "rsa": {"bootstrap": {"n": 100}, "triplets": {"n": 5000}, "probe": {"lambdas": [0.01], "steps": 30}},
    # Engstrom et al. 2019 with fewer units, images and steps
    "engstrom": {
        "features": {"k": 4, "steps": 20},
        "addition": {"n": 2, "steps": 20},
        "interpolation": {"pairs": 1, "n_lambda": 4, "steps": 20},
    },
}


def assert_observer_distances(table: pd.DataFrame, iri_set: IRISet):
    """iris.csv gives each IRI its distance to its seed and to its target
    under each simulated observer's metric (TINY's: ssim, fsim)."""
    import torch

    iris, seeds, targets = (torch.from_numpy(a) for a in (iri_set.iris, iri_set.seeds, iri_set.targets))
    for name in ("ssim", "fsim"):
        d = get_metric(name)
        np.testing.assert_allclose(table[f"{name}_to_seed"], d(iris, seeds).numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(table[f"{name}_to_target"], d(iris, targets).numpy(), rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("tiny")
    cfg = work / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    proc = run_snakemake("--cores", "2", "-d", str(work), "--configfile", str(ROOT / "config/config.yaml"), str(cfg))
    return work, proc


def test_models_table_and_robustness_ordering(tiny_run):
    work, _ = tiny_run
    table = pd.read_csv(work / "results/models/models.csv")
    assert list(table["model_id"]) == ["mnist5k/resnet18-ce-adv_l2-s0", "mnist5k/resnet18-ce-none-s0"]
    acc = table.set_index("model_id")
    # three epochs on 4000 digits: far above chance (0.1), and the adversarially
    # trained model is the more robust of the two
    assert acc.loc["mnist5k/resnet18-ce-none-s0", "clean_acc"] > 0.5
    assert acc.loc["mnist5k/resnet18-ce-adv_l2-s0", "clean_acc"] > 0.3
    assert (
        acc.loc["mnist5k/resnet18-ce-adv_l2-s0", "robust_acc_l2"]
        > acc.loc["mnist5k/resnet18-ce-none-s0", "robust_acc_l2"]
    )
    metrics = pd.read_csv(work / "results/models/mnist5k/resnet18-ce-none-s0/metrics.csv")
    assert list(metrics["epoch"]) == [1, 2, 3] and metrics["loss"].iloc[-1] < metrics["loss"].iloc[0]
    info = read_json(work / "results/models/mnist5k/resnet18-ce-adv_l2-s0/model.json")
    assert info["spec"]["stem_stride"] == 2 and info["augmentations"]["adv_l2"]["kind"] == "adversarial"
    # the epoch checkpoint lives outside the outputs, for resumption
    assert (work / "results/checkpoints/mnist5k/resnet18-ce-adv_l2-s0/last.pt").exists()


def test_iri_jobs_lower_the_distance_and_report_convergence(tiny_run):
    work, _ = tiny_run
    summary = pd.read_csv(work / "results/iris/summary.csv")
    assert len(summary) == 2 * 2 * 1  # models x losses x seed types
    # every set has converged IRIs (all of them on the CPUs seen so far), so every model and loss
    # is scored and the tables below have their rows; if a CPU breaks this, it shows here first
    assert (summary["converged_share"] > 0).all(), summary.to_string()
    job = work / "results/iris/mnist5k/resnet18-ce-none-s0/penultimate/regfree/other-image"
    saved = IRISet.load(job / "iris.npz")
    assert saved.iris.shape == saved.targets.shape == saved.seeds.shape == (4, 1, 28, 28)
    assert str(saved.id) == "mnist5k/resnet18-ce-none-s0/penultimate/regfree/other-image"
    assert saved.settings["steps"] == TINY["iris"]["steps"] and saved.settings["model"] == "mnist5k/resnet18-ce-none-s0"
    assert saved.settings["momentum"] == 0 and saved.settings["coarse_to_fine"] == []  # the config's, not defaults
    # the job (model x layer x loss) made the sets of every seed type in one batch: its curve and
    # provenance are beside them
    curve = pd.read_csv(job.parent / "curve.csv")
    assert set(curve["batch"]) == {0} and curve["step"].iloc[0] == 0 and curve["step"].iloc[-1] == TINY["iris"]["steps"]
    assert curve["mean_loss"].iloc[-1] < curve["mean_loss"].iloc[0]
    table = pd.read_csv(job / "iris.csv")
    np.testing.assert_allclose(table["rel_dist"], saved.rel_dist, rtol=1e-5)
    assert (table["converged"] == (table["rel_dist"] < 0.5)).all()
    assert_observer_distances(table, saved)
    prov = read_json(job.parent / "provenance.json")
    assert prov["metric"] == "ms_ssim" and prov["max_batch"] == 1024
    assert prov["sets"]["other-image"]["n"] == 4
    assert prov["sets"]["other-image"]["converged"] == int(saved.converged.sum())
    # the same seeds for every model of the dataset
    other = IRISet.load(str(job).replace("ce-none", "ce-adv_l2") + "/iris.npz")
    np.testing.assert_array_equal(other.seeds, saved.seeds)


def test_simulated_judgments_and_alignment_table(tiny_run):
    work, _ = tiny_run
    trials = pd.read_csv(work / "results/judgments/mnist5k/resnet18-ce-none-s0/trials.csv", keep_default_na=False)
    responses = pd.read_csv(work / "results/judgments/mnist5k/resnet18-ce-none-s0/responses_simulated.csv")
    assert list(responses.columns) == ["participant", "set_id", "trial_id", "response", "correct", "rt_ms", "observer"]
    # the 2 IRI sets and the feature-visualisation set (feature-2afc trials: test_engstrom_stage)
    assert set(trials["set_id"]) == set(responses["set_id"]) and len(set(trials["set_id"])) == 3
    # two observer populations, 20 participants each (the default n_participants)
    assert responses.groupby("observer")["participant"].nunique().to_dict() == {
        "simulated:fsim": 20,
        "simulated:ssim": 20,
    }
    calibration = read_json(work / "results/judgments/observers/mnist5k/calibration.json")
    assert sorted(calibration) == ["fsim", "ssim"] and all(c["sigma"] > 0 for c in calibration.values())
    curves = pd.read_csv(work / "results/judgments/observers/mnist5k/psychometric.csv")
    clean = curves.loc[(curves["trial"] == "noise") & (curves["snr_db"] >= 5)]
    assert (clean.loc[clean["metric"] != "gmsd", "p_target"] > 0.9).all()
    # every answer is a valid option index and `correct` agrees with the trials table
    merged = responses.merge(trials[["trial_id", "correct", "n_options"]], on="trial_id", suffixes=("", "_t"))
    assert len(merged) == len(responses)
    assert ((merged["response"] >= 0) & (merged["response"] < merged["n_options"])).all()
    assert (merged["correct"] == (merged["response"] == merged["correct_t"])).all()
    alignment = pd.read_csv(work / "results/judgments/alignment.csv")
    assert set(alignment["kind"]) <= {"2afc", "matching", "feature-2afc"}  # catch trials are not scored
    assert ((alignment["ci_lo"] <= alignment["prop_correct"]) & (alignment["prop_correct"] <= alignment["ci_hi"])).all()
    assert (alignment["n_participants"] == 20).all()
    assert set(alignment["observer"]) == {"simulated:fsim", "simulated:ssim"}
    # IRIs that did not converge are not IRIs: they get no trials and no score
    summary = pd.read_csv(work / "results/iris/summary.csv")
    converged_sets = {f"{r.model}/{r.loss}" for r in summary.itertuples() if r.converged_share > 0}
    assert {f"{r.model}/{r.loss}" for r in alignment.itertuples() if r.kind != "feature-2afc"} == converged_sets
    for r in summary.itertuples():
        t = pd.read_csv(work / f"results/judgments/mnist5k/{r.model}/trials.csv", keep_default_na=False)
        kinds = t.loc[t["set_id"] == f"mnist5k/{r.model}/penultimate/{r.loss}/{r.seed_type}", "kind"]
        n_judged = int(round(r.converged_share * r.n))
        assert (kinds == "2afc").sum() == 2 * n_judged  # one per alternative kind per converged IRI
        assert (kinds == "catch").sum() == 4  # judgments.n_catch


# --- the analysis end: tables, statistics and figures carry the numbers they come from ---

PRIMARY = ("simulated:ssim", "2afc:other-target")  # analysis.primary: auto -> the first simulated observer


def _answers(work):
    """Every non-catch answer of the kept participants, with its trial."""
    root = work / "results/judgments/mnist5k"
    trials = pd.concat(
        [pd.read_csv(p, keep_default_na=False) for p in sorted(root.glob("*/trials.csv"))], ignore_index=True
    )
    responses = pd.concat([pd.read_csv(p) for p in sorted(root.glob("*/responses_simulated.csv"))], ignore_index=True)
    excluded = read_json(work / "results/judgments/exclusions.json")["excluded"]
    r = responses.loc[~responses["participant"].isin(excluded)].merge(
        trials[["set_id", "trial_id", "kind", "alternative"]], on=["set_id", "trial_id"], validate="many_to_one"
    )
    r = r.loc[r["kind"] != "catch"]
    r["measure"] = np.where(r["kind"] == "matching", "matching", r["kind"] + ":" + r["alternative"])
    r["model"] = r["set_id"].str.split("/").str[:2].str.join("/")
    r["loss"] = r["set_id"].str.split("/").str[3]
    return r


def test_alignment_scores_are_the_share_of_correct_answers(tiny_run):
    work, _ = tiny_run
    answers = _answers(work)
    alignment = pd.read_csv(work / "results/judgments/alignment.csv", keep_default_na=False)
    assert len(alignment)
    for _, row in alignment.iterrows():
        set_id = "/".join(row[["dataset", "model", "layer", "loss", "seed_type"]])
        measure = "matching" if row["kind"] == "matching" else f"{row['kind']}:{row['alternative']}"
        sel = answers.loc[
            (answers["set_id"] == set_id) & (answers["measure"] == measure) & (answers["observer"] == row["observer"])
        ]
        assert row["prop_correct"] == pytest.approx(sel["correct"].mean(), abs=5e-5)  # written with 4 decimals
        assert row["n_trials"] == len(sel) and row["n_participants"] == sel["participant"].nunique()
    # one seed type: a model's score under a loss is its one IRI set's score
    models = pd.read_csv(work / "results/analysis/scores/models.csv")
    assert len(models) == len(alignment)
    for _, m in models.iterrows():
        sel = answers.loc[
            (answers["model"] == m["model"])
            & (answers["loss"] == m["loss"])
            & (answers["measure"] == m["measure"])
            & (answers["observer"] == m["observer"])
        ]
        assert m["prop_correct"] == pytest.approx(sel["correct"].mean(), abs=5e-5)
        assert m["n_answers"] == len(sel)


def test_alignment_table_cells_are_the_model_scores(tiny_run):
    work, _ = tiny_run
    models = pd.read_csv(work / "results/analysis/scores/models.csv")
    primary = models.loc[(models["observer"] == PRIMARY[0]) & (models["measure"] == PRIMARY[1])]
    table = pd.read_csv(work / "results/tables/alignment.csv").set_index(["loss", "variant"])
    md = (work / "results/tables/alignment.md").read_text()
    page = (work / "results/tables/alignment.html").read_text()
    assert len(table) == len(primary) == 4
    assert list(table.columns) == ["resnet18", "resnet18 ci_lo", "resnet18 ci_hi", "resnet18 n_targets"]
    for _, s in primary.iterrows():
        row = table.loc[(s["loss"], s["variant"])]
        assert row["resnet18"] == pytest.approx(100 * s["prop_correct"], abs=1e-9)  # 4 decimals -> 2 decimals in %
        assert (row["resnet18 ci_lo"], row["resnet18 ci_hi"]) == pytest.approx((100 * s["ci_lo"], 100 * s["ci_hi"]))
        assert row["resnet18 n_targets"] == s["n_targets"]
        cell = f"{100 * s['prop_correct']:.1f} [{100 * s['ci_lo']:.1f}, {100 * s['ci_hi']:.1f}] n={s['n_targets']}"
        assert f"| {s['loss']} | {s['variant']} | {cell} |" in md and f"<td>{cell}</td>" in page
    assert f"of {PRIMARY[0]}, 2AFC, IRI's target vs another class's target" in md


def test_proxy_table_cells_are_the_proxy_scores(tiny_run):
    work, _ = tiny_run
    proxy = pd.read_csv(work / "results/analysis/proxies/proxy_2afc.csv")
    stir = pd.read_csv(work / "results/analysis/proxies/stir.csv")
    table = pd.read_csv(work / "results/tables/proxies.csv")
    assert len(table) == 4 and sorted(proxy["metric"].unique()) == ["ms_ssim", "ssim"]
    for _, r in table.iterrows():
        prefix = f"{r['model']}/penultimate/{r['loss']}/"
        for _, p in proxy.loc[proxy["set_id"].str.startswith(prefix)].iterrows():  # one seed type: one row each
            assert r[f"2AFC {p['metric']} vs {p['alternative']} (%)"] == pytest.approx(100 * p["proxy"], abs=5e-4)
        other = stir.loc[stir["set_id"].str.startswith(prefix) & (stir["reference_model"] != r["model"]), "cka"]
        # NaN (shown as --) where fewer IRIs converged than analysis.stir.min_iris
        assert len(other) == 1 and r["STIR (CKA)"] == pytest.approx(other.iloc[0], abs=5e-4, nan_ok=True)
    md = (work / "results/tables/proxies.md").read_text()
    assert md.splitlines()[0].endswith("| STIR (CKA) |")
    assert md.count(" | -- |") == int(table["STIR (CKA)"].isna().sum())


def test_summary_states_the_verdicts_and_p_values_of_the_statistics(tiny_run):
    work, _ = tiny_run
    stats = work / "results/analysis/statistics"
    tests, findings = pd.read_csv(stats / "tests.csv"), pd.read_csv(stats / "findings.csv")
    summary = (work / "results/analysis/summary.txt").read_text()
    t = tests.set_index(["analysis", "observer", "measure", "scope", "term"])
    f = findings.set_index(["finding", "observer", "measure"])
    # finding 1: the LR test of adversarial training within regfree
    f1 = f.loc[(1, *PRIMARY)]
    test = t.loc[("main", *PRIMARY, "loss=regfree", "adversarial")]
    assert f1["p"] == pytest.approx(test["p"], rel=1e-5) and f1["statistic"] == pytest.approx(test["chi2"], rel=1e-5)
    assert f1["verdict"] == ("supported" if test["p"] < 0.05 and f1["effect_pp"] > 0 else "not supported")
    # finding 2: the adversarial x loss interaction; no prior loss in this grid, so 2 of its 3 parts
    f2 = f.loc[(2, *PRIMARY)]
    assert f2["p"] == pytest.approx(t.loc[("main", *PRIMARY, "all", "adversarial x loss"), "p"], rel=1e-5)
    assert f2["verdict"].endswith("(2 of 3 parts testable)")
    assert f.loc[(3, *PRIMARY), "verdict"] == "not testable"  # no SimCLR model in this grid
    for n, row in ((1, f1), (2, f2)):
        block = summary.split(f"Finding {n}.")[1].split("\n\n")[0]
        assert f"  verdict: {row['verdict'].upper()}\n" in block
        printed = float(re.search(r"statistic: Rao-Scott LR chi2 = (\S+) on \S+ df, p = (\S+) \(", block).group(2))
        assert printed == pytest.approx(row["p"], rel=0.05)  # two significant digits
    assert "verdict: NOT TESTABLE" in summary.split("Finding 3.")[1]


def test_figures_plot_the_scores(tiny_run):
    from iriflow.plots import alignment_figure, proxy_data

    work, _ = tiny_run
    models = pd.read_csv(work / "results/analysis/scores/models.csv")
    levels = {"observer": ["simulated:ssim", "simulated:fsim"], "loss": TINY["iris"]["losses"]}
    fig = alignment_figure(models, PRIMARY[1], levels)
    # 2 observers (rows) x 2 losses (columns), one point per model
    assert [ax.get_title() for ax in fig.axes] == ["IRI loss: regfree", "IRI loss: adversarial", "", ""]
    for ax, (observer, loss) in zip(fig.axes, [(o, loss) for o in levels["observer"] for loss in levels["loss"]]):
        ys = sorted(np.round(y, 6) for c in ax.containers for y in c.lines[0].get_ydata())
        sel = models.loc[
            (models["measure"] == PRIMARY[1]) & (models["observer"] == observer) & (models["loss"] == loss)
        ]
        assert len(ys) == 2 and ys == sorted(np.round(100 * sel["prop_correct"], 6))
    assert (work / "results/figures/alignment.png").stat().st_size > 10_000
    alignment = pd.read_csv(work / "results/judgments/alignment.csv", keep_default_na=False, na_values=[""])
    proxy = pd.read_csv(work / "results/analysis/proxies/proxy_2afc.csv")
    d = proxy_data(alignment, proxy, pd.read_csv(work / "results/analysis/proxies/stir.csv"), PRIMARY[1])
    seed = d.loc[d["proxy_name"] == "2AFC proxy (ssim)"]
    assert len(seed) == 4 * 2  # sets x observers, against the 2AFC-vs-seed trials
    for _, r in seed.iterrows():
        p = proxy.loc[(proxy["set_id"] == r["set_id"]) & (proxy["metric"] == "ssim") & (proxy["alternative"] == "seed")]
        assert r["x"] == pytest.approx(100 * p["proxy"].iloc[0]) and r["kind"] == "2afc" and r["alternative"] == "seed"


def test_engstrom_stage(tiny_run):
    """Feature visualisation, addition and interpolation for both models, the
    feature-2afc trials in trials.csv and the simulated responses, scored,
    tested (finding 4) and shown."""
    work, _ = tiny_run
    res = work / "results"
    for model in ("resnet18-ce-none-s0", "resnet18-ce-adv_l2-s0"):
        sets = {
            part: IRISet.load(res / f"engstrom/mnist5k/{model}/penultimate/{part}/iris.npz")
            for part in ("feature-vis/grey-noise", "feature-add/test-image", "interpolation/pixel-blend")
        }
        vis = sets["feature-vis/grey-noise"]
        assert len(vis) == 4 and (vis.loss > vis.extra["seed_activation"]).all()  # every unit rose
        add = sets["feature-add/test-image"]
        assert (add.extra["activation"][add.converged] > 1.0).all() and (add.extra["seed_activation"] <= 1.0).all()
        interp = sets["interpolation/pixel-blend"]
        inner = (interp.extra["lam"] > 0) & (interp.extra["lam"] < 1)
        assert (interp.rel_dist[inner] <= interp.extra["seed_rel_dist"][inner]).all()
        trials = pd.read_csv(res / f"judgments/mnist5k/{model}/trials.csv", keep_default_na=False)
        feature = trials.loc[trials["kind"] == "feature-2afc"]
        assert (feature["set_id"] == str(vis.id)).all() and len(feature) == 5 * int(vis.converged.sum())
        responses = pd.read_csv(res / f"judgments/mnist5k/{model}/responses_simulated.csv")
        answered = responses.loc[responses["trial_id"].isin(feature["trial_id"])]
        assert len(answered) == 40 * len(feature)  # 2 observer populations x 20 participants
    scores = pd.read_csv(res / "analysis/scores/models.csv")
    feature_scores = scores.loc[scores["measure"] == "feature-2afc:bottom"]
    assert (
        (feature_scores["ci_lo"] <= feature_scores["prop_correct"])
        & (feature_scores["prop_correct"] <= feature_scores["ci_hi"])
    ).all()
    summary = (res / "analysis/summary.txt").read_text()
    assert "Finding 4." in summary and "measure: feature-2afc:bottom" in summary
    smooth = pd.read_csv(res / "engstrom/interpolation_smoothness.csv")
    assert set(smooth["path"]) == {"representation", "pixel"} and (smooth["length"] > 0).all()
    for fig in ("feature_visualisation", "feature_addition", "interpolation"):
        assert (res / f"figures/{fig}.png").stat().st_size > 10_000 and (res / f"figures/{fig}.pdf").exists()


# --- the SimCLR checkpoint stage, run for real on its own tiny workflow ---

SIMCLR_TINY = {
    **TINY,
    "models": {
        **TINY["models"],
        "grid": [
            {
                "datasets": ["mnist5k"],
                "archs": ["resnet18"],
                "objectives": ["simclr"],
                "augmentations": ["simclr"],
                "seeds": [0],
            }
        ],
        # a snapshot after each of 2 epochs: the checkpoint stage runs on epoch 1 (epoch 2 is the model)
        "objectives": {"simclr": {"train": {"epochs": 2, "snapshot_every": 1}}},
    },
}


def test_checkpoint_iris_of_a_simclr_model(tmp_path):
    """checkpoint_iris: the IRIs of every snapshot but the last, one set per
    epoch with the epoch in its id, the curve of every epoch's job and the
    provenance's summary of each set."""
    (tmp_path / "simclr.yaml").write_text(yaml.safe_dump(SIMCLR_TINY))
    target = "results/analysis/checkpoints/mnist5k/resnet18-simclr-simclr-s0"
    config = (str(ROOT / "config/config.yaml"), str(tmp_path / "simclr.yaml"))
    run_snakemake("--cores", "2", "-d", str(tmp_path), target, "--configfile", *config)
    out = tmp_path / target
    made = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))  # not Snakemake's timestamp
    assert made == ["curve.csv", "epoch0001", "provenance.json"]
    iri_set = IRISet.load(out / "epoch0001/iris.npz")
    assert str(iri_set.id) == "mnist5k/resnet18-simclr-simclr-s0/penultimate/regfree/other-image/epoch0001"
    assert iri_set.iris.shape == (4, 1, 28, 28) and iri_set.settings["epoch"] == 1
    assert iri_set.settings["steps"] == TINY["iris"]["steps"]
    table = pd.read_csv(out / "epoch0001/iris.csv")
    np.testing.assert_allclose(table["rel_dist"], iri_set.rel_dist, rtol=1e-5)
    assert_observer_distances(table, iri_set)
    curve = pd.read_csv(out / "curve.csv")
    assert set(curve["epoch"]) == {1} and curve["mean_loss"].iloc[-1] < curve["mean_loss"].iloc[0]
    summary = read_json(out / "provenance.json")["epochs"]["1"]
    assert summary == {
        "median_rel_dist": pytest.approx(float(np.sort(iri_set.rel_dist)[1])),  # torch's median: the lower middle
        "converged": int(iri_set.converged.sum()),
        "restarted": int((iri_set.extra["restarts"] > 0).sum()),
        "n": 4,
    }
    # a changed linear probe is fit again on the trained network, which is not trained again
    model_json = "results/models/mnist5k/resnet18-simclr-simclr-s0/model.json"
    trained = read_json(tmp_path / model_json)
    assert trained["resumed_from_epoch"] == 0 and trained["epochs"] == 2
    (tmp_path / "probe.yaml").write_text(
        yaml.safe_dump({"models": {"objectives": {"simclr": {"probe": {"epochs": 3}}}}})
    )
    run_snakemake(
        "--cores",
        "1",
        "-d",
        str(tmp_path),
        model_json,
        "--configfile",
        *config,
        str(tmp_path / "probe.yaml"),
    )
    refit = read_json(tmp_path / model_json)
    assert refit["resumed_from_epoch"] == 2 and refit["epochs"] == 2, refit
    assert refit["objective"]["probe"]["epochs"] == 3 and refit["probe_train_acc"] != trained["probe_train_acc"]


# --- re-run only what changed: after a completed run, dry runs with a changed config ---


def planned_rules(work, change: dict):
    """The rules a dry run plans on the completed tiny run with the config
    changed by ``change`` (one more config file; Snakemake's default rerun
    triggers: mtime, params, input, code, software-env)."""
    extra = work / "change.yaml"
    extra.write_text(yaml.safe_dump(change))
    proc = run_snakemake(
        "-n", "-d", str(work), "--configfile", str(ROOT / "config/config.yaml"), str(work / "tiny.yaml"), str(extra)
    )
    return proc.stdout + proc.stderr, set(re.findall(r"^(?:local)?rule (\w+):", proc.stdout, flags=re.M))


def test_switching_the_device_reruns_nothing(tiny_run):
    work, _ = tiny_run
    for device in ("cpu", "auto"):
        text, rules = planned_rules(work, {"device": device})
        assert "Nothing to be done" in text and not rules, (device, sorted(rules))
    # no IRI depends on the batch layout or on the loss curve's resolution
    text, rules = planned_rules(work, {"iris": {"max_batch": 3, "log_every": 7}})
    assert "Nothing to be done" in text and not rules, sorted(rules)


def test_only_a_datasets_own_settings_rerun_its_preparation(tiny_run):
    work, _ = tiny_run
    # the download cache, the download switch and an unused dataset's settings change no image of mnist5k
    elsewhere = {"root": str(work / "elsewhere"), "download": True, "imagefolder": {"test_fraction": 0.5}}
    # nor do where the RSA stage's files come from (their bytes are pinned by sha256)
    rsa_source = {"download": False, "base_url": "https://example.org/mirror/"}
    text, rules = planned_rules(work, {"data": elsewhere, "rsa": rsa_source})
    assert "Nothing to be done" in text and not rules, sorted(rules)
    # its own split does, and everything downstream of it
    text, rules = planned_rules(work, {"data": {"mnist5k": {"test_fraction": 0.25}}})
    assert {"prepare_dataset", "select_targets", "train_model", "generate_iris"} <= rules, sorted(rules)


def test_a_new_observer_remakes_no_iri(tiny_run):
    work, _ = tiny_run
    observers = [*TINY["judgments"]["observers"]["simulated"], {"metric": "vsi"}]
    text, rules = planned_rules(work, {"judgments": {"observers": {"simulated": observers}}})
    # the observers are calibrated and answer again; the IRIs (and their iris.csv) stay
    assert {"calibrate_observers", "validate_observers", "simulate_judgments"} <= rules, text[-3000:]
    assert not rules & {"generate_iris", "train_model", "evaluate_model"}, sorted(rules)


def test_validating_another_metric_recalibrates_no_observer(tiny_run):
    work, _ = tiny_run
    text, rules = planned_rules(work, {"judgments": {"observers": {"validation": {"metrics": ["gmsd", "vsi"]}}}})
    # the curves and the validity table are made again, and what reads the validity table
    assert {"validate_observers", "statistics"} <= rules, text[-3000:]
    assert not rules & {"calibrate_observers", "simulate_judgments", "generate_iris"}, sorted(rules)


def test_a_real_responses_file_reruns_no_simulated_observer(tiny_run):
    work, _ = tiny_run
    trials = pd.concat(
        [pd.read_csv(p, keep_default_na=False) for p in sorted((work / "results/judgments").glob("*/*/trials.csv"))]
    )
    real = trials.assign(participant="anna", response=trials["correct"])
    real[["participant", "set_id", "trial_id", "response"]].to_csv(work / "real.csv", index=False)
    text, rules = planned_rules(work, {"judgments": {"observers": {"real": {"responses": [str(work / "real.csv")]}}}})
    # the real answers are checked and scored; nothing upstream of scoring runs again
    assert {"check_responses", "score_alignment"} <= rules, text[-3000:]
    upstream = {"simulate_judgments", "calibrate_observers", "validate_observers", "generate_iris", "checkpoint_iris"}
    assert not rules & (upstream | {"train_model"}), sorted(rules)
    # the power planner simulates studies from the simulated observers only
    assert "power" not in rules, sorted(rules)
