"""The efficiency ratio as a curve over the baseline's budget, defined only where it means something.

The paper's question: how much less compute does the compute-optimal strategy need to reach the
accuracy that the baseline reaches with budget B? Here, on curves (a cost column: ``budget``,
``generations`` or ``total_flops``, and ``accuracy``):

* both curves become monotone hulls: the best accuracy at a cost <= c (``monotone_hull``);
* the ratio at B is B / the smallest cost at which the envelope's hull reaches the baseline's hull
  at B, linear in log(cost) between the envelope's measured points (``efficiency.matching_cost``);
* it is defined only where the baseline still improves: its hull at B exceeds its hull at B/4 by
  more than ``improvement_margin`` (the caller's interval half-width) and B is the first cost at
  which the baseline reaches that accuracy. Elsewhere the row says why not (``ratio_curve``):
  "baseline_flat", "no_reference" (nothing measured at <= B/4), "all_zero" (the baseline's accuracy
  is 0 up to B), "censored" (the envelope's hull never reaches the target: counted, never dropped);
* a ratio < 1 (the envelope is worse) is a value like any other: never read "the other way";
* ``aggregate_ratios`` summarises the defined ratios by geometric mean and median and counts the
  rest, which never enter the estimate;
* ``best_fixed_strategy`` is the second baseline: the one method per budget, for all bins at once,
  that the same 2-fold cross-validation (the same halves) as ``compute_optimal`` picks, so that
  choosing per difficulty is credited only with what it adds.

``efficiency`` (the earlier reading) is left as it is; notebook 06 reports these ratios with
question-bootstrap intervals (``ratio_bootstrap``, ``ratio_study``).
"""

from __future__ import annotations

import math
import numbers
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from ttc_lib.analysis.compute_optimal import Envelope, candidate_rows
from ttc_lib.analysis.efficiency import matching_cost

STATUSES = ("defined", "censored", "baseline_flat", "no_reference", "all_zero")
TOL = 1e-12  # accuracies closer than this are equal
QUARTER = 4.0  # the improvement is checked against the baseline's hull at B / QUARTER
ENVELOPE_COLUMNS = ["split", "bin", "budget", "question_id", "method", "accuracy", "generations", "total_flops"]


def _check_curve(curve: pd.DataFrame, cost: str, what: str) -> None:
    missing = [c for c in (cost, "accuracy") if c not in curve.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}")
    if curve.empty:
        raise ValueError(f"{what} is empty")
    costs, acc = curve[cost].to_numpy(float), curve.accuracy.to_numpy(float)
    if not np.all(np.isfinite(costs)) or np.any(costs <= 0):
        raise ValueError(f"{what}: {cost} must be finite and positive, got {sorted(set(costs.tolist()))[:5]}")
    if not np.all(np.isfinite(acc)):
        raise ValueError(f"{what}: accuracy must be finite (no NaN)")


def monotone_hull(curve: pd.DataFrame, cost: str = "budget") -> pd.DataFrame:
    """``cost`` (distinct, ascending) and ``accuracy``: the best accuracy of ``curve`` at a cost
    <= that cost. Rows sharing a cost count once, with their best accuracy."""
    _check_curve(curve, cost, "curve")
    best = curve.groupby(cost).accuracy.max().sort_index()
    return pd.DataFrame({cost: best.index.to_numpy(), "accuracy": np.maximum.accumulate(best.to_numpy(float))})


def hull_at(hull: pd.DataFrame, at: float, cost: str = "budget") -> float:
    """The hull's value at cost ``at``: its best accuracy at a cost <= ``at`` (a relative 1e-9 of
    slack for floating costs); NaN when nothing is measured there."""
    costs = hull[cost].to_numpy(float)
    i = int(np.searchsorted(costs, at * (1 + 1e-9), side="right")) - 1
    return float(hull.accuracy.iloc[i]) if i >= 0 else math.nan


