"""Automated, human-free proxies of alignment, beside the observers' scores.

- The paper's 2AFC proxy: an IRI counts as aligned when a perceptual
  distance puts it at least as close to its target as to the other option
  of its 2AFC trial: D(IRI, target) <= D(IRI, seed) (the paper's choice),
  or D(IRI, target) <= D(IRI, another class's target). It is a simulated
  observer without decision noise, so it shares the metric's biases (see
  the observers' psychometric curves).
- STIR (Nanda et al. 2022, "shared invariances"): a second model m2 shares
  m1's invariances when it represents m1's IRIs like their targets:
  STIR(m2 | m1) = CKA(r_m2(targets), r_m2(IRIs of m1)), with linear CKA
  (Kornblith et al. 2019). 1 when m2 maps every IRI where it maps its
  target (up to an orthogonal transform and isotropic scaling).

``linear_cka`` needs only numpy; ``proxy_2afc`` uses the observers' metric
code (torch)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two representations of the same n inputs ([n, p] and
    [n, q]): ||Yc' Xc||_F^2 / (||Xc' Xc||_F ||Yc' Yc||_F), columns centred.
    Invariant to orthogonal transforms and isotropic scaling of either
    representation; 1 for identical ones; 0 when the centred columns of x
    are orthogonal to those of y. NaN when either is constant."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    if len(x) != len(y):
        raise ValueError(f"representations of different numbers of inputs: {len(x)} and {len(y)}")
    x = x - x.mean(0)
    y = y - y.mean(0)
    # with n < p, the n x n Gram form is cheaper: ||Y'X||_F^2 = tr(K_x K_y)
    if len(x) < max(x.shape[1], y.shape[1]):
        kx, ky = x @ x.T, y @ y.T
        num, dx, dy = float((kx * ky).sum()), float(np.linalg.norm(kx)), float(np.linalg.norm(ky))
    else:
        num = float(np.linalg.norm(y.T @ x) ** 2)
        dx, dy = float(np.linalg.norm(x.T @ x)), float(np.linalg.norm(y.T @ y))
    if dx == 0 or dy == 0:
        return float("nan")
    return num / (dx * dy)


def proxy_2afc(trials: pd.DataFrame, images: Mapping[str, object], metric: str) -> pd.DataFrame:
    """The 2AFC proxy on the two-option trials of a trials table: for each
    2afc trial, whether D(query, target) <= D(query, other option) under
    ``metric``, with both distances. ``images`` maps "iri", "target",
    "seed" to [N,C,H,W] tensors in [0,1]."""
    from .judgments import distances_for_trials

    t = trials.loc[trials["kind"] == "2afc"].reset_index(drop=True)
    if t.empty:
        return pd.DataFrame(
            columns=["set_id", "trial_id", "alternative", "target", "metric", "d_target", "d_other", "correct"]
        )
    d = distances_for_trials(t, images, metric)[:, :2]
    correct = t["correct"].to_numpy()
    d_target = d[np.arange(len(t)), correct]
    d_other = d[np.arange(len(t)), 1 - correct]
    return pd.DataFrame(
        {
            "set_id": t["set_id"],
            "trial_id": t["trial_id"],
            "alternative": t["alternative"],
            "target": t["target"],
            "metric": metric,
            "d_target": d_target,
            "d_other": d_other,
            "correct": d_target <= d_other,
        }
    )


def summarise_proxy(per_trial: pd.DataFrame) -> pd.DataFrame:
    """Share of IRIs the proxy counts as aligned, per set, alternative and metric."""
    if per_trial.empty:
        return pd.DataFrame(columns=["set_id", "alternative", "metric", "n", "proxy"])
    g = per_trial.groupby(["set_id", "alternative", "metric"], sort=True)["correct"]
    return g.agg(n="size", proxy="mean").reset_index()
