"""From judgments to the paper's claims: answer-level data with the design
factors, per-model scores, the findings with their statistics, the plain-text
summary and the paper-style alignment table.

Answers (``answers``): one row per non-catch answer, with ``correct`` (0/1),
``participant``, ``observer``, ``measure`` (``2afc:seed``,
``2afc:other-target`` or ``matching``), ``chance`` (1 / number of options),
``item`` (the IRI judged: set and target), the parts of the set id
(dataset, model, layer, loss, seed_type and, for SimCLR checkpoints, epoch)
and the design factors of the model (``model_factors``).

Only pandas and numpy at import time: the statistics rules run in the
analysis environment, which has no torch."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import ConfigError, ModelSpec
from .io import tex_escape

SET_PARTS = ("dataset", "model", "layer", "loss", "seed_type")
FEATURE_MEASURE = "feature-2afc:bottom"
MEASURES = ("2afc:other-target", "2afc:seed", "matching", FEATURE_MEASURE)
MEASURE_LABELS = {
    "2afc:seed": "2AFC, IRI's target vs its seed",
    "2afc:other-target": "2AFC, IRI's target vs another class's target",
    "matching": "matching, k IRIs to their k targets",
    FEATURE_MEASURE: "feature-2afc, a unit's top- vs bottom-activating test image given its visualisation",
}
ADVERSARIAL_OBJECTIVES = ("trades", "mart")
FACTOR_LABELS = {
    "arch": "architecture",
    "objective": "objective",
    "adversarial": "adversarial training",
    "base_augmentation": "base augmentation",
    "loss": "IRI loss",
    "seed_type": "seed type",
    "epoch": "epoch",
}
SCORE_KEYS = (
    "observer",
    "measure",
    "dataset",
    "model",
    "arch",
    "objective",
    "augmentation",
    "adversarial",
    "variant",
    "layer",
    "loss",
)


ANSWER_COLUMNS = (
    "correct",
    "participant",
    "observer",
    "set_id",
    "measure",
    "chance",
    "item",
    *SET_PARTS,
    "epoch",
    "arch",
    "objective",
    "augmentation",
    "adversarial",
    "base_augmentation",
    "variant",
    "seed",
)


def measure_name(kind: str, alternative: str) -> str:
    return "matching" if kind == "matching" else f"{kind}:{alternative}"


# --- design factors of a model -------------------------------------------------------


def model_factors(model_id: str, models_cfg: Mapping[str, Any]) -> dict[str, str]:
    """Design factors of a grid model: architecture, objective, augmentation,
    whether training was adversarial (an adversarial augmentation, or a
    TRADES/MART objective), the non-adversarial base augmentation and the
    training variant (objective-augmentation). External models get
    objective and augmentation "external"."""
    dataset, name = model_id.split("/", 1)
    external = models_cfg.get("external", {})
    if model_id in external:
        return {
            "arch": external[model_id]["arch"],
            "objective": "external",
            "augmentation": "external",
            "adversarial": "external",
            "base_augmentation": "external",
            "variant": name,
            "seed": "0",
        }
    try:
        spec = ModelSpec.parse(model_id)
    except ConfigError:
        return {
            "arch": name,
            "objective": "unknown",
            "augmentation": "unknown",
            "adversarial": "unknown",
            "base_augmentation": "unknown",
            "variant": name,
            "seed": "0",
        }
    augs = models_cfg.get("augmentations", {})
    aug = augs.get(spec.augmentation, {})
    objective_kind = models_cfg.get("objectives", {}).get(spec.objective, {}).get("kind", spec.objective)
    adversarial = aug.get("kind") == "adversarial" or objective_kind in ADVERSARIAL_OBJECTIVES
    base = aug.get("base", "standard") if aug.get("kind") == "adversarial" else spec.augmentation
    return {
        "arch": spec.arch,
        "objective": spec.objective,
        "augmentation": spec.augmentation,
        "adversarial": "adversarial" if adversarial else "standard",
        "base_augmentation": base,
        "variant": f"{spec.objective}-{spec.augmentation}",
        "seed": str(spec.seed),
    }


def preferred_levels(cfg: Mapping[str, Any]) -> dict[str, list[str]]:
    """Level orders from the config (the first is the reference level):
    architectures in grid order, objectives and augmentations in definition
    order, standard before adversarial, IRI losses, seed types and observer
    kinds as listed, the primary measure's default first."""
    models = cfg["models"]
    archs = list(dict.fromkeys(a for block in models["grid"] for a in block["archs"]))
    augs = list(models["augmentations"])
    return {
        "arch": archs,
        "objective": list(models["objectives"]),
        "augmentation": augs,
        "base_augmentation": augs,
        "adversarial": ["standard", "adversarial"],
        "loss": list(cfg["iris"]["losses"]),
        "seed_type": list(cfg["iris"]["seed_types"]),
        "variant": [f"{o}-{a}" for o in models["objectives"] for a in augs],
        "observer": observer_order(cfg["judgments"]) if "judgments" in cfg else ["real"],
        "measure": list(MEASURES),
    }


