"""Alignment with real human similarity judgments (iriflow.rsa, iriflow.things,
rules/rsa.smk): odd-one-out choices, RSA, the noise ceiling, the image
bootstrap, the linear probe, THINGS files, the verified download, and the
stage run through Snakemake on the real 92-image data.

The data are the copy committed in resources/rsa92 (with its NOTICE)."""

from __future__ import annotations

import hashlib
import itertools
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from scipy.spatial.distance import pdist, squareform
from scipy.stats import spearmanr

from conftest import ROOT, RSA92, SCHEMA, run_snakemake
from iriflow.rsa import (
    RSA92_FILES,
    ChecksumError,
    FetchError,
    HumanData,
    RemoteFile,
    bootstrap_ceiling,
    bootstrap_rsa,
    fetch_verified,
    human_triplets,
    load_rsa92,
    markdown_table,
    model_inputs,
    noise_ceiling,
    participant_agreement,
    rdm,
    resolve_cache,
    rsa,
    score_features,
    score_things,
    sha256_file,
    summary_text,
    table_rows,
    things_ceiling,
    upper,
    wide_scores,
)
from iriflow.things import (
    CHANCE,
    ProbeSettings,
    TripletFileError,
    agreement,
    all_triplets,
    bootstrap_mean,
    choose_odd,
    cosine_similarity,
    cross_validated_probe,
    list_images,
    normalised_score,
    object_folds,
    object_resamples,
    odd_from_dissimilarity,
    percentile_ci,
    read_triplets,
    repeat_ceiling,
    sample_triplets,
)


@pytest.fixture(scope="session")
def rsa92_dir() -> Path:
    return RSA92


@pytest.fixture(scope="session")
def human(rsa92_dir) -> HumanData:
    return load_rsa92(rsa92_dir / RSA92_FILES["behaviour"].name, rsa92_dir / RSA92_FILES["kriegeskorte"].name)


def random_rdm(rng, n, dim=5):
    return squareform(pdist(rng.normal(size=(n, dim))))


# --- odd-one-out ------------------------------------------------------------------------


def test_odd_one_out_choice_on_hand_made_embeddings():
    emb = np.array(
        [
            [1.0, 0.0, 0.0],  # 0
            [0.9, 0.1, 0.0],  # 1: close to 0
            [0.0, 1.0, 0.0],  # 2
            [0.0, 0.0, 1.0],  # 3
            [0.0, 0.9, 0.1],
        ]
    )  # 4: close to 2
    s = cosine_similarity(emb)
    triplets = np.array([[0, 1, 2], [2, 0, 1], [2, 4, 0], [3, 0, 1]])
    # the pair (0, 1) stays, so 2 (position 2), 2 (position 0), 0 (position 2), 3 (position 0)
    assert choose_odd(s, triplets).tolist() == [2, 0, 2, 0]
    # agreement: triplets whose last column is people's odd one out
    people = np.array([[0, 1, 2], [0, 1, 3], [2, 4, 0], [0, 2, 1]])
    assert agreement(s, people).tolist() == [1.0, 1.0, 1.0, 0.0]
    # three orthogonal vectors: every pair ties, a third of the credit whatever the answer
    assert agreement(cosine_similarity(np.eye(3)), np.array([[0, 1, 2], [2, 0, 1]])).tolist() == [1 / 3, 1 / 3]
    # two of three pairs tie for the maximum: half the credit if people kept one of them
    tie = cosine_similarity(np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))
    assert agreement(tie, np.array([[0, 1, 2], [0, 2, 1], [1, 2, 0]])).tolist() == [0.5, 0.5, 0.0]
    # a zero vector is similar to nothing
    assert cosine_similarity(np.array([[0.0, 0.0], [1.0, 0.0]]))[0].tolist() == [0.0, 0.0]


def test_odd_from_dissimilarity_orders_triplets_and_marks_ties():
    d = np.array([[0, 1, 5, 5], [1, 0, 4, 6], [5, 4, 0, 2], [5, 6, 2, 0]], dtype=float)
    ordered, tied = odd_from_dissimilarity(d, np.array([[0, 1, 2], [1, 2, 3], [0, 2, 3]]))
    assert ordered.tolist() == [[0, 1, 2], [2, 3, 1], [2, 3, 0]] and not tied.any()
    # the chosen order is what a matrix of similarities (-d) agrees with fully
    assert agreement(-d, ordered).tolist() == [1.0, 1.0, 1.0]
    d[0, 2] = d[2, 0] = 1.0  # (0, 1) and (0, 2) now tie for the least dissimilar pair
    assert odd_from_dissimilarity(d, np.array([[0, 1, 2]]))[1].tolist() == [True]


