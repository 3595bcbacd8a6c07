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


def step_roc(step_tables: dict[str, pd.DataFrame]):
    """Two panels per verifier: the ROC of its step scores against the oracle over all steps, and
    within questions (each question's mean score removed). ``step_tables``: name -> a table with
    columns question_id, score, oracle (``verifier_quality.step_table``). A table whose steps are all
    right or all wrong has no ROC and is left out, said in a printed line."""
    from ttc_lib.analysis.auroc import roc_curve

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for name, table in step_tables.items():
        if table.oracle.nunique() < 2:  # a barely trained policy (ci) may get no step right
            print(f"{name}: no ROC, the test steps are all {'right' if table.oracle.all() else 'wrong'}")
            continue
        centred = table.score - table.groupby("question_id").score.transform("mean")
        for ax, values in ((axes[0], table.score), (axes[1], centred)):
            fpr, tpr, _ = roc_curve(values, table.oracle)
            ax.plot(fpr, tpr, label=name)
    for ax, title in zip(axes, ("global ROC (steps of all questions)", "within-question ROC (question mean removed)")):
        ax.plot([0, 1], [0, 1], color="grey", ls=":")
        ax.set(title=title, xlabel="false positive rate", ylabel="true positive rate")
    if axes[1].lines[1:]:
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def accuracy_vs_n_by_verifier(summary: pd.DataFrame, verifiers: Sequence[str]):
    """Accuracy vs N of every verifier's weighted (last/min/prod) and best-of-N (last) selection, one
    panel per verifier, with majority and pass@N (which use no verifier) drawn in every panel."""
    plot = summary.copy()
    plot["verifier"] = plot.method.str.extract(r"\[(\w+):")[0]
    plot["rule"] = plot.method.str.replace(r"\[\w+:", "[", regex=True)
    shared = plot[plot.verifier.isna()]
    plot = plot[plot.verifier.notna() & plot.rule.isin(["weighted[last]", "weighted[min]", "weighted[prod]",
                                                         "best_of_n[last]"])]
    plot = pd.concat([plot] + [shared.assign(verifier=v) for v in verifiers])
    grid = sns.relplot(data=plot, x="n", y="accuracy", hue="rule", col="verifier", col_wrap=3, kind="line",
                       marker="o", height=2.8, facet_kws={"sharey": True})
    grid.set(xscale="log")
    return grid


def figure4_search(search: pd.DataFrame, baseline: pd.DataFrame, curves: pd.DataFrame, by_bin: pd.DataFrame,
                   bins: pd.DataFrame, questions: Sequence[str]):
    """The paper's Figure 4 for search: left, every method (beam search coloured), best-of-N weighted
    and the compute-optimal envelope (oracle and predicted bins, band ± std over splits) on
    ``questions``; right, the oracle-bin envelope per bin against best-of-N weighted (dashed)."""
    from ttc_lib.analysis.results_table import BASELINE, attach_bins

    per_method = search[search.question_id.isin(questions)].groupby(["method", "budget"]).accuracy.mean().reset_index()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    for method, g in per_method.groupby("method"):
        beam = method.startswith("beam")
        axes[0].plot(g.budget, g.accuracy, color=None if beam else "lightgrey", lw=1.2 if beam else 0.8,
                     marker="." if beam else None, label=method if beam else None, zorder=1)
    axes[0].plot(baseline.budget, baseline.accuracy, color="black", marker="o", label="best-of-N weighted", zorder=2)
    _envelope_lines(axes[0], curves[curves.envelope == "search"], "tab:red", "compute-optimal")
    axes[0].set(xscale="log", xlabel="generation budget N", ylabel="accuracy", title="search: all questions")
    axes[0].legend(fontsize=7)
    binned = attach_bins(search, bins, "oracle")
    base_bins = binned[binned.method == BASELINE].groupby(["bin", "budget"]).accuracy.mean().reset_index()
    for b, g in by_bin[(by_bin.envelope == "search") & (by_bin.bins == "oracle")].groupby("bin"):
        line, = axes[1].plot(g.budget, g.accuracy, marker="s", label=f"bin {b}")
        base_b = base_bins[base_bins.bin == b]
        axes[1].plot(base_b.budget, base_b.accuracy, ls="--", color=line.get_color())
    axes[1].set(xscale="log", xlabel="generation budget N", ylabel="accuracy",
                title="per oracle bin (dashed: best-of-N weighted)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _envelope_lines(ax, curves: pd.DataFrame, color: str, label: str) -> None:
    """An envelope per bin kind (oracle solid, predicted dashed) with its ± std band over splits."""
    for bin_kind, style in (("oracle", "-"), ("predicted", "--")):
        c = curves[curves.bins == bin_kind]
        ax.plot(c.budget, c.accuracy, ls=style, color=color, marker="s", label=f"{label} ({bin_kind} bins)", zorder=3)
        ax.fill_between(c.budget, c.accuracy - c.accuracy_std, c.accuracy + c.accuracy_std, color=color, alpha=0.12)


def figure8_revisions(revisions: pd.DataFrame, parallel: pd.DataFrame, baseline: pd.DataFrame, curves: pd.DataFrame):
    """The paper's Figure 8: every revision method (grey), best-of-N parallel with the revision model,
    best-of-N weighted of notebook 04 on the same questions, and the compute-optimal revisions envelope."""
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    for _, g in revisions.groupby(["method", "budget"]).accuracy.mean().reset_index().groupby("method"):
        ax.plot(g.budget, g.accuracy, color="lightgrey", lw=0.8, zorder=1)
    ax.plot(parallel.budget, parallel.accuracy, color="tab:blue", marker="o", label="best-of-N parallel (revision model)")
    ax.plot(baseline.budget, baseline.accuracy, color="black", marker=".", ls=":", label="best-of-N weighted (04)")
    _envelope_lines(ax, curves[curves.envelope == "revisions"], "tab:green", "compute-optimal revisions")
    ax.set(xscale="log", xlabel="generation budget N", ylabel="accuracy", title="revisions")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