def example_pair(
    model_ids: Sequence[str], models_cfg: Mapping[str, Any], levels: Mapping[str, Sequence[str]]
) -> list[str]:
    """A standard and an adversarially trained model that differ only in
    that (same dataset, architecture, objective and seed, the robust one's
    base augmentation the standard one's), the first such pair in config
    order (e.g. resnet18-ce-standard vs resnet18-ce-adv_l2); else the first
    two models."""
    rank = {k: {v: i for i, v in enumerate(levels.get(k, []))} for k in ("arch", "objective", "augmentation")}
    factors = {m: {**model_factors(m, models_cfg), "dataset": m.split("/", 1)[0]} for m in model_ids}
    pairs = []
    for a, fa in factors.items():
        for b, fb in factors.items():
            same = all(fa[k] == fb[k] for k in ("dataset", "arch", "objective", "seed"))
            if same and fa["adversarial"] == "standard" and fb["adversarial"] == "adversarial":
                pairs.append(
                    (
                        rank["objective"].get(fa["objective"], 99),
                        rank["arch"].get(fa["arch"], 99),
                        fa["augmentation"] != fb["base_augmentation"],
                        rank["augmentation"].get(fb["augmentation"], 99),
                        a,
                        b,
                    )
                )
    return list(sorted(pairs)[0][4:]) if pairs else list(model_ids[:2])


def loss_kind(cfg: Mapping[str, Any], loss: str) -> str:
    return cfg["iris"]["loss_defs"].get(loss, {}).get("kind", loss)


# --- answers -----------------------------------------------------------------------


def split_set_ids(set_ids: pd.Series) -> pd.DataFrame:
    """dataset/model/layer/loss/seed_type[/epochNNNN] -> columns (epoch as an
    integer string, '' for the sets of the main IRI stage)."""
    parts = set_ids.str.split("/", expand=True)
    if parts.shape[1] < 6:
        parts[5] = None
    out = parts.iloc[:, :6].copy()
    out.columns = [*SET_PARTS, "epoch"]
    out["epoch"] = out["epoch"].fillna("").str.removeprefix("epoch").map(lambda e: str(int(e)) if e else "")
    out["model"] = out["dataset"] + "/" + out["model"]
    return out


def answers(responses: pd.DataFrame, trials: pd.DataFrame, models_cfg: Mapping[str, Any]) -> pd.DataFrame:
    """Non-catch answers with measure, chance level, item and design factors
    (``model`` is the model id, dataset/name)."""
    cols = ["set_id", "trial_id", "kind", "alternative", "target", "n_options"]
    r = responses.merge(trials[cols], on=["set_id", "trial_id"], how="inner", validate="many_to_one")
    r = r.loc[r["kind"] != "catch"].reset_index(drop=True)
    if r.empty:
        return pd.DataFrame(
            {c: pd.Series(dtype="float64" if c in ("correct", "chance") else "object") for c in ANSWER_COLUMNS}
        )
    out = pd.DataFrame(
        {
            "correct": r["correct"].astype(bool).astype(np.int8),
            "participant": r["participant"],
            "observer": r["observer"],
            "set_id": r["set_id"],
        }
    )
    out["measure"] = [measure_name(k, a) for k, a in zip(r["kind"], r["alternative"].fillna(""))]
    out["chance"] = 1.0 / r["n_options"].astype(float)
    out["item"] = r["set_id"] + "#" + r["target"].astype(str)
    parts = split_set_ids(r["set_id"])
    out = pd.concat([out, parts], axis=1)
    factors = pd.DataFrame(
        [model_factors(m, models_cfg) for m in parts["model"].unique()], index=parts["model"].unique()
    )
    return out.join(factors, on="model")


