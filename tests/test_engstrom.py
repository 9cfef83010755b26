"""Engstrom et al. 2019 procedures (iriflow.engstrom), their IRI sets, the
feature-2afc trials they carry (trials, simulated observers, survey,
importer, scoring, finding 4), path smoothness and the figures' data."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import ROOT, SCHEMA
from iriflow.analysis import FEATURE_MEASURE, answers, preferred_levels
from iriflow.archs import build_model
from iriflow.config import engstrom_settings, validate_config
from iriflow.engstrom import (
    PROCEDURE_JOBS,
    ModelJob,
    add_feature,
    addition_sources,
    choose_features,
    extreme_images,
    feature_choice,
    interpolate,
    interpolation_pairs,
    path_smoothness,
    unit,
    visualise,
)
from iriflow.engstrom_figures import (
    addition_rows,
    feature_rows,
    feature_score_data,
    feature_visualisation_figure,
    interpolation_figure,
    interpolation_rows,
    smoothness_data,
)
from iriflow.findings import evaluate_findings, summary_text
from iriflow.iriset import IRISet, IRISetError, SetId, procedure_set_id
from iriflow.judgments import feature_trials, set_trials, simulate_observers
from iriflow.losses import relative_distance
from iriflow.represent import extract, representation
from iriflow.responses import ResponseError, load_responses
from iriflow.scoring import score
from iriflow.stats import analyse
from iriflow.survey import QUESTIONS, export_survey, png_bytes, read_key, read_list_script

MODEL_ID = "mnist5k/resnet18-ce-adv_l2-s0"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cfg():
    return validate_config(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()), SCHEMA)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model("resnet18", 3, 1, [0.3], [0.3], 0.125, stem_stride=2).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


@pytest.fixture(scope="module")
def split():
    """A small 'test split': 16 px images of 4 classes."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(48, 1, 16, 16, generator=g)
    return x, torch.arange(48) % 4


def settings(cfg, procedure, **overrides):
    return {**engstrom_settings(cfg, procedure), **overrides}


# --- the procedures' values --------------------------------------------------------


def test_visualisation_raises_each_maximised_coordinate(model, split):
    rep = representation(model)
    acts = extract(model, split[0])
    feats = torch.from_numpy(choose_features(acts, 4, seed=0))
    seeds = 0.5 + 0.05 * torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    res = visualise(rep, feats, seeds, steps=30, step_size=1.0, eps=500.0, schedule="cosine")
    with torch.no_grad():
        before, after = unit(rep, feats)(seeds), unit(rep, feats)(res.x)
    assert (after > before + 0.1).all(), (before, after)
    assert torch.allclose(after, res.loss, atol=1e-5)  # the reported value is the kept image's
    # and the visualisations beat the test images on their coordinates
    assert (after > acts[:, feats].max(0).values).all()
    assert all(p.grad is None for p in model.parameters())
    small = visualise(rep, feats, seeds, steps=30, step_size=1.0, eps=0.5)  # the L2 ball holds
    assert ((small.x - seeds).flatten(1).norm(dim=1) <= 0.5 + 1e-5).all()


def test_feature_addition_stops_once_the_unit_is_on(model, split):
    rep = representation(model)
    acts = extract(model, split[0])
    f = int(acts.var(0).argmax())
    on = float(acts[:, f].median())
    off = torch.nonzero(acts[:, f] < 0.5 * on).flatten()[:3]
    already = torch.nonzero(acts[:, f] > 1.2 * on).flatten()[:1]
    x = split[0][torch.cat([off, already])]
    feats = torch.full((len(x),), f)
    res = add_feature(rep, feats, x, on=on, steps=60, step_size=0.1)
    with torch.no_grad():
        after = unit(rep, feats)(res.x)
    assert (after > on).all(), (on, after)
    assert torch.equal(res.x[-1], x[-1])  # on from the start: not changed at all
    assert (res.loss == 0).all()
    # it stops: the image kept is the first iterate that is on, and from there nothing changes
    trace = []

    def traced(z):
        r = rep(z)
        trace.append(r.detach()[torch.arange(len(z)), feats])
        return r

    longer = add_feature(traced, feats, x, on=on, steps=90, step_size=0.1)
    assert torch.equal(longer.x, res.x)
    path = torch.stack(trace)  # [step, image]: the unit at every iterate
    for i in range(len(x) - 1):
        first = int(torch.nonzero(path[:, i] > on)[0])
        assert first > 0 and (path[:first, i] <= on).all()
        assert (path[first:, i] == path[first, i]).all()
        assert path[first, i] == pytest.approx(after[i].item(), rel=1e-5)


