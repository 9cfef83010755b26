"""From judgments to the paper's claims: answer-level data with the design
factors, per-model scores and the tables (the paper-style alignment table,
the proxy table). The findings and the summary are iriflow.findings'.

Answers (``answers``): one row per non-catch answer, with ``correct`` (0/1),
``participant``, ``observer``, ``trial_id``, ``measure`` (``2afc:seed``,
``2afc:other-target`` or ``matching``), ``chance`` (1 / number of options),
``item`` (the IRI judged: set and target), the parts of the set id
(dataset, model, layer, loss, seed_type and, for SimCLR checkpoints, epoch)
and the design factors of the model (``model_factors``).

Only pandas and numpy at import time: the statistics rules run in the
analysis environment, which has no torch."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import ConfigError, ModelSpec
from .io import tex_escape
from .scoring import crossed_bootstrap_ci, exclude_failed_catch, score

SET_PARTS = ("dataset", "model", "layer", "loss", "seed_type")
ITEM_SEP = "#"  # an answer's item: <set_id>#<target>
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
    "trial_id",
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
            "trial_id": r["trial_id"],
        }
    )
    out["measure"] = [measure_name(k, a) for k, a in zip(r["kind"], r["alternative"].fillna(""))]
    out["chance"] = 1.0 / r["n_options"].astype(float)
    out["item"] = r["set_id"] + ITEM_SEP + r["target"].astype(str)
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
    key_path: str | Path | None = None,
    excluded: Iterable[str] = (),
) -> pd.DataFrame:
    """Answers of the simulated observers (response files in the response
    schema) and of real people (survey exports, imported and validated by
    iriflow.responses through the survey's key file ``key_path``, when
    given), without the participants in ``excluded`` (those who failed the
    catch trials: judgments/exclusions.json)."""
    from .responses import load_response_files
    from .survey import read_key

    trials = read_trials(trial_paths)
    responses = read_responses(response_paths)
    if real_paths:
        key = read_key(key_path) if key_path else None
        responses = pd.concat([responses, load_response_files(real_paths, trials, key)], ignore_index=True)
    responses = responses.loc[~responses["participant"].isin(set(excluded))]
    return answers(responses, trials, models_cfg)


def item_targets(items: pd.Series) -> pd.Series:
    """The target (its position in the IRI set) of each item ``<set_id>#<target>`` of the answers."""
    return items.str.rsplit(ITEM_SEP, n=1).str[1]


def load_run_answers(inputs: Any, models_cfg: Mapping[str, Any]) -> tuple[pd.DataFrame, list[str]]:
    """``load_answers`` of a rule's judgment inputs (rules/analysis_common.smk
    JUDGMENT_TABLES: trials, responses, real, key, exclusions), and the
    participants it left out for their catch trials."""
    from .io import read_json

    excluded = read_json(inputs.exclusions)["excluded"]
    answers = load_answers(
        inputs.trials,
        inputs.responses,
        models_cfg,
        real_paths=list(inputs.real),
        key_path=inputs.key[0] if inputs.key else None,
        excluded=excluded,
    )
    return answers, excluded


# --- scores ------------------------------------------------------------------------