def _margin(margin, at: float, budget) -> float:
    if isinstance(margin, numbers.Real):
        value = float(margin)
    else:
        table = dict(margin)
        key = next((k for k in (at, budget) if k is not None and k in table), None)
        if key is None:
            raise ValueError(f"improvement_margin has no entry for cost {at:g}" +
                             (f" (budget {budget})" if budget is not None else ""))
        value = float(table[key])
    if not value >= 0:
        raise ValueError(f"improvement_margin must be >= 0, got {value}")
    return value


def ratio_curve(baseline: pd.DataFrame, envelope: pd.DataFrame, cost: str = "budget",
                improvement_margin: float | Mapping[float, float] = 0.0) -> pd.DataFrame:
    """One row per distinct baseline cost B: the efficiency ratio of ``envelope`` over ``baseline``.

    Both frames have ``cost`` and ``accuracy`` columns (any further columns are ignored; rows at
    one cost count once, with their best accuracy). ``improvement_margin``: a float, or a mapping
    from the baseline's cost (or, failing that, its ``budget``) to the margin at that point.

    Columns: ``cost``; ``budget`` (when the baseline has one and ``cost`` is another column);
    ``ratio`` (NaN unless defined); ``status`` (one of ``STATUSES``); ``reason`` ("" when defined);
    ``matched_cost`` (the envelope's log-interpolated cost reaching the target); ``bound``: ""
    (exact), "at_least" (the envelope's first measured point already beats the target: the true
    ratio may be larger) or "below" (censored: the true ratio, if any, is below ``ratio_bound`` =
    B / the envelope's largest cost); ``baseline_hull`` (the target), ``baseline_hull_quarter``
    (at B/4), ``margin``, ``envelope_hull`` (the envelope's hull at B) and ``envelope_best``.

    Rules, in order: the baseline's hull at B is 0 -> "all_zero"; nothing measured at <= B/4 ->
    "no_reference"; the hull gains no more than the margin from B/4 to B, or had reached its value
    at B at a smaller cost -> "baseline_flat"; the envelope's hull never reaches it -> "censored";
    else "defined" with ratio B / matched_cost (< 1 when the envelope needs more). Any
    curve against itself is 1 at every defined B, monotone or not.
    """
    _check_curve(baseline, cost, "baseline")
    _check_curve(envelope, cost, "envelope")
    base_hull, env_hull = monotone_hull(baseline, cost), monotone_hull(envelope, cost)
    if cost != "budget" and "budget" in baseline.columns:
        budget_of = baseline.groupby(cost).budget.first()
    else:
        budget_of = None
    ex, ey = env_hull[cost].to_numpy(float), env_hull.accuracy.to_numpy(float)
    rows, previous = [], None
    for at, target in zip(base_hull[cost], base_hull.accuracy.to_numpy(float)):
        budget, b = (None if budget_of is None else budget_of.loc[at]), float(at)
        m = _margin(improvement_margin, b, budget)
        quarter = hull_at(base_hull, b / QUARTER, cost)
        row = {cost: at, "ratio": math.nan, "status": "defined", "reason": "", "matched_cost": math.nan,
               "bound": "", "ratio_bound": math.nan, "baseline_hull": target, "baseline_hull_quarter": quarter,
               "margin": m, "envelope_hull": hull_at(env_hull, b, cost), "envelope_best": float(ey[-1])}
        if budget_of is not None:
            row["budget"] = budget
        if target <= TOL:
            row.update(status="all_zero", reason="the baseline's accuracy is 0 at every cost <= B")
        elif math.isnan(quarter):
            row.update(status="no_reference", reason=f"the baseline is not measured at a cost <= B/{QUARTER:g}")
        elif previous is not None and target <= previous + TOL:
            first = float(base_hull[cost][base_hull.accuracy >= target - TOL].iloc[0])
            row.update(status="baseline_flat", reason=f"the baseline already reached {target:.4g} at {first:g}")
        elif target - quarter <= m + TOL:
            row.update(status="baseline_flat", reason=f"the baseline gains {target - quarter:.4g} from "
                                                      f"B/{QUARTER:g} to B, not more than the margin {m:.4g}")
        else:
            matched, flag = matching_cost(ex, ey, target)
            if flag == "not_reached":
                row.update(status="censored", bound="below", ratio_bound=b / ex[-1],
                           reason=f"the envelope's best {ey[-1]:.4g} stays below {target:.4g}")
            else:
                row.update(ratio=b / matched, matched_cost=matched, bound="at_least" if flag else "")
        rows.append(row)
        previous = target
    front = [cost] + (["budget"] if budget_of is not None else [])
    frame = pd.DataFrame(rows)
    return frame[front + [c for c in frame.columns if c not in front]]


