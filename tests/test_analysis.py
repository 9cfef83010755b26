"""From judgments to claims (iriflow.analysis, iriflow.snapshots,
iriflow.plots): design factors of model ids, answer tables, the paper-style
table and the data behind figures. The findings on data with known effects:
tests/test_findings.py."""

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, SCHEMA
from iriflow.analysis import (
    alignment_table,
    answers,
    model_factors,
    preferred_levels,
    primary_observer,
    split_set_ids,
    table_latex,
    table_markdown,
)
from iriflow.config import validate_config
from iriflow.plots import alignment_data, alignment_figure, pick_examples, proxy_data
from iriflow.snapshots import snapshot_epochs


@pytest.fixture(scope="module")
def cfg():
    return validate_config(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()), SCHEMA)


def test_model_factors_of_the_default_grid(cfg):
    f = model_factors("mnist5k/resnet18-ce-adv_l2-s0", cfg["models"])
    assert f == {
        "arch": "resnet18",
        "objective": "ce",
        "augmentation": "adv_l2",
        "adversarial": "adversarial",
        "base_augmentation": "standard",
        "variant": "ce-adv_l2",
        "seed": "0",
    }
    g = model_factors("mnist5k/vgg16bn-simclr-simclr-s0", cfg["models"])
    assert g["adversarial"] == "standard" and g["base_augmentation"] == "simclr"
    assert model_factors("mnist5k/vgg16bn-simclr-simclr_adv-s0", cfg["models"])["base_augmentation"] == "simclr"
    levels = preferred_levels(cfg)
    assert levels["adversarial"][0] == "standard" and levels["loss"][0] == "regfree"
    assert levels["observer"] == ["real", "simulated:ssim", "simulated:fsim"]


def test_primary_observer_follows_the_config():
    order = ["real", "simulated:ssim", "simulated:fsim"]
    assert primary_observer(["simulated:fsim", "simulated:ssim"], "auto", order) == "simulated:ssim"
    assert primary_observer(["simulated:fsim", "real"], "auto", order) == "real"
    assert primary_observer(["simulated:fsim"], "simulated:fsim", order) == "simulated:fsim"
    assert primary_observer(["simulated:fsim"], "real", order) is None


def test_snapshot_epochs():
    assert snapshot_epochs({"epochs": 4, "snapshot_every": 2}) == [2, 4]
    assert snapshot_epochs({"epochs": 1000, "snapshot_every": 50})[-1] == 1000
    assert snapshot_epochs({"epochs": 5, "snapshot_every": 2}) == [2, 4]
    assert snapshot_epochs({"epochs": 5}) == []


def test_split_set_ids_with_and_without_epoch():
    ids = pd.Series(
        [
            "mnist5k/resnet18-ce-standard-s0/penultimate/regfree/other-image",
            "mnist5k/resnet18-simclr-simclr-s0/penultimate/regfree/other-image/epoch0002",
        ]
    )
    parts = split_set_ids(ids)
    assert parts["model"].tolist() == ["mnist5k/resnet18-ce-standard-s0", "mnist5k/resnet18-simclr-simclr-s0"]
    assert parts["epoch"].tolist() == ["", "2"] and parts["loss"].tolist() == ["regfree", "regfree"]


def test_answers_drop_catch_trials_and_carry_measure_and_factors(cfg):
    set_id = "mnist5k/resnet18-ce-adv_l2-s0/penultimate/regfree/other-image"
    trials = pd.DataFrame(
        {
            "set_id": set_id,
            "trial_id": ["t0", "t1", "t2", "c0"],
            "kind": ["2afc", "2afc", "matching", "catch"],
            "alternative": ["seed", "other-target", "", ""],
            "target": [0, 0, 0, 1],
            "n_options": [2, 2, 4, 2],
            "correct": [0, 1, 2, 0],
        }
    )
    responses = pd.DataFrame(
        {
            "participant": "p1",
            "set_id": set_id,
            "trial_id": ["t0", "t1", "t2", "c0"],
            "response": [0, 0, 2, 0],
            "correct": [True, False, True, True],
            "rt_ms": np.nan,
            "observer": "real",
        }
    )
    a = answers(responses, trials, cfg["models"])
    assert a["measure"].tolist() == ["2afc:seed", "2afc:other-target", "matching"]
    assert a["correct"].tolist() == [1, 0, 1] and a["chance"].tolist() == [0.5, 0.5, 0.25]
    assert (a["adversarial"] == "adversarial").all() and (a["item"] == f"{set_id}#0").all()
    assert answers(responses.iloc[:0], trials, cfg["models"]).empty