def read_trials(paths: Iterable[str | Path]) -> pd.DataFrame:
    parts = [pd.read_csv(p, keep_default_na=False) for p in paths]
    return (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["set_id", "trial_id", "kind", "alternative", "target", "n_options", "correct"])
    )


def read_responses(paths: Iterable[str | Path]) -> pd.DataFrame:
    parts = [pd.read_csv(p, dtype={"participant": str, "set_id": str, "trial_id": str, "observer": str}) for p in paths]
    return (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["participant", "set_id", "trial_id", "response", "correct", "rt_ms", "observer"])
    )


def load_answers(
    trial_paths: Sequence[str | Path],
    response_paths: Sequence[str | Path],
    models_cfg: Mapping[str, Any],
    *,
    real_paths: Sequence[str | Path] = (),
    excluded: Iterable[str] = (),
) -> pd.DataFrame:
    """Answers of the simulated observers (response files in the response
    schema) and of real people (survey exports, imported and validated by
    iriflow.responses), without the participants in ``excluded`` (those
    who failed the catch trials: judgments/exclusions.json)."""
    from .responses import load_response_files

    trials = read_trials(trial_paths)
    responses = read_responses(response_paths)
    if real_paths:
        responses = pd.concat([responses, load_response_files(real_paths, trials)], ignore_index=True)
    responses = responses.loc[~responses["participant"].isin(set(excluded))]
    return answers(responses, trials, models_cfg)


# --- scores ------------------------------------------------------------------------


