"""The statistics rule's library: from answers to the paper's three findings
and a fourth, Engstrom et al.'s claim about feature visualisations.

``statistics`` runs the analysis of iriflow.stats for every observer kind
and measure (the main IRI sets crossed with the IRI loss; the SimCLR
checkpoints crossed with the epoch), stacks their tests, contrasts and
coefficients, measures the agreement between observer kinds and proxies,
reads the verdict on each finding from those tables (``evaluate_findings``:
one row per finding, observer and measure) and writes the plain-text summary
(``summary_text``). The rule script (scripts/findings.py) only reads the
inputs and writes what this returns.

Only pandas, numpy and scipy/statsmodels: the rule runs in the analysis
environment, which has no torch."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .analysis import (
    FEATURE_MEASURE,
    MEASURE_LABELS,
    item_targets,
    loss_kind,
    measure_name,
    model_factors,
    preferred_levels,
    primary_observer,
)
from .config import ConfigError, ModelSpec
from .stats import Analysis, agreement, analyse

TABLES = ("tests", "contrasts", "coefficients")

# --- the findings and their verdicts ------------------------------------------------

FINDINGS = {
    1: "Adversarially robust training yields more human-aligned regularizer-free IRIs than standard "
    "training (architecture-dependent: VGG is low in the paper too).",
    2: "The IRI loss decides the verdict: under hand-crafted priors (TV + alpha-norm) even standard models "
    "look aligned; under the adversarial loss no model does.",
    3: "SimCLR with adversarial views yields aligned IRIs during training (mid-training in the paper); "
    "plain SimCLR does not.",
    4: "Robust models' feature visualisations predict which images activate the feature better than standard "
    "models' do (Engstrom et al. 2019, measured as in Borowski et al. / Zimmermann et al. 2021).",
}
# The measure a finding is stated for when it is not the primary measure.
FINDING_MEASURES = {4: FEATURE_MEASURE}
FINDING_COLUMNS = (
    "finding",
    "observer",
    "measure",
    "verdict",
    "statistic",
    "df",
    "df_resid",
    "p",
    "effect_pp",
    "detail",
)


def _fmt_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "n/a"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def _row(table: pd.DataFrame, **eq) -> pd.Series | None:
    """The first row of ``table`` whose columns equal ``eq``, or None."""
    match = np.ones(len(table), dtype=bool)
    for k, v in eq.items():
        match &= table[k].to_numpy() == v
    hits = np.flatnonzero(match)
    return table.iloc[hits[0]] if len(hits) else None


def _oriented(table: pd.DataFrame, a: str, b: str, **eq) -> pd.Series | None:
    """The contrast ``a - b`` among the rows matching ``eq``, sign-flipped
    when the table holds it as ``b - a`` (contrasts are stored in level
    order)."""
    c = _row(table, level_a=a, level_b=b, **eq)
    if c is not None:
        return c
    c = _row(table, level_a=b, level_b=a, **eq)
    if c is None:
        return None
    c = c.copy()
    c["estimate"], c["z"], c["diff_pp"] = -c["estimate"], -c["z"], -c["diff_pp"]
    c["diff_pp_lo"], c["diff_pp_hi"] = -c["diff_pp_hi"], -c["diff_pp_lo"]
    c["level_a"], c["level_b"], c["n_a"], c["n_b"] = a, b, c["n_b"], c["n_a"]
    return c


def _contrast_text(c: pd.Series, label: str = "") -> str:
    return (
        f"{label}{c['diff_pp']:+.1f} pp [{c['diff_pp_lo']:+.1f}, {c['diff_pp_hi']:+.1f}], "
        f"Holm p = {_fmt_p(c['p_holm'])}"
    )


def _test_text(t: pd.Series) -> str:
    return f"LR chi2 = {t['chi2']:.1f} (Rao-Scott, df {t['df_adj']:.1f}), p = {_fmt_p(t['p'])}"


def _df2(t) -> str:
    d = t.get("df_resid", np.inf)
    return f" (F reference, {d:.0f} denominator df)" if np.isfinite(d) else " (chi-square reference)"


def _verdict(n: int, observer: str, measure: str, verdict: str, test, effect: float, detail: str) -> dict:
    """One row of the findings table (FINDING_COLUMNS); ``test`` the row of
    the tests table the verdict rests on, or None."""
    stat = {"statistic": "chi2", "df": "df_adj", "df_resid": "df_resid", "p": "p"}
    return {
        "finding": n,
        "observer": observer,
        "measure": measure,
        "verdict": verdict,
        **{k: (test[v] if test is not None else np.nan) for k, v in stat.items()},
        "effect_pp": effect,
        "detail": detail,
    }


def _not_testable(n: int, observer: str, measure: str, why: str) -> dict:
    return _verdict(n, observer, measure, "not testable", None, np.nan, why)


def finding_1(an, observer: str, measure: str, regfree: str | None, alpha: float) -> dict:
    if regfree is None:
        return _not_testable(1, observer, measure, "no regularizer-free IRI loss in this run")
    if "adversarial" not in an.factors:
        return _not_testable(1, observer, measure, "the grid has no adversarial vs standard contrast")
    t = _row(an.tests, scope=f"loss={regfree}", term="adversarial")
    c = _row(
        an.contrasts,
        family="factor",
        factor="adversarial",
        level_a="adversarial",
        level_b="standard",
        condition=f"loss={regfree}",
    )
    if t is None or c is None:
        return _not_testable(1, observer, measure, f"no answers for loss {regfree}")
    archs = _by_arch(an, rf"^loss={regfree}, arch=")
    ok = t["p"] < alpha and c["diff_pp"] > 0
    detail = f"under {regfree}: adversarial - standard {_contrast_text(c)}; {_test_text(t)}" + (
        f". By architecture: {archs}" if archs else ""
    )
    return _verdict(1, observer, measure, "supported" if ok else "not supported", t, c["diff_pp"], detail)


def _by_arch(an, condition: str) -> str:
    """The adversarial - standard contrasts within each architecture (conditions matching ``condition``)."""
    per_arch = an.contrasts.loc[
        (an.contrasts["family"] == "factor")
        & (an.contrasts["factor"] == "adversarial")
        & an.contrasts["condition"].str.match(condition)
    ]
    return "; ".join(_contrast_text(r, r["condition"].split("arch=")[1] + " ") for _, r in per_arch.iterrows())


def finding_2(
    an,
    observer: str,
    measure: str,
    regfree: str | None,
    priors: Sequence[str],
    adversarial_losses: Sequence[str],
    alpha: float,
) -> dict:
    parts, checks = [], []
    t = _row(an.tests, scope="all", term="adversarial x loss")
    if t is not None:
        checks.append(t["p"] < alpha)
        parts.append(f"(a) adversarial training x IRI loss interaction: {_test_text(t)}")
    effect = np.nan
    for prior in priors:
        c = _oriented(an.contrasts, prior, regfree, family="factor", factor="loss", condition="adversarial=standard")
        if c is not None:
            checks.append(c["diff_pp"] > 0 and c["p_holm"] < alpha)
            effect = c["diff_pp"]
            parts.append(f"(b) standard models, {prior} - {regfree}: {_contrast_text(c)}")
    for adv in adversarial_losses:
        vc = an.contrasts.loc[(an.contrasts["family"] == "vs-chance") & (an.contrasts["condition"] == f"loss={adv}")]
        if len(vc):
            above = vc.loc[(vc["p_holm"] < alpha) & (vc["diff_pp"] > 0), "level_a"].tolist()
            checks.append(not above)
            parts.append(
                f"(c) under {adv}: {len(above)} of {len(vc)} models above chance (one-sided, Holm)"
                + (f": {', '.join(m.split('/')[-1] for m in above)}" if above else "")
            )
    if not checks:
        return _not_testable(2, observer, measure, "needs several IRI losses and adversarial vs standard models")
    verdict = "supported" if all(checks) else ("not supported" if not any(checks) else "partly supported")
    if len(checks) < 3:
        verdict += f" ({len(checks)} of 3 parts testable)"
    return _verdict(2, observer, measure, verdict, t, effect, "; ".join(parts))


def supervised_references(model: str, candidates: Iterable[str], models_cfg: Mapping[str, Any]) -> list[str]:
    """The models among ``candidates`` that are ``model`` trained with the
    supervised cross-entropy objective and without adversarial training:
    same dataset, architecture and seed (grid models only). The paper's
    unaligned reference for plain SimCLR (finding 3, part c)."""
    try:
        spec = ModelSpec.parse(model)
    except ConfigError:
        return []
    objectives = models_cfg.get("objectives", {})
    refs = []
    for m in dict.fromkeys(candidates):
        try:
            other = ModelSpec.parse(m)
        except ConfigError:
            continue
        if (
            m != model
            and (other.dataset, other.arch, other.seed) == (spec.dataset, spec.arch, spec.seed)
            and objectives.get(other.objective, {}).get("kind") == "ce"
            and model_factors(m, models_cfg)["adversarial"] == "standard"
        ):
            refs.append(m)
    return refs


def reference_scores(
    alignment: pd.DataFrame,
    checkpoint_scores: pd.DataFrame,
    models_cfg: Mapping[str, Any],
    *,
    layer: str,
    loss: str,
    seed_type: str,
    measure: str,
) -> pd.DataFrame:
    """The scores (judgments/alignment.csv rows) of the plain SimCLR
    models' supervised references in the checkpoints' setting (layer, loss,
    seed type, measure): the level finding 3 (c) compares plain SimCLR
    with, for the SimCLR-across-training figure. Columns observer, arch,
    model (full id), prop_correct, ci_lo, ci_hi."""
    columns = ["observer", "arch", "model", "prop_correct", "ci_lo", "ci_hi"]
    if alignment.empty or checkpoint_scores.empty:
        return pd.DataFrame(columns=columns)
    a = alignment.assign(
        model=alignment["dataset"] + "/" + alignment["model"],
        measure=[measure_name(k, alt) for k, alt in zip(alignment["kind"], alignment["alternative"])],
    )
    a = a.loc[(a["layer"] == layer) & (a["loss"] == loss) & (a["seed_type"] == seed_type) & (a["measure"] == measure)]
    plain = checkpoint_scores.loc[checkpoint_scores["adversarial"] == "standard", "model"].unique()
    refs = {r for m in plain for r in supervised_references(m, a["model"], models_cfg)}
    return a.loc[a["model"].isin(refs), columns].reset_index(drop=True)


def _plain_vs_supervised(main, regfree: str | None, plain: Iterable[str], models_cfg: Mapping[str, Any]) -> list:
    """Under ``regfree`` in the main analysis: the model-pair contrasts plain
    SimCLR - its supervised references, and the references' rows against
    chance."""
    if main is None or regfree is None or not models_cfg:
        return []
    c = main.contrasts
    cond = f"loss={regfree}"
    vc = c.loc[(c["family"] == "vs-chance") & (c["condition"] == cond)].set_index("level_a")
    pairs = []
    for model in plain:
        for ref in supervised_references(model, vc.index, models_cfg):
            pair = _oriented(c, model, ref, family="model-pairs", condition=cond)
            if pair is not None and model in vc.index:
                pairs.append((pair, vc.loc[ref]))
    return pairs


def finding_3(
    an,
    observer: str,
    measure: str,
    scores: pd.DataFrame | None,
    alpha: float,
    main=None,
    regfree: str | None = None,
    models_cfg: Mapping[str, Any] | None = None,
) -> dict:
    """(a) adversarial-view SimCLR above plain SimCLR across checkpoints;
    (b) adversarial-view SimCLR above chance at one checkpoint at least;
    (c) plain SimCLR no more aligned than its supervised, non-adversarial
    reference (same dataset, architecture and seed) under ``regfree`` in
    the ``main`` analysis: the paper puts both near 0%, and for a simulated
    observer chance is not the floor (standard models beat it on pixel
    similarity alone). Without such a reference, (c) asks that no plain
    SimCLR checkpoint be above chance."""
    if an is None or "adversarial" not in an.factors or scores is None or scores.empty:
        return _not_testable(3, observer, measure, "no SimCLR checkpoints of both plain and adversarial views")
    t = _row(an.tests, scope="all", term="adversarial")
    c = an.contrasts
    per_epoch = c.loc[
        (c["family"] == "factor") & (c["factor"] == "adversarial") & c["condition"].str.match(r"^epoch=\d+$")
    ]
    vc = c.loc[c["family"] == "vs-chance"]
    kind = scores.drop_duplicates("model").set_index("model")["adversarial"]
    vc = vc.assign(kind=vc["level_a"].map(kind))
    above = vc.loc[(vc["p_holm"] < alpha) & (vc["diff_pp"] > 0)]
    adv, plain = vc.loc[vc["kind"] == "adversarial"], vc.loc[vc["kind"] == "standard"]
    adv_above, plain_above = above.loc[above["kind"] == "adversarial"], above.loc[above["kind"] == "standard"]
    checks, parts = [], []
    if t is not None:
        checks.append(bool(t["p"] < alpha and len(per_epoch) and per_epoch["diff_pp"].mean() > 0))
        epochs = ", ".join(
            f"epoch {r['condition'].split('=')[1]} {r['diff_pp']:+.1f} pp (Holm p = {_fmt_p(r['p_holm'])})"
            for _, r in per_epoch.iterrows()
        )
        parts.append(f"(a) adversarial - plain SimCLR across checkpoints: {_test_text(t)}; by epoch: {epochs}")
    if len(adv):
        checks.append(len(adv_above) > 0)
        parts.append(
            f"(b) adversarial SimCLR above chance at {len(adv_above)} of {len(adv)} model checkpoints (one-sided, Holm)"
        )
    chance_text = f"plain SimCLR above chance at {len(plain_above)} of {len(plain)} model checkpoints"
    pairs = _plain_vs_supervised(main, regfree, kind.index[kind == "standard"], models_cfg or {})
    if pairs:
        # no multiplicity correction: a claim of "no more aligned" must not rest on one
        checks.append(not any(p["p"] < alpha and p["diff_pp"] > 0 for p, _ in pairs))
        diffs = "; ".join(
            f"{p['level_a'].split('/')[-1]} - {p['level_b'].split('/')[-1]} {p['diff_pp']:+.1f} pp "
            f"[{p['diff_pp_lo']:+.1f}, {p['diff_pp_hi']:+.1f}], p = {_fmt_p(p['p'])} (unadjusted)"
            for p, _ in pairs
        )
        refs = "; ".join(
            f"{m.split('/')[-1]} {r['diff_pp']:+.1f} pp (Holm p = {_fmt_p(r['p_holm'])})"
            for m, r in {p["level_b"]: r for p, r in pairs}.items()
        )
        parts.append(
            f"(c) plain SimCLR - its supervised, non-adversarial reference under {regfree} (the paper's "
            f"unaligned level): {diffs}. For comparison, {chance_text}, and the references' distance "
            f"from chance is {refs}"
        )
    elif len(plain):
        checks.append(plain_above.empty)
        parts.append(f"(c) {chance_text} (no supervised reference model to compare with)")
    sc = scores.loc[scores["adversarial"] == "adversarial"].assign(epoch=lambda d: d["epoch"].astype(int))
    curve = sc.groupby("epoch")["prop_correct"].mean()
    if len(curve):
        best, last = int(curve.idxmax()), int(curve.index.max())
        parts.append(
            f"adversarial SimCLR (mean over architectures) peaks at epoch {best} of {last} "
            f"({100 * curve.max():.1f}%)"
            + (
                ": mid-training, as in the paper"
                if best < last
                else ": at the last snapshot, so no mid-training peak here"
            )
        )
    if not checks:
        return _not_testable(3, observer, measure, "no SimCLR checkpoint answers")
    verdict = "supported" if all(checks) else ("not supported" if not any(checks) else "partly supported")
    effect = float(per_epoch["diff_pp"].max()) if len(per_epoch) else np.nan
    return _verdict(3, observer, measure, verdict, t, effect, "; ".join(parts))


def finding_4(an, observer: str, measure: str, alpha: float) -> dict:
    if an is None or "adversarial" not in an.factors:
        return _not_testable(4, observer, measure, "no feature-2afc answers of both standard and robust models")
    t = _row(an.tests, scope="all", term="adversarial")
    c = _row(
        an.contrasts, family="factor", factor="adversarial", level_a="adversarial", level_b="standard", condition="all"
    )
    if t is None or c is None:
        return _not_testable(4, observer, measure, "no adversarial vs standard contrast of the feature-2afc answers")
    archs = _by_arch(an, r"^arch=")
    vc = an.contrasts.loc[an.contrasts["family"] == "vs-chance"]
    above = vc.loc[(vc["p_holm"] < alpha) & (vc["diff_pp"] > 0), "level_a"].tolist()
    ok = t["p"] < alpha and c["diff_pp"] > 0
    detail = (
        f"robust - standard {_contrast_text(c)}; {_test_text(t)}"
        + (f". By architecture: {archs}" if archs else "")
        + f". Above chance (one-sided, Holm): {len(above)} of {len(vc)} models"
        + (f" ({', '.join(m.split('/')[-1] for m in above)})" if above else "")
    )
    return _verdict(4, observer, measure, "supported" if ok else "not supported", t, c["diff_pp"], detail)


def evaluate_findings(
    main: Mapping[tuple[str, str], Any],
    checkpoints: Mapping[tuple[str, str], Any],
    checkpoint_scores: pd.DataFrame | None,
    cfg: Mapping[str, Any],
    alpha: float,
) -> pd.DataFrame:
    """One row per finding, observer and measure (FINDING_COLUMNS). ``cfg``:
    the iris section and, optionally, the models section (finding 3's
    supervised references need the objectives' kinds)."""
    losses = list(cfg["iris"]["losses"])
    kinds = {loss: loss_kind(cfg, loss) for loss in losses}
    regfree = next((loss for loss in losses if kinds[loss] == "regfree"), None)
    priors = [loss for loss in losses if kinds[loss] in ("tv-l6", "freq")]
    adversarial = [loss for loss in losses if kinds[loss] == "adversarial"]
    rows = []
    for (observer, measure), an in main.items():
        if measure == FEATURE_MEASURE:
            rows.append(finding_4(an, observer, measure, alpha))
            continue
        rows.append(finding_1(an, observer, measure, regfree, alpha))
        rows.append(finding_2(an, observer, measure, regfree, priors, adversarial, alpha))
        sc = None
        if checkpoint_scores is not None and len(checkpoint_scores):
            sc = checkpoint_scores.loc[
                (checkpoint_scores["observer"] == observer) & (checkpoint_scores["measure"] == measure)
            ]
        rows.append(
            finding_3(
                checkpoints.get((observer, measure)),
                observer,
                measure,
                sc,
                alpha,
                main=an,
                regfree=regfree,
                models_cfg=cfg.get("models"),
            )
        )
    return (
        pd.DataFrame(rows, columns=list(FINDING_COLUMNS))
        .sort_values(["finding", "observer", "measure"], kind="stable")
        .reset_index(drop=True)
    )


def summary_text(
    findings: pd.DataFrame,
    *,
    primary_observer: str | None,
    primary_measure: str,
    context: Mapping[str, Any],
    agreement: pd.DataFrame,
    notes: Mapping[str, str],
    alpha: float,
    usage: pd.DataFrame | None = None,
) -> str:
    """The plain-text summary: each finding, its verdict for the primary
    observer and measure with the statistic and p-value, then the verdicts
    under the other observers and measures, observer agreement and notes."""
    lines = ["Do invariances in deep networks align with human perception? Statistics of this run", "=" * 84, ""]
    for k, v in context.items():
        lines += _wrap(f"{k}: {v}", "")
    lines += [
        f"primary observer: {primary_observer or 'none'}; primary measure: {primary_measure} "
        f"({MEASURE_LABELS.get(primary_measure, '')})",
        "method: binomial GLM of trial correctness (logit) on the design factors, their two-way "
        "interactions and the IRI loss (crossed), plus the seed type; participants and IRIs as "
        "two-way clusters (cluster-robust covariance); Rao-Scott corrected likelihood-ratio test "
        "per factor (F reference, G - 1 denominator df); contrasts in percentage points with "
        f"unadjusted 95% CIs and Holm-adjusted p; alpha = {alpha}.",
        "",
    ]
    lines += validity_lines(usage if usage is not None else pd.DataFrame())
    for n, claim in FINDINGS.items():
        lines.append(f"Finding {n}. {claim}")
        measure = FINDING_MEASURES.get(n, primary_measure)
        if measure != primary_measure:
            lines.append(f"  measure: {measure} ({MEASURE_LABELS.get(measure, '')})")
        row = findings.loc[
            (findings["finding"] == n) & (findings["observer"] == primary_observer) & (findings["measure"] == measure)
        ]
        if row.empty:
            lines.append("  verdict: not testable (no answers of the primary observer and measure)")
        else:
            r = row.iloc[0]
            lines.append(f"  verdict: {r['verdict'].upper()}")
            if np.isfinite(r["statistic"]):
                lines.append(
                    f"  statistic: Rao-Scott LR chi2 = {r['statistic']:.2f} on {r['df']:.1f} df, "
                    f"p = {_fmt_p(r['p'])}{_df2(r)}"
                )
            lines += _wrap(f"evidence: {r['detail']}", "  ")
        others = findings.loc[
            (findings["finding"] == n)
            & ~((findings["observer"] == primary_observer) & (findings["measure"] == measure))
        ]
        if len(others):
            lines.append(
                "  other observers / measures: "
                + "; ".join(
                    f"{o['observer']} {o['measure']}: {o['verdict']}"
                    + (f" (p = {_fmt_p(o['p'])})" if np.isfinite(o["p"]) else "")
                    for _, o in others.iterrows()
                )
            )
        lines.append("")
    if len(agreement):
        lines.append("Agreement between observer kinds (per IRI set, Pearson r):")
        for _, a in agreement.iterrows():
            r = "n/a" if not np.isfinite(a["pearson_r"]) else f"{a['pearson_r']:.2f}"
            lines.append(
                f"  {a['measure']}: {a['observer_a']} vs {a['observer_b']}: r = {r} "
                f"(n = {a['n']}), mean difference {100 * a['mean_diff']:+.1f} pp"
            )
        lines.append("")
    if notes:
        lines.append("Notes:")
        for k, v in notes.items():
            lines += _wrap(f"{k}: {v}", "  ")
    return "\n".join(lines).rstrip() + "\n"


def _wrap(text: str, indent: str, width: int = 100) -> list[str]:
    import textwrap

    return textwrap.wrap(
        text, width=width, initial_indent=indent, subsequent_indent=indent + "  ", break_on_hyphens=False
    ) or [indent]


# --- valid observers only -------------------------------------------------------------

VALIDITY_KEYS = ("dataset", "observer", "measure", "seed_type")


def apply_validity(data: pd.DataFrame, validity: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The answers of the simulated observers only where they passed their
    validity check (judgments/observers/<dataset>/validity.csv, iriflow.judgments.
    observer_validity) for the answer's dataset, measure and seed type; answers
    of real people are all kept, and so is everything when ``validity`` is
    None. A simulated observer with no check for a measure and seed type is
    left out there too. Returns the kept answers and the usage table: one row
    per simulated observer, dataset, measure and seed type answered, with
    ``used``, the answers and the check's reason."""
    cols = [*VALIDITY_KEYS, "used", "n_answers", "reason"]
    simulated = data["observer"].astype(str).str.startswith("simulated:")
    if validity is None or not simulated.any():
        return data, pd.DataFrame(columns=cols)
    present = data.loc[simulated].groupby(list(VALIDITY_KEYS), sort=True).size().rename("n_answers").reset_index()
    checks = validity.assign(dataset=validity["dataset"].astype(str))[[*VALIDITY_KEYS, "passed", "reason"]]
    usage = present.merge(checks.drop_duplicates(list(VALIDITY_KEYS)), on=list(VALIDITY_KEYS), how="left")
    usage["used"] = usage["passed"].fillna(False).astype(bool)
    usage["reason"] = usage["reason"].fillna("no validity check for this trial kind and seed type")
    ok = data.merge(usage.loc[usage["used"], list(VALIDITY_KEYS)], on=list(VALIDITY_KEYS), how="left", indicator=True)
    keep = (~simulated.to_numpy()) | (ok["_merge"] == "both").to_numpy()
    return data.loc[keep].reset_index(drop=True), usage[cols]


def validity_lines(usage: pd.DataFrame) -> list[str]:
    """Which simulated observer the verdicts use where, and why (the summary)."""
    if usage.empty:
        return []
    lines = [
        "Simulated observers used (each passed its validity check for the trial kind and seed type: "
        "judgments/observers/<dataset>/validity.csv; the others' answers are left out of every verdict):"
    ]
    for obs, g in usage.groupby("observer", sort=True):
        used = g.loc[g["used"]].groupby("measure")["seed_type"].agg(lambda x: ", ".join(sorted(set(x))))
        text = "; ".join(f"{m} ({st})" for m, st in used.items()) or "nowhere"
        lines.append(f"  {obs}: used for {text}")
        for _, r in g.loc[~g["used"]].iterrows():
            lines += _wrap(
                f"left out of {r['measure']} with {r['seed_type']} seeds ({r['dataset']}, "
                f"{r['n_answers']} answers): {r['reason']}",
                "    ",
            )
    return lines + [""]


# --- the statistics rule ---------------------------------------------------------------

Group = tuple[str, str]  # (observer, measure)


def analyse_groups(
    data: pd.DataFrame,
    factors: Sequence[str],
    levels: Mapping[str, Sequence[str]],
    *,
    by: str | None,
    covariates: Sequence[str],
    interactions: bool = True,
    level: float = 0.95,
    contrasts: bool = True,
) -> dict[Group, Analysis]:
    """iriflow.stats.analyse of the answers of every observer kind and
    measure (one analysis each), in sorted order."""
    return {
        (obs, meas): analyse(
            g,
            factors,
            by=by,
            covariates=covariates,
            interactions=interactions,
            preferred_levels=levels,
            level=level,
            contrasts=contrasts,
        )
        for (obs, meas), g in data.groupby(["observer", "measure"], sort=True)
    }


def stack_tables(results: Mapping[str, Mapping[Group, Analysis]]) -> dict[str, pd.DataFrame]:
    """The tests, contrasts and coefficients of every analysis in one table
    each, led by the columns analysis (``main``, ``checkpoints``), observer
    and measure."""
    out = {}
    for k in TABLES:
        parts = [
            getattr(an, k).assign(analysis=name, observer=obs, measure=meas)[
                ["analysis", "observer", "measure", *getattr(an, k).columns]
            ]
            for name, analyses in results.items()
            for (obs, meas), an in analyses.items()
        ]
        out[k] = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return out


def merge_notes(analyses: Mapping[Group, Analysis], label: str) -> dict[str, str]:
    """The notes of the analyses of every observer and measure, each stated
    once: ``<key> (<label>)`` when it holds for all of them, else
    ``<key> (<label>; <observer> <measure>, ...)`` naming those it holds for
    (e.g. the adversarial factor has one level under ``matching`` alone,
    when the robust model had too few converged IRIs for a matching
    screen)."""
    where: dict[tuple[str, str], list[str]] = {}
    for (obs, meas), an in analyses.items():
        for k, v in an.notes.items():
            where.setdefault((k, v), []).append(f"{obs} {meas}")
    return {
        f"{k} ({label if len(groups) == len(analyses) else f'{label}; ' + ', '.join(groups)})": v
        for (k, v), groups in where.items()
    }


def agreement_table(data: pd.DataFrame, proxy: pd.DataFrame, stir: pd.DataFrame) -> pd.DataFrame:
    """Agreement (iriflow.stats.agreement) per IRI set between observer kinds,
    the 2AFC proxies (``proxy:<metric>``, under the measure of their
    alternative) and STIR (``stir``: mean CKA of the other models, under
    every measure); and per IRI between observer kinds."""
    per_set = data.groupby(["observer", "measure", "set_id"], sort=True)["correct"].mean().rename("prop_correct")
    per_set = per_set.reset_index()
    measures = per_set["measure"].unique()
    proxy_rows = pd.DataFrame(
        {
            "observer": "proxy:" + proxy["metric"],
            "measure": "2afc:" + proxy["alternative"],
            "set_id": proxy["set_id"],
            "prop_correct": proxy["proxy"],
        }
    )
    s = stir.loc[stir["model"] != stir["reference_model"]].groupby("set_id")["cka"].mean()
    stir_rows = [
        pd.DataFrame({"observer": "stir", "measure": m, "set_id": s.index, "prop_correct": s.to_numpy()})
        for m in measures
    ]
    sets = pd.concat([per_set, proxy_rows, *stir_rows], ignore_index=True)
    sets = sets.loc[sets["measure"].isin(measures)].astype({"prop_correct": float})  # empty proxies: object
    items = data.groupby(["observer", "measure", "item"], sort=True)["correct"].mean().rename("prop_correct")
    return pd.concat(
        [agreement(sets, "set_id").assign(unit="IRI set"), agreement(items.reset_index(), "item").assign(unit="IRI")],
        ignore_index=True,
    )


def run_context(
    data: pd.DataFrame, checkpoints: pd.DataFrame, iris: Mapping[str, Any], excluded: Sequence[str]
) -> dict[str, str]:
    """What the run holds, for the head of the summary."""
    participants = data.groupby("observer")["participant"].nunique()
    models = sorted(data["model"].unique())
    return {
        "models": f"{len(models)} ({', '.join(models)})" if len(data) else "none",
        "IRI losses": ", ".join(iris["losses"]),
        "seed types": ", ".join(iris["seed_types"]),
        "observers": ", ".join(f"{o} ({n} participants)" for o, n in participants.items()) or "none",
        "answers": f"{len(data)} (catch trials excluded; {len(excluded)} participants excluded on catch trials)",
        f"targets scored per model ({', '.join(iris['losses'])}; converged IRIs only)": targets_scored(
            data, iris["losses"]
        ),
        "SimCLR checkpoints": (
            f"{checkpoints['model'].nunique()} models x epochs "
            f"{', '.join(sorted(checkpoints['epoch'].unique(), key=int))}"
            if len(checkpoints)
            else "none in this grid"
        ),
    }


def targets_scored(data: pd.DataFrame, losses: Sequence[str]) -> str:
    """Per model, how many targets its answers rest on under each IRI loss
    (seed types pooled; a non-converged IRI has no trials), e.g.
    ``resnet18-ce-standard-s0 40/40/38``: models are compared on the same
    targets only where these agree."""
    main = data.loc[data["measure"] != FEATURE_MEASURE]
    if main.empty:
        return "none"
    n = main.assign(target=item_targets(main["item"])).groupby(["model", "loss"])["target"].nunique()
    return "; ".join(
        f"{model} " + "/".join(str(n.get((model, loss), 0)) for loss in losses)
        for model in sorted(main["model"].unique())
    )


@dataclass
class Statistics:
    """What the statistics rule writes (statistics/*.csv, summary.txt), and
    the analyses behind it."""

    tests: pd.DataFrame
    contrasts: pd.DataFrame
    coefficients: pd.DataFrame
    agreement: pd.DataFrame
    findings: pd.DataFrame
    notes: dict[str, str]
    summary: str
    main: dict[Group, Analysis]
    checkpoints: dict[Group, Analysis]
    usage: pd.DataFrame


def statistics(
    data: pd.DataFrame,
    checkpoints: pd.DataFrame,
    *,
    analysis: Mapping[str, Any],
    models: Mapping[str, Any],
    iris: Mapping[str, Any],
    observers: Sequence[str] = (),
    checkpoint_scores: pd.DataFrame | None = None,
    proxy: pd.DataFrame | None = None,
    stir: pd.DataFrame | None = None,
    excluded: Iterable[str] = (),
    validity: pd.DataFrame | None = None,
) -> Statistics:
    """The statistics rule on answers (iriflow.analysis.answers) of the main
    IRI sets (``data``) and of the SimCLR checkpoints (``checkpoints``);
    ``analysis``, ``models`` and ``iris`` are those config sections,
    ``observers`` the observer kinds in config order, ``checkpoint_scores``
    the model_scores rule's per-checkpoint scores, ``proxy`` and ``stir``
    the proxy_scores rule's tables, ``excluded`` the participants excluded
    on catch trials (already left out of ``data``), ``validity`` the
    observers' validity tables (a simulated observer's answers count only
    where it passed: ``apply_validity``)."""
    alpha, level = analysis["alpha"], analysis["bootstrap"]["level"]
    data, usage = apply_validity(data, validity)
    checkpoints, _ = apply_validity(checkpoints, validity)
    levels = preferred_levels({"models": models, "iris": iris})
    common = {"interactions": analysis["interactions"], "level": level}
    feature = data["measure"] == FEATURE_MEASURE
    main = analyse_groups(
        data.loc[~feature], analysis["factors"], levels, by="loss", covariates=("seed_type",), **common
    )
    # feature-2afc: one set per model, so no IRI loss or seed type to vary (finding 4)
    features = analyse_groups(data.loc[feature], analysis["factors"], levels, by=None, covariates=(), **common)
    chk: dict[Group, Analysis] = {}
    if len(checkpoints):
        ckpt_levels = {**levels, "epoch": sorted(checkpoints["epoch"].unique(), key=int)}
        chk = analyse_groups(checkpoints, analysis["factors"], ckpt_levels, by="epoch", covariates=(), **common)
    tables = stack_tables({"main": main, "features": features, "checkpoints": chk})
    notes = {
        **merge_notes(main, "main model"),
        **merge_notes(features, "feature-2afc model"),
        **merge_notes(chk, "checkpoint model"),
    }
    empty_proxy = pd.DataFrame(columns=["set_id", "alternative", "metric", "proxy"])
    empty_stir = pd.DataFrame(columns=["set_id", "model", "reference_model", "cka"])
    agree = agreement_table(data, empty_proxy if proxy is None else proxy, empty_stir if stir is None else stir)
    scores = None
    if checkpoint_scores is not None and len(checkpoints):
        scores = checkpoint_scores.assign(epoch=checkpoint_scores["epoch"].astype(str))
    findings = evaluate_findings({**main, **features}, chk, scores, {"iris": iris, "models": models}, alpha)
    excluded = list(excluded)
    shown = agree.loc[
        (agree["unit"] == "IRI set")
        & ~agree["observer_a"].str.startswith(("proxy", "stir"))
        & ~agree["observer_b"].str.startswith(("proxy", "stir"))
    ]
    text = summary_text(
        findings,
        primary_observer=primary_observer(data["observer"].unique(), analysis["primary"]["observer"], observers),
        primary_measure=analysis["primary"]["measure"],
        context=run_context(data, checkpoints, iris, excluded),
        agreement=shown,
        notes=notes,
        alpha=alpha,
        usage=usage,
    )
    return Statistics(
        tables["tests"],
        tables["contrasts"],
        tables["coefficients"],
        agree,
        findings,
        notes,
        text,
        {**main, **features},
        chk,
        usage,
    )