def test_interpolation_frames_lie_closer_to_their_targets_than_the_pixel_blends(model, split):
    rep = representation(model)
    x = split[0]
    a, b = x[[0, 1]], x[[2, 3]]
    lam = torch.linspace(0, 1, 6)
    res, blends, targets = interpolate(rep, a, b, lam, steps=40, step_size=0.5, schedule="cosine")
    with torch.no_grad():
        frame_d = relative_distance(rep(res.x), targets).view(2, 6)
        blend_d = relative_distance(rep(blends), targets).view(2, 6)
    interior = slice(1, 5)
    assert (frame_d[:, interior] < blend_d[:, interior]).all(), (frame_d, blend_d)
    # the ends are the images themselves, already at their targets, and stay there
    torch.testing.assert_close(res.x.view(2, 6, 1, 16, 16)[:, 0], b)
    torch.testing.assert_close(res.x.view(2, 6, 1, 16, 16)[:, -1], a)
    torch.testing.assert_close(blends.view(2, 6, 1, 16, 16)[:, 2], 0.4 * a + 0.6 * b)
    assert frame_d[:, [0, -1]].max() < 1e-6


# --- selections --------------------------------------------------------------------


def test_choose_features_and_extreme_images():
    acts = torch.tensor(
        [[0.0, 3.0, 0.0, 1.0], [0.0, 0.0, 2.0, 1.0], [0.0, 1.0, 0.0, 1.0], [0.0, 2.0, 0.0, 1.0], [0.0, 0.0, 5.0, 1.0]]
    )
    for seed in range(5):
        chosen = choose_features(acts, 3, seed)
        assert sorted(chosen) == [1, 2, 3]  # never the dead coordinate 0
    assert choose_features(acts, 4, 0).tolist() == [1, 2, 3]  # only 3 units are ever active
    assert choose_features(acts, 2, 0, min_active=3).tolist() == [1, 3]  # unit 2: only 2 images
    # a small test split: n at most half of it, units active on n images
    feats, n = feature_choice(acts, {"k": 3, "n_examples": 5, "seed": 0})
    assert n == 2 and feats.tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="at least 2 test images"):
        feature_choice(acts[:1], {"k": 3, "n_examples": 5, "seed": 0})
    top, bottom = extreme_images(acts, np.array([1, 2]), 2, seed=0)
    assert top[0].tolist() == [0, 3] and top[1].tolist() == [4, 1]
    assert set(bottom[0]) == {1, 4} and set(bottom[1]) <= {0, 2, 3}  # ties at 0, broken by the seed
    # ties are broken afresh per coordinate and per seed, reproducibly
    ties = torch.zeros(40, 2) + torch.tensor([[0.0, 0.0]])
    ties[0] = 1.0
    b0 = [extreme_images(ties, np.array([0, 1]), 5, seed=s)[1] for s in (0, 0, 1)]
    assert np.array_equal(b0[0], b0[1]) and not np.array_equal(b0[0], b0[2])
    assert not np.array_equal(b0[0][0], b0[0][1])


def test_addition_sources_and_interpolation_pairs():
    acts = torch.tensor([[0.2, 3.0], [2.0, 0.1], [0.5, 0.4], [1.5, 2.5], [0.0, 0.0]])
    images, coords = addition_sources(acts, np.array([0, 1]), 4, on=1.0, seed=0)
    assert coords.tolist() == [0, 1, 0, 1] and len(set(images)) == 4
    assert (acts[images, coords] <= 1.0).all()
    images, coords = addition_sources(acts, np.array([0, 1]), 9, on=1.0, seed=0)  # as many as there are
    # image 3 has both units on: the other 4 images, each once
    assert sorted(images) == [0, 1, 2, 4] and (acts[images, coords] <= 1.0).all()
    labels = np.array([0, 0, 0, 1, 1, 2])
    pairs = interpolation_pairs(labels, 3, seed=3)
    assert len(np.unique(pairs)) == 6 and (labels[pairs[:, 0]] != labels[pairs[:, 1]]).all()
    assert np.array_equal(pairs, interpolation_pairs(labels, 3, seed=3))
    with pytest.raises(ValueError, match="found"):
        interpolation_pairs(np.zeros(6, dtype=int), 1, seed=0)