def test_triplet_sampling():
    assert all_triplets(5).tolist() == [list(t) for t in itertools.combinations(range(5), 3)]
    assert len(sample_triplets(92, None, 0)) == 125580
    some = sample_triplets(20, 100, seed=3)
    assert len(some) == 100 and len({tuple(t) for t in some}) == 100
    assert (np.diff(some, axis=1) > 0).all()
    assert np.array_equal(some, sample_triplets(20, 100, seed=3))


# --- RSA and the noise ceiling -----------------------------------------------------------


def test_rsa_equals_a_directly_computed_spearman():
    rng = np.random.default_rng(0)
    model = random_rdm(rng, 12)
    people = np.stack([random_rdm(rng, 12) for _ in range(4)])
    direct = [spearmanr(squareform(model, checks=False), squareform(p, checks=False)).statistic for p in people]
    assert rsa(model, people) == pytest.approx(np.mean(direct), abs=1e-12)
    assert rsa(model, people[0]) == pytest.approx(direct[0], abs=1e-12)
    # the upper triangle is MATLAB's / scipy's condensed order
    np.testing.assert_array_equal(upper(model), squareform(model, checks=False))
    # ties (average ranks) too
    coarse = np.round(model)
    assert rsa(coarse, people[:1]) == pytest.approx(spearmanr(upper(coarse), upper(people[0])).statistic, abs=1e-12)


def test_rdm_metrics():
    x = np.random.default_rng(1).normal(size=(7, 10))
    np.testing.assert_allclose(rdm(x, "correlation"), 1 - np.corrcoef(x), atol=1e-12)
    np.testing.assert_allclose(rdm(x, "euclidean"), squareform(pdist(x)), atol=1e-9)
    np.testing.assert_allclose(rdm(x, "cosine"), squareform(pdist(x, "cosine")), atol=1e-12)
    x[3] = 2.0  # a constant representation is uncorrelated with everything
    assert np.allclose(np.delete(rdm(x)[3], 3), 1.0)
    with pytest.raises(KeyError, match="unknown RDM metric 'manhattan'"):
        rdm(x, "manhattan")


def test_noise_ceiling_on_simulated_participants():
    rng = np.random.default_rng(2)
    truth = random_rdm(rng, 30)
    # identical participants: both bounds are 1
    assert noise_ceiling(np.stack([truth] * 3)) == pytest.approx((1.0, 1.0))
    # participants = truth + independent noise: lower < upper, and the true
    # RDM's mean correlation with them lies between the bounds
    people = np.stack([truth + rng.normal(scale=1.0, size=truth.shape) for _ in range(20)])
    people = (people + people.transpose(0, 2, 1)) / 2
    lower, upper_ = noise_ceiling(people)
    assert lower < rsa(truth, people) < upper_
    # the bounds as defined: each participant against the mean of the others / of all
    vec = np.stack([upper(p) for p in people])
    direct_low = np.mean([spearmanr(v, np.delete(vec, i, 0).mean(0)).statistic for i, v in enumerate(vec)])
    direct_up = np.mean([spearmanr(v, vec.mean(0)).statistic for v in vec])
    assert (lower, upper_) == pytest.approx((direct_low, direct_up), abs=1e-12)
    # more noise, lower ceiling
    noisy = people + rng.normal(scale=3.0, size=people.shape)
    noisy = (noisy + noisy.transpose(0, 2, 1)) / 2
    assert noise_ceiling(noisy)[1] < upper_


def explicit_resample(matrix_a, matrix_b, idx):
    """Spearman of two RDMs after drawing images idx (pairs of one image drawn twice left out)."""
    a, b = np.triu_indices(len(idx), 1)
    keep = idx[a] != idx[b]
    i, j = idx[a[keep]], idx[b[keep]]
    return spearmanr(matrix_a[i, j], matrix_b[i, j]).statistic


