"""Figure 9 of the paper for notebook 07, with intervals over questions: the relative improvement of
the small model with compute-optimal test-time compute over the larger model's greedy pass@1, per
difficulty bin and R. Figures only: the intervals come from ``exchange_intervals``.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ttc_lib.analysis.exchange import ACCOUNTINGS


def _bar(ax, x: float, width: float, rel: dict, color, hatch: str, open_ends: list) -> None:
    """One bar with its error bar; "n/a" where undefined; an interval without an upper end is kept
    in ``open_ends`` and drawn once the axis has its final limits."""
    est = rel.get("estimate")
    if est is None:
        ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=6, rotation=90, color="grey")
        return
    ax.bar(x, est, width, color=color, hatch=hatch, edgecolor="black" if hatch else color)
    low, high = rel.get("ci_low"), rel.get("ci_high")
    if low is not None and high is not None:
        ax.errorbar(x, est, yerr=[[est - low], [high - est]], color="black", capsize=2, lw=0.8)
    elif low is not None:
        open_ends.append((x, low))


def _legend(ax, r_values: Sequence[float], colors) -> None:
    handles = [Patch(color=colors[k], label=f"R = {r}") for k, r in enumerate(r_values)]
    handles += [Patch(facecolor="white", edgecolor="black", hatch="//", label="capped budget"),
                Line2D([], [], color="black", lw=1.5, label="small model, greedy"),
                Line2D([], [], color="black", lw=0.8, ls=":", marker="^", label="no upper end")]
    ax.legend(handles=handles, fontsize=6)


def figure9(intervals: pd.DataFrame, r_values: Sequence[float], envelopes: Sequence[str], bin_kind: str):
    """Rows: accountings; columns: envelopes. Per bin, one bar per R: relative improvement (%) of
    small + test-time compute over the larger model's greedy pass@1, 95% interval over questions
    (dotted with a caret: no upper end; "n/a": the larger model answers none of the bin's
    questions); hatched: the budget was capped at the largest measured one. Black segments: the
    small model's own greedy pass@1 relative to the larger model's (no test-time compute), where
    notebook 07 decoded it."""
    fig, axes = plt.subplots(len(ACCOUNTINGS), len(envelopes), figsize=(4.4 * len(envelopes), 3.1 * len(ACCOUNTINGS)),
                             squeeze=False)
    width = 0.8 / len(r_values)
    colors = plt.get_cmap("tab10").colors
    for i, accounting in enumerate(ACCOUNTINGS):
        for j, kind in enumerate(envelopes):
            ax, open_ends = axes[i][j], []
            part = intervals[(intervals.accounting == accounting) & (intervals.envelope == kind)]
            for k, r in enumerate(r_values):
                for row in part[part.r == r].itertuples():
                    _bar(ax, row.bin + (k - (len(r_values) - 1) / 2) * width, width, row.relative, colors[k],
                         "//" if row.flag == "capped" else "", open_ends)
            for row in part.drop_duplicates("bin").itertuples():
                reference = row.small_greedy_relative
                if reference is not None and reference == reference:  # None / NaN: not decoded or undefined
                    ax.hlines(reference, row.bin - 0.45, row.bin + 0.45, color="black", lw=1.5)
            ax.axhline(0, color="grey", lw=0.8)
            bottom, top = ax.get_ylim()
            top = max(top, 0.0) + 0.12 * (top - bottom)  # room above 0 for "n/a" and open upper ends
            ax.set_ylim(bottom, top)
            for x, low in open_ends:
                ax.plot([x, x], [low, top], color="black", lw=0.8, ls=":")
                ax.plot([x], [top], marker="^", color="black", ms=3)
            ax.set(title=f"{kind} · {accounting}", xlabel=f"{bin_kind} bin (1 = easiest)",
                   ylabel="relative improvement over\nlarger model's greedy (%)" if j == 0 else None)
            bins = sorted(part.bin.unique())
            ax.set_xticks(bins)
            ax.set_xlim(min(bins) - 0.5, max(bins) + 0.5)
            if part.relative.map(lambda rel: rel.get("estimate") is None).all():
                ax.text(0.5, 0.5, "no relative gain is defined:\nthe larger model answers none of these questions",
                        ha="center", va="center", fontsize=7, transform=ax.transAxes)
    _legend(axes[0][0], r_values, colors)
    fig.tight_layout()
    return fig
