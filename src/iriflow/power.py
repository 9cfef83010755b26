"""Power planner: how many participants does a human study of this design
need for a conclusive verdict on a finding?

The design is the survey's: every non-catch trial of the trials tables (the
pool) is dealt into lists of ``per_participant`` trials (survey.
trials_per_participant minus the catch trials), and participant j answers
list j mod L. A simulated study draws a new dealing, a new set of
participants and their answers, and fits them with the statistics rule's
own code: iriflow.stats.analyse and the verdict functions of
iriflow.findings (finding 1: adversarial vs standard training under the
regularizer-free IRI loss, on the primary measure; finding 4: robust vs
standard models' feature visualisations, on feature-2afc trials). Power is
the share of studies whose verdict is "supported" (p < alpha and the effect
in the claimed direction); ``reject`` is the share with p < alpha in either
direction, the type-I rate under the null.

Where the answers' probabilities come from (scenarios):

- ``<observer>`` (a simulated observer): trial t is answered correctly with
  its observer's probability, estimated from the population's answers in
  the run, p_t = (k_t + 0.5) / (n_t + 1), and only on the trial kinds and
  seed types where the observer passed its validity check (elsewhere the
  trial carries no answers of this scenario);
- ``null``: the first observer's probabilities, shuffled between standard
  and adversarial models within each stratum of dataset x architecture x
  objective x IRI loss x seed type x measure anew in each study, so both
  kinds of training have the same distribution of difficulties;
- ``effect +X pp``: the null's probabilities with the adversarial models'
  log-odds raised by the constant that adds X percentage points to the mean
  (``effects_pp``, the effect a researcher expects).

Participants differ: participant j adds u_j ~ N(0, participant_sd) to the
log-odds of every answer (the simulated populations' decision noise also
varies between participants). Only pandas, numpy and scipy/statsmodels."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.stats import binom

from .analysis import FEATURE_MEASURE, answers
from .findings import apply_validity, finding_1, finding_4
from .stats import analyse, expit

POWER_COLUMNS = (
    "finding",
    "scenario",
    "observer",
    "measure",
    "n_participants",
    "n_studies",
    "power",
    "mc_se",
    "reject",
    "effect_pp",
    "answers",
)
POOL_KEYS = ("set_id", "trial_id")
STRATUM = ("dataset", "arch", "objective", "loss", "seed_type", "measure")


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


# --- the pool of trials and each observer's probabilities ------------------------


def trial_pool(
    trials: pd.DataFrame,
    responses: pd.DataFrame,
    models_cfg: Mapping,
    validity: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray], pd.DataFrame]:
    """The pool (one row per non-catch trial answered in the run, with the
    answer columns of iriflow.analysis.answers but correct/participant/
    observer) and each simulated observer's probability of a correct answer
    per pool row, (k + 0.5) / (n + 1) from its population's answers; NaN
    where the observer failed its validity check (iriflow.findings.
    apply_validity) or did not answer; and apply_validity's usage table
    (which observer is used where, and why)."""
    everything = answers(responses, trials, models_cfg)
    a = everything.loc[everything["observer"].astype(str).str.startswith("simulated:")]
    a, usage = apply_validity(a, validity)
    pool = (
        everything.drop(columns=["correct", "participant", "observer"])
        .drop_duplicates(list(POOL_KEYS))
        .sort_values(list(POOL_KEYS))
        .reset_index(drop=True)
    )
    index = pd.MultiIndex.from_frame(pool[list(POOL_KEYS)])
    probs = {}
    for obs, g in a.groupby("observer", sort=True):
        counts = g.groupby(list(POOL_KEYS))["correct"].agg(["sum", "size"])
        counts = counts.reindex(index)
        probs[obs] = ((counts["sum"] + 0.5) / (counts["size"] + 1)).to_numpy(dtype=np.float64)
    return pool, probs, usage


# --- scenarios --------------------------------------------------------------------


@dataclass
class Scenario:
    """A source of per-trial probabilities of a correct answer: ``draw(rng)``
    gives them for one study (NaN: the trial gets no answers)."""

    name: str
    observer: str
    draw: Callable[[np.random.Generator], np.ndarray]


def _strata(pool: pd.DataFrame) -> np.ndarray:
    cols = [c for c in STRATUM if c in pool.columns]
    return pd.factorize(pd.MultiIndex.from_frame(pool[cols].astype(str)))[0] if cols else np.zeros(len(pool), int)


def shuffled_within(p: np.ndarray, strata: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``p`` permuted at random within each stratum."""
    by_stratum = np.argsort(strata, kind="stable")
    shuffled = np.lexsort((rng.random(len(p)), strata))
    out = np.empty_like(p)
    out[shuffled] = p[by_stratum]
    return out


