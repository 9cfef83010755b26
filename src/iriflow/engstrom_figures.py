"""Figures of the Engstrom stage (iriflow.engstrom): feature visualisations
beside their top- and bottom-activating test images, feature addition
before and after, and interpolation paths, each for a standard and a robust
model, with the measures of all models beside them. Torch-free: the figure
rules run in the analysis environment. The data each figure shows is chosen
by a ``*_data`` function that the tests check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from .iriset import IRISet
from .plots import CHANCE_STYLE, _theme, plt, sns

PAD = 2  # pixels between tiles of a mosaic
FEATURE_MEASURE = "feature-2afc:bottom"


def mosaic(rows: Sequence[Sequence[np.ndarray | None]], pad: int = PAD) -> np.ndarray:
    """Tiles [C,H,W] (None: blank) in rows -> one RGB image [H', W', 3] on white."""
    tile = next(t for r in rows for t in r if t is not None)
    c, h, w = tile.shape
    ncol = max(len(r) for r in rows)
    out = np.ones((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, 3), dtype=np.float32)
    for i, r in enumerate(rows):
        for j, t in enumerate(r):
            if t is None:
                continue
            img = np.clip(np.asarray(t, dtype=np.float32), 0, 1).transpose(1, 2, 0)
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y : y + h, x : x + w] = np.repeat(img, 3, axis=2) if c == 1 else img
    return out


def _short(model_id: str) -> str:
    return model_id.split("/", 1)[-1]


def _image_axis(ax, image: np.ndarray, title: str) -> None:
    ax.imshow(image, interpolation="nearest")
    ax.grid(False)
    ax.set_xticks([])
    ax.set_yticks([])
    for sp in ax.spines.values():
        sp.set_visible(False)
    ax.set_title(title, fontsize=9, loc="left")


def _tile_centres(n: int, size: int, pad: int = PAD) -> np.ndarray:
    return pad + np.arange(n) * (size + pad) + size / 2


def _frame_tiles(ax, cells: Sequence[tuple[int, int]], size: int, pad: int = PAD) -> None:
    """Red frames around the mosaic tiles at (row, column)."""
    for r, c in cells:
        x, y = pad + c * (size + pad) - 1, pad + r * (size + pad) - 1
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), size + 1, size + 1, fill=False, ec="red", lw=1.5))


def _scores_panel(ax, data: pd.DataFrame, ylabel: str, title: str) -> None:
    """Proportion correct per model (percent) with CIs, one colour per observer."""
    if data.empty:
        ax.axis("off")
        ax.text(0.5, 0.5, "no scores", ha="center", va="center", transform=ax.transAxes)
        return
    models = list(dict.fromkeys(data["model"]))
    observers = list(dict.fromkeys(data["observer"]))
    palette = dict(zip(observers, sns.color_palette("tab10")))
    width = 0.8 / len(observers)
    for k, obs in enumerate(observers):
        d = data.loc[data["observer"] == obs].set_index("model").reindex(models)
        x = np.arange(len(models)) - 0.4 + width * (k + 0.5)
        ax.errorbar(
            x,
            d["pct"],
            yerr=[d["pct"] - d["lo"], d["hi"] - d["pct"]],
            fmt="o",
            color=palette[obs],
            label=obs,
            capsize=2,
        )
    ax.axhline(50, **CHANCE_STYLE)
    ax.grid(False, axis="x")
    ax.set_xticks(np.arange(len(models)))
    ax.set_xticklabels([_short(m) for m in models], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.legend(frameon=False, fontsize=8, loc="lower right")


# --- feature visualisation -------------------------------------------------------


def feature_rows(iri_set: IRISet) -> tuple[list[list[np.ndarray]], list[str]]:
    """Per visualised coordinate: [visualisation, its n top images
    (decreasing), its n bottom images (increasing)], and a row label with
    the coordinate and its activation at the visualisation and at its top
    test image."""
    e = iri_set.extra
    n = e["top_index"].shape[1]
    rows, labels = [], []
    for f, unit in enumerate(e["feature"]):
        rows.append([iri_set.iris[f], *e["top"][f * n : (f + 1) * n], *e["bottom"][f * n : (f + 1) * n]])
        labels.append(
            f"unit {unit}: {iri_set.loss[f]:.1f} (top {e['top_activation'][f, 0]:.1f})"
            + ("" if iri_set.converged[f] else ", not converged")
        )
    return rows, labels


def feature_score_data(scores: pd.DataFrame) -> pd.DataFrame:
    """feature-2afc rows of model_scores (scores/models.csv), in percent."""
    d = scores.loc[scores["measure"] == FEATURE_MEASURE]
    return d.assign(pct=100 * d["prop_correct"], lo=100 * d["ci_lo"], hi=100 * d["ci_hi"])


def feature_visualisation_figure(sets: Mapping[str, IRISet], scores: pd.DataFrame) -> plt.Figure:
    """Per example model (``sets``: model id -> feature-visualisation set) a
    mosaic: rows = coordinates, columns = visualisation | top n | bottom n;
    below, the feature-2afc score of every model (``scores``)."""
    _theme()
    blocks = [(m, *feature_rows(s)) for m, s in sets.items()]
    first = next(iter(sets.values()))
    h = first.iris.shape[-2]
    n = first.extra["top_index"].shape[1]
    n_rows = sum(len(r) for _, r, _ in blocks)
    height = 0.32 * n_rows + 0.6 * len(blocks) + 3.2
    fig = plt.figure(figsize=(9.0, height))
    gs = fig.add_gridspec(len(blocks) + 1, 1, height_ratios=[len(r) + 1.5 for _, r, _ in blocks] + [8.0])
    for k, (model, rows, labels) in enumerate(blocks):
        ax = fig.add_subplot(gs[k])
        _image_axis(ax, mosaic(rows), f"{_short(model)}: visualisation | top {n} | bottom {n} test images")
        _frame_tiles(ax, [(f, 0) for f in np.flatnonzero(~sets[model].converged)], h)
        ax.set_yticks(_tile_centres(len(rows), h))
        ax.set_yticklabels(labels, fontsize=7)
        ax.tick_params(axis="y", length=0)
    ax = fig.add_subplot(gs[-1])
    _scores_panel(
        ax,
        feature_score_data(scores),
        "feature-2afc correct (%)",
        "Which of two test images activates the unit more, the visualisation given (chance 50%)",
    )
    fig.tight_layout()
    return fig


# --- feature addition ---------------------------------------------------------------


def addition_rows(iri_set: IRISet) -> tuple[list[list[np.ndarray]], list[str]]:
    """Per addition: [test image before, after, the top test image of the
    added coordinate], and a label with the coordinate's value before -> after."""
    e = iri_set.extra
    rows = [[iri_set.seeds[i], iri_set.iris[i], iri_set.targets[i]] for i in range(len(iri_set))]
    labels = [
        f"unit {e['feature'][i]}: {e['seed_activation'][i]:.2f} -> {e['activation'][i]:.3f}"
        + ("" if iri_set.converged[i] else " (not on)")
        for i in range(len(iri_set))
    ]
    return rows, labels