def aggregate_ratios(ratios: pd.DataFrame | Iterable[pd.DataFrame]) -> dict:
    """Summary over splits / replicates of ``ratio_curve`` rows of ONE baseline cost (filter first).

    The estimate uses the "defined" rows only: ``geometric_mean`` (exp of the mean log ratio: 0.5 and
    2 give 1) and ``median`` of their ratios, ``log_std`` (std of the log ratios), ``min`` / ``max``
    (None when none is defined). Every other row is counted, never averaged in: ``counts`` per
    status, ``total``; and among the defined, ``below_one`` (the envelope is worse) and
    ``at_least`` (lower bounds).
    """
    frame = ratios if isinstance(ratios, pd.DataFrame) else pd.concat(list(ratios), ignore_index=True)
    missing = [c for c in ("ratio", "status") if c not in frame.columns]
    if missing:
        raise ValueError(f"ratios lack column(s) {missing} (rows of ratio_curve)")
    unknown = sorted(set(frame.status) - set(STATUSES))
    if unknown:
        raise ValueError(f"unknown status(es) {unknown}; expected {list(STATUSES)}")
    defined = frame[frame.status == "defined"]
    values = defined.ratio.to_numpy(float)
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError("a defined ratio must be finite and positive")
    logs = np.log(values)
    bounds = defined.bound if "bound" in defined.columns else pd.Series("", index=defined.index)
    return {"geometric_mean": float(np.exp(logs.mean())) if len(values) else None,
            "median": float(np.median(values)) if len(values) else None,
            "log_std": float(logs.std(ddof=1)) if len(values) > 1 else (0.0 if len(values) else None),
            "min": float(values.min()) if len(values) else None, "max": float(values.max()) if len(values) else None,
            "defined": int(len(values)), "total": int(len(frame)),
            "counts": {s: int((frame.status == s).sum()) for s in STATUSES},
            "below_one": int((values < 1).sum()), "at_least": int((bounds == "at_least").sum())}