def test_image_bootstrap_equals_explicit_resampling():
    rng = np.random.default_rng(3)
    model = np.round(random_rdm(rng, 15), 1)  # ties within the model
    people = np.stack([random_rdm(rng, 15) for _ in range(3)])
    resamples = object_resamples(15, 5, seed=0)
    boot = bootstrap_rsa(model, {"p": people, "first": people[:1]}, resamples)
    for r, idx in enumerate(resamples):
        assert boot["p"][r] == pytest.approx(np.mean([explicit_resample(model, p, idx) for p in people]), abs=1e-10)
        assert boot["first"][r] == pytest.approx(explicit_resample(model, people[0], idx), abs=1e-10)
    reps = bootstrap_ceiling(people, resamples)
    for r, idx in enumerate(resamples):
        sub = people[:, idx][:, :, idx]
        a, b = np.triu_indices(15, 1)
        keep = idx[a] != idx[b]
        vec = sub[:, a[keep], b[keep]]
        low = np.mean([spearmanr(v, np.delete(vec, i, 0).mean(0)).statistic for i, v in enumerate(vec)])
        up = np.mean([spearmanr(v, vec.mean(0)).statistic for v in vec])
        assert reps[r] == pytest.approx([low, up], abs=1e-10)
    # the triplet bootstrap: the mean over all triplets of distinct draws
    triplets = all_triplets(8)
    values = np.random.default_rng(4).random(len(triplets))
    lookup = {tuple(t): v for t, v in zip(triplets, values)}
    idx = np.array([0, 0, 1, 2, 3, 5, 5, 5])
    draws = [tuple(sorted(idx[list(c)])) for c in itertools.combinations(range(8), 3)]
    explicit = np.mean([lookup[d] for d in draws if len(set(d)) == 3])
    assert bootstrap_mean(values, triplets, idx[None])[0] == pytest.approx(explicit, abs=1e-12)


def test_bootstrap_ci_covers_the_population_value():
    """Images drawn from a population of 300: the 95% image-bootstrap CI of
    the RSA between a noisy model and the truth covers the population value
    in most of 25 draws of 40 images."""
    rng = np.random.default_rng(5)
    features = rng.normal(size=(300, 6))
    model_features = features + rng.normal(scale=1.2, size=features.shape)
    truth_all, model_all = rdm(features, "euclidean"), rdm(model_features, "euclidean")
    population = rsa(model_all, truth_all)
    covered = 0
    for _ in range(25):
        pick = rng.choice(300, size=40, replace=False)
        reps = bootstrap_rsa(
            model_all[np.ix_(pick, pick)],
            {"t": truth_all[np.ix_(pick, pick)][None]},
            object_resamples(40, 300, int(rng.integers(1 << 30))),
        )["t"]
        lo, hi = percentile_ci(reps, 0.95)
        covered += lo <= population <= hi
    assert covered >= 20, f"covered {covered} of 25"


# --- the linear probe -----------------------------------------------------------------------


def test_probe_improves_heldout_accuracy_when_a_linear_transform_is_the_truth():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(45, 6))
    a = rng.normal(size=(6, 6))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    people_sim = (unit @ a) @ (unit @ a).T  # people see the features through A
    triplets, tied = odd_from_dissimilarity(-people_sim, sample_triplets(45, None, 0))
    triplets = triplets[~tied]
    result = cross_validated_probe(x, triplets, ProbeSettings(folds=3, lambdas=(1e-4, 1e-2), steps=40))
    fold = object_folds(45, 3, 0)
    # held-out triplets lie within one fold of objects, never across folds
    assert (fold[result.triplets] == result.fold[:, None]).all()
    assert len(result.triplets) == sum(np.sum(np.all(fold[triplets] == f, axis=1)) for f in range(3))
    zero, probed = result.zero_shot.mean(), result.probed.mean()
    assert zero == pytest.approx(agreement(cosine_similarity(x), result.triplets).mean())
    assert probed > zero + 0.15 and probed > 0.85, (zero, probed)


def test_probe_recovers_nothing_from_noise():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(45, 5))
    labels = np.sort(sample_triplets(45, 3000, 0), axis=1)
    triplets = rng.permuted(labels, axis=1)  # random odd ones out
    result = cross_validated_probe(x, triplets, ProbeSettings(folds=3, lambdas=(1e-2,), steps=40))
    assert abs(result.probed.mean() - CHANCE) < 0.08


# --- THINGS files ------------------------------------------------------------------------


def test_read_triplets_of_a_hand_made_things_file(tmp_path):
    f = tmp_path / "triplets.tsv"
    f.write_text("# my pilot\nanchor\tother\todd\n1\t2\t3\n\n3,4,1\n 2 4 3 \n")
    assert read_triplets(f, n_objects=4, index_base=1).tolist() == [[0, 1, 2], [2, 3, 0], [1, 3, 2]]
    assert read_triplets(f, index_base=0).tolist() == [[1, 2, 3], [3, 4, 1], [2, 4, 3]]


