"""Figures of the analysis stage (matplotlib + seaborn). Each function takes
tidy tables and returns a Figure; ``save_figure`` writes it as PNG or PDF. The data each figure shows is selected by a separate function
(``*_data``) that the tests check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from .analysis import MEASURE_LABELS  # noqa: E402
from .io import atomic_path  # noqa: E402
from .iriset import IRISet

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
SHORT_MEASURES = {
    "2afc:other-target": "2AFC: target vs other class's target",
    "2afc:seed": "2AFC: target vs seed",
    "matching": "matching: k IRIs to k targets",
}
CHANCE_STYLE = {"color": "0.45", "lw": 1.0, "ls": "--", "zorder": 0}
REFERENCE_COLOR = "0.6"  # finding 3's supervised reference models in the SimCLR-across-training figure


def _theme() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)


def _order(values, preferred: Sequence[str] = ()) -> list[str]:
    seen = list(dict.fromkeys(values))
    return [v for v in preferred if v in seen] + sorted(v for v in seen if v not in preferred)


def message_figure(title: str, message: str) -> plt.Figure:
    """A figure that says why there is nothing to show."""
    _theme()
    fig, ax = plt.subplots(figsize=(6.5, 2.2))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=ax.transAxes)
    return fig


def _finish(fig: plt.Figure, height: float, handles, labels, xlabel: str) -> None:
    """Tight layout leaving 0.3 in at the top for the title and 0.8 in at
    the bottom for one shared x label and the legend below it."""
    fig.tight_layout(rect=(0, 0.8 / height, 1, 1 - 0.3 / height))
    fig.supxlabel(xlabel, y=0.38 / height, va="bottom", fontsize=11)
    _legend_below(fig, handles, labels)


def _legend_below(fig: plt.Figure, handles, labels, ncol: int | None = None, title: str | None = None) -> None:
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=ncol or min(len(labels), 6),
        frameon=False,
        bbox_to_anchor=(0.5, 0.0),
        title=title,
    )


def save_figure(fig: plt.Figure, path: str | Path) -> None:
    """Save ``fig`` to ``path`` (format from the suffix) atomically, with
    fixed metadata so that the same figure gives the same bytes."""
    path = Path(path)
    fmt = path.suffix.lstrip(".")
    metadata = {"Software": None} if fmt == "png" else {"Creator": None, "Producer": None, "CreationDate": None}
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)


def psychometric_figure(curves: pd.DataFrame) -> plt.Figure:
    """One panel per constructed trial kind (iriflow.judgments.validate_metric):
    the share of trials on which each metric's distance prefers the target
    (solid), and each calibrated observer's expected choice rate (dashed)."""
    kinds = [k for k in ("noise", "blend-other", "blend-noise") if k in set(curves["trial"])]
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.6), squeeze=False)
    palette = dict(zip(sorted(curves["metric"].unique()), sns.color_palette("tab10")))
    for ax, kind in zip(axes[0], kinds):
        c = curves.loc[curves["trial"] == kind].copy()
        x = "snr_db" if kind == "noise" else "level"
        metric_curves = c.drop_duplicates(["metric", x])
        sns.lineplot(
            data=metric_curves,
            x=x,
            y="p_target",
            hue="metric",
            palette=palette,
            marker="o",
            ax=ax,
            legend=ax is axes[0][0],
        )
        for observer, o in c.loc[c["observer"] != ""].groupby("observer"):
            ax.plot(o[x], o["p_target_model"], ls="--", color=palette[o["metric"].iloc[0]], label=observer)
        ax.axhline(0.5, color="grey", lw=0.8)
        if kind != "noise":
            ax.axvline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(
            {
                "noise": "SNR (dB), target in pixel noise",
                "blend-other": "weight of another class's target",
                "blend-noise": "weight of a noise image",
            }[kind]
        )
        ax.set_ylabel("P(target chosen)")
        ax.set_title(kind)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        h, lab = ax.get_legend_handles_labels()
        handles += [hh for hh, ll in zip(h, lab) if ll not in labels]
        labels += [ll for ll in lab if ll not in labels]
    if axes[0][0].get_legend():
        axes[0][0].get_legend().remove()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return fig


