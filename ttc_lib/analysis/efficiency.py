"""Efficiency ratios: how much less compute an envelope needs to match a baseline curve.

For each budget B of a baseline curve (best-of-N weighted), the smallest cost at which the
envelope reaches the baseline's accuracy, linear interpolation on a log-cost axis, and the ratio
B / that cost; in generations (the budget) and in FLOPs (verifier included). A nondecreasing
curve against itself gives exactly 1. Curves come from ``results_table.per_question`` tables;
envelopes from ``compute_optimal.cross_validated_envelope``.
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


def efficiency_ratio(baseline: pd.DataFrame, envelope: pd.DataFrame, cost: str = "budget") -> pd.DataFrame:
    """Per baseline point (cost B, accuracy a): the envelope's matching cost and the ratio
    B / matching cost. Both frames have ``cost`` and ``accuracy`` columns (one row per point).

    When the envelope never reaches a (it is *below* the baseline there) and it was measured at
    B, the exchange is read the other way: the cost B' at which the *baseline* reaches the
    envelope's accuracy at B, ratio B' / B < 1 (flag "envelope_below"; "envelope_below_bound"
    when even the baseline's smallest cost beats it: the ratio is at most the value). Else NaN
    ("not_reached"). A nondecreasing curve against itself gives 1 everywhere.
    """
    env, base = envelope.sort_values(cost), baseline.sort_values(cost)
    ex, ey = env[cost].to_numpy(float), env.accuracy.to_numpy(float)
    bx, by = base[cost].to_numpy(float), base.accuracy.to_numpy(float)
    rows = []
    for base_cost, acc in zip(bx, by):
        matched, flag = matching_cost(ex, ey, acc)
        ratio = base_cost / matched if matched == matched else math.nan
        if flag == "not_reached" and ex[0] <= base_cost <= ex[-1]:
            below = interpolate_log(ex, ey, base_cost)
            inverse, inverse_flag = matching_cost(bx, by, below)
            ratio, flag = inverse / base_cost, ("envelope_below_bound" if inverse_flag else "envelope_below")
        rows.append({cost: base_cost, "accuracy": acc, "matched_" + cost: matched, "ratio": ratio, "flag": flag})
    return pd.DataFrame(rows)


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


def efficiency_ratios(baseline: pd.DataFrame, envelope: Envelope) -> pd.DataFrame:
    """Efficiency ratio per split and baseline budget, in generations (``unit="budget"``) and in
    FLOPs (``unit="flops"``): the curves of ``efficiency_ratio`` stacked with split and unit."""
    frames = []
    for split, curve in envelope.overall.groupby("split"):
        for unit, column in (("budget", "budget"), ("flops", "total_flops")):
            env = curve.groupby(column, as_index=False).accuracy.max() if column == "total_flops" else curve
            ratio = efficiency_ratio(baseline, env, cost=column).rename(columns={column: "cost",
                                                                                 "matched_" + column: "matched"})
            ratio["budget"] = baseline.sort_values(column).budget.to_numpy()
            frames.append(ratio.assign(split=split, unit=unit))
    return pd.concat(frames, ignore_index=True)


def ratio_at(ratios: pd.DataFrame, budget: int, unit: str = "budget") -> dict:
    """{mean, std} of the ratio at one baseline budget over splits (NaN ratios left out), with
    the number of splits and of each flag."""
    rows = ratios[(ratios.budget == budget) & (ratios.unit == unit)]
    values = rows.ratio.to_numpy(float)
    finite = values[np.isfinite(values)]
    return {"mean": float(finite.mean()) if len(finite) else None,
            "std": float(finite.std(ddof=1)) if len(finite) > 1 else (0.0 if len(finite) else None),
            "splits": int(len(values)), "not_reached": int((rows.flag == "not_reached").sum()),
            "lower_bound": int((rows.flag == "lower_bound_ratio").sum()),
            "envelope_below": int(rows.flag.str.startswith("envelope_below").sum()), "budget": int(budget)}


def largest_common_budget(baseline: pd.DataFrame, envelope: Envelope) -> int:
    common = sorted(set(baseline.budget) & set(envelope.overall.budget))
    if not common:
        raise ValueError("the baseline and the envelope share no budget")
    return int(common[-1])


def ratios_of_envelopes(search: pd.DataFrame, envelopes: dict) -> tuple[pd.DataFrame, dict]:
    """Every envelope against best-of-N weighted of the search table on the envelope's own questions:
    (ratio table of all envelopes, {"budget": ..., "flops": ...} -> kind -> bin kind -> ``ratio_at``
    at the largest budget both curves share)."""
    frames, detail = [], {}
    for (kind, bin_kind), env in envelopes.items():
        base = baseline_curve(search, questions=env.by_question.question_id.unique())
        ratios = efficiency_ratios(base, env).assign(envelope=kind, bins=bin_kind)
        frames.append(ratios)
        at = largest_common_budget(base, env)
        for unit in ("budget", "flops"):
            detail.setdefault(unit, {}).setdefault(kind, {})[bin_kind] = ratio_at(ratios, at, unit)
    return pd.concat(frames, ignore_index=True), detail


def mean_and_std(detail: dict) -> dict:
    """kind -> bin kind -> {mean, std} of one unit of ``ratios_of_envelopes``' detail."""
    return {kind: {b: {"mean": d["mean"], "std": d["std"]} for b, d in by_bins.items()} for kind, by_bins in detail.items()}


def ratios_overview(detail: dict) -> pd.DataFrame:
    """One row per (kind, bin kind): the ratio in generations and in FLOPs (mean ± std over splits), the
    budget it is read at, and how many splits were not reached / lower bounds / below the baseline."""
    return pd.DataFrame({(kind, b): {"ratio (generations)": f"{d['mean']} ± {d['std']}",
                                     "ratio (FLOPs)": f"{detail['flops'][kind][b]['mean']} ± "
                                                      f"{detail['flops'][kind][b]['std']}",
                                     **{k: d[k] for k in ("budget", "not_reached", "lower_bound", "envelope_below")}}
                         for kind, by_bins in detail["budget"].items() for b, d in by_bins.items()}).T


def versus_parallel(parallel: pd.DataFrame, envelope: Envelope) -> dict:
    """``ratio_at`` (generations) of a revisions envelope against best-of-N parallel sampling with the
    revision model (``method_curve``), at the largest budget both share."""
    ratios = efficiency_ratios(parallel[["budget", "accuracy", "generations", "total_flops"]], envelope)
    return ratio_at(ratios, largest_common_budget(parallel, envelope), "budget")