@pytest.mark.parametrize(
    "rows, expected",
    [
        ("0 1 2\n0 1\n", "row 2 ('0 1'): expected 3 integer object indices"),
        ("0 1 2\n0 1 x\n", "row 2 ('0 1 x'): expected 3 integer"),
        ("0 1 2\n\n2 2 1\n", "row 3 ('2 2 1'): the three objects must differ"),
        ("0 1 2\n0 1 9\n", "row 2 ('0 1 9'): index 9 is outside 0..3"),
        ("0 1 2\n-1 1 2\n", "row 2 ('-1 1 2'): index -1 is outside"),
        ("# nothing\n", "no triplets"),
    ],
)
def test_triplet_file_errors_name_the_row(tmp_path, rows, expected):
    f = tmp_path / "bad.txt"
    f.write_text(rows)
    with pytest.raises(TripletFileError) as err:
        read_triplets(f, n_objects=4)
    assert str(f) in str(err.value) and expected in str(err.value)


def test_repeated_triplets_give_the_noise_ceiling():
    # (0, 1, 2) asked three times: 2, 2, 0 are the odd ones out; (3, 4, 5) twice, both 5
    t = np.array([[0, 1, 2], [1, 0, 2], [1, 2, 0], [3, 4, 5], [4, 3, 5], [6, 7, 8]])
    ceiling, repeated = repeat_ceiling(t)
    # answers 2, 2: the others tie (1/2 each); answer 0: the others say 2 (0); 5, 5: 1 each
    assert repeated == 2 and ceiling == pytest.approx((0.5 + 0.5 + 0 + 1 + 1) / 5)
    assert np.isnan(repeat_ceiling(t[-1:])[0])
    assert normalised_score(CHANCE, 0.8) == 0.0 and normalised_score(0.8, 0.8) == pytest.approx(1.0)
    assert normalised_score(0.5, 2 / 3) == pytest.approx(0.5)
    assert np.isnan(normalised_score(0.5, float("nan")))


def test_things_images_and_zero_shot_accuracy(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    shades = {"a.png": 10, "b.png": 30, "c.png": 240, "d.png": 220}  # two dark, two bright
    for name, v in shades.items():
        Image.fromarray(np.full((20, 30, 3), v, np.uint8)).save(folder / name)
    files = list_images(folder)
    assert [f.name for f in files] == sorted(shades)
    listing = tmp_path / "list.txt"
    listing.write_text("images/c.png\n\nimages/a.png\n")
    assert [f.name for f in list_images(listing)] == ["c.png", "a.png"]
    listing.write_text("images/missing.png\n")
    with pytest.raises(TripletFileError, match="row 1: image .*missing.png not found"):
        list_images(listing)
    x = model_inputs([Image.open(f) for f in files], 1, (8, 8))
    assert x.shape == (4, 1, 8, 8) and np.allclose(x[0], 10 / 255, atol=1e-6)
    triplets = tmp_path / "t.txt"
    triplets.write_text("0 1 2\n2 3 0\n0 1 3\n2 3 1\n0 2 1\n")  # the last: people kept (0, 2)
    t = read_triplets(triplets, len(files))
    features = np.c_[x.reshape(4, -1).mean(1), 1 - x.reshape(4, -1).mean(1)]  # brightness and darkness
    assert agreement(cosine_similarity(features), t).tolist() == [1, 1, 1, 1, 0]
    # zero-shot accuracy 4/5 and, with a ceiling of 0.9, (0.8 - 1/3) / (0.9 - 1/3) normalised
    ceiling, source = things_ceiling(t, 0.9)
    assert (ceiling, source) == (0.9, "rsa.things.ceiling")
    assert np.isnan(things_ceiling(t[:4], None)[0])  # no repeated triplets
    # rows 1 and 5 ask the same triplet and disagree: each answer's other answer differs
    assert things_ceiling(t, None) == (0.0, "1 repeated triplets")
    settings = {"bootstrap": {"n": 20, "level": 0.95, "seed": 0}, "probe": {"enabled": False}}
    rows = {r["measure"]: r for r in score_things(features, t, ceiling, settings, source)}
    assert rows["things:zero-shot"]["value"] == pytest.approx(0.8) and rows["things:zero-shot"]["n"] == 5
    assert rows["things:normalised"]["value"] == pytest.approx((0.8 - 1 / 3) / (0.9 - 1 / 3))
    assert rows["things:normalised"]["chance"] == 0.0 and rows["things:zero-shot"]["chance"] == CHANCE


def test_model_inputs_grayscale_and_rgb():
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, :, 0] = 255  # pure red, wider than tall: the centre square is cropped
    gray = model_inputs([img], 1, (28, 28))
    assert gray.shape == (1, 1, 28, 28) and np.allclose(gray, 0.299, atol=0.01)
    rgb = model_inputs([img], 3, (32, 32))
    assert rgb.shape == (1, 3, 32, 32) and np.allclose(rgb[0, 0], 1) and np.allclose(rgb[0, 1:], 0)