def pooled_scores(
    data: pd.DataFrame, keys: Sequence[str] = SCORE_KEYS, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Proportion correct per group of ``keys`` (by default one model under
    one IRI loss, pooled over seed types), with the crossed (participants x
    items) bootstrap CI of iriflow.scoring."""
    rows = []
    for key, g in data.groupby(list(keys), sort=True, observed=True):
        mat = g.pivot_table(index="participant", columns="item", values="correct", aggfunc="mean")
        mean, lo, hi = crossed_bootstrap_ci(mat.to_numpy(dtype=np.float64), n_boot, level, seed)
        rows.append(
            {
                **dict(zip(keys, key)),
                "n_participants": mat.shape[0],
                "n_items": mat.shape[1],
                # the targets of the scored (converged) IRIs: models are compared on the same ones only if equal
                "n_targets": item_targets(g["item"]).nunique(),
                "n_answers": len(g),
                "chance": float(g["chance"].mean()),
                "prop_correct": mean,
                "ci_lo": lo,
                "ci_hi": hi,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            *keys,
            "n_participants",
            "n_items",
            "n_targets",
            "n_answers",
            "chance",
            "prop_correct",
            "ci_lo",
            "ci_hi",
        ],
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


def screen_catch(responses: pd.DataFrame, trials: pd.DataFrame, min_correct: float) -> tuple[pd.DataFrame, dict]:
    """Catch screening per observer kind (iriflow.scoring.exclude_failed_catch):
    the responses of the participants kept, and the report of
    judgments/exclusions.json (totals over the kinds, the excluded
    participants, and each kind's counts under ``by_observer``)."""
    kept, by_observer = [], {}
    for observer, group in responses.groupby("observer", sort=True):
        kept_o, by_observer[observer] = exclude_failed_catch(group, trials, min_correct)
        kept.append(kept_o)
    report = {
        "min_correct": float(min_correct),
        "n_catch_trials": int((trials["kind"] == "catch").sum()),
        **{k: sum(r[k] for r in by_observer.values()) for k in ("n_participants", "n_excluded", "n_kept")},
        "excluded": sorted(p for r in by_observer.values() for p in r["excluded"]),
        "by_observer": by_observer,
    }
    return (pd.concat(kept, ignore_index=True) if kept else responses), report


def alignment_scores(
    responses: pd.DataFrame,
    trials: pd.DataFrame,
    *,
    external: Mapping[str, Any] | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """judgments/alignment.csv: % correct per IRI set, trial kind,
    alternative and observer (iriflow.scoring.score, crossed bootstrap
    CI), led by the parts of the set id (``model`` is the model's name) and
    the model's architecture, objective, augmentation and seed
    (``model_factors``; ``external`` is models.external, whose models have
    any name)."""
    scores = score(responses, trials, n_boot=n_boot, level=level, seed=seed)
    parts = pd.DataFrame(scores["set_id"].str.split("/").tolist(), columns=list(SET_PARTS))
    columns = ["arch", "objective", "augmentation", "seed"]
    models_cfg = {"external": dict(external or {})}
    factors = pd.DataFrame(
        [model_factors(f"{d}/{m}", models_cfg) for d, m in zip(parts["dataset"], parts["model"])], columns=columns
    )
    factors["seed"] = factors["seed"].astype(int)
    return pd.concat([parts, factors, scores.drop(columns="set_id")], axis=1)


# --- the tables: alignment (paper-style) and proxies -------------------------------------------------------------


def alignment_table(scores: pd.DataFrame, levels: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Rows (IRI loss, training variant), columns architecture: % correct
    and its CI (columns ``<arch>``, ``<arch> ci_lo``, ``<arch> ci_hi``) and,
    where the scores have it, the number of targets the score rests on
    (``<arch> n_targets``: the targets of converged IRIs; the fewest of the
    cell's models when seeds are averaged)."""
    if scores.empty:
        return pd.DataFrame(columns=["loss", "variant"])
    s = scores.assign(pct=100 * scores["prop_correct"], lo=100 * scores["ci_lo"], hi=100 * scores["ci_hi"])
    archs = _order(s["arch"], levels.get("arch", []))
    index = ["loss", "variant"]
    wide = s.pivot_table(index=index, columns="arch", values=["pct", "lo", "hi"], aggfunc="mean")
    n = s.pivot_table(index=index, columns="arch", values="n_targets", aggfunc="min") if "n_targets" in s else None
    out = pd.DataFrame(index=wide.index)
    for a in archs:
        out[a] = wide[("pct", a)]
        out[f"{a} ci_lo"] = wide[("lo", a)]
        out[f"{a} ci_hi"] = wide[("hi", a)]
        if n is not None:
            out[f"{a} n_targets"] = n[a].reindex(out.index).astype("Int64")
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
    """A cell: % correct [CI], then the number of targets scored (``n=``) where the table has it."""
    v = table.loc[i, arch]
    if not np.isfinite(v):
        return "--"
    text = f"{v:.1f} [{table.loc[i, f'{arch} ci_lo']:.1f}, {table.loc[i, f'{arch} ci_hi']:.1f}]"
    n = table.loc[i, f"{arch} n_targets"] if f"{arch} n_targets" in table else pd.NA
    return text if pd.isna(n) else f"{text} n={n}"


def table_archs(table: pd.DataFrame) -> list[str]:
    return [
        c for c in table.columns if c not in ("loss", "variant") and not c.endswith(("ci_lo", "ci_hi", "n_targets"))
    ]


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


def table_html(table: pd.DataFrame, title: str) -> str:
    """The alignment table as an HTML page (cells as in ``table_markdown``)."""
    archs = table_archs(table)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["IRI loss", "training", *archs])
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(c))}</td>"
            for c in [table.loc[i, "loss"], table.loc[i, "variant"], *(_cell(table, i, a) for a in archs)]
        )
        + "</tr>"
        for i in range(len(table))
    )
    return (
        "<!DOCTYPE html><meta charset='utf-8'><title>alignment table</title>"
        f"<style>td,th{{padding:2px 8px;text-align:right}}</style><p>{html.escape(title)}</p>"
        f"<table><tr>{head}</tr>{body}</table>\n"
    )


