"""Figures only, no maths: every function draws tables computed elsewhere (accuracy.py,
difficulty.py) and returns the matplotlib Figure (the notebook saves it).

Axes: budgets are drawn on a log2 axis; cost in FLOPs on a log10 axis. Bands are mean ± std
over seeds (``accuracy.accuracy_curves``'s ``mean``/``std``), clipped to [0, 1]. Best-of-N
methods are dashed, search methods solid.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

X_LABELS = {"budget": "budget N (generations, log2)", "generations": "generations spent per question (log2)",
            "total_flops": "FLOPs per question (generator + verifier, log)"}


def _palette(methods: Sequence[str]) -> dict[str, tuple]:
    return dict(zip(methods, sns.color_palette("tab10", n_colors=max(10, len(methods)))))


def _draw_curves(ax, curves: pd.DataFrame, x: str, colors: dict, label: bool = True) -> None:
    for method, group in curves.groupby("method", sort=False):
        group = group.sort_values(x)
        xs, mean, std = group[x].to_numpy(float), group["mean"].to_numpy(float), group["std"].to_numpy(float)
        style = "--" if str(method).startswith("best_of_n") else "-"  # sampling baselines dashed, search solid
        ax.plot(xs, mean, marker="o", ms=3, ls=style, color=colors[method], label=method if label else None)
        ax.fill_between(xs, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1), color=colors[method],
                        alpha=0.15, linewidth=0)
    if x == "total_flops":
        ax.set_xscale("log")
    else:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(X_LABELS.get(x, x))
    ax.grid(alpha=0.3)


def _methods(curves: pd.DataFrame, methods: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(curves["method"]))
    if methods is None:
        return present
    missing = [m for m in methods if m not in present]
    if missing:
        raise ValueError(f"no curves for method(s) {missing}; present: {present}")
    return list(methods)


def accuracy_vs_budget(curves: pd.DataFrame, x: str = "budget", methods: Sequence[str] | None = None,
                       title: str | None = None, ax=None):
    """Overall accuracy (bin == "all") of each method against ``x`` (budget, generations or
    total_flops), mean ± std bands."""
    overall = curves[curves["bin"].astype(str) == "all"]
    chosen = _methods(overall, methods)
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7, 4.2))
    _draw_curves(ax, overall[overall.method.isin(chosen)], x, _palette(chosen))
    ax.set_ylabel("accuracy")
    ax.set_title(title or "accuracy vs test-time compute (all questions)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def accuracy_by_bin(curves: pd.DataFrame, x: str = "budget", methods: Sequence[str] | None = None,
                    bin_label: str = "oracle difficulty bin", sharey: bool = False):
    """The paper's Figure 3: one panel per difficulty bin (1 = easiest), accuracy of each method
    against ``x``, mean ± std bands, one shared legend."""
    binned = curves[curves["bin"].astype(str) != "all"]
    if binned.empty:
        raise ValueError("no per-bin curves: pass bins to accuracy.accuracy_curves")
    chosen = _methods(binned, methods)
    bins = sorted(int(b) for b in binned["bin"].unique())
    colors = _palette(chosen)
    fig, axes = plt.subplots(1, len(bins), figsize=(3.2 * len(bins), 3.6), sharey=sharey, squeeze=False)
    for ax, b in zip(axes[0], bins):
        part = binned[(binned["bin"].astype(int) == b) & binned.method.isin(chosen)]
        _draw_curves(ax, part, x, colors, label=(b == bins[0]))
        ax.set_title(f"{bin_label} {b}", fontsize=10)
        ax.set_xlabel(X_LABELS.get(x, x).split(" (")[0], fontsize=8)
    axes[0][0].set_ylabel("accuracy")
    fig.legend(loc="lower center", ncol=min(4, len(chosen)), fontsize=7, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.06 + 0.035 * ((len(chosen) - 1) // 4), 1, 1))
    return fig


def difficulty_overview(bins: pd.DataFrame, confusion: Sequence[Sequence[int]] | pd.DataFrame):
    """Three panels: histogram of oracle pass@1 coloured by oracle bin; predicted score against
    oracle pass@1 (one dot per question); the oracle × predicted confusion heatmap."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    n_bins = int(max(bins.oracle_bin.max(), bins.predicted_bin.max()))
    palette = dict(zip(range(1, n_bins + 1), sns.color_palette("viridis", n_bins)))
    sns.histplot(data=bins, x="oracle_pass1", hue="oracle_bin", palette=palette, multiple="stack",
                 bins=np.linspace(0, 1, 21), ax=axes[0])
    axes[0].set(title="oracle difficulty (pass@1) by bin", xlabel="oracle pass@1", ylabel="questions")
    sns.scatterplot(data=bins, x="oracle_pass1", y="predicted_score", hue="oracle_bin", palette=palette,
                    s=18, ax=axes[1])
    axes[1].set(title="predicted (mean verifier score) vs oracle", xlabel="oracle pass@1",
                ylabel="mean verifier score")
    confusion_heatmap(confusion, ax=axes[2])
    fig.tight_layout()
    return fig


def confusion_heatmap(confusion: Sequence[Sequence[int]] | pd.DataFrame, ax=None,
                      title: str = "oracle vs predicted bin (questions)"):
    """Counts, oracle bins down, predicted bins across (both 1 = easiest)."""
    matrix = pd.DataFrame(confusion)
    if not isinstance(confusion, pd.DataFrame):
        matrix.index = range(1, len(matrix) + 1)
        matrix.columns = range(1, matrix.shape[1] + 1)
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4.5, 4))
    sns.heatmap(matrix, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax)
    ax.set(title=title, xlabel="predicted bin", ylabel="oracle bin")
    return fig


def pass1_by_level(bins: pd.DataFrame):
    """Oracle pass@1 per question against the source's level (box plot): how the model-relative
    difficulty relates to the world's difficulty knob."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    sns.boxplot(data=bins, x="level", y="oracle_pass1", color="lightsteelblue", ax=ax)
    ax.set(title="oracle pass@1 by level", xlabel="level (operations)", ylabel="oracle pass@1")
    fig.tight_layout()
    return fig