# --- the verified download ------------------------------------------------------------------


def remote(content: bytes, name: str = "data.mat") -> RemoteFile:
    return RemoteFile(name, hashlib.sha256(content).hexdigest(), "test file")


def test_cached_copy_with_the_pinned_checksum_is_used(tmp_path):
    f = remote(b"hello")
    (tmp_path / f.name).write_bytes(b"hello")
    path, how = fetch_verified(f, tmp_path, "http://127.0.0.1:9", download=False)
    assert path == tmp_path / f.name and how == "cache"


def test_download_is_checked_then_moved_into_the_cache(tmp_path):
    server = tmp_path / "server"
    server.mkdir()
    (server / "data.mat").write_bytes(b"hello")
    cache = tmp_path / "cache"
    path, how = fetch_verified(remote(b"hello"), cache, server.as_uri())
    assert how == "downloaded" and path.read_bytes() == b"hello"
    assert sorted(p.name for p in cache.iterdir()) == ["data.mat"]
    # a damaged cached copy is replaced by a good download
    path.write_bytes(b"hellx")
    assert fetch_verified(remote(b"hello"), cache, server.as_uri())[1] == "downloaded"
    assert path.read_bytes() == b"hello"


def test_download_with_a_wrong_checksum_is_rejected_and_leaves_nothing(tmp_path):
    server = tmp_path / "server"
    server.mkdir()
    (server / "data.mat").write_bytes(b"tampered")
    cache = tmp_path / "cache"
    f = remote(b"hello")
    with pytest.raises(ChecksumError) as err:
        fetch_verified(f, cache, server.as_uri())
    msg = str(err.value)
    assert "data.mat" in msg and f.sha256 in msg and hashlib.sha256(b"tampered").hexdigest() in msg
    assert list(cache.iterdir()) == []


def test_wrong_cached_copy_offline_names_the_file_and_both_checksums(tmp_path):
    (tmp_path / "data.mat").write_bytes(b"tampered")
    f = remote(b"hello")
    with pytest.raises(ChecksumError) as err:
        fetch_verified(f, tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path / "data.mat") in msg and f.sha256 in msg
    assert hashlib.sha256(b"tampered").hexdigest() in msg
    assert (tmp_path / "data.mat").read_bytes() == b"tampered"  # the user's file is left alone


def test_offline_error_names_the_url_and_how_to_provide_the_file(tmp_path):
    f = remote(b"hello")
    with pytest.raises(FetchError) as err:
        fetch_verified(f, tmp_path / "cache", "http://127.0.0.1:9/rsa", timeout=5)
    msg = str(err.value)
    assert "could not download http://127.0.0.1:9/rsa/data.mat" in msg
    assert f"into {tmp_path / 'cache'}/" in msg and "rsa.cache" in msg
    assert not [p for p in (tmp_path / "cache").iterdir()]
    with pytest.raises(FetchError, match="is missing and rsa.download is false"):
        fetch_verified(f, tmp_path / "cache", download=False)


def test_cache_resolution():
    assert resolve_cache("/x", RSA92) == Path("/x")
    assert resolve_cache("", RSA92) == RSA92


def test_the_committed_copy_has_the_pinned_checksums_and_a_notice():
    notice = (RSA92 / "NOTICE").read_text()
    for remote in RSA92_FILES.values():
        assert sha256_file(RSA92 / remote.name) == remote.sha256
        assert f"{remote.sha256}  {remote.name}" in notice
    assert "f1f83cadb7243492a1aae7460466e0f0140b20ac" in notice and "MIT License" in notice