def shift_for_effect(p: np.ndarray, effect_pp: float) -> float:
    """The log-odds shift d with mean(expit(logit p + d)) - mean(p) = effect_pp / 100."""
    p = p[np.isfinite(p)]
    if not len(p):
        return 0.0
    target = float(p.mean()) + effect_pp / 100
    if not 0 < target < 1:
        raise ValueError(f"an effect of {effect_pp} pp moves the mean proportion correct {p.mean():.3f} out of (0, 1)")
    lp = _logit(p)
    return float(brentq(lambda d: float(expit(lp + d).mean()) - target, -50.0, 50.0))


def scenarios(
    pool: pd.DataFrame, probs: Mapping[str, np.ndarray], base: str | None, effects_pp: Sequence[float] = ()
) -> list[Scenario]:
    """One scenario per observer of ``probs``, and, from the observer
    ``base``, the null and each planted effect (module docstring)."""
    out = [Scenario(obs, obs, lambda rng, p=p: p) for obs, p in probs.items()]
    if base is None or base not in probs:
        return out
    strata = _strata(pool)
    p0 = probs[base]
    adversarial = (pool["adversarial"] == "adversarial").to_numpy()
    out.append(Scenario("null", base, lambda rng: shuffled_within(p0, strata, rng)))
    measures = pool["measure"].to_numpy()
    for eff in effects_pp:
        shift = np.zeros(len(pool))
        for m in np.unique(measures):
            sel = measures == m
            shift[sel & adversarial] = shift_for_effect(p0[sel], eff)

        def draw(rng, shift=shift):
            return expit(_logit(shuffled_within(p0, strata, rng)) + shift)

        out.append(Scenario(f"effect {eff:+g} pp", base, draw))
    return out


# --- one simulated study ------------------------------------------------------------