def feature_addition_figure(sets: Mapping[str, IRISet], on_level: float) -> plt.Figure:
    """Per example model: before | after | the unit's top test image."""
    _theme()
    blocks = [(m, *addition_rows(s)) for m, s in sets.items()]
    h = next(iter(sets.values())).iris.shape[-2]
    n_rows = max(len(r) for _, r, _ in blocks)
    fig, axes = plt.subplots(1, len(blocks), figsize=(3.6 * len(blocks) + 1.0, 0.55 * n_rows + 1.0), squeeze=False)
    for ax, (model, rows, labels) in zip(axes[0], blocks):
        _image_axis(ax, mosaic(rows), f"{_short(model)}\nbefore | after | unit's top image")
        ax.set_yticks(_tile_centres(len(rows), h))
        ax.set_yticklabels(labels, fontsize=7)
        ax.tick_params(axis="y", length=0)
    fig.suptitle(f"Feature addition: raise one unit until it is on (> {on_level:g})", fontsize=10)
    fig.tight_layout()
    return fig


# --- interpolation ------------------------------------------------------------------


def interpolation_rows(iri_set: IRISet, n_pairs: int) -> tuple[list[list[np.ndarray]], list[str]]:
    """For each of the first ``n_pairs`` pairs: the representation path
    (lambda ascending) above the pixel path."""
    pair, lam = iri_set.extra["pair"], iri_set.extra["lam"]
    rows, labels = [], []
    for p in range(min(n_pairs, int(pair.max()) + 1)):
        idx = np.flatnonzero(pair == p)
        idx = idx[np.argsort(lam[idx], kind="stable")]
        rows += [list(iri_set.iris[idx]), list(iri_set.seeds[idx])]
        ok = int(iri_set.converged[idx].sum())
        labels += [f"pair {p}: representation ({ok}/{len(idx)} converged)", f"pair {p}: pixel blend"]
    return rows, labels


def smoothness_data(smoothness: pd.DataFrame) -> pd.DataFrame:
    """Mean detour and largest-step share per model and path (over pairs)."""
    return smoothness.groupby(["model", "path"], sort=False)[["length", "detour", "max_share"]].mean().reset_index()


def interpolation_figure(sets: Mapping[str, IRISet], smoothness: pd.DataFrame, n_pairs: int, metric: str) -> plt.Figure:
    """Per example model: representation path above pixel path for a few
    pairs; below, the path smoothness of every model (both paths)."""
    _theme()
    blocks = [(m, *interpolation_rows(s, n_pairs)) for m, s in sets.items()]
    h = next(iter(sets.values())).iris.shape[-2]
    n_rows = sum(len(r) for _, r, _ in blocks)
    fig = plt.figure(figsize=(9.0, 0.55 * n_rows + 0.6 * len(blocks) + 3.4))
    gs = fig.add_gridspec(len(blocks) + 1, 2, height_ratios=[len(r) + 1.2 for _, r, _ in blocks] + [7.0])
    for k, (model, rows, labels) in enumerate(blocks):
        ax = fig.add_subplot(gs[k, :])
        _image_axis(ax, mosaic(rows), f"{_short(model)}: lambda from 0 (image b) to 1 (image a)")
        ax.set_yticks(_tile_centres(len(rows), h))
        ax.set_yticklabels(labels, fontsize=7)
        ax.tick_params(axis="y", length=0)
    data = smoothness_data(smoothness)
    n_steps = len(np.unique(next(iter(sets.values())).extra["lam"])) - 1
    for j, (col, label) in enumerate(
        (("detour", f"detour (path length / {metric} distance of the ends)"), ("max_share", "largest step / length"))
    ):
        ax = fig.add_subplot(gs[-1, j])
        sns.barplot(data=data, x="model", y=col, hue="path", ax=ax, palette="Set2")
        ax.set_xticks(ax.get_xticks())
        ax.set_xticklabels([_short(t.get_text()) for t in ax.get_xticklabels()], rotation=30, ha="right", fontsize=7)
        ax.set_xlabel("")
        ax.set_ylabel(label, fontsize=8)
        ax.legend(frameon=False, fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, title="path")
        ax.axhline(1 / n_steps if col == "max_share" else 1, **CHANCE_STYLE)  # evenly paced / straight
    fig.tight_layout()
    return fig
