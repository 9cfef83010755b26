"""Engstrom et al. 2019 ("Adversarial robustness as a prior for learned
representations") beyond inversion: direct feature visualisation, feature
addition and interpolation in representation space. Each runs the project's
one input-space optimiser (``iriflow.optim.optimize``) on the one
representation extractor (``iriflow.represent``) and stores its images as an
IRI set (``iriflow.iriset``), so that trials, the survey and the figures read
them like any other set. Set ids are
``<dataset>/<model>/<layer>/<procedure>/<start>`` (``iriflow.iriset.PROCEDURES``):

``feature-vis/<seed type>`` (``features``): k coordinates i of the
representation, drawn (seeded) among those that n (``n_examples``, at most
half the test split) or more test images activate (fewer than k when fewer
qualify), each maximised, R(x)_i, from a seed (grey noise:
``iriflow.iri.SEEDS``) by normalised L2 steps inside an L2 ball of radius
``eps``. ``iris``: the
visualisations; ``seeds``: the seeds; ``targets``, ``target_index``,
``target_label``: the test image that activates the coordinate most;
``loss``: the coordinate's value at the visualisation; ``rel_dist``: NaN (no
representation target); ``converged``: the visualisation activates the
coordinate more than every test image does. ``extra``: ``feature`` [k] (the
coordinates), ``seed_activation`` [k], ``top`` and ``bottom`` (image banks of
k * n images: the n test images that activate coordinate f most, in
decreasing order, at f * n .. f * n + n - 1, and the n that activate it
least, in increasing order; ties broken by a seeded permutation),
``top_index``, ``bottom_index``, ``top_activation``, ``bottom_activation``
[k, n]. These sets carry the ``feature-2afc`` trials (iriflow.judgments).

``feature-add/test-image`` (``addition``): from a test image x, maximise
min(R(x)_i - on, 0), i.e. raise coordinate i until it is "on" (above
on = ``on_level``); the objective is flat from there, so the image stops changing and
the first iterate above ``on`` is kept. The coordinates are those of the
feature visualisation, taken in turn, each added to a test image (seeded)
on which it is off (fewer than ``n`` when too few are off). ``seeds``: the test images; ``iris``: the images after;
``targets`` etc.: the test image that activates the added coordinate most
(what "the feature" looks like); ``loss``: min(R_i - on, 0) after;
``rel_dist``: NaN; ``converged``: R_i > on after. ``extra``: ``feature``,
``seed_index``, ``seed_label``, ``seed_activation``, ``activation``.

``interpolation/pixel-blend`` (``interpolation``): for pairs (a, b) of test
images of different classes (seeded, the same for every model) and
``n_lambda`` values lambda from 0 to 1, invert lambda R(a) + (1 - lambda)
R(b) (relative L2 distance, as the regfree IRI loss) from the pixel blend
lambda a + (1 - lambda) b. Frames are pair-major, lambda ascending.
``iris``: the representation path; ``seeds``: the pixel path; ``targets``
etc.: a; ``rel_dist`` and ``loss``: the frame's relative distance to its
lambda target; ``converged``: below ``threshold``. ``extra``: ``lam``,
``pair``, ``other`` (image bank: b per frame), ``other_index``,
``other_label``, ``seed_rel_dist`` (the pixel blend's relative distance to
the same target).

Path smoothness (``path_smoothness``): for each pair and path, the
perceptual distances between consecutive frames: their sum (path length),
that sum over the distance between the end frames (detour: 1 for a path
that goes straight, in that metric, from one end to the other) and the
largest step's share of the length (1 / (n_lambda - 1) for evenly paced
steps, 1 for a single jump)."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .iri import SeedContext, make_seeds, seed_generator, step_schedule
from .iriset import IRISet, SetId
from .losses import relative_distance
from .metrics import get_metric
from .models import frozen
from .optim import optimize
from .represent import Representation, extract, representation

SMOOTHNESS_COLUMNS = ("model", "pair", "path", "length", "detour", "max_share")


def _rng(seed: int, what: str) -> np.random.Generator:
    """A generator per (seed, purpose): the draws of one procedure do not shift another's."""
    return np.random.default_rng([seed, zlib.crc32(what.encode())])