def test_download_rule_rejects_a_cached_file_with_a_wrong_checksum(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "92_behavRDMs.mat").write_bytes(b"not the real file")
    # the other file is the real one: the folder is complete, so the plan-time check
    # lets the rule run, and the rule's checksum check must catch the damaged copy
    shutil.copyfile(RSA92 / RSA92_FILES["kriegeskorte"].name, cache / RSA92_FILES["kriegeskorte"].name)
    cfg = tmp_path / "rsa.yaml"
    cfg.write_text(yaml.safe_dump({"rsa": {"cache": str(cache), "download": False}}))
    out = "results/rsa/human/rsa92.npz"
    proc = run_snakemake(
        out,
        "--cores",
        "1",
        "-d",
        str(tmp_path),
        "--configfile",
        str(ROOT / "config/config.yaml"),
        str(cfg),
        check=False,
    )
    assert proc.returncode != 0
    log = (tmp_path / "results/logs/rsa/data.log").read_text() + proc.stderr
    assert RSA92_FILES["behaviour"].sha256 in log
    assert hashlib.sha256(b"not the real file").hexdigest() in log
    assert not (tmp_path / out).exists() and not (tmp_path / "results/rsa/human/provenance.json").exists()
    assert sorted(p.name for p in cache.iterdir()) == ["92_behavRDMs.mat", RSA92_FILES["kriegeskorte"].name]


# --- the real data ---------------------------------------------------------------------------------


def test_the_92_image_data(human):
    assert human.behaviour.shape == (16, 92, 92) and human.images.shape == (92, 175, 175, 3)
    assert human.hit.shape == human.mit.shape == (92, 92) and human.categories.shape == (92, 12)
    assert human.category_labels[:2] == ["animate", "inanim"] and human.categories[:, 0].sum() == 48
    assert np.allclose(np.diagonal(human.behaviour, axis1=1, axis2=2), 0)
    # regression anchors of this data (Spearman, upper triangles)
    assert noise_ceiling(human.behaviour) == pytest.approx((0.4776, 0.5751), abs=1e-3)
    assert rsa(human.hit, human.behaviour) == pytest.approx(0.2886, abs=1e-3)
    assert rsa(human.hit, human.mit) == pytest.approx(spearmanr(upper(human.hit), upper(human.mit)).statistic)
    # animate images are more alike to people than animate vs inanimate ones
    animate = human.categories[:, 0].astype(bool)
    mean = human.group_mean
    assert mean[np.ix_(animate, animate)].mean() < mean[np.ix_(animate, ~animate)].mean()


def test_scores_of_a_representation_on_the_real_data(human):
    triplets, tied = human_triplets(human, 2000, seed=0)
    assert tied == 0 and len(triplets) == 2000
    lower, upper_ = participant_agreement(human.behaviour, triplets)
    assert CHANCE < lower < upper_ < 1
    settings = {
        "rdm_metric": "correlation",
        "bootstrap": {"n": 50, "level": 0.95, "seed": 0},
        "probe": {"enabled": False},
    }
    # the group-mean RDM itself, as "features": RSA near the upper ceiling, perfect odd-one-out agreement
    rows = {r["measure"]: r for r in score_features(-human.group_mean, human, triplets, settings)}
    assert set(rows) == {"rsa:behaviour", "rsa:behaviour-mean", "rsa:hIT", "rsa:mIT", "ooo:zero-shot"}
    assert all(r["ci_lo"] <= r["value"] <= r["ci_hi"] for r in rows.values())
    assert rows["ooo:zero-shot"]["chance"] == CHANCE and rows["ooo:zero-shot"]["n"] == 2000
    # random features: chance
    noise = np.random.default_rng(0).normal(size=(92, 20))
    rows = {r["measure"]: r for r in score_features(noise, human, triplets, settings)}
    assert abs(rows["rsa:behaviour"]["value"]) < 0.1 and abs(rows["ooo:zero-shot"]["value"] - CHANCE) < 0.05


# --- the table, the summary and the stage through Snakemake ---------------------------------------


def fake_scores() -> pd.DataFrame:
    rows = []
    for kind, dataset, model, base in (
        ("model", "mnist5k", "vgg16bn-ce-standard-s0", 0.1),
        ("model", "mnist5k", "resnet18-ce-standard-s0", 0.2),
        ("baseline", "mnist5k", "pixels", 0.05),
        ("reference", "", "hIT", 0.3),
    ):
        for measure, v in (
            ("rsa:behaviour", base),
            ("rsa:hIT", base / 2),
            ("ooo:zero-shot", 0.4 + base),
            ("ooo:heldout-zero-shot", 0.4),
            ("ooo:probed", 0.45),
        ):
            rows.append(
                {
                    "kind": kind,
                    "dataset": dataset,
                    "model": model,
                    "layer": "penultimate" if kind == "model" else "",
                    "measure": measure,
                    "value": v,
                    "ci_lo": v - 0.05,
                    "ci_hi": v + 0.05,
                    "n": 10,
                    "chance": 0.0,
                    "detail": "{}",
                }
            )
    return pd.DataFrame(rows)


