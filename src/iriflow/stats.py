"""Statistics of alignment (statsmodels): binomial GLMs of trial correctness,
likelihood-ratio tests corrected for clustered answers, contrasts with Holm
correction, comparisons with chance, and agreement between observer kinds.

Data: one row per answer, with ``correct`` (0/1), ``participant``, ``item``
(the IRI judged, under one measure) and string columns for the design factors
(``arch``, ``objective``, ``adversarial``, ...), the IRI loss (``by``) and
covariates (``seed_type``).

Model: correct ~ Bernoulli(expit(x'beta)), x in treatment coding (the first
level of each factor is the reference): the design factors, their two-way
interactions, each of these crossed with the IRI loss, plus covariates
(``model_terms``). Factors that take one level, or whose columns are aliased
with earlier factors (e.g. the base augmentation when it is fixed by the
objective), are left out and reported (``select_factors``).

Clustering: every participant answers many trials and every IRI is judged by
many participants, so answers are not independent. The point estimates of the
GLM stay consistent, but its model-based standard errors and plain LR tests
assume independence and reject true null hypotheses far too often (the tests
measure this). Hence:

- covariances are two-way cluster-robust in participants and items (Cameron,
  Gelbach & Miller 2011; statsmodels ``cov_type="cluster"`` with two group
  columns): participants are a cluster effect, and so are items;
- the LR test of a factor (all its terms, interactions included, dropped) is
  Rao-Scott corrected (Rao & Scott 1984; Lumley & Scott 2014): under H0 the LR
  statistic is distributed as sum_k delta_k chi2_1, with delta the
  eigenvalues of V0^-1 V (model-based vs cluster-robust covariance of the
  dropped coefficients); the Satterthwaite approximation a * chi2_nu with
  a = sum(delta^2) / sum(delta), nu = sum(delta)^2 / sum(delta^2) gives the
  p-value. ``chi2`` in the output is LR / a on nu degrees of freedom;
- cluster-robust covariances are biased low with few clusters, so every
  p-value uses the small-sample reference of Cameron, Gelbach & Miller: the
  LR and Wald tests F(nu, G - 1) (chi2 / nu as the statistic) and contrasts
  t(G - 1), G the number of clusters in the smaller dimension (usually the
  participants). In simulations with participant and item random effects
  (tests/test_stats.py) this keeps the rate of false rejections at the
  nominal level, where the plain LR test rejects a null factor about half
  the time;
- contrasts are average differences of the linear predictor between two
  counterfactual copies of the observed design points (on the log-odds
  scale, tested with z = estimate / robust SE), reported with the matching
  average difference in proportion correct (percentage points, delta-method
  SE); p-values are Holm-adjusted within a family.

Pairwise comparisons of models and comparisons with chance use the cell
means (the proportion correct of each IRI set; a linear probability model
with the same two-way cluster-robust covariance), averaged over seed types.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats as sps
from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

TEST_COLUMNS = (
    "scope",
    "term",
    "df",
    "lr",
    "deff",
    "chi2",
    "df_adj",
    "df_resid",
    "p",
    "p_naive",
    "wald",
    "p_wald",
    "n",
    "note",
)
CONTRAST_COLUMNS = (
    "family",
    "factor",
    "level_a",
    "level_b",
    "condition",
    "estimate",
    "se",
    "z",
    "p",
    "p_holm",
    "diff_pp",
    "diff_pp_lo",
    "diff_pp_hi",
    "n_a",
    "n_b",
)


# --- small helpers ---------------------------------------------------------------


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and are not
    counted in the family); equal to statsmodels' multipletests(method="holm"),
    which the tests check."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    if idx.size:
        order = idx[np.argsort(p[idx], kind="stable")]
        m = len(order)
        steps = (m - np.arange(m)) * p[order]
        out[order] = np.minimum(1.0, np.maximum.accumulate(steps))
    return out


def expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# --- design ----------------------------------------------------------------------

Term = tuple[str, ...]


@dataclass(frozen=True)
class Design:
    """Treatment-coded design: each column is a product of level indicators."""

    columns: tuple[str, ...]
    terms: tuple[Term, ...]  # the term each column belongs to
    codes: tuple[tuple[tuple[str, str], ...], ...]  # ((factor, level), ...) per column
    levels: Mapping[str, tuple[str, ...]]
    dropped: tuple[str, ...] = ()  # candidate columns not identifiable

    def matrix(self, data: pd.DataFrame) -> np.ndarray:
        x = np.ones((len(data), len(self.columns)))
        values = {f: data[f].to_numpy(dtype=str) for f in {f for c in self.codes for f, _ in c}}
        for j, code in enumerate(self.codes):
            for factor, level in code:
                x[:, j] *= values[factor] == level
        return x

    def columns_of(self, pred) -> list[int]:
        return [j for j, t in enumerate(self.terms) if pred(t)]


def ordered_levels(
    data: pd.DataFrame, variables: Iterable[str], preferred: Mapping[str, Sequence[str]] | None = None
) -> dict[str, tuple[str, ...]]:
    """Observed levels of each variable: those of ``preferred`` first, in its
    order (the first is the reference level), then the rest sorted."""
    preferred = preferred or {}
    out = {}
    for v in variables:
        seen = set(data[v].astype(str).unique())
        first = [lvl for lvl in preferred.get(v, []) if lvl in seen]
        out[v] = tuple(first + sorted(seen - set(first)))
    return out


def _rank(x: np.ndarray) -> int:
    return int(np.linalg.matrix_rank(x)) if x.size else 0


def build_design(data: pd.DataFrame, terms: Sequence[Term], levels: Mapping[str, Sequence[str]]) -> Design:
    """Intercept plus the columns of each term; columns that are zero on
    every observed design point, or linearly dependent on earlier columns,
    are dropped (and listed in ``dropped``)."""
    cols, col_terms, codes = ["Intercept"], [()], [()]
    for term in terms:
        for combo in itertools.product(*[levels[f][1:] for f in term]):
            cols.append(":".join(f"{f}[{lvl}]" for f, lvl in zip(term, combo)))
            col_terms.append(tuple(term))
            codes.append(tuple(zip(term, combo)))
    full = Design(tuple(cols), tuple(col_terms), tuple(codes), dict(levels))
    # the distinct design points: duplicates change neither a column's support nor the rank
    x = np.unique(full.matrix(data), axis=0)
    keep, dropped = [], []
    for j in range(len(cols)):
        if not x[:, j].any() or _rank(x[:, keep + [j]]) <= len(keep):
            dropped.append(cols[j])
        else:
            keep.append(j)
    return Design(
        tuple(cols[j] for j in keep),
        tuple(col_terms[j] for j in keep),
        tuple(codes[j] for j in keep),
        dict(levels),
        tuple(dropped),
    )


def model_terms(
    factors: Sequence[str], by: str | None = None, covariates: Sequence[str] = (), interactions: bool = True
) -> list[Term]:
    """Main effects, two-way interactions of the factors (if ``interactions``),
    each crossed with ``by`` (the IRI loss), and covariate main effects."""
    base: list[Term] = [(f,) for f in factors]
    if interactions:
        base += list(itertools.combinations(factors, 2))
    terms = list(base)
    if by:
        terms.append((by,))
        if interactions:
            terms += [t + (by,) for t in base]
    return terms + [(c,) for c in covariates]


def select_factors(
    data: pd.DataFrame, candidates: Sequence[str], levels: Mapping[str, Sequence[str]], fixed: Sequence[str] = ()
) -> tuple[list[str], dict[str, str]]:
    """The candidate factors the data can estimate, in order, and why each
    other one is left out (one level; aliased with earlier factors)."""
    kept: list[str] = []
    notes: dict[str, str] = {}
    for f in candidates:
        if len(levels[f]) < 2:
            notes[f] = f"one level only ({levels[f][0] if levels[f] else 'none'})"
            continue
        d = build_design(data, [(g,) for g in [*fixed, *kept, f]], levels)
        if not any(t == (f,) for t in d.terms):
            notes[f] = f"aliased with {', '.join([*fixed, *kept]) or 'the intercept'}"
            continue
        kept.append(f)
    return kept, notes


# --- answers per design cell ------------------------------------------------------------


@dataclass
class Cells:
    """Answers aggregated per IRI set (the design cell: every design
    variable is constant within a set): ``table`` has one row per set with
    its variables, ``k`` correct answers of ``n``; the answers keep their
    set (``cell``), outcome and cluster codes for the robust covariance.
    A binomial GLM on the counts has the point estimates, model-based
    covariance and LR statistics of the GLM on the single answers."""

    table: pd.DataFrame
    cell: np.ndarray
    y: np.ndarray
    clusters: list[np.ndarray]

    @property
    def n(self) -> int:
        return len(self.y)

    def subset(self, mask: np.ndarray) -> Cells:
        keep = np.flatnonzero(np.asarray(mask, dtype=bool))
        remap = np.full(len(self.table), -1)
        remap[keep] = np.arange(len(keep))
        obs = remap[self.cell] >= 0
        return Cells(
            self.table.iloc[keep].reset_index(drop=True),
            remap[self.cell[obs]],
            self.y[obs],
            [pd.factorize(c[obs])[0] for c in self.clusters],
        )


def aggregate(
    data: pd.DataFrame,
    variables: Sequence[str],
    cell: str = "set_id",
    clusters: Sequence[str] = ("participant", "item"),
) -> Cells:
    """``data`` (one row per answer) as Cells; the cluster dimensions kept are
    those with at least two clusters."""
    codes, names = pd.factorize(data[cell], sort=True)
    y = data["correct"].to_numpy(dtype=np.float64)
    k = np.bincount(codes, weights=y, minlength=len(names))
    n = np.bincount(codes, minlength=len(names)).astype(np.float64)
    first = np.unique(codes, return_index=True)[1]  # each set's first answer
    keep = [c for c in dict.fromkeys([*variables, "model", "chance"]) if c in data.columns and c != cell]
    table = data[keep].iloc[first].reset_index(drop=True)
    as_text = [v for v in variables if not isinstance(table[v].dtype, pd.StringDtype)]
    if as_text:
        table = table.astype(dict.fromkeys(as_text, str))
    table.insert(0, cell, np.asarray(names))
    table["k"], table["n"] = k, n
    cl = [c for c, uniques in (pd.factorize(data[name]) for name in clusters) if len(uniques) >= 2]
    return Cells(table, codes, y, cl)


def cluster_cov(bread: np.ndarray, x_cells: np.ndarray, cells: Cells, mu: np.ndarray) -> np.ndarray:
    """Two-way (or one-way) cluster-robust sandwich covariance, CRV1 with
    statsmodels' small-sample factors: V_participants + V_items -
    V_intersection, each B M B * G/(G-1) * (N-1)/(N-K), with the score of an
    answer x_cell (y - mu_cell) (a canonical-link GLM or a linear model).
    Computed from per-cluster sums, so it stays fast for many answers; the
    tests check it equals statsmodels' GLM(cov_type="cluster")."""
    r = cells.y - mu[cells.cell]
    n_obs, k = len(r), x_cells.shape[1]
    n_cells = len(x_cells)

    def term(codes: np.ndarray) -> np.ndarray:
        pair, uniq = pd.factorize(codes.astype(np.int64) * n_cells + cells.cell)
        r_pair = np.bincount(pair, weights=r)
        g_pair, c_pair = uniq // n_cells, uniq % n_cells
        g_codes, g_index = np.unique(g_pair, return_inverse=True)
        s = np.zeros((len(g_codes), k))
        np.add.at(s, g_index, r_pair[:, None] * x_cells[c_pair])
        g = len(g_codes)
        if g < 2:
            return np.zeros((k, k))
        return bread @ (s.T @ s) @ bread * (g / (g - 1.0) * (n_obs - 1.0) / (n_obs - k))

    if not cells.clusters:
        return bread
    cov = term(cells.clusters[0])
    if len(cells.clusters) == 2:
        both = pd.factorize(cells.clusters[0].astype(np.int64) * (cells.clusters[1].max() + 1) + cells.clusters[1])[0]
        cov = cov + term(cells.clusters[1]) - term(both)
    return cov


