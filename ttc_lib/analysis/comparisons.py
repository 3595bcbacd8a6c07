"""Accuracies and paired differences of search methods with intervals over questions (notebook 04).

Rules
-----
* Input: the long results table of notebook 04 (``search.common.RESULT_COLUMNS``; methods named
  by ``results_table.with_methods``) and notebook 03's bins (``oracle_bin``).
* A (method, budget) is judged on the questions it ran: notebook 04 runs the headline methods on
  many questions and the full grid on a subset, so question counts differ between cells and every
  interval says its ``n_questions``.
* Seeds (and best-of-N pool subsets) are nested inside a question: ``analysis.uncertainty``
  averages a question's rows first and resamples questions.
* ``"all"`` pools the bins with the bootstrap resampling within bins (bin counts fixed); each bin
  ``"1"``, ``"2"``, … is resampled on its own.
* A difference is paired: method minus ``baseline`` on the questions both ran at that budget
  (``uncertainty.bootstrap_difference``; questions only one side ran are counted, not used).
* Dict keys are strings (JSON): method → budget → bin → interval.
"""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from ttc_lib.analysis.results_table import BASELINE, attach_bins, with_methods
from ttc_lib.analysis.uncertainty import bootstrap_difference, bootstrap_mean

ALL = "all"
BIN = "bin"


def _binned(results: pd.DataFrame, bins: pd.DataFrame, questions: Iterable[str] | None) -> pd.DataFrame:
    frame = with_methods(results)
    if questions is not None:
        frame = frame[frame.question_id.isin(set(questions))]
    if frame.empty:
        raise ValueError("no result rows on the questions given")
    return attach_bins(frame, bins, "oracle", missing="raise")[["method", "budget", "seed", "question_id", "correct",
                                                                 BIN]]


def _by_bin(frame: pd.DataFrame, fn, **options) -> dict:
    out = {ALL: fn(frame, bin_column=BIN, **options)}
    for b, part in frame.groupby(BIN, sort=True):
        out[str(int(b))] = fn(part, **options)
    return out


def accuracy_intervals(results: pd.DataFrame, bins: pd.DataFrame, *, questions: Iterable[str] | None = None,
                       methods: Iterable[str] | None = None, n_boot: int = 2000, seed: int = 0) -> dict:
    """method → budget → bin ("all", "1", …) → {estimate, ci_low, ci_high, n_questions} (module rules)."""
    frame = _binned(results, bins, questions)
    if methods is not None:
        frame = frame[frame.method.isin(set(methods))]
    out: dict = {}
    for (method, budget), part in frame.groupby(["method", "budget"], sort=True):
        out.setdefault(method, {})[str(int(budget))] = _by_bin(part, bootstrap_mean, n_boot=n_boot, seed=seed)
    return out


def differences(results: pd.DataFrame, bins: pd.DataFrame, *, baseline: str = BASELINE,
                questions: Iterable[str] | None = None, methods: Iterable[str] | None = None,
                n_boot: int = 2000, seed: int = 0) -> dict:
    """method → budget → bin → paired difference interval of method minus ``baseline`` (module
    rules), at every budget where both ran on a shared question; ``baseline`` itself is left out.
    Raises when ``baseline`` has no rows."""
    frame = _binned(results, bins, questions)
    base = frame[frame.method == baseline]
    if base.empty:
        raise ValueError(f"baseline {baseline!r} has no rows; methods present: {sorted(frame.method.unique())}")
    wanted = set(methods) if methods is not None else set(frame.method) - {baseline}
    out: dict = {}
    for (method, budget), part in frame[frame.method.isin(wanted)].groupby(["method", "budget"], sort=True):
        other = base[base.budget == budget]
        shared = set(part.question_id) & set(other.question_id)
        if not shared:
            continue
        a, b = part[part.question_id.isin(shared)], other[other.question_id.isin(shared)]
        cell = {ALL: bootstrap_difference(a, b, bin_column=BIN, n_boot=n_boot, seed=seed)}
        for bin_, part_a in a.groupby(BIN, sort=True):
            cell[str(int(bin_))] = bootstrap_difference(part_a, b[b[BIN] == bin_], n_boot=n_boot, seed=seed)
        out.setdefault(method, {})[str(int(budget))] = cell
    return out


def lookahead_versus_beam(results: pd.DataFrame, bins: pd.DataFrame, *, questions: Iterable[str] | None = None,
                          n_boot: int = 2000, seed: int = 0) -> dict:
    """"lookahead=k" → budget → {"all": …}: beam with lookahead k minus beam without it (width 4, the
    same budget in generations, rollouts included), over the questions both ran; {} when not run."""
    frame = with_methods(results)
    out: dict = {}
    for k in sorted({m for m in frame.method.unique() if m.startswith("beam[lookahead=") and "width=4" in m}):
        if k == "beam[lookahead=0,width=4]":
            continue
        cell = differences(results, bins, baseline="beam[lookahead=0,width=4]", questions=questions, methods=[k],
                           n_boot=n_boot, seed=seed).get(k, {})
        out[k.split(",")[0].removeprefix("beam[")] = {budget: {ALL: bins_[ALL]} for budget, bins_ in cell.items()}
    return out


def difference_table(diffs: dict, budgets: Iterable[int] | None = None) -> pd.DataFrame:
    """The differences as rows (method, budget, bin, estimate, ci_low, ci_high, n_questions, mean_a,
    mean_b, half_width) for display; ``budgets`` keeps only those."""
    keep = None if budgets is None else {str(int(b)) for b in budgets}
    rows = [{"method": m, "budget": int(budget), "bin": bin_, **{k: cell[k] for k in (
        "estimate", "ci_low", "ci_high", "n_questions", "mean_a", "mean_b")},
             "half_width": (cell["ci_high"] - cell["ci_low"]) / 2}
            for m, by_budget in diffs.items() for budget, by_bin in by_budget.items()
            if keep is None or budget in keep for bin_, cell in by_bin.items()]
    return pd.DataFrame(rows)


def interval_table(intervals: dict) -> pd.DataFrame:
    """``accuracy_intervals`` as rows (method, budget, bin, estimate, ci_low, ci_high, n_questions)."""
    return pd.DataFrame([{"method": m, "budget": int(budget), "bin": bin_, **cell}
                         for m, by_budget in intervals.items() for budget, by_bin in by_budget.items()
                         for bin_, cell in by_bin.items()])