def pooled_scores(
    data: pd.DataFrame, keys: Sequence[str] = SCORE_KEYS, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Proportion correct per group of ``keys`` (by default one model under
    one IRI loss, pooled over seed types), with the crossed (participants x
    items) bootstrap CI of iriflow.judgments."""
    from .judgments import crossed_bootstrap_ci  # torch: only the scoring rules (torch env) call this

    rows = []
    for key, g in data.groupby(list(keys), sort=True, observed=True):
        mat = g.pivot_table(index="participant", columns="item", values="correct", aggfunc="mean")
        mean, lo, hi = crossed_bootstrap_ci(mat.to_numpy(dtype=np.float64), n_boot, level, seed)
        rows.append(
            {
                **dict(zip(keys, key)),
                "n_participants": mat.shape[0],
                "n_items": mat.shape[1],
                "n_answers": len(g),
                "chance": float(g["chance"].mean()),
                "prop_correct": mean,
                "ci_lo": lo,
                "ci_hi": hi,
            }
        )
    return pd.DataFrame(
        rows, columns=[*keys, "n_participants", "n_items", "n_answers", "chance", "prop_correct", "ci_lo", "ci_hi"]
    )


def observer_order(judgments_cfg: Mapping[str, Any]) -> list[str]:
    """Observer kinds in the config's order: real people, then the simulated
    populations as listed."""
    from .config import observer_name

    return ["real", *(f"simulated:{observer_name(o)}" for o in judgments_cfg["observers"]["simulated"])]


def primary_observer(observers: Iterable[str], setting: str, order: Sequence[str] = ()) -> str | None:
    """The observer the findings are stated for: ``setting`` when given,
    else real people when they answered, else the first simulated observer
    of the config (``order``)."""
    present = list(dict.fromkeys(observers))
    if setting and setting != "auto":
        return setting if setting in present else None
    ranked = [o for o in order if o in present] + sorted(o for o in present if o not in order)
    return ranked[0] if ranked else None


# --- findings ----------------------------------------------------------------------

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
    sel = table
    for k, v in eq.items():
        sel = sel.loc[sel[k] == v]
    return None if sel.empty else sel.iloc[0]


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


def _not_testable(n: int, observer: str, measure: str, why: str) -> dict:
    return {
        "finding": n,
        "observer": observer,
        "measure": measure,
        "verdict": "not testable",
        "statistic": np.nan,
        "df": np.nan,
        "df_resid": np.nan,
        "p": np.nan,
        "effect_pp": np.nan,
        "detail": why,
    }


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
    detail = f"under {regfree}: adversarial - standard {_contrast_text(c)}; {_test_text(t)}" + (
        f". By architecture: {archs}" if archs else ""
    )
    return _robust_vs_standard(1, observer, measure, t, c, detail, alpha)


def _by_arch(an, condition: str) -> str:
    """The adversarial - standard contrasts within each architecture (conditions matching ``condition``)."""
    per_arch = an.contrasts.loc[
        (an.contrasts["family"] == "factor")
        & (an.contrasts["factor"] == "adversarial")
        & an.contrasts["condition"].str.match(condition)
    ]
    return "; ".join(_contrast_text(r, r["condition"].split("arch=")[1] + " ") for _, r in per_arch.iterrows())


def _robust_vs_standard(n: int, observer: str, measure: str, t: pd.Series, c: pd.Series, detail: str, alpha) -> dict:
    """A finding that robust models beat standard ones: supported when the LR
    test ``t`` rejects and the contrast ``c`` is positive."""
    return {
        "finding": n,
        "observer": observer,
        "measure": measure,
        "verdict": "supported" if t["p"] < alpha and c["diff_pp"] > 0 else "not supported",
        "statistic": t["chi2"],
        "df": t["df_adj"],
        "df_resid": t["df_resid"],
        "p": t["p"],
        "effect_pp": c["diff_pp"],
        "detail": detail,
    }


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
        c = _row(
            an.contrasts,
            family="factor",
            factor="loss",
            level_a=prior,
            level_b=regfree,
            condition="adversarial=standard",
        )
        if c is None:
            c = _row(
                an.contrasts,
                family="factor",
                factor="loss",
                level_a=regfree,
                level_b=prior,
                condition="adversarial=standard",
            )
            if c is not None:  # stored the other way round: flip
                c = c.copy()
                c["diff_pp"], c["diff_pp_lo"], c["diff_pp_hi"] = -c["diff_pp"], -c["diff_pp_hi"], -c["diff_pp_lo"]
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
    return {
        "finding": 2,
        "observer": observer,
        "measure": measure,
        "verdict": verdict,
        "statistic": t["chi2"] if t is not None else np.nan,
        "df": t["df_adj"] if t is not None else np.nan,
        "df_resid": t["df_resid"] if t is not None else np.nan,
        "p": t["p"] if t is not None else np.nan,
        "effect_pp": effect,
        "detail": "; ".join(parts),
    }


def finding_3(an, observer: str, measure: str, scores: pd.DataFrame | None, alpha: float) -> dict:
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
    if len(plain):
        checks.append(plain_above.empty)
        parts.append(f"(c) plain SimCLR above chance at {len(plain_above)} of {len(plain)} model checkpoints")
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
    return {
        "finding": 3,
        "observer": observer,
        "measure": measure,
        "verdict": verdict,
        "statistic": t["chi2"] if t is not None else np.nan,
        "df": t["df_adj"] if t is not None else np.nan,
        "df_resid": t["df_resid"] if t is not None else np.nan,
        "p": t["p"] if t is not None else np.nan,
        "effect_pp": float(per_epoch["diff_pp"].max()) if len(per_epoch) else np.nan,
        "detail": "; ".join(parts),
    }


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
    detail = (
        f"robust - standard {_contrast_text(c)}; {_test_text(t)}"
        + (f". By architecture: {archs}" if archs else "")
        + f". Above chance (one-sided, Holm): {len(above)} of {len(vc)} models"
        + (f" ({', '.join(m.split('/')[-1] for m in above)})" if above else "")
    )
    return _robust_vs_standard(4, observer, measure, t, c, detail, alpha)


def evaluate_findings(
    main: Mapping[tuple[str, str], Any],
    checkpoints: Mapping[tuple[str, str], Any],
    checkpoint_scores: pd.DataFrame | None,
    cfg: Mapping[str, Any],
    alpha: float,
) -> pd.DataFrame:
    """One row per finding, observer and measure (FINDING_COLUMNS)."""
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
        rows.append(finding_3(checkpoints.get((observer, measure)), observer, measure, sc, alpha))
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
) -> str:
    """The plain-text summary: each finding, its verdict for the primary
    observer and measure with the statistic and p-value, then the verdicts
    under the other observers and measures, observer agreement and notes."""
    lines = ["Do invariances in deep networks align with human perception? Statistics of this run", "=" * 84, ""]
    for k, v in context.items():
        lines.append(f"{k}: {v}")
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


# --- the paper-style table -------------------------------------------------------------


def alignment_table(scores: pd.DataFrame, levels: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Rows (IRI loss, training variant), columns architecture: % correct
    and its CI (columns ``<arch>``, ``<arch> ci_lo``, ``<arch> ci_hi``)."""
    if scores.empty:
        return pd.DataFrame(columns=["loss", "variant"])
    s = scores.assign(pct=100 * scores["prop_correct"], lo=100 * scores["ci_lo"], hi=100 * scores["ci_hi"])
    archs = _order(s["arch"], levels.get("arch", []))
    wide = s.pivot_table(index=["loss", "variant"], columns="arch", values=["pct", "lo", "hi"], aggfunc="mean")
    out = pd.DataFrame(index=wide.index)
    for a in archs:
        out[a] = wide[("pct", a)]
        out[f"{a} ci_lo"] = wide[("lo", a)]
        out[f"{a} ci_hi"] = wide[("hi", a)]
    out = out.reset_index()
    loss_rank = {v: i for i, v in enumerate(_order(out["loss"], levels.get("loss", [])))}
    var_rank = {v: i for i, v in enumerate(_order(out["variant"], levels.get("variant", [])))}
    return out.sort_values(
        ["loss", "variant"], key=lambda c: c.map(loss_rank if c.name == "loss" else var_rank)
    ).reset_index(drop=True)


def _order(values: Iterable[str], preferred: Sequence[str]) -> list[str]:
    seen = list(dict.fromkeys(values))
    return [v for v in preferred if v in seen] + sorted(v for v in seen if v not in preferred)


def _cell(table: pd.DataFrame, i: int, arch: str) -> str:
    v = table.loc[i, arch]
    if not np.isfinite(v):
        return "--"
    return f"{v:.1f} [{table.loc[i, f'{arch} ci_lo']:.1f}, {table.loc[i, f'{arch} ci_hi']:.1f}]"


def table_archs(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in ("loss", "variant") and not c.endswith(("ci_lo", "ci_hi"))]


def table_markdown(table: pd.DataFrame, title: str) -> str:
    archs = table_archs(table)
    lines = [
        f"**{title}**",
        "",
        "| IRI loss | training | " + " | ".join(archs) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in archs) + " |",
    ]
    for i in range(len(table)):
        lines.append(
            f"| {table.loc[i, 'loss']} | {table.loc[i, 'variant']} | "
            + " | ".join(_cell(table, i, a) for a in archs)
            + " |"
        )
    return "\n".join(lines) + "\n"


def table_latex(table: pd.DataFrame, caption: str, label: str = "tab:alignment") -> str:
    """A booktabs table; rows grouped by IRI loss."""
    archs = table_archs(table)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{tex_escape(caption)}}}",
        rf"\label{{{label}}}",
        r"\begin{tabular}{ll" + "r" * len(archs) + "}",
        r"\toprule",
        "IRI loss & training & " + " & ".join(tex_escape(a) for a in archs) + r" \\",
        r"\midrule",
    ]
    previous = None
    for i in range(len(table)):
        loss = table.loc[i, "loss"]
        if previous is not None and loss != previous:
            lines.append(r"\midrule")
        cells = [tex_escape(_cell(table, i, a)) for a in archs]
        lines.append(
            f"{tex_escape(loss) if loss != previous else ''} & {tex_escape(table.loc[i, 'variant'])} & "
            + " & ".join(cells)
            + r" \\"
        )
        previous = loss
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