def split_ratio_curves(baseline: pd.DataFrame | Envelope, envelope: Envelope, cost: str = "budget",
                       improvement_margin: float | Mapping[float, float] = 0.0) -> pd.DataFrame:
    """``ratio_curve`` per split of ``envelope.overall``, stacked with a ``split`` column. The baseline
    is one curve for every split, or an Envelope (e.g. ``best_fixed_strategy``) paired split by split."""
    frames = []
    for split, curve in envelope.overall.groupby("split"):
        if isinstance(baseline, Envelope):
            base = baseline.overall[baseline.overall.split == split]
            if base.empty:
                raise ValueError(f"the baseline envelope has no split {split}")
        else:
            base = baseline
        frames.append(ratio_curve(base, curve, cost, improvement_margin).assign(split=split))
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------ the best fixed strategy
def cross_validation_halves(table: pd.DataFrame, *, n_splits: int = 10,
                            seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """Per split, the two halves of ``compute_optimal.cross_validated_envelope`` (same ``table``,
    ``n_splits``, ``seed``), pooled over bins: each bin of two or more questions is split in two
    random halves with the same random draws as there; bins of one question are in neither half."""
    questions_of = {b: sorted(g.question_id.unique()) for b, g in table.groupby("bin")}
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_splits):
        first, second = [], []
        for qs in questions_of.values():
            if len(qs) < 2:
                continue
            order = rng.permutation(len(qs))
            first += [qs[j] for j in np.sort(order[: len(qs) // 2])]
            second += [qs[j] for j in np.sort(order[len(qs) // 2:])]
        out.append((first, second))
    return out


def pick(accuracy: np.ndarray, flops: np.ndarray, names: list[str]) -> int:
    """Row (method) of the best mean accuracy over the columns given; ties go to the lower mean
    FLOPs, then the name (the selection rule of ``compute_optimal``)."""
    means, costs = accuracy.mean(axis=1), flops.mean(axis=1)
    return min(range(len(names)), key=lambda i: (-round(float(means[i]), 12), float(costs[i]), names[i]))


def best_fixed_strategy(table: pd.DataFrame, *, n_splits: int = 10, seed: int = 0,
                        methods: Iterable[str] | None = None, name: str = "best fixed") -> Envelope:
    """The best single method per budget, chosen for all bins at once by the 2-fold cross-validation
    of ``compute_optimal.cross_validated_envelope`` on the same halves (``cross_validation_halves``).

    ``table``: ``per_question`` rows with a ``bin`` column, as for the envelope. At each budget and
    split, the method with the best mean accuracy over one half (all bins pooled; ties: lower mean
    FLOPs, then name) is charged on the other half, then the halves swap; candidates are the methods
    run on every question of the halves. A question alone in its bin is charged with the method
    chosen on all other questions, as in the envelope. Returns an ``Envelope`` whose ``overall`` is
    the curve to compare with the envelope's (split by split: ``split_ratio_curves``).
    """
    table = candidate_rows(table, n_splits, methods)
    halves = cross_validation_halves(table, n_splits=n_splits, seed=seed)
    bin_of = table.groupby("question_id").bin.first()
    paired = sorted(halves[0][0] + halves[0][1])
    column = {q: j for j, q in enumerate(paired)}
    rows = []
    for budget, sub in table.groupby("budget"):
        for q in sorted(set(bin_of.index) - set(paired)):  # alone in its bin
            rows += [(split, *row) for split in range(n_splits) for row in _chosen_without(sub, q, bin_of[q])]
        if not paired:
            continue
        wide = {v: sub.pivot(index="method", columns="question_id", values=v).reindex(columns=paired)
                for v in ("accuracy", "total_flops", "generations")}
        keep = wide["accuracy"].notna().all(axis=1)
        names = list(wide["accuracy"].index[keep])
        if not names:
            continue
        acc, flops, gens = (wide[v][keep].to_numpy(float) for v in ("accuracy", "total_flops", "generations"))
        for split, (first, second) in enumerate(halves):
            for select, evaluate in ((first, second), (second, first)):
                cols = [column[q] for q in select]
                i = pick(acc[:, cols], flops[:, cols], names)
                rows += [(split, bin_of[q], int(budget), q, names[i], acc[i, column[q]], gens[i, column[q]],
                          flops[i, column[q]]) for q in evaluate]
    frame = pd.DataFrame(rows, columns=ENVELOPE_COLUMNS)
    return Envelope(frame.sort_values(["split", "budget", "question_id"], ignore_index=True), name)


def _chosen_without(sub: pd.DataFrame, question: str, bin_: int) -> list[tuple]:
    """(bin, budget, question, method, accuracy, generations, flops) of ``question`` at the budget of
    ``sub``, with the method chosen on the other questions (methods that also ran ``question``)."""
    mine = sub[sub.question_id == question].set_index("method")
    others = sub[(sub.question_id != question) & sub.method.isin(mine.index)]
    if others.empty:
        return []
    stats = others.groupby("method").agg(acc=("accuracy", "mean"), flops=("total_flops", "mean"))
    best = stats.index[pick(stats[["acc"]].to_numpy(float), stats[["flops"]].to_numpy(float), list(stats.index))]
    row = mine.loc[best]
    return [(int(bin_), int(row.budget), question, best, float(row.accuracy), float(row.generations),
             float(row.total_flops))]
