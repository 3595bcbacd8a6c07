"""The curves an efficiency ratio compares, and the cost at which a curve reaches an accuracy.

``baseline_curve`` (best-of-N weighted) and ``method_curve`` (e.g. parallel revisions) average
``results_table.per_question`` rows per budget; ``matching_cost`` is the smallest cost at which a
curve reaches an accuracy, linear on a log-cost axis between measured points; ``interpolate_log``
reads a curve at a cost the same way. The ratio itself — defined only where the baseline still
improves, censored cases counted — is ``ratio_curve`` (and, with intervals over questions,
``ratio_bootstrap``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
import pandas as pd

from ttc_lib.analysis.results_table import BASELINE, parse_config_key

if TYPE_CHECKING:  # annotation only: compute_optimal re-exports this module, so no runtime import
    from ttc_lib.analysis.compute_optimal import Envelope


def interpolate_log(costs: Sequence[float], values: Sequence[float], at: float) -> float:
    """Value at cost ``at``, linear in log(cost) between the neighbouring points (``costs``
    ascending); outside the range the end value is returned."""
    x, y = np.log(np.asarray(costs, float)), np.asarray(values, float)
    if len(x) == 0 or np.any(np.diff(x) <= 0):
        raise ValueError("costs must be non-empty and strictly ascending")
    return float(np.interp(math.log(at), x, y))


def matching_cost(costs: Sequence[float], values: Sequence[float], target: float) -> tuple[float, str]:
    """Smallest cost at which the curve (``costs`` ascending) reaches ``target``, linear in
    log(cost) between the point before the first one reaching it and that point.

    Returns (cost, flag): flag "" exact; "lower_bound_ratio" when even the first point reaches the
    target (the true cost may be smaller); "not_reached" (cost NaN) when no point does.
    """
    x, y = np.asarray(costs, float), np.asarray(values, float)
    if len(x) == 0 or np.any(np.diff(x) <= 0) or np.any(x <= 0):
        raise ValueError("costs must be non-empty, positive and strictly ascending")
    reached = np.nonzero(y >= target - 1e-12)[0]
    if len(reached) == 0:
        return math.nan, "not_reached"
    i = int(reached[0])
    if i == 0:
        return float(x[0]), ("" if y[0] <= target + 1e-12 else "lower_bound_ratio")
    if y[i] <= target + 1e-12:  # reached exactly at a measured point: no rounding through exp(log)
        return float(x[i]), ""
    lo, hi = math.log(x[i - 1]), math.log(x[i])
    frac = (target - y[i - 1]) / (y[i] - y[i - 1])
    return float(math.exp(lo + frac * (hi - lo))), ""


def baseline_curve(table: pd.DataFrame, method: str | None = BASELINE, questions: Iterable[str] | None = None) -> pd.DataFrame:
    """budget, accuracy, generations, total_flops of one method (None: all rows of ``table``),
    mean over ``questions`` (budgets where any of them is missing are left out)."""
    rows = table if method is None else table[table.method == method]
    if questions is not None:
        questions = set(questions)
        rows = rows[rows.question_id.isin(questions)]
        counts = rows.groupby("budget").question_id.nunique()
        rows = rows[rows.budget.isin(counts.index[counts == len(questions)])]
    if rows.empty:
        raise ValueError(f"no rows for baseline method {method!r} (on the envelope's questions)")
    return rows.groupby("budget")[["accuracy", "generations", "total_flops"]].mean().reset_index()


def method_curve(table: pd.DataFrame, strategy: str, questions: Iterable[str] | None = None,
                 vary: Sequence[str] = (), **match) -> pd.DataFrame:
    """budget, accuracy, generations, total_flops, method of the methods of ``strategy`` whose
    config is exactly ``match`` apart from the keys in ``vary`` (e.g. revisions, length=1,
    vary=("chains",): best-of-N in parallel), one method per budget."""
    rows = table[table.strategy == strategy]
    keep = [{k: v for k, v in parse_config_key(c).items() if k not in vary} == match for c in rows.config]
    rows = rows[keep]
    several = rows.groupby("budget").method.nunique()
    if (several > 1).any():
        b = int(several.idxmax())
        raise ValueError(f"{strategy} {match}: several methods at budget {b}: {sorted(rows[rows.budget == b].method.unique())}")
    curve = baseline_curve(rows, method=None, questions=questions)
    return curve.merge(rows.groupby("budget").method.first().reset_index(), on="budget")


def largest_common_budget(baseline: pd.DataFrame, envelope: Envelope) -> int:
    common = sorted(set(baseline.budget) & set(envelope.overall.budget))
    if not common:
        raise ValueError("the baseline and the envelope share no budget")
    return int(common[-1])