# --- alignment per model ------------------------------------------------------------


def alignment_data(scores: pd.DataFrame, measure: str, losses: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of ``scores`` (model_scores) for one measure (and some losses),
    in percent."""
    d = scores.loc[scores["measure"] == measure]
    if losses is not None:
        d = d.loc[d["loss"].isin(losses)]
    return d.assign(pct=100 * d["prop_correct"], lo=100 * d["ci_lo"], hi=100 * d["ci_hi"], chance_pct=100 * d["chance"])


def _dodged_points(
    ax,
    d: pd.DataFrame,
    x_order: Sequence[str],
    hue: str,
    hue_order: Sequence[str],
    palette: Mapping[str, tuple],
    width: float = 0.5,
) -> None:
    n = len(hue_order)
    offsets = np.linspace(-width / 2, width / 2, n) if n > 1 else [0.0]
    xpos = {v: i for i, v in enumerate(x_order)}
    for k, (h, off) in enumerate(zip(hue_order, offsets)):
        g = d.loc[d[hue] == h]
        if g.empty:
            continue
        x = g["variant"].map(xpos).to_numpy() + off
        ax.errorbar(
            x,
            g["pct"],
            yerr=[g["pct"] - g["lo"], g["hi"] - g["pct"]],
            fmt=MARKERS[k % len(MARKERS)],
            color=palette[h],
            ms=6,
            capsize=3,
            lw=1.3,
            label=h,
        )
    ax.set_xticks(range(len(x_order)))
    ax.set_xticklabels(x_order, rotation=30, ha="right")
    ax.set_xlim(-0.6, len(x_order) - 0.4)


def _model_panels(
    d: pd.DataFrame,
    column: str,
    columns: Sequence[str],
    column_title,
    levels: Mapping[str, Sequence[str]],
    title: str,
    pool: bool = False,
) -> plt.Figure:
    """Alignment (% correct, 95% CI) of every model: training variant on the
    x axis, architecture by colour; one column per value of ``column``, one
    row per observer kind. ``d`` has pct, lo, hi and chance_pct; ``pool``
    averages the rows of a variant and architecture within a panel."""
    _theme()
    observers = _order(d["observer"], levels.get("observer", ["real"]))
    variants = _order(d["variant"], levels.get("variant", []))
    archs = _order(d["arch"], levels.get("arch", []))
    palette = dict(zip(archs, sns.color_palette("colorblind", len(archs))))
    width, height = 1.0 + max(2.8, 0.75 * len(variants) + 0.6) * len(columns), 1.6 + 2.9 * len(observers)
    fig, axes = plt.subplots(len(observers), len(columns), figsize=(width, height), sharey=True, squeeze=False)
    for i, obs in enumerate(observers):
        for j, col in enumerate(columns):
            ax = axes[i][j]
            g = d.loc[(d["observer"] == obs) & (d[column] == col)]
            if pool:
                g = g.groupby(["variant", "arch"], as_index=False)[["pct", "lo", "hi", "chance_pct"]].mean()
            for c in g["chance_pct"].unique():
                ax.axhline(c, **CHANCE_STYLE)
            _dodged_points(ax, g, variants, "arch", archs, palette)
            ax.set_ylim(-3, 103)
            ax.set_title(column_title(col) if i == 0 else "")
            if j == 0:
                ax.set_ylabel(f"{obs}\n% correct (95% CI)")
            if i < len(observers) - 1:
                ax.set_xticklabels([])
    handles = [
        Line2D([], [], color=palette[a], marker=MARKERS[k % len(MARKERS)], ls="", ms=6) for k, a in enumerate(archs)
    ] + [Line2D([], [], **{**CHANCE_STYLE, "zorder": 1})]
    fig.suptitle(title, y=0.995)
    _finish(fig, height, handles, [*archs, "chance"], "training (objective-augmentation)")
    return fig


def alignment_figure(
    scores: pd.DataFrame,
    measure: str,
    levels: Mapping[str, Sequence[str]],
    losses: Sequence[str] | None = None,
    title: str | None = None,
) -> plt.Figure:
    """Alignment of every model for one measure, one column per IRI loss
    (the "loss decides the verdict" figure), one row per observer kind."""
    d = alignment_data(scores, measure, losses)
    if d.empty:
        return message_figure(title or "Alignment", f"no scores for measure {measure}")
    return _model_panels(
        d,
        "loss",
        _order(d["loss"], levels.get("loss", [])),
        lambda v: f"IRI loss: {v}",
        levels,
        title or f"Alignment per model: {MEASURE_LABELS.get(measure, measure)}",
    )


def adversarial_figure(scores: pd.DataFrame, losses: Sequence[str], levels: Mapping[str, Sequence[str]]) -> plt.Figure:
    """Alignment of every model under the adversarial IRI loss(es), every
    measure (columns) and observer kind (rows); several adversarial losses
    are pooled by their mean."""
    d = scores.loc[scores["loss"].isin(losses)]
    if d.empty:
        return message_figure(
            "Alignment under the adversarial IRI loss", "this run has no IRI loss of kind 'adversarial'"
        )
    d = d.assign(pct=100 * d["prop_correct"], lo=100 * d["ci_lo"], hi=100 * d["ci_hi"], chance_pct=100 * d["chance"])
    measures = _order(d["measure"], levels.get("measure", list(MEASURE_LABELS)))
    return _model_panels(
        d,
        "measure",
        measures,
        lambda m: SHORT_MEASURES.get(m, m),
        levels,
        f"Alignment under the adversarial IRI loss ({', '.join(losses)})",
        pool=len(losses) > 1,
    )


# --- SimCLR checkpoints ---------------------------------------------------------------


def checkpoint_figure(
    scores: pd.DataFrame,
    measure: str,
    levels: Mapping[str, Sequence[str]],
    subtitle: str = "",
    references: pd.DataFrame | None = None,
) -> plt.Figure:
    """% correct (95% CI) of the IRIs of SimCLR snapshots against the
    training epoch; colour: augmentation (plain vs adversarial views), line
    style and marker: architecture; one panel per observer kind. Grey
    horizontal lines in the architecture's line style: ``references``
    (iriflow.findings.reference_scores), the standard supervised models
    plain SimCLR is compared with (finding 3, part c)."""
    d = scores.loc[scores["measure"] == measure] if len(scores) else scores
    if d.empty:
        return message_figure(
            "SimCLR alignment across training",
            "no SimCLR snapshots in this configuration\n(models.objectives.<simclr>.train."
            "snapshot_every, analysis.checkpoints.enabled)",
        )
    d = d.assign(pct=100 * d["prop_correct"], lo=100 * d["ci_lo"], hi=100 * d["ci_hi"], epoch=d["epoch"].astype(int))
    _theme()
    observers = _order(d["observer"], levels.get("observer", ["real"]))
    augs = _order(d["augmentation"], levels.get("augmentation", []))
    archs = _order(d["arch"], levels.get("arch", []))
    palette = dict(zip(augs, sns.color_palette("colorblind", len(augs))))
    styles = dict(zip(archs, ["-", "--", ":", "-."] * 4))
    fig, axes = plt.subplots(1, len(observers), figsize=(0.6 + 4.4 * len(observers), 3.9), sharey=True, squeeze=False)
    epochs = sorted(d["epoch"].unique())
    span = max(epochs) - min(epochs) if len(epochs) > 1 else 1
    for j, obs in enumerate(observers):
        ax = axes[0][j]
        for c in d.loc[d["observer"] == obs, "chance"].unique():
            ax.axhline(100 * c, **CHANCE_STYLE)
        if references is not None:
            for _, r in references.loc[references["observer"] == obs].iterrows():
                if r["arch"] in styles:
                    ax.axhline(100 * r["prop_correct"], color=REFERENCE_COLOR, ls=styles[r["arch"]], lw=1.5, zorder=1)
        for a_i, arch in enumerate(archs):
            for aug in augs:
                g = d.loc[(d["observer"] == obs) & (d["arch"] == arch) & (d["augmentation"] == aug)].sort_values(
                    "epoch"
                )
                if g.empty:
                    continue
                x = g["epoch"] + (a_i - (len(archs) - 1) / 2) * 0.02 * span
                ax.errorbar(
                    x,
                    g["pct"],
                    yerr=[g["pct"] - g["lo"], g["hi"] - g["pct"]],
                    color=palette[aug],
                    ls=styles[arch],
                    marker=MARKERS[a_i % len(MARKERS)],
                    ms=6,
                    capsize=3,
                    lw=1.5,
                )
        ax.set_xticks(epochs)
        ax.set_xlabel("training epoch (snapshot)")
        ax.set_title(obs)
        ax.set_ylim(-3, 103)
        if j == 0:
            ax.set_ylabel("% correct (95% CI)")
    handles = (
        [Line2D([], [], color=palette[a], lw=2) for a in augs]
        + [Line2D([], [], color="0.2", ls=styles[a], marker=MARKERS[i % len(MARKERS)]) for i, a in enumerate(archs)]
        + [Line2D([], [], **{**CHANCE_STYLE, "zorder": 1})]
    )
    labels = [*augs, *archs, "chance"]
    if references is not None and len(references):
        handles.append(Line2D([], [], color=REFERENCE_COLOR, lw=2))
        labels.append("supervised, standard (final)")
    fig.suptitle(
        f"SimCLR alignment across training: {MEASURE_LABELS.get(measure, measure)}"
        + (f"\n{subtitle}" if subtitle else ""),
        y=0.995,
    )
    fig.tight_layout(rect=(0, 0.1, 1, 0.95 if subtitle else 0.97))
    _legend_below(fig, handles, labels)
    return fig


# --- accuracy -----------------------------------------------------------------------


def accuracy_figure(
    models: pd.DataFrame, attacks: Mapping[str, Mapping], levels: Mapping[str, Sequence[str]]
) -> plt.Figure:
    """Clean vs robust test accuracy (%) of every model, one panel per
    evaluation attack; colour: training variant, marker: architecture."""
    cols = [f"robust_acc_{a}" for a in attacks if f"robust_acc_{a}" in models.columns]
    if models.empty or not cols:
        return message_figure("Clean vs robust accuracy", "no robust accuracy in models.csv")
    _theme()
    variants = _order(models["variant"], levels.get("variant", []))
    archs = _order(models["arch"], levels.get("arch", []))
    palette = dict(zip(variants, sns.color_palette("colorblind", len(variants))))
    fig, axes = plt.subplots(1, len(cols), figsize=(0.8 + 4.6 * len(cols), 4.4), squeeze=False)
    for ax, col in zip(axes[0], cols):
        name = col.removeprefix("robust_acc_")
        atk = attacks[name]
        ax.plot([0, 100], [0, 100], color="0.7", lw=1, ls=":", zorder=0)
        for _, r in models.iterrows():
            ax.scatter(
                100 * r["clean_acc"],
                100 * r[col],
                color=palette[r["variant"]],
                marker=MARKERS[archs.index(r["arch"]) % len(MARKERS)],
                s=60,
                edgecolor="k",
                lw=0.5,
                zorder=3,
            )
        ax.set_xlim(0, 102)
        ax.set_ylim(0, 102)
        ax.set_aspect("equal")
        ax.set_xlabel("clean test accuracy (%)")
        ax.set_ylabel("robust test accuracy (%)")
        ax.set_title(f"PGD {atk.get('norm', '')}, eps = {atk.get('eps', '?')}, {atk.get('steps', '?')} steps")
    handles = (
        [Line2D([], [], color=palette[v], marker="o", ls="", ms=7) for v in variants]
        + [Line2D([], [], color="0.3", marker=MARKERS[i % len(MARKERS)], ls="", ms=7) for i in range(len(archs))]
        + [Line2D([], [], color="0.7", ls=":")]
    )
    fig.legend(
        handles, [*variants, *archs, "robust = clean"], loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False
    )
    fig.tight_layout()
    return fig


# --- proxies vs observers -------------------------------------------------------------


def proxy_data(
    alignment: pd.DataFrame, proxy: pd.DataFrame, stir: pd.DataFrame, measure: str, alternative: str = "seed"
) -> pd.DataFrame:
    """Per IRI set and observer kind: the observer's % correct beside each
    proxy (x): the paper's 2AFC proxy (``alternative``: the seed) for each
    metric against the observers' 2AFC trials with that alternative, and
    STIR (mean CKA over the other models) against the primary measure."""
    a = alignment.copy()
    a["set_id"] = a[["dataset", "model", "layer", "loss", "seed_type"]].astype(str).agg("/".join, axis=1)
    a["measure"] = np.where(a["kind"] == "matching", "matching", a["kind"] + ":" + a["alternative"].fillna(""))
    parts = []
    for metric, p in proxy.loc[proxy["alternative"] == alternative].groupby("metric"):
        p = p.assign(measure="2afc:" + p["alternative"])
        m = a.merge(p[["set_id", "measure", "proxy"]], on=["set_id", "measure"])
        parts.append(m.assign(proxy_name=f"2AFC proxy ({metric})", x=100 * m["proxy"]))
    s = stir.loc[stir["model"] != stir["reference_model"]].groupby("set_id", as_index=False)["cka"].mean()
    m = a.loc[a["measure"] == measure].merge(s, on="set_id")
    parts.append(m.assign(proxy_name="STIR (CKA, other models)", x=m["cka"]))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if out.empty:
        return out
    return out.assign(y=100 * out["prop_correct"], y_lo=100 * out["ci_lo"], y_hi=100 * out["ci_hi"])


def proxy_figure(data: pd.DataFrame, levels: Mapping[str, Sequence[str]]) -> plt.Figure:
    """Observer % correct (y, 95% CI) against each proxy (x), per IRI set;
    colour: IRI loss, marker: seed type; Pearson r in each panel."""
    if data.empty:
        return message_figure("Proxies vs observers", "no IRI set has both a proxy and an observer score")
    _theme()
    observers = _order(data["observer"], levels.get("observer", ["real"]))
    proxies = _order(data["proxy_name"], sorted(n for n in data["proxy_name"].unique() if n.startswith("2AFC")))
    losses = _order(data["loss"], levels.get("loss", []))
    seeds = _order(data["seed_type"], levels.get("seed_type", []))
    palette = dict(zip(losses, sns.color_palette("colorblind", len(losses))))
    fig, axes = plt.subplots(
        len(observers), len(proxies), figsize=(0.8 + 3.6 * len(proxies), 0.8 + 3.4 * len(observers)), squeeze=False
    )
    for i, obs in enumerate(observers):
        for j, name in enumerate(proxies):
            ax = axes[i][j]
            g = data.loc[(data["observer"] == obs) & (data["proxy_name"] == name)]
            stir = name.startswith("STIR")
            if not stir:
                ax.plot([0, 100], [0, 100], color="0.7", lw=1, ls=":", zorder=0)
            for _, r in g.iterrows():
                ax.errorbar(
                    r["x"],
                    r["y"],
                    yerr=[[r["y"] - r["y_lo"]], [r["y_hi"] - r["y"]]],
                    color=palette[r["loss"]],
                    marker=MARKERS[seeds.index(r["seed_type"]) % len(MARKERS)],
                    ms=5,
                    lw=0.8,
                    alpha=0.85,
                )
            ok = g[["x", "y"]].dropna()
            r_txt = (
                f"r = {np.corrcoef(ok['x'], ok['y'])[0, 1]:.2f}, n = {len(ok)}"
                if len(ok) >= 3 and ok["x"].std() > 0 and ok["y"].std() > 0
                else f"n = {len(ok)}"
            )
            ax.text(
                0.03,
                0.97,
                r_txt,
                transform=ax.transAxes,
                va="top",
                fontsize=9,
                bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
            )
            ax.set_xlim((-0.03, 1.03) if stir else (-3, 103))
            ax.set_ylim(-3, 103)
            ax.set_xlabel("STIR: linear CKA (0-1)" if stir else "% IRIs with D(IRI, target) <= D(IRI, seed)")
            measure = g["measure"].iloc[0] if len(g) else ""
            ax.set_ylabel(f"{obs}\n% correct (95% CI)" if j == 0 else "")
            if i == 0:
                ax.set_title(f"{name}\nobservers: {SHORT_MEASURES.get(measure, measure)}", fontsize=10)
    handles = [Line2D([], [], color=palette[l], marker="o", ls="", ms=6) for l in losses] + [
        Line2D([], [], color="0.3", marker=MARKERS[k % len(MARKERS)], ls="", ms=6) for k in range(len(seeds))
    ]
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    _legend_below(fig, handles, [f"loss: {l}" for l in losses] + [f"seed: {s}" for s in seeds])
    return fig


# --- IRI example grids -----------------------------------------------------------------


def pick_examples(labels: np.ndarray, usable: np.ndarray, n: int) -> list[int]:
    """Up to n target indices, one per class in turn (class order), within a
    class preferring targets whose IRIs all converged; sorted by class."""
    labels = np.asarray(labels)
    usable = np.asarray(usable, dtype=bool)
    per_class = {c: sorted(np.flatnonzero(labels == c), key=lambda i: (not usable[i], i)) for c in np.unique(labels)}
    order: list[int] = []
    rnd = 0
    while len(order) < min(n, len(labels)):
        for members in per_class.values():
            if rnd < len(members) and len(order) < n:
                order.append(int(members[rnd]))
        rnd += 1
    return sorted(order, key=lambda i: (labels[i], i))


def iri_grid_figure(
    sets: Mapping[tuple[str, str], IRISet], losses: Sequence[str], models: Sequence[str], n: int, seed_type: str
) -> plt.Figure:
    """Rows: the seed, the target, then per IRI loss the IRIs of each model
    (standard, robust); columns: example targets. Non-converged IRIs are
    framed in red. ``sets[(loss, model)]`` is an IRI set."""
    _theme()
    first = next(iter(sets.values()))
    labels = first.target_label
    usable = np.all([s.converged for s in sets.values()], axis=0)
    idx = pick_examples(labels, usable, n)
    rows = [("seed", first.seeds, None), ("target", first.targets, None)]
    group_of = [0, 0]
    for g, loss in enumerate(losses, start=1):
        for m in models:
            s = sets[(loss, m)]
            rows.append((f"{loss}\n{m.split('/')[-1]}", s.iris, s.converged))
            group_of.append(g)
    heights = []
    for k in range(len(rows)):
        heights.append(1.0)
        if k + 1 < len(rows) and group_of[k + 1] != group_of[k]:
            heights.append(0.25)  # gap between groups
    fig = plt.figure(figsize=(2.6 + 0.62 * len(idx), 0.35 + 0.62 * sum(heights)))
    gs = fig.add_gridspec(
        len(heights),
        len(idx),
        height_ratios=heights,
        hspace=0.06,
        wspace=0.04,
        left=2.4 / (2.6 + 0.62 * len(idx)),
        right=0.99,
        top=1 - 0.3 / (0.35 + 0.62 * sum(heights)),
        bottom=0.01,
    )
    r = 0
    for k, (name, images, converged) in enumerate(rows):
        for c, i in enumerate(idx):
            ax = fig.add_subplot(gs[r, c])
            img = np.asarray(images[i])
            if img.shape[0] == 1:
                ax.imshow(img[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(np.clip(img.transpose(1, 2, 0), 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for sp in ax.spines.values():
                sp.set_visible(False)
            if converged is not None and not converged[i]:
                ax.add_patch(Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, ec="red", lw=2.5))
            if c == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9, labelpad=6)
            if k == 0:
                ax.set_title(f"class {labels[i]}", fontsize=8, pad=3)
        r += 1
        if k + 1 < len(rows) and group_of[k + 1] != group_of[k]:
            r += 1
    fig.suptitle(
        f"IRIs per loss, standard vs robust model ({seed_type} seeds; red frame: not converged)", fontsize=10, y=0.999
    )
    return fig


# --- alignment with human similarity judgments (RSA, odd-one-out) ---------------------------

RSA_PANELS = (  # (panel title, measures drawn (filled first), percent)
    ("RSA with behaviour\n(mean Spearman over participants)", ("rsa:behaviour",), False),
    ("RSA with human IT (fMRI)", ("rsa:hIT",), False),
    ("odd-one-out agreement (%)\nfilled: zero-shot, open: linear probe", ("ooo:zero-shot", "ooo:probed"), True),
)


def rsa_figure_data(table: pd.DataFrame) -> pd.DataFrame:
    """Long form of the RSA table's model rows (tables/rsa.csv): one row per
    model, layer and measure with value, lo, hi (percent for odd-one-out)."""
    rows = []
    models = table.loc[table["kind"] == "model"]
    for _, percent_measures, pct in RSA_PANELS:
        for measure in percent_measures:
            if measure not in models:
                continue
            scale = 100.0 if pct else 1.0
            part = models[["dataset", "model", "arch", "variant", "layer"]].copy()
            part["measure"] = measure
            part["pct"] = scale * models[measure]
            part["lo"] = scale * models[f"{measure}_lo"]
            part["hi"] = scale * models[f"{measure}_hi"]
            rows.append(part)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def _reference_value(table: pd.DataFrame, kind: str, model: str | None, dataset: str | None, measure: str) -> float:
    sel = table.loc[table["kind"] == kind]
    if model is not None:
        sel = sel.loc[sel["model"] == model]
    if dataset is not None:
        sel = sel.loc[sel["dataset"] == dataset]
    return float(sel[measure].iloc[0]) if len(sel) and measure in sel else float("nan")


def rsa_figure(table: pd.DataFrame, ceiling: Mapping, levels: Mapping[str, Sequence[str]]) -> plt.Figure:
    """Alignment of every model with people's similarity judgments of 92
    object images: one column per measure (RSA with behaviour, RSA with human
    IT, odd-one-out agreement), one row per dataset and layer; x: training
    variant, colour and marker: architecture; 95% image-bootstrap CIs. Grey
    band: the noise ceiling (RSA) or one participant's agreement with the
    others (odd-one-out); dashed: chance; dotted: the pixels; dash-dot: an IT
    reference."""
    d = rsa_figure_data(table)
    if d.empty:
        return message_figure("Alignment with human similarity judgments", "no model was scored")
    _theme()
    groups = list(dict.fromkeys(zip(d["dataset"], d["layer"])))
    variants = _order(d["variant"], levels.get("variant", []))
    archs = _order(d["arch"], levels.get("arch", []))
    palette = dict(zip(archs, sns.color_palette("colorblind", len(archs))))
    width, height = 1.0 + len(RSA_PANELS) * max(3.2, 0.8 * len(variants) + 0.8), 1.9 + 3.2 * len(groups)
    fig, axes = plt.subplots(len(groups), len(RSA_PANELS), figsize=(width, height), squeeze=False)
    band = {"color": "0.6", "alpha": 0.3, "lw": 0, "zorder": 0}
    for i, (dataset, layer) in enumerate(groups):
        for j, (title, measures, pct) in enumerate(RSA_PANELS):
            ax = axes[i][j]
            scale = 100.0 if pct else 1.0
            if measures[0] == "rsa:behaviour":
                ax.axhspan(ceiling["rsa_lower"], ceiling["rsa_upper"], **band)
                ax.axhline(0, **CHANCE_STYLE)
                ref = ("hIT", "rsa:behaviour")
            elif measures[0] == "rsa:hIT":
                ax.axhline(0, **CHANCE_STYLE)
                ref = ("mIT", "rsa:hIT")
            else:
                ax.axhspan(100 * ceiling["ooo_participant_lower"], 100 * ceiling["ooo_participant_upper"], **band)
                ax.axhline(100 * ceiling["ooo_chance"], **CHANCE_STYLE)
                ref = ("hIT", "ooo:zero-shot")
            pixels = _reference_value(table, "baseline", None, dataset, measures[0])
            if np.isfinite(pixels):
                ax.axhline(scale * pixels, color="0.3", lw=1.2, ls=":", zorder=1)
            it = _reference_value(table, "reference", ref[0], None, ref[1])
            if np.isfinite(it):
                ax.axhline(scale * it, color="tab:purple", lw=1.2, ls="-.", zorder=1)
            for k, measure in enumerate(measures):
                g = d.loc[(d["dataset"] == dataset) & (d["layer"] == layer) & (d["measure"] == measure)]
                offsets = np.linspace(-0.25, 0.25, len(archs)) if len(archs) > 1 else [0.0]
                for a_i, (arch, off) in enumerate(zip(archs, offsets)):
                    h = g.loc[g["arch"] == arch]
                    if h.empty:
                        continue
                    x = h["variant"].map({v: n for n, v in enumerate(variants)}).to_numpy() + off + 0.08 * k
                    ax.errorbar(
                        x,
                        h["pct"],
                        yerr=[h["pct"] - h["lo"], h["hi"] - h["pct"]],
                        fmt=MARKERS[a_i % len(MARKERS)],
                        color=palette[arch],
                        ms=6,
                        capsize=3,
                        lw=1.2,
                        mfc=palette[arch] if k == 0 else "white",
                        mew=1.4,
                    )
            ax.set_xticks(range(len(variants)))
            ax.set_xticklabels(variants if i == len(groups) - 1 else [], rotation=30, ha="right")
            ax.set_xlim(-0.6, len(variants) - 0.4)
            if i == 0:
                ax.set_title(title, fontsize=10)
            if j == 0:
                ax.set_ylabel(f"{dataset}, {layer}")
    handles = [
        Line2D([], [], color=palette[a], marker=MARKERS[k % len(MARKERS)], ls="", ms=6) for k, a in enumerate(archs)
    ] + [
        Rectangle((0, 0), 1, 1, **{k: v for k, v in band.items() if k != "zorder"}),
        Line2D([], [], **{**CHANCE_STYLE, "zorder": 1}),
        Line2D([], [], color="0.3", lw=1.2, ls=":"),
        Line2D([], [], color="tab:purple", lw=1.2, ls="-."),
    ]
    labels = [*archs, "noise ceiling / participants", "chance (0 or 1/3)", "pixels", "IT reference (hIT; mIT)"]
    fig.suptitle(
        f"Alignment with human similarity judgments of 92 object images ({ceiling['participants']} participants)",
        y=0.995,
    )
    _finish(fig, height, handles, labels, "training (objective-augmentation)")
    return fig


def power_figure(power: pd.DataFrame, target: float, alpha: float) -> plt.Figure:
    """Power (share of simulated studies whose verdict is "supported", with
    its Monte Carlo SE) against the number of participants, one panel per
    finding and one line per scenario; the target power and alpha dashed."""
    _theme()
    if power.empty:
        return message_figure("Power", "no finding of this run can be planned (no trials of findings 1 or 4)")
    findings = sorted(power["finding"].unique())
    fig, axes = plt.subplots(1, len(findings), figsize=(4.6 * len(findings), 4.0), squeeze=False, sharey=True)
    scenarios = list(dict.fromkeys(power["scenario"]))
    colors = dict(zip(scenarios, sns.color_palette("colorblind", len(scenarios))))
    for ax, f in zip(axes[0], findings):
        sub = power.loc[power["finding"] == f]
        for i, sc in enumerate(scenarios):
            g = sub.loc[sub["scenario"] == sc].sort_values("n_participants")
            if g.empty:
                continue
            ax.errorbar(
                g["n_participants"],
                g["power"],
                yerr=g["mc_se"],
                marker=MARKERS[i % len(MARKERS)],
                color=colors[sc],
                capsize=2,
                label=f"{sc} ({g['effect_pp'].mean():+.1f} pp)",
            )
        ax.axhline(target, **{**CHANCE_STYLE, "color": "0.2"})
        ax.axhline(alpha, **CHANCE_STYLE)
        ax.set_xscale("log", base=2)
        ticks = sorted(sub["n_participants"].unique())
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(f"Finding {f}: {sub['measure'].iloc[0]}", fontsize=10)
        ax.set_xlabel("participants")
        ax.legend(fontsize=7, loc="center right", title="scenario (effect)", title_fontsize=7)
    axes[0][0].set_ylabel("power (share of studies supporting the finding)")
    fig.suptitle(f"Power to support each finding (dashed: {target:.0%} target and alpha = {alpha})", fontsize=11)
    fig.tight_layout()
    return fig
