"""Figures of the efficiency-ratio study (notebook 06), drawing ``ratio_study.RatioStudy`` tables; no maths.

Figure 4 with intervals: accuracy against budget of the compute-optimal search envelope and both
baselines, with question-bootstrap bands, beside the ratio curve against each baseline in
generations and in FLOPs: a point with its interval bar where the ratio is defined, a downward
triangle at its upper bound where censored (the envelope never reaches the baseline), a grey cross
at 1 where undefined (baseline flat, no reference, all zero). Budgets on a log2 axis, ratios on a
log axis; an interval reaching 0 (censored replicates) is drawn down to the bottom of the axis.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

STYLE = {"envelope": ("tab:red", "compute-optimal envelope"), "best_of_n_weighted": ("black", "best-of-N weighted"),
         "best_fixed": ("tab:blue", "best fixed strategy (same cross-validation)"),
         "parallel": ("tab:green", "parallel revisions")}
FLOOR = 0.05  # ratios are drawn on a log axis from here


def _accuracy_panel(ax, bands: pd.DataFrame) -> None:
    for (curve, kind), g in bands.groupby(["curve", "bins"], sort=False):
        if kind == "predicted" and curve != "envelope":
            continue  # one best fixed strategy is enough to read; its predicted-bin twin is in the table
        color, label = STYLE.get(curve, ("grey", curve))
        g = g.sort_values("budget")
        style = "--" if kind == "predicted" else "-"
        ax.plot(g.budget, g.estimate, ls=style, marker="o", ms=3, color=color,
                label=label + (f" ({kind} bins)" if curve == "envelope" else ""))
        ax.fill_between(g.budget, g.ci_low, g.ci_high, color=color, alpha=0.12, linewidth=0)
    ax.set(xscale="log", ylabel="accuracy", xlabel="budget N (generations, log2)",
           title="search: envelope vs baselines (95% bands over questions)")
    ax.set_xscale("log", base=2)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def _ratio_panel(ax, table: pd.DataFrame, unit: str, paper_ratio: float) -> None:
    names = list(dict.fromkeys(table.baseline))
    for i, name in enumerate(names):
        color, label = STYLE.get(name, ("grey", name))
        for kind, filled in (("oracle", True), ("predicted", False)):
            g = table[(table.baseline == name) & (table.bins == kind)].sort_values("budget")
            shift = 2 ** (0.12 * (2 * i + (not filled) - len(names)))  # side by side at each budget
            x = g.budget.to_numpy(float) * shift
            ok = (g.status == "defined").to_numpy()
            est = g.estimate.to_numpy(float)
            low = np.maximum(g.ci_low.to_numpy(float), FLOOR)
            high = g.ci_high.to_numpy(float)
            ax.errorbar(x[ok], est[ok], yerr=[est[ok] - low[ok], high[ok] - est[ok]], fmt="o", ms=4, capsize=2,
                        color=color, mfc=color if filled else "white", label=f"{label}, {kind} bins")
            cens = (g.status == "censored").to_numpy()
            ax.plot(x[cens], g.ratio_bound.to_numpy(float)[cens], "v", color=color, mfc=color if filled else "white",
                    ms=6, ls="none")
            ax.plot(x[~ok & ~cens], np.ones((~ok & ~cens).sum()), "x", color="grey", ms=5, ls="none")
    ax.plot([], [], "v", color="grey", label="censored (at the ratio's upper bound)")
    ax.plot([], [], "x", color="grey", label="undefined (baseline flat / no reference / all zero)")
    ax.axhline(1, color="grey", lw=0.8)
    ax.axhline(paper_ratio, color="grey", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xscale("log", base=2)
    ax.set_ylim(bottom=FLOOR)
    ax.set(xlabel="baseline budget B", ylabel="efficiency ratio (log)",
           title=f"ratio in {unit} (dotted: the paper's {paper_ratio:g}x)")
    ax.grid(alpha=0.3)


def figure4_ratio(bands: pd.DataFrame, table: pd.DataFrame, envelope: str = "search", paper_ratio: float = 4.0):
    """Three panels: accuracy vs budget with bands (``RatioStudy.bands``), then the ratio curve of the
    ``envelope`` against each baseline in generations and in FLOPs (``RatioStudy.table``; filled
    markers: oracle bins, hollow: predicted bins)."""
    rows = table[table.envelope == envelope]
    if rows.empty:
        raise ValueError(f"no ratio rows for envelope {envelope!r}; has {sorted(set(table.envelope))}")
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    _accuracy_panel(axes[0], bands)
    _ratio_panel(axes[1], rows[rows.unit == "generations"], "generations", paper_ratio)
    _ratio_panel(axes[2], rows[rows.unit == "flops"], "FLOPs", paper_ratio)
    axes[1].legend(fontsize=6, loc="best")
    fig.tight_layout()
    return fig