# --- the sets ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sets(cfg, model, split):
    """Each procedure's set of the small model, at the default config's settings (fewer steps)."""
    out = {}
    for procedure, extra in (
        ("features", {"k": 4, "steps": 30}),
        ("addition", {"k": 4, "n": 3}),
        ("interpolation", {"pairs": 2, "n_lambda": 5, "steps": 30}),
    ):
        s = settings(cfg, procedure, **extra)
        sid = procedure_set_id(MODEL_ID, s["layer"], procedure, s.get("seed_type"))
        out[procedure] = PROCEDURE_JOBS[procedure].build(ModelJob(model, sid, *split, s))
    return out


def test_sets_round_trip_with_their_extra_arrays(sets, tmp_path):
    for name, s in sets.items():
        path = tmp_path / f"{name}.npz"
        s.save(path)
        back = IRISet.load(path)
        assert back.id == s.id and back.settings == json.loads(json.dumps(s.settings))
        assert sorted(back.extra) == sorted(s.extra)
        for k, v in s.extra.items():
            np.testing.assert_array_equal(back.extra[k], v)
        s.save(tmp_path / "again.npz")
        assert (tmp_path / "again.npz").read_bytes() == path.read_bytes()
    assert str(sets["features"].id) == "mnist5k/resnet18-ce-adv_l2-s0/penultimate/feature-vis/grey-noise"
    assert set(sets["features"].images()) == {"iri", "target", "seed", "top", "bottom"}
    assert set(sets["interpolation"].images()) == {"iri", "target", "seed", "other"}


def test_extra_arrays_are_validated():
    base = dict(
        iris=np.zeros((2, 1, 4, 4)),
        seeds=np.zeros((2, 1, 4, 4)),
        targets=np.zeros((2, 1, 4, 4)),
        target_index=[0, 1],
        target_label=[0, 1],
        rel_dist=[0, 0],
        loss=[0, 0],
        converged=[True, True],
    )
    sid = SetId("mnist5k", "m", "penultimate", "feature-vis", "grey-noise")
    with pytest.raises(IRISetError, match="extra array name 'Top'"):
        IRISet(sid, **base, extra={"Top": np.zeros(2)})
    with pytest.raises(IRISetError, match="extra array name 'seed'"):
        IRISet(sid, **base, extra={"seed": np.zeros(2)})
    with pytest.raises(IRISetError, match="image bank 'top' has images of shape"):
        IRISet(sid, **base, extra={"top": np.zeros((3, 1, 5, 5))})


def test_feature_set_values(sets, model, split):
    s = sets["features"]
    e = s.extra
    k, n = e["top_index"].shape
    acts = extract(model, split[0]).numpy()[:, e["feature"]]
    np.testing.assert_allclose(e["top_activation"], np.take_along_axis(acts.T, e["top_index"], 1), rtol=1e-5)
    assert (np.diff(e["top_activation"], axis=1) <= 0).all() and (np.diff(e["bottom_activation"], axis=1) >= 0).all()
    assert (e["top_activation"][:, -1] >= e["bottom_activation"][:, -1]).all()
    np.testing.assert_array_equal(e["top"].reshape(k, n, 1, 16, 16)[:, 0], s.targets)
    vis = extract(model, torch.from_numpy(s.iris)).numpy()[np.arange(k), e["feature"]]
    np.testing.assert_allclose(vis, s.loss, rtol=1e-4, atol=1e-5)
    assert (s.loss > e["seed_activation"]).all()
    np.testing.assert_array_equal(s.converged, s.loss > e["top_activation"][:, 0])
    assert np.isnan(s.rel_dist).all()