def proxy_table(proxy: pd.DataFrame, stir: pd.DataFrame, loss_order: Sequence[str] = ()) -> pd.DataFrame:
    """The human-free proxies per model and IRI loss, seed types pooled by
    averaging: ``2AFC <metric> vs <alternative> (%)`` (100 x the share of IRIs
    closer to their target than to the other option, proxy_2afc.csv) and
    ``STIR (CKA)`` (mean linear CKA of the other models' representations of
    targets vs IRIs, stir.csv; the model itself left out; NaN where too few
    IRIs converged). Rows sorted by model, then IRI loss in ``loss_order``."""
    cols = []
    if len(proxy):
        p = pd.concat([proxy.reset_index(drop=True), split_set_ids(proxy["set_id"]).reset_index(drop=True)], axis=1)
        p["column"] = "2AFC " + p["metric"] + " vs " + p["alternative"] + " (%)"
        p["value"] = 100 * p["proxy"]
        cols.append(p[["model", "loss", "column", "value"]])
    s = stir.loc[stir["model"] != stir["reference_model"]].reset_index(drop=True)
    if len(s):
        s = pd.concat([s, split_set_ids(s["set_id"]).drop(columns="model")], axis=1)
        cols.append(s.assign(column="STIR (CKA)", value=s["cka"])[["model", "loss", "column", "value"]])
    long = pd.concat(cols, ignore_index=True) if cols else pd.DataFrame(columns=["model", "loss", "column", "value"])
    table = long.pivot_table(index=["model", "loss"], columns="column", values="value", aggfunc="mean")
    # a column of no value (STIR of sets with fewer converged IRIs than stir.min_iris) stays, as "--"
    table = table.reindex(columns=sorted(long["column"].unique())).reset_index()
    rank = {v: i for i, v in enumerate(_order(table["loss"], loss_order))}
    table = table.sort_values(["model", "loss"], key=lambda c: c.map(rank) if c.name == "loss" else c)
    table.columns.name = None
    return table.reset_index(drop=True)


def _proxy_cell(column: str, v: float) -> str:
    return "--" if pd.isna(v) else (f"{v:.2f}" if column.startswith("STIR") else f"{v:.1f}")


def _proxy_rows(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    values = [c for c in table.columns if c not in ("model", "loss")]
    rows = [[r["model"], r["loss"], *(_proxy_cell(c, r[c]) for c in values)] for _, r in table.iterrows()]
    return ["model", "IRI loss", *values], rows


def proxy_markdown(table: pd.DataFrame) -> str:
    head, rows = _proxy_rows(table)
    lines = ["| " + " | ".join(head) + " |", "| --- | --- | " + " | ".join("---:" for _ in head[2:]) + " |"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def proxy_html(table: pd.DataFrame) -> str:
    head, rows = _proxy_rows(table)
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return (
        "<!DOCTYPE html><meta charset='utf-8'><title>proxies</title>"
        "<style>td,th{padding:2px 8px;text-align:right}</style>"
        "<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + f"</tr>{cells}</table>\n"
    )
