"""Figures (matplotlib + seaborn), written as PNG and PDF atomically."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .io import atomic_path  # noqa: E402


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
        sns.lineplot(data=metric_curves, x=x, y="p_target", hue="metric", palette=palette, marker="o",
                     ax=ax, legend=ax is axes[0][0])
        for observer, o in c.loc[c["observer"] != ""].groupby("observer"):
            ax.plot(o[x], o["p_target_model"], ls="--", color=palette[o["metric"].iloc[0]], label=observer)
        ax.axhline(0.5, color="grey", lw=0.8)
        if kind != "noise":
            ax.axvline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel({"noise": "SNR (dB), target in pixel noise",
                       "blend-other": "weight of another class's target",
                       "blend-noise": "weight of a noise image"}[kind])
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