@dataclass
class Fit:
    design: Design
    params: np.ndarray
    cov_naive: np.ndarray
    cov: np.ndarray  # two-way cluster-robust
    llf: float
    n: int
    df_resid: float | None = None  # G - 1 of the smaller cluster dimension; None = no clustering
    warnings: list[str] = field(default_factory=list)

    def p_two_sided(self, z: float) -> float:
        if not np.isfinite(z):
            return np.nan
        return float(2 * (sps.t.sf(abs(z), self.df_resid) if self.df_resid else sps.norm.sf(abs(z))))


def cluster_df(cells: Cells) -> float | None:
    """G - 1, G the number of clusters of the smaller dimension."""
    if not cells.clusters:
        return None
    return float(min(len(np.unique(c)) for c in cells.clusters) - 1)


def _glm(cells: Cells, x: np.ndarray):
    """The binomial GLM on the counts per cell, and its warnings worth
    reporting. statsmodels warns of perfect separation whenever the fitted
    proportions equal the observed ones, which every saturated model does
    (one coefficient per IRI set: two models under one IRI loss), and its
    working regression divides by zero residual df there; neither is a
    problem of the fit, so they are dropped. Real separation (a set fitted
    at P(correct) 0 or 1: every answer right, or every answer wrong) is
    reported with the sets it concerns."""
    endog = np.column_stack([cells.table["k"], cells.table["n"] - cells.table["k"]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = sm.GLM(endog, x, family=sm.families.Binomial()).fit()
    mu = np.asarray(res.fittedvalues)
    certain = (mu < 1e-8) | (mu > 1 - 1e-8)
    kept = set()
    for w in caught:
        text = str(w.message).splitlines()[0][:120]
        if issubclass(w.category, PerfectSeparationWarning):
            continue  # replaced below when real
        if res.df_resid == 0 and text.endswith("encountered in scalar divide"):  # the working regression's scale
            continue
        kept.add(text)
    if certain.any():
        sets = cells.table.iloc[:, 0].astype(str)[certain].tolist()
        kept.add(
            f"perfect prediction: {len(sets)} of {len(mu)} IRI sets fitted at P(correct) 0 or 1, so their "
            f"coefficients are not identified ({', '.join(sets[:3])}{', ...' if len(sets) > 3 else ''})"
        )
    return res, sorted(kept)


def fit_binomial(cells: Cells, design: Design) -> Fit:
    """Binomial GLM (logit) of correctness with the two-way cluster-robust covariance."""
    x = design.matrix(cells.table)
    res, caught = _glm(cells, x)
    bread = np.asarray(res.cov_params())
    mu = np.asarray(res.predict(x))
    return Fit(
        design,
        np.asarray(res.params),
        bread,
        cluster_cov(bread, x, cells, mu),
        float(res.llf),
        cells.n,
        cluster_df(cells),
        caught,
    )


def lr_test(cells: Cells, full: Fit, drop: Sequence[int]) -> dict:
    """Rao-Scott corrected LR test of dropping the columns ``drop`` of the
    full model (see the module docstring), with the robust Wald test beside."""
    drop = list(drop)
    keep = [j for j in range(len(full.design.columns)) if j not in set(drop)]
    reduced, _ = _glm(cells, full.design.matrix(cells.table)[:, keep])
    lr = max(0.0, 2.0 * (full.llf - float(reduced.llf)))
    v0 = full.cov_naive[np.ix_(drop, drop)]
    v = full.cov[np.ix_(drop, drop)]
    delta = np.clip(np.linalg.eigvals(np.linalg.lstsq(v0, v, rcond=None)[0]).real, 0.0, None)
    s1, s2 = float(delta.sum()), float((delta**2).sum())
    if s1 > 0 and s2 > 0:
        a, nu = s2 / s1, s1**2 / s2
    else:  # degenerate robust covariance: fall back to the uncorrected test
        a, nu = 1.0, float(len(drop))
    b = full.params[drop]
    wald = float(b @ np.linalg.pinv(v) @ b)
    k = len(drop)
    if full.df_resid:
        p = sps.f.sf(lr / a / nu, nu, full.df_resid)
        p_wald = sps.f.sf(wald / k, k, full.df_resid)
    else:
        p, p_wald = sps.chi2.sf(lr / a, nu), sps.chi2.sf(wald, k)
    return {
        "df": k,
        "lr": lr,
        "deff": s1 / k if s1 > 0 else np.nan,
        "chi2": lr / a,
        "df_adj": nu,
        "df_resid": full.df_resid if full.df_resid else np.inf,
        "p": float(p),
        "p_naive": float(sps.chi2.sf(lr, k)),
        "wald": wald,
        "p_wald": float(p_wald),
    }


# --- contrasts -------------------------------------------------------------------


def contrast(fit: Fit, cells: pd.DataFrame, factor: str, a: str, b: str, level: float = 0.95) -> dict:
    """Level a minus level b of ``factor`` over the design points ``cells``
    (weights ``n``, the answers in each): log-odds difference (test with the
    robust covariance) and the difference in proportion correct in
    percentage points."""
    w = cells["n"].to_numpy(dtype=np.float64)
    w = w / w.sum()
    xa = fit.design.matrix(cells.assign(**{factor: a}))
    xb = fit.design.matrix(cells.assign(**{factor: b}))
    lvec = w @ (xa - xb)
    est = float(lvec @ fit.params)
    se = float(np.sqrt(max(lvec @ fit.cov @ lvec, 0.0)))
    pa, pb = expit(xa @ fit.params), expit(xb @ fit.params)
    grad = (w * pa * (1 - pa)) @ xa - (w * pb * (1 - pb)) @ xb
    diff = float(w @ (pa - pb))
    dse = float(np.sqrt(max(grad @ fit.cov @ grad, 0.0)))
    zq = sps.t.ppf(0.5 + level / 2, fit.df_resid) if fit.df_resid else sps.norm.ppf(0.5 + level / 2)
    z = est / se if se > 0 else np.nan
    return {
        "estimate": est,
        "se": se,
        "z": z,
        "p": fit.p_two_sided(z),
        "diff_pp": 100 * diff,
        "diff_pp_lo": 100 * (diff - zq * dse),
        "diff_pp_hi": 100 * (diff + zq * dse),
    }


def factor_contrasts(
    cells: Cells,
    fit: Fit,
    factors: Sequence[str],
    by: str | None,
    level: float = 0.95,
    only: Sequence[str] | None = None,
    within: bool = True,
) -> pd.DataFrame:
    """Every pair of levels of every factor (and of ``by``), within each level
    of ``by`` and (``within``) within each level of every other factor there,
    from the full model; Holm-adjusted as one family. ``only`` limits the
    contrasted factors (the conditions still range over all of them)."""
    rows = []
    table = cells.table
    by_levels = fit.design.levels[by] if by else (None,)
    for f in [*factors, *([by] if by else [])]:
        if only is not None and f not in only:
            continue
        for a, b in itertools.combinations(fit.design.levels[f], 2):
            conditions: list[dict[str, str]] = []
            others = [g for g in factors if g != f] if within else []
            if f == by:
                conditions.append({})
                conditions += [{g: lvl} for g in others for lvl in fit.design.levels[g]]
            else:
                for lb in by_levels:
                    base = {by: lb} if by else {}
                    conditions.append(base)
                    conditions += [{**base, g: lvl} for g in others for lvl in fit.design.levels[g]]
            for cond in conditions:
                sub = table
                for g, lvl in cond.items():
                    sub = sub.loc[sub[g] == lvl]
                if sub.empty:
                    continue
                rows.append(
                    {
                        "family": "factor",
                        "factor": f,
                        "level_a": b,
                        "level_b": a,
                        "condition": ", ".join(f"{g}={v}" for g, v in cond.items()) or "all",
                        **contrast(fit, sub, f, b, a, level),
                        "n_a": int(sub.loc[sub[f] == b, "n"].sum()),
                        "n_b": int(sub.loc[sub[f] == a, "n"].sum()),
                    }
                )
    out = pd.DataFrame(rows, columns=[c for c in CONTRAST_COLUMNS if c != "p_holm"])
    out.insert(out.columns.get_loc("p") + 1, "p_holm", holm(out["p"]) if len(out) else [])
    return out


def cell_means(cells: Cells) -> tuple[np.ndarray, np.ndarray]:
    """Proportion correct per cell and their two-way cluster-robust
    covariance (a linear probability model with one indicator per cell)."""
    n = cells.table["n"].to_numpy()
    mean = cells.table["k"].to_numpy() / n
    return mean, cluster_cov(np.diag(1.0 / n), np.eye(len(n)), cells, mean)


def model_contrasts(cells: Cells, by: str | None, level: float = 0.95) -> pd.DataFrame:
    """Pairwise differences of models' proportion correct within each level
    of ``by`` (family ``model-pairs``) and each model against chance
    (one-sided, family ``vs-chance``), cell means averaged over the other
    cells of a model (seed types); Holm-adjusted within each family."""
    sets = cells.table if by else cells.table.assign(_all="all")
    by_col = by or "_all"
    mean, cov = cell_means(cells)
    df = cluster_df(cells)
    ref = sps.t(df) if df else sps.norm()
    zq = ref.ppf(0.5 + level / 2)
    pairs, chance_rows = [], []
    for lb, g in sets.groupby(by_col, sort=False):
        models = list(dict.fromkeys(g["model"]))
        vec = {}
        for m in models:
            v = np.zeros(len(sets))
            idx = g.index[g["model"] == m].to_numpy()
            v[idx] = 1.0 / len(idx)
            vec[m] = v
            est, se = float(v @ mean), float(np.sqrt(max(v @ cov @ v, 0.0)))
            chance = float(g.loc[idx, "chance"].mean())
            z = (est - chance) / se if se > 0 else np.nan
            chance_rows.append(
                {
                    "family": "vs-chance",
                    "factor": "model",
                    "level_a": m,
                    "level_b": "chance",
                    "condition": f"{by}={lb}" if by else "all",
                    "estimate": est - chance,
                    "se": se,
                    "z": z,
                    "p": float(ref.sf(z)) if se > 0 else np.nan,
                    "diff_pp": 100 * (est - chance),
                    "diff_pp_lo": 100 * (est - chance - zq * se),
                    "diff_pp_hi": 100 * (est - chance + zq * se),
                    "n_a": int(g.loc[idx, "n"].sum()),
                    "n_b": 0,
                }
            )
        for a, b in itertools.combinations(models, 2):
            v = vec[a] - vec[b]
            est, se = float(v @ mean), float(np.sqrt(max(v @ cov @ v, 0.0)))
            z = est / se if se > 0 else np.nan
            pairs.append(
                {
                    "family": "model-pairs",
                    "factor": "model",
                    "level_a": a,
                    "level_b": b,
                    "condition": f"{by}={lb}" if by else "all",
                    "estimate": est,
                    "se": se,
                    "z": z,
                    "p": float(2 * ref.sf(abs(z))) if se > 0 else np.nan,
                    "diff_pp": 100 * est,
                    "diff_pp_lo": 100 * (est - zq * se),
                    "diff_pp_hi": 100 * (est + zq * se),
                    "n_a": int(g.loc[g["model"] == a, "n"].sum()),
                    "n_b": int(g.loc[g["model"] == b, "n"].sum()),
                }
            )
    parts = []
    for rows in (pairs, chance_rows):
        part = pd.DataFrame(rows, columns=[c for c in CONTRAST_COLUMNS if c != "p_holm"])
        part.insert(part.columns.get_loc("p") + 1, "p_holm", holm(part["p"]) if len(part) else [])
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


# --- one analysis ------------------------------------------------------------------


@dataclass
class Analysis:
    tests: pd.DataFrame
    contrasts: pd.DataFrame
    coefficients: pd.DataFrame
    factors: list[str]
    notes: dict[str, str]
    n: int


def _empty_analysis(notes: dict[str, str]) -> Analysis:
    return Analysis(
        pd.DataFrame(columns=list(TEST_COLUMNS)),
        pd.DataFrame(columns=list(CONTRAST_COLUMNS)),
        pd.DataFrame(columns=["column", "estimate", "se", "se_naive", "z", "p"]),
        [],
        notes,
        0,
    )


def _tests(cells: Cells, fit: Fit, specs: list[tuple[str, list[int], str]], scope: str) -> list[dict]:
    rows = []
    for term, cols, note in specs:
        if cols:
            rows.append({"scope": scope, "term": term, **lr_test(cells, fit, cols), "n": fit.n, "note": note})
    return rows


def analyse(
    data: pd.DataFrame,
    factors: Sequence[str],
    *,
    by: str | None = "loss",
    covariates: Sequence[str] = ("seed_type",),
    interactions: bool = True,
    preferred_levels: Mapping[str, Sequence[str]] | None = None,
    level: float = 0.95,
    contrasts: bool | Sequence[str] = True,
    tests: bool | Sequence[str] = True,
    within: bool = True,
) -> Analysis:
    """Fit the full model and test every factor (scope ``all``: the factor
    and every interaction it enters; ``<factor> x <by>``: only its
    interactions with ``by``), refit within each level of ``by`` and test
    every factor there (scope ``<by>=<level>``), and compute the contrast
    families (conditions ``<by>=<level>[, <factor>=<level>]``). ``by`` is
    crossed with the factors only when it takes two levels or more, but the
    scopes and conditions name its level even when it takes one (a grid
    with one IRI loss): then scope ``<by>=<level>`` repeats the tests of
    scope ``all``, and the readers of these tables find the loss they ask
    for. ``data`` needs columns correct, participant, item, set_id,
    model, chance and the named variables, which must be constant within a
    set_id. ``contrasts``: True for every family, False for none, or the
    factors whose factor contrasts alone are wanted (the power planner
    reads one contrast per simulated study: no model pairs then);
    ``within``: False leaves out the factor contrasts within the levels of
    the other factors. ``tests``: True for every test, False for none, or
    the terms (names as in the ``term`` column) whose tests alone are
    wanted. What is computed is the same as in the full analysis; what is
    left out is only not computed (Holm adjusts within the smaller family)."""
    if data.empty:
        return _empty_analysis({"data": "no answers"})
    variables = [*factors, *([by] if by else []), *covariates]
    cells = aggregate(data, variables)
    table = cells.table
    levels = ordered_levels(table, variables, preferred_levels)
    covs = [c for c in covariates if len(levels[c]) >= 2]
    by_levels = levels[by] if by else ()
    by_ = by if len(by_levels) >= 2 else None  # crossed with the factors only when it varies
    kept, notes = select_factors(table, factors, levels, fixed=())
    for c in covariates:
        if c not in covs:
            notes[c] = f"one level only ({levels[c][0]})"
    if by and not by_:
        notes[by] = f"one level only ({levels[by][0]})"
    design = build_design(table, model_terms(kept, by_, covs, interactions), levels)
    fit = fit_binomial(cells, design)
    specs = [(f, design.columns_of(lambda t, f=f: f in t), "factor and its interactions") for f in kept]
    if by_:
        specs.append((by_, design.columns_of(lambda t: by_ in t), f"{by_} and its interactions"))
        if interactions:
            specs += [
                (f"{f} x {by_}", design.columns_of(lambda t, f=f: f in t and by_ in t), f"interaction with {by_}")
                for f in kept
            ]
    specs += [(c, design.columns_of(lambda t, c=c: t == (c,)), "covariate") for c in covs]
    wanted = None if tests is True else set(tests or ())
    if wanted is not None:
        specs = [s for s in specs if s[0] in wanted]
    rows = _tests(cells, fit, specs, "all")
    if by and not by_:  # one level of by: its scope holds the same answers, so the same factor tests
        rows += [{**r, "scope": f"{by}={by_levels[0]}"} for r in rows if r["term"] in kept]
        by_levels = ()
    for lb in by_levels:
        sub = cells.subset(table[by].to_numpy() == lb)
        sub_levels = ordered_levels(sub.table, variables, preferred_levels)
        sub_kept, _ = select_factors(sub.table, kept, sub_levels)
        sub_covs = [c for c in covs if len(sub_levels[c]) >= 2]
        sub_tested = [f for f in sub_kept if wanted is None or f in wanted]
        if not sub_tested:
            continue
        sub_design = build_design(sub.table, model_terms(sub_kept, None, sub_covs, interactions), sub_levels)
        sub_fit = fit_binomial(sub, sub_design)
        rows += _tests(
            sub,
            sub_fit,
            [(f, sub_design.columns_of(lambda t, f=f: f in t), "factor and its interactions") for f in sub_tested],
            f"{by}={lb}",
        )
    test_table = pd.DataFrame(rows, columns=list(TEST_COLUMNS))
    if contrasts is True:
        contrast_table = pd.concat(
            [factor_contrasts(cells, fit, kept, by, level, within=within), model_contrasts(cells, by, level)],
            ignore_index=True,
        )
    elif contrasts:
        contrast_table = factor_contrasts(cells, fit, kept, by, level, only=list(contrasts), within=within)
    else:
        contrast_table = pd.DataFrame(columns=list(CONTRAST_COLUMNS))
    se = np.sqrt(np.clip(np.diag(fit.cov), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = fit.params / se
    coefficients = pd.DataFrame(
        {
            "column": design.columns,
            "estimate": fit.params,
            "se": se,
            "se_naive": np.sqrt(np.clip(np.diag(fit.cov_naive), 0, None)),
            "z": z,
            "p": [fit.p_two_sided(v) for v in z],
        }
    )
    if design.dropped:
        notes["not identifiable"] = " ".join(design.dropped)
    if fit.warnings:
        notes["fit warnings"] = "; ".join(fit.warnings)
    return Analysis(test_table, contrast_table, coefficients, kept, notes, fit.n)


# --- agreement between observer kinds ----------------------------------------------


def agreement(
    scores: pd.DataFrame,
    unit: str,
    value: str = "prop_correct",
    observer: str = "observer",
    by: Sequence[str] = ("measure",),
) -> pd.DataFrame:
    """For every pair of observer kinds and every group of ``by``: Pearson
    and Spearman correlation, mean difference (a - b) and mean absolute
    difference of ``value`` over the units (``unit`` column) both scored."""
    rows = []
    for key, g in scores.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        wide = g.pivot_table(index=unit, columns=observer, values=value, aggfunc="mean")
        for a, b in itertools.combinations(sorted(wide.columns), 2):
            pair = wide[[a, b]].dropna()
            n = len(pair)
            r = rho = pr = prho = np.nan
            if n >= 3 and pair[a].std() > 0 and pair[b].std() > 0:
                r, pr = sps.pearsonr(pair[a], pair[b])
                rho, prho = sps.spearmanr(pair[a], pair[b])
            rows.append(
                {
                    **dict(zip(by, key)),
                    "observer_a": a,
                    "observer_b": b,
                    "n": n,
                    "pearson_r": r,
                    "pearson_p": pr,
                    "spearman_rho": rho,
                    "spearman_p": prho,
                    "mean_diff": float((pair[a] - pair[b]).mean()) if n else np.nan,
                    "mean_abs_diff": float((pair[a] - pair[b]).abs().mean()) if n else np.nan,
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            *by,
            "observer_a",
            "observer_b",
            "n",
            "pearson_r",
            "pearson_p",
            "spearman_rho",
            "spearman_p",
            "mean_diff",
            "mean_abs_diff",
        ],
    )