# --- selections ----------------------------------------------------------------


def choose_features(acts: Tensor, k: int, seed: int, min_active: int = 1) -> np.ndarray:
    """Up to k coordinates (sorted), drawn without replacement among those
    that at least ``min_active`` images of ``acts`` [M, D] activate (> 0): a
    unit with fewer has fewer top images than it is compared with (a dead
    unit, none). Fewer than k when fewer units qualify (a small test split)."""
    alive = np.flatnonzero((acts.numpy() > 0).sum(0) >= min_active)
    return np.sort(_rng(seed, "features").choice(alive, min(k, len(alive)), replace=False))


def feature_choice(acts: Tensor, s: Mapping[str, Any]) -> tuple[np.ndarray, int]:
    """The visualised coordinates and the number n of top (and of bottom)
    images of each, under settings ``s`` (k, n_examples, seed): n is
    ``n_examples``, or half the images of ``acts`` when there are fewer.
    Feature visualisation and feature addition share it."""
    n = min(s["n_examples"], len(acts) // 2)
    if n < 1:
        raise ValueError(f"feature visualisation needs at least 2 test images, got {len(acts)}")
    feats = choose_features(acts, s["k"], s["seed"], min_active=n)
    if not len(feats):
        raise ValueError(f"no coordinate of the representation is active on {n} or more of the test images")
    return feats, n


def extreme_images(acts: Tensor, features: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices [k, n] of the n images that activate each coordinate most
    (decreasing) and least (increasing); ties (e.g. the many zeros after a
    ReLU) are broken by a seeded random order."""
    a = acts.numpy()[:, features].astype(np.float64)
    if len(a) < 2 * n:
        raise ValueError(f"{n} top and {n} bottom images requested from only {len(a)} images")
    tie = _rng(seed, "ties").random(a.shape)  # a fresh order per coordinate
    order = np.stack([np.lexsort((tie[:, j], a[:, j])) for j in range(a.shape[1])])  # ascending
    return order[:, ::-1][:, :n].copy(), order[:, :n].copy()


def addition_sources(acts: Tensor, features: np.ndarray, n: int, on: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to n (test image, coordinate) pairs: the coordinates in turn, each
    with a distinct image (seeded) on which it is off (at most ``on``); a
    coordinate with no such image left is skipped."""
    rng = _rng(seed, "addition")
    off = acts.numpy()[:, features] <= on  # [M, k]
    images, coords = [], []
    for j in range(n * len(features)):
        if len(images) == n:
            break
        f = j % len(features)
        pool = np.flatnonzero(off[:, f])
        if len(pool):
            i = int(rng.choice(pool))
            off[i] = False  # each image once
            images.append(i)
            coords.append(int(features[f]))
    return np.array(images, dtype=np.int64), np.array(coords, dtype=np.int64)


def interpolation_pairs(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n pairs [n, 2] of distinct test images of different classes, no image twice."""
    order = list(_rng(seed, "pairs").permutation(len(labels)))
    pairs = []
    while len(pairs) < n and order:
        i = order.pop(0)
        j = next((j for j in order if labels[j] != labels[i]), None)
        if j is not None:
            order.remove(j)
            pairs.append((int(i), int(j)))
    if len(pairs) < n:
        raise ValueError(f"{n} pairs of images of different classes requested, found {len(pairs)}")
    return np.array(pairs, dtype=np.int64)


# --- the three procedures (all through iriflow.optim.optimize) -----------------


def unit(rep: Representation, features: Tensor) -> Callable[[Tensor], Tensor]:
    """x [B,...] -> R(x)[b, features[b]] [B]."""
    idx = features.view(-1, 1)
    return lambda x: rep(x).gather(1, idx).squeeze(1)


def visualise(
    rep: Representation,
    features: Tensor,
    seeds: Tensor,
    *,
    steps: int,
    step_size: float,
    eps: float,
    schedule: str = "constant",
):
    """Maximise coordinate features[b] from seeds[b] (normalised L2 steps in
    an L2 ball of radius eps, of constant size or decayed: iriflow.iri.step_schedule);
    each image's best iterate and its activation."""
    return optimize(
        unit(rep, features),
        seeds,
        rule="l2",
        steps=steps,
        step_size=step_schedule(step_size, steps, schedule),
        eps=eps,
        keep_best=True,
        maximize=True,
    )


def add_feature(rep: Representation, features: Tensor, x: Tensor, *, on: float, steps: int, step_size: float):
    """Maximise min(R(x)_i - on, 0) from x: the first iterate whose unit is
    above ``on`` (the objective is flat there, the gradient zero)."""
    u = unit(rep, features)
    return optimize(
        lambda z: (u(z) - on).clamp(max=0.0),
        x,
        rule="l2",
        steps=steps,
        step_size=step_size,
        keep_best=True,
        maximize=True,
    )


def interpolate(
    rep: Representation,
    a: Tensor,
    b: Tensor,
    lam: Tensor,
    *,
    steps: int,
    step_size: float,
    schedule: str = "constant",
):
    """Frames (pair-major, lambda ascending) inverting lambda R(a) + (1 -
    lambda) R(b) from lambda a + (1 - lambda) b. Returns the optimiser's
    result, the pixel blends and the representation targets."""
    n, m = len(a), len(lam)
    w = lam.to(a).repeat(n)
    wi = w.view(-1, 1, 1, 1)
    blends = wi * a.repeat_interleave(m, 0) + (1 - wi) * b.repeat_interleave(m, 0)
    with torch.no_grad():
        ra, rb = rep(a), rep(b)
    wr = w.view(-1, 1)
    targets = wr * ra.repeat_interleave(m, 0) + (1 - wr) * rb.repeat_interleave(m, 0)
    result = optimize(
        lambda x: relative_distance(rep(x), targets),
        blends,
        rule="l2",
        steps=steps,
        step_size=step_schedule(step_size, steps, schedule),
        keep_best=True,
    )
    return result, blends, targets


# --- one model's set per procedure ---------------------------------------------


@dataclass
class ModelJob:
    """One model's share of a procedure's job: the model, the id of its set,
    the test split (images in [0, 1] and labels), the procedure's settings
    ``s`` and the device. It works on ``iriflow.models.frozen(model)``
    (BatchNorms folded, no parameter gradients)."""

    model: torch.nn.Module
    sid: SetId
    test_x: Tensor
    test_y: Tensor
    s: Mapping[str, Any]
    device: Any = "cpu"

    def __post_init__(self) -> None:
        self.model = frozen(self.model)

    def representation(self) -> Representation:
        """R(x) at the settings' layer, gradients for the input only."""
        return representation(self.model, self.s["layer"], fake_relu=True)

    def extract(self, x: Tensor | None = None) -> Tensor:
        """R of ``x`` (default: the test split), batched, on the CPU."""
        return extract(self.model, self.test_x if x is None else x, self.s["layer"], device=self.device)

    def iri_set(
        self, procedure: str, target_index: np.ndarray, *, rel_dist: np.ndarray | None = None, **arrays: Any
    ) -> IRISet:
        """The procedure's set: its targets are the test images at
        ``target_index``; ``rel_dist`` is NaN unless it inverts a representation."""
        return IRISet(
            self.sid,
            targets=self.test_x[target_index].numpy(),
            target_index=target_index,
            target_label=self.test_y.numpy()[target_index],
            rel_dist=np.full(len(target_index), np.nan) if rel_dist is None else rel_dist,
            settings={
                **{k: v for k, v in self.s.items() if k != "device"},
                "model": self.sid.model_id,
                "procedure": procedure,
            },
            **arrays,
        )


def features_set(job: ModelJob) -> IRISet:
    """The feature-visualisation set of a model (module docstring); settings:
    layer, seed, seed_type, k, n_examples, steps, step_size, step_schedule, eps."""
    s, x, dev = job.s, job.test_x, job.device
    acts = job.extract()
    feats, n = feature_choice(acts, s)
    top, bottom = extreme_images(acts, feats, n, s["seed"])
    k = len(feats)
    gen = seed_generator(s["seed"], s["seed_type"])  # the same seeds for every model
    seeds = make_seeds(s["seed_type"], SeedContext(torch.zeros(k, *x.shape[1:]), torch.zeros(k), x, job.test_y, gen))
    res = visualise(
        job.representation(),
        torch.from_numpy(feats).to(dev),
        seeds.to(dev),
        steps=s["steps"],
        step_size=s["step_size"],
        eps=s["eps"],
        schedule=s["step_schedule"],
    )
    act = res.loss.cpu().numpy()
    a = acts.numpy()[:, feats].T
    top_act, bottom_act = np.take_along_axis(a, top, 1), np.take_along_axis(a, bottom, 1)
    extra = {"feature": feats, "seed_activation": job.extract(seeds).numpy()[np.arange(k), feats]}
    extra |= {"top": x[top.ravel()].numpy(), "bottom": x[bottom.ravel()].numpy()}
    extra |= {"top_index": top, "bottom_index": bottom, "top_activation": top_act, "bottom_activation": bottom_act}
    return job.iri_set(
        "features",
        top[:, 0],
        iris=res.x.cpu().numpy(),
        seeds=seeds.numpy(),
        loss=act,
        converged=act > top_act[:, 0],
        extra=extra,
    )


def addition_set(job: ModelJob) -> IRISet:
    """The feature-addition set of a model (module docstring); settings:
    layer, seed, k and n_examples (the visualisation's choice of
    coordinates), n, on_level, steps, step_size."""
    s, on = job.s, job.s["on_level"]
    acts = job.extract()
    feats, _ = feature_choice(acts, s)
    src, coords = addition_sources(acts, feats, s["n"], on, s["seed"])
    if not len(src):
        raise ValueError(f"no test image has any of the units {feats.tolist()} at or below {on} (on_level)")
    top, _ = extreme_images(acts, coords, 1, s["seed"])
    x0 = job.test_x[src]
    res = add_feature(
        job.representation(),
        torch.from_numpy(coords).to(job.device),
        x0.to(job.device),
        on=on,
        steps=s["steps"],
        step_size=s["step_size"],
    )
    after = res.x.cpu()
    act = job.extract(after).numpy()[np.arange(len(src)), coords]
    extra = {"feature": coords, "seed_index": src, "seed_label": job.test_y.numpy()[src]}
    extra |= {"seed_activation": acts.numpy()[src, coords], "activation": act}
    return job.iri_set(
        "addition",
        top[:, 0],
        iris=after.numpy(),
        seeds=x0.numpy(),
        loss=np.minimum(act - on, 0.0),
        converged=act > on,
        extra=extra,
    )


def interpolation_set(job: ModelJob) -> IRISet:
    """The interpolation set of a model (module docstring); settings: layer,
    seed, pairs, n_lambda, steps, step_size, step_schedule, threshold."""
    s, dev = job.s, job.device
    rep = job.representation()
    labels = job.test_y.numpy()
    pairs = interpolation_pairs(labels, s["pairs"], s["seed"])
    m = s["n_lambda"]
    lam = torch.linspace(0.0, 1.0, m)
    a, b = job.test_x[pairs[:, 0]].to(dev), job.test_x[pairs[:, 1]].to(dev)
    res, blends, targets = interpolate(
        rep, a, b, lam, steps=s["steps"], step_size=s["step_size"], schedule=s["step_schedule"]
    )
    with torch.no_grad():
        seed_rel = relative_distance(rep(blends), targets).cpu().numpy()
    rel = res.loss.cpu().numpy()
    ia, ib = np.repeat(pairs[:, 0], m), np.repeat(pairs[:, 1], m)
    extra = {"lam": np.tile(lam.numpy(), len(pairs)), "pair": np.repeat(np.arange(len(pairs)), m)}
    extra |= {"other": job.test_x[ib].numpy(), "other_index": ib, "other_label": labels[ib]}
    extra |= {"seed_rel_dist": seed_rel}
    return job.iri_set(
        "interpolation",
        ia,
        iris=res.x.cpu().numpy(),
        seeds=blends.cpu().numpy(),
        loss=rel,
        converged=rel < s["threshold"],
        rel_dist=rel,
        extra=extra,
    )


# --- measures ------------------------------------------------------------------


def path_smoothness(iri_set: IRISet, metric: str) -> pd.DataFrame:
    """Per pair and path (``representation``: the frames; ``pixel``: the
    pixel blends) of an interpolation set: length, detour and max_share in
    ``metric`` (module docstring). Columns ``SMOOTHNESS_COLUMNS``."""
    d = get_metric(metric)
    pair = iri_set.extra["pair"]
    n_pairs = int(pair.max()) + 1
    m = len(pair) // n_pairs
    rows = []
    for path, images in (("representation", iri_set.iris), ("pixel", iri_set.seeds)):
        x = torch.from_numpy(images).view(n_pairs, m, *images.shape[1:])
        with torch.no_grad():
            steps = d(x[:, :-1].flatten(0, 1), x[:, 1:].flatten(0, 1)).view(n_pairs, m - 1).double().numpy()
            ends = d(x[:, 0], x[:, -1]).double().numpy()
        length = steps.sum(1)
        for p in range(n_pairs):
            rows.append(
                {
                    "model": iri_set.id.model_id,
                    "pair": p,
                    "path": path,
                    "length": length[p],
                    "detour": length[p] / ends[p] if ends[p] > 0 else np.nan,
                    "max_share": steps[p].max() / length[p] if length[p] > 0 else np.nan,
                }
            )
    return pd.DataFrame(rows, columns=list(SMOOTHNESS_COLUMNS))


def feature_summary(iri_set: IRISet) -> pd.DataFrame:
    """One row per visualised coordinate: the activation at the seed, at the
    visualisation, of its top and bottom test images, and whether it
    converged (beats every test image)."""
    e = iri_set.extra
    return pd.DataFrame(
        {
            "model": iri_set.id.model_id,
            "feature": e["feature"],
            "seed_activation": e["seed_activation"],
            "activation": iri_set.loss,
            "top_activation": e["top_activation"][:, 0],
            "top_mean_activation": e["top_activation"].mean(1),
            "bottom_mean_activation": e["bottom_activation"].mean(1),
            "converged": iri_set.converged,
        }
    )


def addition_summary(iri_set: IRISet) -> pd.DataFrame:
    """One row per feature addition: the coordinate, its value before and
    after, the L2 distance moved, and whether it is on after."""
    e = iri_set.extra
    moved = np.sqrt(((iri_set.iris - iri_set.seeds) ** 2).reshape(len(iri_set), -1).sum(1))
    return pd.DataFrame(
        {
            "model": iri_set.id.model_id,
            "feature": e["feature"],
            "seed_index": e["seed_index"],
            "seed_activation": e["seed_activation"],
            "activation": e["activation"],
            "l2_moved": moved,
            "on": iri_set.converged,
        }
    )


def interpolation_summary(iri_set: IRISet) -> pd.DataFrame:
    """One row per frame: lambda, the frame's and the pixel blend's relative
    distance to the lambda target, and whether the frame converged."""
    e = iri_set.extra
    return pd.DataFrame(
        {
            "model": iri_set.id.model_id,
            "pair": e["pair"],
            "lam": e["lam"],
            "rel_dist": iri_set.rel_dist,
            "seed_rel_dist": e["seed_rel_dist"],
            "converged": iri_set.converged,
        }
    )


@dataclass(frozen=True)
class Procedure:
    """How a procedure makes a model's set (ModelJob -> IRISet) and
    tabulates it (IRISet -> rows)."""

    build: Callable[[ModelJob], IRISet]
    summary: Callable[[IRISet], pd.DataFrame]


# keys: the config sections of iriflow.iriset.PROCEDURES
PROCEDURE_JOBS = {
    "features": Procedure(features_set, feature_summary),
    "addition": Procedure(addition_set, addition_summary),
    "interpolation": Procedure(interpolation_set, interpolation_summary),
}
