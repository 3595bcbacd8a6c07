"""The efficiency ratio curve with a bootstrap interval over questions (vectorised over replicates).

Inputs are per-question curves on one question list (``QuestionCurve``: accuracy and FLOPs per
question and budget, e.g. a cross-validated envelope's ``by_question`` rows averaged over splits,
and a baseline's rows on the same questions). Rules:

* **Replicates**: ``resample_counts`` draws the questions with replacement *within their stratum*
  (the oracle bin: each replicate keeps the bin counts), as one (n_boot, questions) matrix of draw
  counts shared by both curves, every budget and both cost units, so each replicate compares the
  two strategies on the same resampled questions. The draws are those of ``uncertainty``'s
  stratified bootstrap for the same seed (strata sorted, questions sorted). A replicate's curve is
  the mean over its drawn questions.
* **Estimate** = ``ratio_curve.ratio_curve`` on the full data (the mean curves): B / the envelope's
  log-interpolated cost reaching the baseline's monotone hull at B. Whether a budget is reported at
  all is decided there, once, on the full data: "baseline_flat", "no_reference", "all_zero" rows
  are undefined (estimate and interval None, with the reason); "censored" rows (the envelope never
  reaches the baseline) have no estimate, their ``ratio_bound`` (the ratio, if any, is below it)
  and the share of censored replicates.
* **Improvement margin** at B = the half-width of the baseline's own bootstrap interval of accuracy
  at B: "the baseline still improves from B/4 to B" means by more than its interval.
* **A replicate's ratio** at B = c_base / c_env: the smallest (log-interpolated) costs at which the
  baseline's and the envelope's hulls reach the replicate's baseline hull at B. Where the full-data
  row is defined, the baseline first reaches its hull at B itself (c_base = B), so on the full data
  this is ``ratio_curve``'s value; in a replicate whose baseline had reached that accuracy at a
  smaller cost, c_base is that cost (never the flat-baseline inflation), so a curve against itself
  is exactly 1 in every replicate.
* **Censored replicates** (the envelope's hull never reaches the target) are counted
  (``censored`` = their share of the replicates) and never dropped: they enter the percentiles as
  the value 0, below every measured ratio. So when more than (1 - level)/2 of the replicates are
  censored, ``ci_low`` is 0: the data cannot exclude that the envelope never matches the baseline.
* **Interval**: percentiles (1 - level)/2 and (1 + level)/2 of the replicate ratios (numpy's
  linear interpolation). In generations (cost = ``budget``) and in FLOPs (``total_flops``: each
  curve's mean FLOPs per budget, resampled with the accuracy).
* **Aggregate** (``geometric_mean_interval``): the geometric mean over the budgets defined on the
  full data, per replicate from the same replicates (a censored replicate at any of them gives 0);
  censored and undefined budgets are listed, never averaged in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ttc_lib.analysis.ratio_curve import TOL, ratio_curve
from ttc_lib.analysis.uncertainty import MIN_BOOT, resample_index

LEVEL = 0.95
COSTS = ("budget", "total_flops")
TABLE_COLUMNS = ["budget", "status", "reason", "estimate", "ci_low", "ci_high", "censored", "bound",
                 "ratio_bound", "margin", "n_questions"]


@dataclass(frozen=True)
class QuestionCurve:
    """One strategy on a sorted question list: ``accuracy`` and ``flops`` of shape (questions,
    budgets), ``budgets`` ascending."""

    questions: tuple[str, ...]
    budgets: np.ndarray
    accuracy: np.ndarray
    flops: np.ndarray


def question_curve(rows: pd.DataFrame, questions: Sequence[str], name: str = "curve") -> QuestionCurve:
    """``rows`` (question_id, budget, accuracy, total_flops; several rows of one question and budget,
    e.g. splits or seeds, are averaged) on ``questions``: only the budgets at which every one of them
    has a row are kept (a curve compares the same questions at every budget); raises when none is."""
    missing = [c for c in ("question_id", "budget", "accuracy", "total_flops") if c not in rows.columns]
    if missing:
        raise ValueError(f"{name}: rows lack column(s) {missing}")
    questions = sorted(set(questions))
    if not questions:
        raise ValueError(f"{name}: no questions given")
    rows = rows[rows.question_id.isin(questions)]
    grid = rows.groupby(["question_id", "budget"])[["accuracy", "total_flops"]].mean().unstack("budget")
    grid = grid.reindex(questions)
    complete = [b for b in grid["accuracy"].columns
                if grid["accuracy"][b].notna().all() and grid["total_flops"][b].notna().all()]
    if not complete:
        raise ValueError(f"{name}: no budget has a row for each of the {len(questions)} questions "
                         f"(e.g. {questions[:3]}); has {rows.question_id.nunique()} of them")
    return QuestionCurve(tuple(questions), np.asarray(complete, float), grid["accuracy"][complete].to_numpy(float),
                         grid["total_flops"][complete].to_numpy(float))


def _check(n_boot: int, seed: int, level: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < MIN_BOOT:
        raise ValueError(f"n_boot must be an integer >= {MIN_BOOT}, got {n_boot!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be strictly between 0 and 1, got {level!r}")


def resample_counts(strata: Sequence, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, questions): how often each question is drawn in each replicate, drawn with
    replacement within its stratum (e.g. oracle bin; every replicate keeps each stratum's count)."""
    _check(n_boot, seed, LEVEL)
    strata = np.asarray(strata)
    n = len(strata)
    if n == 0:
        raise ValueError("no questions to resample")
    index = resample_index(strata, n, n_boot, seed)  # the draws of uncertainty's bootstrap
    offsets = np.arange(n_boot)[:, None] * n
    return np.bincount((offsets + index).ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def replicate_means(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(n_boot, budgets): each replicate's mean of ``values`` (questions, budgets)."""
    return counts @ values / counts.shape[1]


def _percentiles(values: np.ndarray, level: float) -> np.ndarray:
    return np.quantile(values, [(1 - level) / 2, (1 + level) / 2], axis=0)


def band(curve: QuestionCurve, counts: np.ndarray, level: float = LEVEL) -> pd.DataFrame:
    """budget, estimate (mean accuracy), ci_low, ci_high, n_questions: the curve's bootstrap band."""
    low, high = _percentiles(replicate_means(curve.accuracy, counts), level)
    return pd.DataFrame({"budget": curve.budgets, "estimate": curve.accuracy.mean(axis=0), "ci_low": low,
                         "ci_high": high, "n_questions": len(curve.questions)})


def _sorted_hull(cost: np.ndarray, accuracy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(cost, axis=1, kind="stable")
    hull = np.maximum.accumulate(np.take_along_axis(accuracy, order, axis=1), axis=1)
    return np.take_along_axis(cost, order, axis=1), hull, order


def first_cost(costs: np.ndarray, hull: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row (replicate): the smallest cost at which the monotone ``hull`` (over ascending
    ``costs``) reaches ``target``, linear in log(cost) between the point before the first one
    reaching it and that point (``efficiency.matching_cost``); NaN and reached False when none does."""
    rows = np.arange(len(costs))
    i = (hull < target[:, None] - TOL).sum(axis=1)
    reached = i < costs.shape[1]
    j = np.minimum(i, costs.shape[1] - 1)
    p = np.maximum(j - 1, 0)
    x, y, xp, yp = costs[rows, j], hull[rows, j], costs[rows, p], hull[rows, p]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = (target - yp) / (y - yp)
        between = np.exp(np.log(xp) + frac * (np.log(x) - np.log(xp)))
    cost = np.where((j == 0) | (y <= target + TOL), x, between)
    return np.where(reached, cost, np.nan), reached


def replicate_ratios(base_cost: np.ndarray, base_acc: np.ndarray, env_cost: np.ndarray,
                     env_acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ratios, censored), each (n_boot, baseline budgets): c_base / c_env per replicate and baseline
    budget (see the module doc); a censored replicate's ratio is 0."""
    base_sorted, base_hull, order = _sorted_hull(base_cost, base_acc)
    env_sorted, env_hull, _ = _sorted_hull(env_cost, env_acc)
    target = np.take_along_axis(base_hull, np.argsort(order, axis=1), axis=1)  # hull at each budget
    ratios, censored = np.zeros_like(target), np.zeros(target.shape, bool)
    for k in range(target.shape[1]):
        c_base, _ = first_cost(base_sorted, base_hull, target[:, k])
        c_env, reached = first_cost(env_sorted, env_hull, target[:, k])
        ratios[:, k] = np.where(reached, c_base / np.where(reached, c_env, 1.0), 0.0)
        censored[:, k] = ~reached
    return ratios, censored


def _costs(curve: QuestionCurve, flops_means: np.ndarray, cost: str) -> np.ndarray:
    return flops_means if cost == "total_flops" else np.broadcast_to(curve.budgets, flops_means.shape)


def _frame(curve: QuestionCurve) -> pd.DataFrame:
    return pd.DataFrame({"budget": curve.budgets, "total_flops": curve.flops.mean(axis=0),
                         "accuracy": curve.accuracy.mean(axis=0)})


def ratio_bootstrap(baseline: QuestionCurve, envelope: QuestionCurve, counts: np.ndarray, cost: str = "budget",
                    level: float = LEVEL) -> tuple[pd.DataFrame, np.ndarray]:
    """(table, replicate ratios): one row per baseline budget (``TABLE_COLUMNS``, NaN where a value
    does not exist: ``row_dict`` turns them into None), and the (n_boot, budgets) replicate ratios
    (0 where censored) for ``geometric_mean_interval``. ``counts`` from ``resample_counts`` over the
    curves' shared questions; ``cost`` "budget" (generations) or "total_flops"."""
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")
    if baseline.questions != envelope.questions or counts.shape[1] != len(baseline.questions):
        raise ValueError(f"the baseline ({len(baseline.questions)} questions), the envelope "
                         f"({len(envelope.questions)}) and counts ({counts.shape[1]}) must share one question list")
    if not 0 < level < 1:
        raise ValueError(f"level must be strictly between 0 and 1, got {level!r}")
    base_acc, env_acc = replicate_means(baseline.accuracy, counts), replicate_means(envelope.accuracy, counts)
    base_cost = _costs(baseline, replicate_means(baseline.flops, counts), cost)
    env_cost = _costs(envelope, replicate_means(envelope.flops, counts), cost)
    low, high = _percentiles(base_acc, level)
    margins = dict(zip(baseline.budgets.tolist(), ((high - low) / 2).tolist()))
    full = ratio_curve(_frame(baseline), _frame(envelope), cost, improvement_margin=margins)
    reps, censored = replicate_ratios(base_cost, base_acc, env_cost, env_acc)
    column = {b: k for k, b in enumerate(baseline.budgets.tolist())}
    rows = []
    for row in full.itertuples(index=False):
        k = column[float(row.budget)]
        share = float(censored[:, k].mean())
        out = {"budget": int(row.budget) if float(row.budget).is_integer() else float(row.budget),
               "status": row.status, "reason": row.reason, "estimate": math.nan, "ci_low": math.nan,
               "ci_high": math.nan, "censored": math.nan, "bound": row.bound, "ratio_bound": row.ratio_bound,
               "margin": row.margin, "n_questions": len(baseline.questions)}
        if row.status == "defined":
            lo, hi = _percentiles(reps[:, k], level)
            out.update(estimate=row.ratio, ci_low=lo, ci_high=hi, censored=share)
        elif row.status == "censored":
            out.update(censored=share)
        rows.append(out)
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    order = [column[float(b)] for b in table.budget]
    return table, reps[:, order]


def row_dict(row: dict) -> dict:
    """A table row as strict JSON: NaN -> None; "reason" always a string ("" when defined)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v.item() if isinstance(v, np.generic) else v)
            for k, v in row.items()}


def geometric_mean_interval(table: pd.DataFrame, reps: np.ndarray, level: float = LEVEL) -> dict:
    """The geometric mean of the defined ratios of ``table`` with its bootstrap interval (the same
    replicates ``reps``), plus ``defined_budgets``, ``censored_budgets``, ``undefined_budgets``,
    ``censored`` (share of replicates censored at some defined budget: their aggregate is 0) and
    ``reason`` (what was left out, "" when nothing). No defined budget: estimate/interval None."""
    defined = (table.status == "defined").to_numpy()
    lists = {"defined_budgets": sorted(table.budget[defined].tolist()),
             "censored_budgets": sorted(table.budget[table.status == "censored"].tolist()),
             "undefined_budgets": sorted(table.budget[~defined & (table.status != "censored")].tolist())}
    left_out = []
    if lists["censored_budgets"]:
        left_out.append(f"censored at budget(s) {lists['censored_budgets']} (the envelope never reaches the baseline)")
    if lists["undefined_budgets"]:
        statuses = sorted(set(table.status[table.budget.isin(lists["undefined_budgets"])]))
        left_out.append(f"undefined at budget(s) {lists['undefined_budgets']} ({', '.join(statuses)})")
    reason = ("not in the geometric mean: " + "; ".join(left_out)) if left_out else ""
    n = int(table.n_questions.iloc[0]) if len(table) else 0
    if not defined.any():
        return {"estimate": None, "ci_low": None, "ci_high": None, "n_questions": n, "censored": None, **lists,
                "reason": "no budget where the ratio is defined: " + "; ".join(left_out)}
    with np.errstate(divide="ignore"):
        per_replicate = np.exp(np.log(reps[:, defined]).mean(axis=1))
    low, high = _percentiles(per_replicate, level)
    estimate = float(np.exp(np.log(table.estimate[defined].to_numpy(float)).mean()))
    return {"estimate": estimate, "ci_low": float(low), "ci_high": float(high), "n_questions": n,
            "censored": float((reps[:, defined] == 0).any(axis=1).mean()), **lists, "reason": reason}