CEILING = {
    "participants": 16,
    "rsa_lower": 0.478,
    "rsa_upper": 0.575,
    "rsa_lower_ci": [0.43, 0.54],
    "rsa_upper_ci": [0.52, 0.61],
    "ooo_participant_lower": 0.633,
    "ooo_participant_upper": 0.664,
    "ooo_chance": CHANCE,
    "triplets": 125580,
}


def test_table_rows_are_grouped_and_end_with_the_noise_ceiling():
    levels = {"arch": ["resnet18", "vgg16bn"], "objective": ["ce"], "augmentation": ["standard"]}
    wide = wide_scores(fake_scores(), {"objectives": {"ce": {"kind": "ce"}}, "augmentations": {}}, levels)
    assert list(wide["model"]) == ["resnet18-ce-standard-s0", "vgg16bn-ce-standard-s0", "pixels", "hIT"]
    assert wide.loc[0, "arch"] == "resnet18" and wide.loc[0, "rsa:behaviour"] == 0.2
    header, rows = table_rows(wide, CEILING)
    assert header[5:] == [
        "RSA behaviour",
        "RSA hIT",
        "odd-one-out % (zero-shot)",
        "held-out % zero-shot",
        "held-out % probed",
    ]
    assert rows[0][5] == "0.200 [0.150, 0.250]" and rows[0][7] == "60.0 [55.0, 65.0]"
    assert rows[-2][0].startswith("noise ceiling (16 participants") and rows[-2][5] == "0.478 - 0.575"
    assert rows[-2][7] == "63.3 - 66.4" and rows[-1][7] == "33.3"
    assert "| mnist5k/resnet18-ce-standard-s0 |" in markdown_table(header, rows, "t")
    text = summary_text(wide, CEILING)
    assert "lower 0.478 [0.430, 0.540], upper 0.575" in text
    assert "RSA with behaviour: 2 models from 0.100" in text and "none reaches the lower noise ceiling" in text
    assert "+5.0 percentage points" in text


def test_rsa_figure_draws_from_the_table(tmp_path):
    from iriflow.plots import rsa_figure, rsa_figure_data, save_figure

    wide = wide_scores(fake_scores(), {}, {})
    data = rsa_figure_data(wide)
    assert sorted(data["measure"].unique()) == ["ooo:probed", "ooo:zero-shot", "rsa:behaviour", "rsa:hIT"]
    assert data.loc[data["measure"] == "ooo:zero-shot", "pct"].tolist() == pytest.approx([60.0, 50.0])
    save_figure(rsa_figure(wide, CEILING, {}), tmp_path / "rsa.png")
    assert (tmp_path / "rsa.png").stat().st_size > 10_000


TINY_MODEL = "mnist5k/resnet18-ce-none-s0"