def _scores():
    rows = []
    for arch, base in (("resnet18", 0.6), ("vgg16bn", 0.4)):
        for variant, add in (("ce-standard", 0.0), ("ce-adv_l2", 0.3)):
            for loss in ("regfree", "adversarial"):
                p = base + add
                rows.append(
                    {
                        "observer": "simulated:ssim",
                        "measure": "2afc:other-target",
                        "arch": arch,
                        "variant": variant,
                        "loss": loss,
                        "prop_correct": p,
                        "ci_lo": p - 0.05,
                        "ci_hi": p + 0.05,
                        "chance": 0.5,
                        "augmentation": variant.split("-")[1],
                        "n_targets": 31 if (arch, variant, loss) == ("vgg16bn", "ce-adv_l2", "regfree") else 40,
                    }
                )
    return pd.DataFrame(rows)


def test_alignment_table_values_and_formats(cfg):
    levels = preferred_levels(cfg)
    table = alignment_table(_scores(), levels)
    assert list(table["loss"]) == ["regfree", "regfree", "adversarial", "adversarial"]
    assert list(table["variant"][:2]) == ["ce-standard", "ce-adv_l2"]
    assert table.loc[1, "resnet18"] == pytest.approx(90.0) and table.loc[1, "vgg16bn ci_lo"] == pytest.approx(65.0)
    md = table_markdown(table, "title")
    assert table["vgg16bn n_targets"].tolist() == [40, 31, 40, 40]
    assert "| regfree | ce-adv_l2 | 90.0 [85.0, 95.0] n=40 | 70.0 [65.0, 75.0] n=31 |" in md
    # without the targets' count (older scores), the cells are the score and its CI
    old = table_markdown(alignment_table(_scores().drop(columns="n_targets"), levels), "title")
    assert "| regfree | ce-adv_l2 | 90.0 [85.0, 95.0] | 70.0 [65.0, 75.0] |" in old
    tex = table_latex(table, "Alignment (%)")
    assert r"\toprule" in tex and "ce-adv\\_l2" in tex and tex.count(r"\midrule") == 2


def test_alignment_figure_shows_the_scores(cfg):
    levels = preferred_levels(cfg)
    d = alignment_data(_scores(), "2afc:other-target")
    assert sorted(d["pct"].round(1).unique()) == [40.0, 60.0, 70.0, 90.0]
    fig = alignment_figure(_scores(), "2afc:other-target", levels)
    axes = fig.axes
    assert len(axes) == 2 and axes[0].get_title() == "IRI loss: regfree"
    ys = sorted(np.round(y, 1) for c in axes[0].containers for y in c.lines[0].get_ydata())
    assert ys == [40.0, 60.0, 70.0, 90.0]  # one point per model
    assert alignment_data(_scores(), "matching").empty


def test_pick_examples_takes_one_per_class_preferring_converged():
    labels = np.array([0, 0, 1, 1, 2, 2])
    usable = np.array([False, True, True, True, False, False])
    assert pick_examples(labels, usable, 3) == [1, 2, 4]
    assert pick_examples(labels, usable, 5) == [0, 1, 2, 3, 4]


def test_proxy_data_pairs_sets_with_proxies():
    alignment = pd.DataFrame(
        {
            "dataset": "d",
            "model": "m",
            "layer": "l",
            "loss": "regfree",
            "seed_type": "s",
            "kind": ["2afc", "2afc"],
            "alternative": ["seed", "other-target"],
            "observer": "simulated:ssim",
            "prop_correct": [0.8, 0.6],
            "ci_lo": 0.7,
            "ci_hi": 0.9,
        }
    )
    proxy = pd.DataFrame(
        {
            "set_id": "d/m/l/regfree/s",
            "alternative": ["seed", "other-target"],
            "metric": "ssim",
            "n": 10,
            "proxy": [0.9, 0.4],
        }
    )
    stir = pd.DataFrame(
        {
            "set_id": "d/m/l/regfree/s",
            "model": "d/m",
            "reference_model": ["d/m", "d/x"],
            "layer": "penultimate",
            "n": 10,
            "cka": [0.99, 0.5],
        }
    )
    d = proxy_data(alignment, proxy, stir, "2afc:other-target").set_index("proxy_name")
    assert d.loc["2AFC proxy (ssim)", "x"] == pytest.approx(90) and d.loc["2AFC proxy (ssim)", "y"] == pytest.approx(80)
    # STIR excludes the model itself and is paired with the primary measure
    assert d.loc["STIR (CKA, other models)", "x"] == pytest.approx(0.5)
    assert d.loc["STIR (CKA, other models)", "y"] == pytest.approx(60)


def test_example_pair_is_a_standard_and_a_robust_twin(cfg):
    from iriflow.analysis import example_pair
    from iriflow.config import model_grid

    ids = [m.id for m in model_grid(cfg)]
    assert example_pair(ids, cfg["models"], preferred_levels(cfg)) == [
        "mnist5k/resnet18-ce-standard-s0",
        "mnist5k/resnet18-ce-adv_l2-s0",
    ]
    paper = validate_config(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()), SCHEMA)
    ids = [m.id for m in model_grid(paper)]
    # the adversarial model's base augmentation matches the standard one's
    assert example_pair(ids, paper["models"], preferred_levels(paper)) == [
        "cifar10/resnet18-ce-standard-s0",
        "cifar10/resnet18-ce-adv_l2-s0",
    ]