def deal(n_trials: int, per_participant: int, n_participants: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The trials each participant answers: a random dealing of the pool into
    ceil(n_trials / per_participant) lists, participant j taking list j mod L."""
    order = rng.permutation(n_trials)
    n_lists = max(1, math.ceil(n_trials / per_participant))
    lists = [order[i * per_participant : (i + 1) * per_participant] for i in range(n_lists)]
    return [lists[j % n_lists] for j in range(n_participants)]


def simulate_answers(
    pool: pd.DataFrame,
    p: np.ndarray,
    n_participants: int,
    per_participant: int,
    participant_sd: float,
    rng: np.random.Generator,
    rows: np.ndarray | None = None,
) -> pd.DataFrame:
    """One study's answers (the columns of iriflow.analysis.answers) on the
    pool rows where ``rows`` is true (default all): participants, their
    lists and ability u_j ~ N(0, participant_sd), correct ~ Bernoulli(expit(
    logit p_t + u_j)); trials with NaN ``p`` get no answers."""
    lists = deal(len(pool), per_participant, n_participants, rng)
    u = rng.normal(0.0, participant_sd, n_participants)
    who = np.repeat(np.arange(n_participants), [len(x) for x in lists])
    idx = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
    keep = np.isfinite(p[idx])
    if rows is not None:
        keep &= rows[idx]
    who, idx = who[keep], idx[keep]
    y = rng.random(len(idx)) < expit(_logit(np.clip(p[idx], 1e-6, 1 - 1e-6)) + u[who])
    out = pool.iloc[idx].reset_index(drop=True)
    out.insert(0, "correct", y.astype(np.int8))
    out.insert(1, "participant", np.char.add("p", who.astype(str)))
    return out


# --- the findings a study is fitted for -------------------------------------------------


@dataclass
class PlannedFinding:
    """A finding the planner estimates power for: which answers of the pool
    it rests on (``rows``), how they are analysed (iriflow.stats.analyse's
    ``by`` and covariates) and the verdict function of iriflow.findings."""

    number: int
    measure: str
    rows: np.ndarray
    by: str | None
    covariates: tuple[str, ...]
    verdict: Callable

    def fit(self, data: pd.DataFrame, observer: str, analysis_kw: Mapping) -> tuple[bool, float]:
        """(supported, p) of one study's answers."""
        if data.empty or data["participant"].nunique() < 2:
            return False, float("nan")
        # the verdict reads the adversarial LR test and contrast: nothing else is computed
        an = analyse(
            data,
            by=self.by,
            covariates=self.covariates,
            contrasts=("adversarial",),
            tests=("adversarial",),
            within=False,
            **analysis_kw,
        )
        row = self.verdict(an, observer, self.measure)
        return row["verdict"] == "supported", float(row["p"])


def planned_findings(
    pool: pd.DataFrame, primary_measure: str, regfree: str | None, alpha: float
) -> list[PlannedFinding]:
    """Finding 1 (primary measure, regularizer-free IRI loss) and finding 4
    (feature-2afc), where the pool has their trials of both standard and
    adversarially trained models."""
    out = []
    measure = pool["measure"].to_numpy()
    adversarial = pool["adversarial"].to_numpy()

    def both(rows: np.ndarray) -> bool:  # standard and adversarial models to compare
        return {"standard", "adversarial"} <= set(adversarial[rows])

    if regfree is not None:
        rows = (measure == primary_measure) & (pool["loss"] == regfree).to_numpy()
        if both(rows):
            out.append(
                PlannedFinding(
                    1,
                    primary_measure,
                    rows,
                    "loss",
                    ("seed_type",),
                    lambda an, obs, m: finding_1(an, obs, m, regfree, alpha),
                )
            )
    rows = measure == FEATURE_MEASURE
    if both(rows):
        out.append(PlannedFinding(4, FEATURE_MEASURE, rows, None, (), lambda an, obs, m: finding_4(an, obs, m, alpha)))
    return out


# --- the planner ---------------------------------------------------------------------


def plan(
    pool: pd.DataFrame,
    scenario_list: Sequence[Scenario],
    findings: Sequence[PlannedFinding],
    *,
    participants: Sequence[int],
    per_participant: int,
    n_studies: int,
    participant_sd: float,
    analysis_kw: Mapping,
    alpha: float,
    seed: int = 0,
) -> pd.DataFrame:
    """Power per finding, scenario and number of participants
    (``POWER_COLUMNS``): ``n_studies`` simulated studies each, every study
    fitted with iriflow.stats.analyse and judged by the finding's verdict
    function (``analysis_kw``: analyse's factors, interactions,
    preferred_levels and level). The table's ``attrs["seconds"]`` is the
    time it took."""
    start = time.perf_counter()
    rows = []
    for s_i, sc in enumerate(scenario_list):
        for f in findings:
            for n in participants:
                rng = np.random.default_rng([seed, s_i, f.number, n])
                hits, rejects, sizes, effects = 0, 0, [], []
                for _ in range(n_studies):
                    p = sc.draw(rng)
                    sub = p[f.rows]
                    adv = (pool["adversarial"].to_numpy()[f.rows] == "adversarial") & np.isfinite(sub)
                    std = (pool["adversarial"].to_numpy()[f.rows] == "standard") & np.isfinite(sub)
                    if adv.any() and std.any():
                        effects.append(100 * (sub[adv].mean() - sub[std].mean()))
                    data = simulate_answers(pool, p, n, per_participant, participant_sd, rng, f.rows)
                    supported, pval = f.fit(data, sc.observer, analysis_kw)
                    hits += supported
                    rejects += bool(np.isfinite(pval) and pval < alpha)
                    sizes.append(len(data))
                power = hits / n_studies
                rows.append(
                    {
                        "finding": f.number,
                        "scenario": sc.name,
                        "observer": sc.observer,
                        "measure": f.measure,
                        "n_participants": n,
                        "n_studies": n_studies,
                        "power": power,
                        "mc_se": math.sqrt(power * (1 - power) / n_studies),
                        "reject": rejects / n_studies,
                        "effect_pp": float(np.mean(effects)) if effects else float("nan"),
                        "answers": float(np.mean(sizes)),
                    }
                )
    table = pd.DataFrame(rows, columns=list(POWER_COLUMNS))
    table.attrs["seconds"] = time.perf_counter() - start
    return table


def smallest_n(participants: Sequence[int], power: Sequence[float], target: float = 0.8) -> tuple[float, float]:
    """The smallest number of participants of the grid from which the power
    stays at or above ``target`` (NaN if it never does), and an estimate
    between grid points: linear interpolation of power in log2(n) between
    the last count below the target and that one (the count itself when
    the first count already reaches it)."""
    n = np.asarray(participants, dtype=np.float64)
    pw = np.asarray(power, dtype=np.float64)
    order = np.argsort(n)
    n, pw = n[order], pw[order]
    ok = pw >= target
    if not ok[-1]:
        return float("nan"), float("nan")
    bad = np.flatnonzero(~ok)
    first = int(bad[-1]) + 1 if len(bad) else 0
    if first == 0:
        return float(n[0]), float(n[0])
    lo, hi = first - 1, first
    x0, x1 = np.log2(n[lo]), np.log2(n[hi])
    frac = (target - pw[lo]) / (pw[hi] - pw[lo])
    return float(n[hi]), float(2 ** (x0 + frac * (x1 - x0)))


def type_i_excess(null: pd.DataFrame, alpha: float, level: float = 0.01) -> pd.DataFrame:
    """The null studies (one row per participant count) whose rate of p <
    alpha is above alpha beyond Monte Carlo error: a one-sided binomial test
    of the count of rejections at ``level``."""
    k = np.rint(null["reject"] * null["n_studies"]).astype(int)
    p = binom.sf(k - 1, null["n_studies"].astype(int), alpha)
    return null.loc[np.asarray(p) < level]


def needed_table(power: pd.DataFrame, target: float = 0.8, alpha: float = 0.05) -> pd.DataFrame:
    """Per finding and scenario: the smallest number of participants reaching
    ``target`` power (``smallest_n``), the interpolated estimate and the
    effect it was computed at, counted only among the participant counts
    above every count at which the finding's test rejects the simulated null
    more often than ``alpha`` (``type_i_excess``): below those, its power
    would count false positives (``type_i_from``: the smallest count from
    which the type-I rate is controlled; ``type_i_controlled`` False when it
    is not even at the largest count, and then no number is given)."""
    rows = []
    null = power.loc[power["scenario"] == "null"]
    worst = {f: type_i_excess(g, alpha)["n_participants"].max() for f, g in null.groupby("finding")}
    for (f, sc), g in power.groupby(["finding", "scenario"], sort=False):
        limit = worst.get(f, np.nan)
        above = g if not np.isfinite(limit) else g.loc[g["n_participants"] > limit]
        type_i_from = above["n_participants"].min() if len(above) else np.nan
        grid, est = smallest_n(above["n_participants"], above["power"], target) if len(above) else (np.nan, np.nan)
        rows.append(
            {
                "finding": f,
                "scenario": sc,
                "observer": g["observer"].iloc[0],
                "effect_pp": float(g["effect_pp"].mean()),
                "n_needed": grid,
                "n_interpolated": est,
                "max_power": float(g["power"].max()),
                "reject_max": float(g["reject"].max()),
                "type_i_from": float(type_i_from),
                "type_i_controlled": bool(len(above)),
            }
        )
    return pd.DataFrame(rows)


def power_markdown(
    power: pd.DataFrame,
    needed: pd.DataFrame,
    *,
    target: float,
    alpha: float,
    seconds: float,
    design: str,
    usage: str = "",
) -> str:
    """tables/power.md: the participants needed per finding and scenario,
    the type-I rate of the null, the power table, the observers used and the
    planner's time."""

    def fmt(v: float, controlled: bool = True) -> str:
        if not controlled:
            return "none (type-I rate above alpha)"
        return "not reached" if not np.isfinite(v) else f"{v:.0f}"

    lines = [
        f"**Participants needed for {target:.0%} power** ({design}; alpha = {alpha})",
        "",
        "| finding | scenario | effect (pp) | participants (grid) | interpolated | highest power |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for _, r in needed.iterrows():
        lines.append(
            f"| {r['finding']} | {r['scenario']} | {r['effect_pp']:+.1f} | "
            f"{fmt(r['n_needed'], r['type_i_controlled'])} | "
            f"{fmt(r['n_interpolated'], r['type_i_controlled'])} | {r['max_power']:.2f} |"
        )
    null = power.loc[power["scenario"] == "null"]
    if len(null):
        lines += [
            "",
            f"Type-I rate under the null (share of studies with p < {alpha}, either direction): "
            + "; ".join(
                f"finding {f}: {g['reject'].min():.3f} to {g['reject'].max():.3f} (mean {g['reject'].mean():.3f})"
                for f, g in null.groupby("finding")
            ),
        ]
        for f, g in null.groupby("finding"):
            bad = type_i_excess(g, alpha)
            if len(bad):
                lines += [
                    "",
                    f"Finding {f}: its test rejected the null in more than {alpha:.0%} of the simulated studies "
                    "beyond Monte Carlo error (one-sided binomial p < 0.01) at "
                    + ", ".join(f"{r.n_participants} ({r.reject:.0%})" for r in bad.itertuples())
                    + " participants: its power there would count false positives, so participants are "
                    + (
                        f"counted only above {int(bad['n_participants'].max())}."
                        if bad["n_participants"].max() < g["n_participants"].max()
                        else "not counted for it at all."
                    ),
                ]
    lines += [
        "",
        "| finding | scenario | participants | power | MC SE | p < alpha | effect (pp) | answers per study |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for _, r in power.iterrows():
        lines.append(
            f"| {r['finding']} | {r['scenario']} | {r['n_participants']} | {r['power']:.2f} | {r['mc_se']:.3f} | "
            f"{r['reject']:.2f} | {r['effect_pp']:+.1f} | {r['answers']:.0f} |"
        )
    n_fits = int(power["n_studies"].sum())
    lines += [
        "",
        f"The planner fitted {n_fits} simulated studies in {seconds:.0f} s ({seconds / max(n_fits, 1):.3f} s each).",
    ]
    if usage:
        lines += ["", "```", usage.rstrip(), "```"]
    return "\n".join(lines) + "\n"