def test_the_stage_through_snakemake_on_the_real_data(tmp_path, rsa92_dir):
    """rsa_data (from the committed copy), rsa_human, rsa_model, rsa_baseline,
    rsa_table and figure_rsa on one small untrained model; training and the
    data stage are not run (their outputs are made here)."""
    import torch

    from iriflow.archs import build_model
    from iriflow.io import write_json
    from iriflow.models import save_model

    torch.manual_seed(0)
    model = build_model("resnet18", 10, 1, [0.13], [0.31], width=0.125, stem_stride=2)
    folder = tmp_path / "results/models" / TINY_MODEL
    save_model(folder / "model.pt", folder / "model.json", model, {"id": TINY_MODEL})
    write_json(tmp_path / "results/data/mnist5k/meta.json", {"shape": [1, 28, 28]})
    cfg = tmp_path / "small.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "models": {
                    "grid": [
                        {
                            "datasets": ["mnist5k"],
                            "archs": ["resnet18"],
                            "objectives": ["ce"],
                            "augmentations": ["none"],
                            "seeds": [0],
                        }
                    ]
                },
                # rsa.cache '' reads the copy committed in resources/rsa92; nothing may be downloaded
                "rsa": {
                    "download": False,
                    "triplets": {"n": 3000},
                    "bootstrap": {"n": 40},
                    "probe": {"folds": 2, "lambdas": [0.01], "steps": 15},
                },
            }
        )
    )
    rules = ["rsa_data", "rsa_human", "rsa_model", "rsa_baseline", "rsa_table", "figure_rsa", "rsa"]
    run_snakemake(
        "rsa",
        "--allowed-rules",
        *rules,
        "--cores",
        "2",
        "-d",
        str(tmp_path),
        "--configfile",
        str(ROOT / "config/config.yaml"),
        str(cfg),
    )
    table = pd.read_csv(tmp_path / "results/tables/rsa.csv")
    assert list(table["kind"]) == ["model", "baseline", "reference", "reference"]
    assert list(table["model"]) == ["resnet18-ce-none-s0", "pixels", "hIT", "mIT"]
    for measure in ("rsa:behaviour", "rsa:hIT", "ooo:zero-shot", "ooo:probed"):
        ok = table[measure].notna()
        assert (
            (table.loc[ok, f"{measure}_lo"] <= table.loc[ok, measure])
            & (table.loc[ok, measure] <= table.loc[ok, f"{measure}_hi"])
        ).all(), measure
    ceiling = yaml.safe_load((tmp_path / "results/rsa/human/ceiling.json").read_text())
    assert ceiling["rsa_lower"] == pytest.approx(0.4776, abs=1e-3) and ceiling["triplets"] == 3000
    md = (tmp_path / "results/tables/rsa.md").read_text()
    assert "noise ceiling (16 participants" in md and "mnist5k/resnet18-ce-none-s0" in md
    assert (tmp_path / "results/figures/rsa.png").stat().st_size > 10_000
    rep = np.load(tmp_path / "results/rsa/models" / TINY_MODEL / "penultimate/representations.npz")
    assert rep["features"].shape[0] == 92 and rep["rdm"].shape == (92, 92)
    provenance = yaml.safe_load((tmp_path / "results/rsa/human/provenance.json").read_text())
    assert {v["from"] for v in provenance["files"].values()} == {"cache"}
    assert "0.478" in (tmp_path / "results/rsa/summary.txt").read_text()


def test_dry_runs_plan_things_jobs_only_when_configured(tmp_path):
    images = tmp_path / "things"
    images.mkdir()
    (tmp_path / "triplets.txt").write_text("0 1 2\n")
    cfg = tmp_path / "things.yaml"
    cfg.write_text(
        yaml.safe_dump({"rsa": {"things": {"triplets": str(tmp_path / "triplets.txt"), "images": str(images)}}})
    )
    proc = run_snakemake("-n", "rsa", "-d", str(tmp_path), "--configfile", str(ROOT / "config/config.yaml"), str(cfg))
    assert "rule rsa_things:" in proc.stdout and proc.stdout.count("rule rsa_things:") == 8
    cfg.write_text(yaml.safe_dump({"rsa": {"enabled": False}}))
    proc = run_snakemake("-n", "-d", str(tmp_path), "--configfile", str(ROOT / "config/config.yaml"), str(cfg))
    assert "rule rsa_" not in proc.stdout


@pytest.mark.parametrize(
    "rsa_cfg, expected",
    [
        ({"triplets": {"n": 0}}, "rsa.triplets.n: 0 is less than the minimum of 1"),
        ({"rdm_metric": "manhattan"}, "rsa.rdm_metric: 'manhattan' is not one of"),
        ({"base_url": "ftp://x"}, "rsa.base_url: 'ftp://x' does not match"),
        ({"probe": {"folds": 1}}, "rsa.probe.folds: 1 is less than the minimum of 2"),
        ({"things": {"ceiling": 1.5}}, "rsa.things.ceiling: 1.5 is greater than the maximum of 1"),
        ({"cache_dir": "x"}, "rsa.cache_dir: unknown key 'cache_dir'"),
    ],
)
def test_bad_rsa_config_names_the_key(rsa_cfg, expected):
    from iriflow.config import ConfigError, validate_config

    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["rsa"] = {**cfg["rsa"], **rsa_cfg}
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, SCHEMA)
    assert expected in str(err.value)


def test_default_and_paper_configs_have_the_rsa_stage():
    from iriflow.config import validate_config

    for name in ("config.yaml", "paper.yaml"):
        rsa_cfg = validate_config(yaml.safe_load((ROOT / "config" / name).read_text()), SCHEMA)["rsa"]
        assert rsa_cfg["enabled"] and rsa_cfg["cache"] == "" and rsa_cfg["triplets"]["n"] is None
        assert "f1f83cadb7243492a1aae7460466e0f0140b20ac" in rsa_cfg["base_url"]
        assert rsa_cfg["things"]["triplets"] is None and rsa_cfg["resources"]["gpu"] == 0
