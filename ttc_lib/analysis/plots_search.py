"""Figures of notebook 04 (search) with intervals over questions: the paper's Figure 3 — search
against best-of-N weighted per difficulty bin, with bands. Figures only: the intervals come from
``comparisons.accuracy_intervals`` (as rows: ``comparisons.interval_table``).
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

COLUMNS = ("method", "budget", "bin", "estimate", "ci_low", "ci_high", "n_questions")


def figure3_intervals(intervals: pd.DataFrame, methods: Sequence[str], budgets: Sequence[int] | None = None):
    """One panel per oracle bin (and "all"): accuracy of each of ``methods`` against the budget
    (log2 axis) with its 95% band over questions; ``budgets`` keeps only those. A method missing from
    the table is skipped; the title of each panel gives its question count."""
    missing = [c for c in COLUMNS if c not in intervals.columns]
    if missing:
        raise ValueError(f"intervals lack column(s) {missing} (rows of comparisons.interval_table)")
    table = intervals[intervals.method.isin(methods)]
    if budgets is not None:
        table = table[table.budget.isin(list(budgets))]
    if table.empty:
        raise ValueError(f"no interval rows for methods {list(methods)}")
    panels = sorted((b for b in table["bin"].unique() if b != "all"), key=int) + ["all"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), sharey=True, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, panel in zip(axes[0], panels):
        part = table[table["bin"] == panel]
        for i, method in enumerate(m for m in methods if m in set(part.method)):
            rows = part[part.method == method].sort_values("budget")
            x = rows.budget.to_numpy(float)
            ax.plot(x, rows.estimate, marker="o", color=colors[i % len(colors)], label=method)
            ax.fill_between(x, rows.ci_low, rows.ci_high, color=colors[i % len(colors)], alpha=0.18, linewidth=0)
        n = int(part.n_questions.min()) if len(part) else 0
        ax.set(xscale="log", xlabel="budget N (generations)", title=f"bin {panel} ({n} questions)",
               ylim=(-0.02, 1.02))
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xticks(np.unique(table.budget.to_numpy(float)))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (95% band over questions)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