def test_addition_and_interpolation_set_values(sets, model):
    a = sets["addition"]
    on = a.settings["on_level"]
    after = extract(model, torch.from_numpy(a.iris)).numpy()[np.arange(len(a)), a.extra["feature"]]
    np.testing.assert_allclose(after, a.extra["activation"], rtol=1e-5)
    assert (a.extra["seed_activation"] <= on).all()
    np.testing.assert_array_equal(a.converged, after > on)
    assert set(a.extra["feature"]) <= set(sets["features"].extra["feature"])  # the visualised coordinates
    i = sets["interpolation"]
    interior = (i.extra["lam"] > 0) & (i.extra["lam"] < 1)
    assert (i.rel_dist[interior] < i.extra["seed_rel_dist"][interior]).all()
    assert i.extra["lam"].tolist() == [0, 0.25, 0.5, 0.75, 1.0] * 2
    assert (i.target_label != i.extra["other_label"]).all()


# --- feature-2afc trials -------------------------------------------------------------


def constructed_feature_set(w_top: float, model: str = "resnet18-ce-adv_l2-s0", k: int = 6, n: int = 5) -> IRISet:
    """Units whose top images are bright squares and bottom images dark
    stripes, and whose visualisation is the blend w_top * (mean top image)
    + (1 - w_top) * (mean bottom image); the last unit did not converge."""
    rng = np.random.default_rng(k)
    top = np.zeros((k * n, 1, 16, 16), np.float32)
    top[:, :, 4:12, 4:12] = 0.9
    top += 0.05 * rng.random(top.shape, dtype=np.float32)
    bottom = np.zeros((k * n, 1, 16, 16), np.float32)
    bottom[:, :, :, ::3] = 0.7
    bottom += 0.05 * rng.random(bottom.shape, dtype=np.float32)
    iris = w_top * top.reshape(k, n, 1, 16, 16).mean(1) + (1 - w_top) * bottom.reshape(k, n, 1, 16, 16).mean(1)
    converged = np.ones(k, bool)
    converged[-1] = False
    return IRISet(
        SetId("mnist5k", model, "penultimate", "feature-vis", "grey-noise"),
        iris=iris,
        seeds=np.full_like(iris, 0.5),
        targets=top[::n],
        target_index=np.arange(k),
        target_label=np.arange(k) % 3,
        rel_dist=np.full(k, np.nan),
        loss=np.full(k, 5.0),
        converged=converged,
        extra={
            "feature": np.arange(k),
            "top": top,
            "bottom": bottom,
            "top_index": np.arange(k * n).reshape(k, n),
            "bottom_index": np.arange(k * n).reshape(k, n) + 100,
            "top_activation": np.full((k, n), 4.0),
            "bottom_activation": np.zeros((k, n)),
        },
    )


JUDGMENTS = {"seed": 0, "alternatives": ["seed"], "matching_k": 0, "n_catch": 2}


def constructed_iri_set(n: int = 6) -> IRISet:
    rng = np.random.default_rng(1)
    images = rng.random((3, n, 1, 16, 16), dtype=np.float32)
    return IRISet(
        SetId("mnist5k", "resnet18-ce-adv_l2-s0", "penultimate", "regfree", "other-image"),
        iris=images[0],
        seeds=images[1],
        targets=images[2],
        target_index=np.arange(n),
        target_label=np.arange(n) % 3,
        rel_dist=np.zeros(n),
        loss=np.zeros(n),
        converged=np.ones(n, bool),
    )


def test_feature_trials_pair_top_with_bottom_images(sets, model):
    s = sets["features"]
    trials = set_trials(s, JUDGMENTS)  # a feature set: feature-2afc trials only, whatever the config asks
    k, n = s.extra["top_index"].shape
    ok = np.flatnonzero(s.converged)
    assert len(trials) == n * len(ok) and set(trials["kind"]) == {"feature-2afc"}
    assert set(trials["alternative"]) == {"bottom"} and trials["trial_id"].is_unique
    assert trials.attrs["n_not_converged"] == k - len(ok)
    assert abs(trials["correct"].mean() - 0.5) <= 0.5 / len(trials) + 1e-9  # sides balanced
    # the right option really activates the unit more: recompute from the images shown
    images = s.images()
    opts = trials["options"].str.split("|").tolist()
    for (_, t), o in zip(trials.iterrows(), opts):
        f = int(t["target"])
        assert t["query"] == f"iri:{f}"
        pics = [images[ref.split(":")[0]][int(ref.split(":")[1])] for ref in o]
        act = extract(model, torch.from_numpy(np.stack(pics))).numpy()[:, s.extra["feature"][f]]
        assert act[t["correct"]] >= act[1 - t["correct"]]
        assert o[t["correct"]].startswith("top:") and o[1 - t["correct"]].startswith("bottom:")
        assert o[t["correct"]] == f"top:{f * n + int(t['trial_id'].rsplit('/', 1)[1])}"
    # every bottom image of a unit is used once
    for f, g in trials.groupby("target"):
        bottoms = [ref for o in g["options"] for ref in o.split("|") if ref.startswith("bottom:")]
        assert sorted(bottoms) == sorted(f"bottom:{f * n + j}" for j in range(n))


