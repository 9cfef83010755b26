"""End to end on a tiny configuration: data -> models -> IRIs -> simulated
judgments, for real, in about a minute. Checks values along the chain, not
only that files exist."""

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, run_snakemake
from iriflow.io import read_json
from iriflow.iriset import IRISet

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
        "steps": 30,
        "step_size": 0.5,
        "step_schedule": "cosine",
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
    job = work / "results/iris/mnist5k/resnet18-ce-none-s0/penultimate/regfree/other-image"
    saved = IRISet.load(job / "iris.npz")
    assert saved.iris.shape == saved.targets.shape == saved.seeds.shape == (4, 1, 28, 28)
    assert str(saved.id) == "mnist5k/resnet18-ce-none-s0/penultimate/regfree/other-image"
    assert saved.settings["steps"] == 30 and saved.settings["model"] == "mnist5k/resnet18-ce-none-s0"
    curve = pd.read_csv(job / "curve.csv")
    assert curve["step"].iloc[0] == 0 and curve["step"].iloc[-1] == 30
    assert curve["mean_loss"].iloc[-1] < curve["mean_loss"].iloc[0]
    table = pd.read_csv(job / "iris.csv")
    np.testing.assert_allclose(table["rel_dist"], saved.rel_dist, rtol=1e-5)
    assert (table["converged"] == (table["rel_dist"] < 0.5)).all()
    prov = read_json(job / "provenance.json")
    assert prov["metric"] == "ms_ssim" and prov["n"] == 4
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
