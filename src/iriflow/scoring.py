"""Scoring judgments: proportion correct per condition with crossed
(participants x targets) bootstrap CIs, and catch-trial screening.

Needs no torch: the analysis environment scores answers, and a rule that
only scores must not pay torch's import. Trials and responses are the
tables of iriflow.judgments (``TRIAL_COLUMNS``) and iriflow.responses
(``RESPONSE_COLUMNS``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

SCORE_COLUMNS = (
    "set_id",
    "kind",
    "alternative",
    "observer",
    "n_participants",
    "n_targets",
    "n_trials",
    "prop_correct",
    "ci_lo",
    "ci_hi",
)


def crossed_bootstrap_ci(
    matrix: np.ndarray, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of a participants x items matrix (NaN = missing) and its
    percentile CI from a two-way crossed bootstrap: each replicate resamples
    participants and items with replacement and averages the crossed cells.
    Slightly conservative: the residual variance enters twice (Owen 2007)."""
    m = np.asarray(matrix, dtype=np.float64)
    valid = ~np.isnan(m)
    if not valid.any():
        return float("nan"), float("nan"), float("nan")
    p, i = m.shape
    rng = np.random.default_rng(seed)
    wp = rng.multinomial(p, np.full(p, 1.0 / p), size=n_boot).astype(np.float64)  # [B, P] counts
    wi = rng.multinomial(i, np.full(i, 1.0 / i), size=n_boot).astype(np.float64)  # [B, I]
    num = ((wp @ np.where(valid, m, 0.0)) * wi).sum(1)
    den = ((wp @ valid.astype(np.float64)) * wi).sum(1)
    stats = num[den > 0] / den[den > 0]
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(m[valid].mean()), float(lo), float(hi)


def _with_trials(responses: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    cols = ["set_id", "trial_id", "kind", "alternative", "target"]
    merged = responses.merge(trials[cols], on=["set_id", "trial_id"], how="left", indicator=True)
    orphans = merged["_merge"] != "both"
    if orphans.any():
        raise ValueError(
            f"{int(orphans.sum())} responses refer to trials not in the table, e.g. "
            f"{merged.loc[orphans, 'trial_id'].iloc[0]!r}"
        )
    return merged.drop(columns="_merge")


def score(
    responses: pd.DataFrame, trials: pd.DataFrame, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Proportion correct per condition (set_id, kind, alternative) and
    observer, with crossed (participants x targets) bootstrap CIs; catch
    trials are left out. Columns ``SCORE_COLUMNS``."""
    r = _with_trials(responses, trials)
    r = r.loc[r["kind"] != "catch"]
    rows = []
    for (set_id, kind, alt, obs), g in r.groupby(["set_id", "kind", "alternative", "observer"], sort=True):
        mat = g.pivot_table(index="participant", columns="target", values="correct", aggfunc="mean")
        mean, lo, hi = crossed_bootstrap_ci(mat.to_numpy(dtype=np.float64), n_boot, level, seed)
        rows.append((set_id, kind, alt, obs, mat.shape[0], mat.shape[1], len(g), mean, lo, hi))
    return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))


def catch_pass_rates(responses: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """Per participant: catch trials answered, answered correctly, and the
    pass rate (NaN when none was answered)."""
    r = _with_trials(responses, trials)
    r["catch_correct"] = (r["kind"] == "catch") & r["correct"]
    r["is_catch"] = r["kind"] == "catch"
    out = r.groupby("participant", sort=True).agg(
        observer=("observer", "first"), n_catch=("is_catch", "sum"), n_catch_correct=("catch_correct", "sum")
    )
    out["pass_rate"] = out["n_catch_correct"] / out["n_catch"].where(out["n_catch"] > 0)
    return out.reset_index()


def exclude_failed_catch(
    responses: pd.DataFrame, trials: pd.DataFrame, min_correct: float
) -> tuple[pd.DataFrame, dict]:
    """Drop participants whose catch pass rate is below ``min_correct`` (a
    proportion), or who answered no catch trial when the table has some.
    Returns the kept responses and a report of the counts."""
    n_catch_trials = int((trials["kind"] == "catch").sum())
    rates = catch_pass_rates(responses, trials)
    # without catch trials there is nothing to screen with; else no catch answer fails
    failed = (rates["pass_rate"].fillna(-1.0) < min_correct) if n_catch_trials else pd.Series(False, index=rates.index)
    excluded = sorted(rates.loc[failed, "participant"])
    kept = responses.loc[~responses["participant"].isin(excluded)].reset_index(drop=True)
    report = {
        "n_participants": int(len(rates)),
        "n_excluded": len(excluded),
        "n_kept": int(len(rates) - len(excluded)),
        "excluded": excluded,
        "min_correct": float(min_correct),
        "n_catch_trials": n_catch_trials,
    }
    return kept, report