OBSERVERS = {"ssim": {"metric": "ssim", "sigma": 0.05, "sigma_spread": 0.0, "lapse": 0.0, "n_participants": 6}}


def test_simulated_observers_answer_feature_trials_and_are_scored(cfg):
    scores = {}
    for like, w in (("top", 1.0), ("bottom", 0.0)):
        s = constructed_feature_set(w)
        trials = feature_trials(s, seed=0)
        (responses,) = simulate_observers(trials, s.images(), OBSERVERS, seed=0)
        assert len(responses) == 6 * len(trials) and set(responses["trial_id"]) == set(trials["trial_id"])
        sc = score(responses, trials, n_boot=200)
        assert sc[["kind", "alternative"]].drop_duplicates().values.tolist() == [["feature-2afc", "bottom"]]
        assert sc["n_targets"].item() == 5  # the unconverged unit has no trials
        scores[like] = sc.iloc[0]
        a = answers(responses, trials, cfg["models"])
        assert set(a["measure"]) == {FEATURE_MEASURE} and (a["chance"] == 0.5).all()
    assert scores["top"]["prop_correct"] > 0.95 and scores["bottom"]["prop_correct"] < 0.05
    assert scores["top"]["ci_lo"] <= scores["top"]["prop_correct"] <= scores["top"]["ci_hi"]


