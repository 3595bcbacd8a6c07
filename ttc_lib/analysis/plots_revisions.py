"""Figures of notebook 05 (revisions) with intervals over questions: pass@1 by revision step, and
accuracy against the sequential:parallel ratio (the paper's Figures 6 and 7). Figures only: the
intervals come from ``revision_intervals``; each function returns the matplotlib Figure.
"""

from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def pass1_by_step(step_ci: Mapping[str, Mapping]):
    """pass@1 of the t-th attempt of a chain with its 95% band over questions, from a
    ``pass1_step_ci`` dict ({step: interval})."""
    steps = sorted(step_ci, key=int)
    x = np.array([int(s) for s in steps])
    est, low, high = (np.array([float(step_ci[s][k]) for s in steps]) for k in ("estimate", "ci_low", "ci_high"))
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(x, est, marker="o", color="tab:blue", label="pass@1")
    ax.fill_between(x, low, high, color="tab:blue", alpha=0.2, linewidth=0, label="95% interval over questions")
    n = step_ci[steps[0]].get("n_questions")
    ax.set(xlabel="revision step (attempt number)", ylabel="pass@1", xticks=x,
           title=f"pass@1 by revision step ({n} questions)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def accuracy_vs_ratio(ratios: pd.DataFrame, hue: str = "bin", method: str | None = "hierarchical", title: str = ""):
    """One panel per budget N: accuracy against the ratio length / chains (log2; left parallel,
    right sequential) with 95% error bars over questions, one line per ``hue`` value — per
    difficulty bin (``hue="bin"``, one ``method``) or per method on all questions
    (``hue="method"``). ``ratios``: a ``revision_intervals.ratio_intervals`` table."""
    if hue not in ("bin", "method"):
        raise ValueError(f"hue must be 'bin' or 'method', got {hue!r}")
    part = ratios[ratios["bin"] != "all"] if hue == "bin" else ratios[ratios["bin"] == "all"]
    if hue == "bin" and method is not None:
        part = part[part.method == method]
    if part.empty:
        raise ValueError(f"no ratio intervals to draw for hue={hue!r}, method={method!r}")
    budgets = sorted(part.budget.unique())
    values = sorted(part[hue].unique(), key=lambda v: (len(str(v)), str(v)))
    colors = dict(zip(values, sns.color_palette("viridis" if hue == "bin" else "tab10", n_colors=len(values))))
    fig, axes = plt.subplots(1, len(budgets), figsize=(4.2 * len(budgets), 3.6), squeeze=False, sharey=True)
    for ax, budget in zip(axes[0], budgets):
        for k, value in enumerate(values):
            g = part[(part.budget == budget) & (part[hue] == value)].sort_values("ratio")
            shift = 2 ** ((k - (len(values) - 1) / 2) * 0.04)  # side by side, so the bars stay readable
            ax.errorbar(g.ratio * shift, g.estimate, yerr=[g.estimate - g.ci_low, g.ci_high - g.estimate],
                        marker="o", ms=4, capsize=2, color=colors[value], label=f"{hue} {value}")
        ticks = part[part.budget == budget].drop_duplicates("ratio").sort_values("ratio")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks.ratio, ticks.ratio_label, fontsize=7)
        ax.set(xlabel="sequential : parallel (length : chains)", title=f"N = {budget}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (95% interval over questions)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(title or ("accuracy vs sequential:parallel ratio" + (f" ({method})" if hue == "bin" else "")), y=1.02)
    fig.tight_layout()
    return fig