def test_survey_shows_feature_trials_with_their_question(tmp_path):
    """The export of an IRI set's trials beside feature-2afc trials: each
    trial asks its kind's question and shows the images its references name."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed (the survey export fetches jsPsych with it)")
    s = constructed_feature_set(1.0)
    iri = constructed_iri_set()
    trials = pd.concat([feature_trials(s, seed=0), set_trials(iri, JUDGMENTS)], ignore_index=True)
    sets = {str(s.id): s, str(iri.id): iri}
    settings = {"image_px": 96, "title": "t", "consent": [], "post_url": "", "seed": 0}
    settings |= {"trials_per_participant": 30, "catch_per_participant": 1}
    export_survey(
        trials, lambda set_id: sets[set_id].images(), tmp_path / "survey", settings, package_dir=ROOT / "survey"
    )
    key = read_key(tmp_path / "survey/key.csv")
    site = tmp_path / "survey/site"
    screens = {
        s["id"]: s for t in key["list_token"].unique() for s in read_list_script(site / f"lists/{t}.js")["trials"]
    }
    main = trials.loc[trials["kind"] != "catch", "trial_id"]
    assert sorted(key.loc[key["kind"] != "catch", "trial_id"]) == sorted(main)
    table = trials.set_index("trial_id")
    for row in key.itertuples():
        t, screen = table.loc[row.trial_id], screens[row.trial]
        assert screen["question"] == ("activation" if t.kind == "feature-2afc" else "similar")
        order = [int(o) for o in row.shown_order.split("|")]
        refs = [t.query] + [t.options.split("|")[o] for o in order]
        for ref, src in zip(refs, [screen["query"], *screen["options"]]):
            kind, _, i = ref.partition(":")
            assert (site / src).read_bytes() == png_bytes(sets[t.set_id].images()[kind][int(i)])
    assert "top" not in json.dumps([s["options"] for s in screens.values()])  # file names do not tell
    js = (site / "survey.js").read_text()
    for question in {*QUESTIONS.values(), "similar"}:
        assert f"    {question}: " in js  # survey.js has a text for every question the export names


def test_importer_reads_feature_2afc_answers(tmp_path):
    s = constructed_feature_set(1.0)
    trials = feature_trials(s, seed=0)
    rows = ["trial_type,trial_index,participant,set_id,trial_id,response,rt"]
    rows.append("html-button-response,0,P1,,,0,900")  # instructions: no trial_id, ignored
    for i, t in enumerate(trials.itertuples(), start=1):
        rows.append(f"html-button-response,{i},P1,{t.set_id},{t.trial_id},{t.correct if i % 4 else 1 - t.correct},812")
    path = tmp_path / "export.csv"
    path.write_text("\n".join(rows) + "\n")
    r = load_responses(path, trials)
    assert len(r) == len(trials) and (r["observer"] == "real").all()
    assert r["correct"].sum() == len(trials) - len(trials) // 4
    sc = score(r, trials, n_boot=50)
    assert sc["kind"].item() == "feature-2afc" and sc["prop_correct"].item() == pytest.approx(r["correct"].mean())
    bad = rows[:2] + [rows[2].replace(",812", "").rsplit(",", 1)[0] + ",2,812"]
    path.write_text("\n".join(bad) + "\n")
    with pytest.raises(ResponseError, match=r"row 2 \(line 3\), column 'response': 2 is out of range"):
        load_responses(path, trials)


# --- finding 4 --------------------------------------------------------------------------


def _finding_4(cfg, w_standard: float, w_robust: float, seed: int = 0):
    """Finding 4 from simulated answers to the feature-2afc trials of 2 archs
    x standard/robust models whose visualisations blend their units' top and
    bottom images with weights w_standard and w_robust (iriflow end to end:
    trials, observers, answers, GLM, verdict)."""
    trials, responses = [], []
    observer = {"ssim": {"metric": "ssim", "sigma": 0.5, "sigma_spread": 0.3, "lapse": 0.1, "n_participants": 10}}
    for i, model in enumerate(
        ("resnet18-ce-standard-s0", "resnet18-ce-adv_l2-s0", "vgg16bn-ce-standard-s0", "vgg16bn-ce-adv_l2-s0")
    ):
        s = constructed_feature_set(w_robust if "adv" in model else w_standard, model, k=10)
        t = feature_trials(s, seed=seed + i)
        trials.append(t)
        responses += simulate_observers(t, s.images(), observer, seed=seed + i)
    data = answers(pd.concat(responses), pd.concat(trials), cfg["models"])
    assert set(data["measure"]) == {FEATURE_MEASURE} and set(data["loss"]) == {"feature-vis"}
    # as the statistics rule analyses feature-2afc answers (scripts/findings.py)
    an = analyse(data, cfg["analysis"]["factors"], by=None, covariates=(), preferred_levels=preferred_levels(cfg))
    f = evaluate_findings({("simulated:ssim", FEATURE_MEASURE): an}, {}, None, cfg, 0.05)
    assert f["finding"].tolist() == [4]  # findings 1-3 are about IRI measures
    means = data.groupby("adversarial")["correct"].mean()
    return f.iloc[0], 100 * (means["adversarial"] - means["standard"])


def test_finding_4_follows_the_planted_effect(cfg):
    f, diff = _finding_4(cfg, w_standard=0.45, w_robust=1.0)  # about 50% vs 90% correct
    assert diff > 30 and f["effect_pp"] == pytest.approx(diff, abs=3)
    assert f["verdict"] == "supported" and f["p"] < 0.001
    assert "By architecture: resnet18" in f["detail"] and "Above chance (one-sided, Holm): " in f["detail"]
    above = f["detail"].split("Above chance (one-sided, Holm): ")[1]
    assert "resnet18-ce-adv_l2-s0" in above and "vgg16bn-ce-adv_l2-s0" in above
    null, null_diff = _finding_4(cfg, w_standard=0.8, w_robust=0.8, seed=1)
    assert abs(null_diff) < 10 and null["verdict"] == "not supported" and null["p"] > 0.05
    text = summary_text(
        pd.DataFrame([f]),
        primary_observer="simulated:ssim",
        primary_measure="2afc:other-target",
        context={},
        agreement=pd.DataFrame(),
        notes={},
        alpha=0.05,
    )
    block = text[text.index("Finding 4.") :]
    assert f"measure: {FEATURE_MEASURE}" in block and "verdict: SUPPORTED" in block
    assert f"p = {f['p']:.1e}" in block or f"p = {f['p']:.2g}" in block
    assert "Finding 1." in text and "verdict: not testable" in text[: text.index("Finding 4.")]


# --- path smoothness and the figures' data ------------------------------------------------


def interpolation_set(frames: np.ndarray, blends: np.ndarray) -> IRISet:
    m = len(frames)
    return IRISet(
        SetId("mnist5k", "resnet18-ce-standard-s0", "penultimate", "interpolation", "pixel-blend"),
        iris=frames,
        seeds=blends,
        targets=np.repeat(blends[-1:], m, 0),
        target_index=np.zeros(m),
        target_label=np.zeros(m),
        rel_dist=np.zeros(m),
        loss=np.zeros(m),
        converged=np.ones(m, bool),
        extra={"lam": np.linspace(0, 1, m), "pair": np.zeros(m, int), "other": np.repeat(blends[:1], m, 0)},
    )


def test_path_smoothness_on_constructed_paths():
    a, b = np.zeros((1, 1, 8, 8), np.float32), np.ones((1, 1, 8, 8), np.float32)
    lam = np.linspace(0, 1, 5).reshape(-1, 1, 1, 1).astype(np.float32)
    blends = lam * b + (1 - lam) * a
    jump = np.concatenate([np.repeat(a, 3, 0), np.repeat(b, 2, 0)])
    t = path_smoothness(interpolation_set(jump, blends), "l2").set_index("path")
    # l2 is the root-mean-square difference: the blend path's 4 steps each cost 1/4
    assert t.loc["pixel", "length"] == pytest.approx(1.0) and t.loc["pixel", "max_share"] == pytest.approx(0.25)
    assert t.loc["pixel", "detour"] == pytest.approx(1.0)  # straight from a to b
    assert t.loc["representation", "max_share"] == pytest.approx(1.0)  # one jump
    assert t.loc["representation", "detour"] == pytest.approx(1.0)
    zigzag = np.concatenate([a, b, a, b, b])
    z = path_smoothness(interpolation_set(zigzag, blends), "l2").set_index("path")
    assert z.loc["representation", "detour"] == pytest.approx(3.0)


def test_figure_data_follow_the_sets(sets):
    rows, labels = feature_rows(sets["features"])
    s = sets["features"]
    n = s.extra["top_index"].shape[1]
    assert len(rows) == len(s) and all(len(r) == 1 + 2 * n for r in rows)
    np.testing.assert_array_equal(rows[1][0], s.iris[1])
    np.testing.assert_array_equal(rows[1][1 + n], s.extra["bottom"][n])  # first bottom image of unit 1
    assert labels[0].startswith(f"unit {s.extra['feature'][0]}: ")
    rows, labels = addition_rows(sets["addition"])
    np.testing.assert_array_equal(rows[0][0], sets["addition"].seeds[0])
    np.testing.assert_array_equal(rows[0][1], sets["addition"].iris[0])
    i = sets["interpolation"]
    rows, labels = interpolation_rows(i, 5)
    ok = int(i.converged[:5].sum())
    assert len(rows) == 4 and labels[:2] == [f"pair 0: representation ({ok}/5 converged)", "pair 0: pixel blend"]
    np.testing.assert_array_equal(np.stack(rows[2]), i.iris[5:10])  # pair 1's representation path
    np.testing.assert_array_equal(np.stack(rows[3]), i.seeds[5:10])
    scores = pd.DataFrame(
        {
            "measure": [FEATURE_MEASURE, "2afc:seed"],
            "model": [MODEL_ID] * 2,
            "observer": ["simulated:ssim"] * 2,
            "prop_correct": [0.7, 0.2],
            "ci_lo": [0.6, 0.1],
            "ci_hi": [0.8, 0.3],
        }
    )
    d = feature_score_data(scores)
    assert d["pct"].tolist() == [70.0] and d["lo"].tolist() == [60.0]
    smooth = pd.concat([path_smoothness(i, "ssim").assign(pair=p) for p in range(2)])
    sd = smoothness_data(smooth)
    assert len(sd) == 2 and set(sd["path"]) == {"representation", "pixel"}
    feature_visualisation_figure({MODEL_ID: s}, scores)
    interpolation_figure({MODEL_ID: i}, smooth, 2, "ssim")
