"""Uncertainty over questions: paired bootstrap over questions (seeds nested inside a question;
bins resampled within bins) for an accuracy, a difference between two strategies on the same
questions, and a curve.

Rules
-----
* Input: a long table with a ``question_id`` column and a numeric value column (``correct`` 0/1,
  or a per-question ``accuracy`` from ``results_table.per_question``), optionally several rows
  per question (seeds, subsets) and optionally a bin column (``results_table.attach_bins``).
* **Seeds nested inside a question**: the rows of a question are first averaged into one
  per-question value; the *question* is the resampling unit (seed noise is part of that
  question's value, not a separate sample). Duplicating every row changes nothing.
* **Estimate** = the plain mean over questions of the per-question values. With bins it is still
  the mean over *all* questions, i.e. each bin weighted by its question count.
* **Replicates**: ``n_boot`` resamples of the questions with replacement, drawn as one
  (n_boot, n_questions) index matrix (``numpy.random.default_rng(seed)``: deterministic for a
  seed). With ``bin_column`` the questions of each bin are resampled within that bin, so every
  replicate keeps each bin's count fixed (a stratified bootstrap); a question must have one bin.
* **Interval**: the percentile interval of the replicate means, ``(1 - level)/2`` and
  ``(1 + level)/2`` quantiles (numpy's default linear interpolation). A constant gives a point.
* **Paired difference** (``bootstrap_difference``): per question ``a - b`` over the questions both
  tables hold, so each replicate uses the same resampled questions for both sides. Questions only
  one side has are left out and counted (``only_a``, ``only_b``); no shared question is an error.
* **Ratio** (``bootstrap_ratio``): mean(numerator) / mean(denominator) of two columns, both
  resampled with the same questions; a replicate over a zero denominator is dropped (a rate) or
  +inf (an unbounded ratio), as the caller says.
* **Curve** (``bootstrap_curve``): one index matrix for all x, so every replicate resamples the
  same questions at every x (coherent bands); every question must have a value at every x.
* Every number returned in a dict or a curve row is a plain Python float/int (JSON-safe).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

QUESTION = "question_id"
MIN_BOOT = 100
CURVE_COLUMNS = ["estimate", "ci_low", "ci_high", "n_questions"]  # after the x column


def _check_options(n_boot: int, level: float, seed: int) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < MIN_BOOT:
        raise ValueError(f"n_boot must be an integer >= {MIN_BOOT}, got {n_boot!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be a number strictly between 0 and 1, got {level!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer (the bootstrap is deterministic for a seed), got {seed!r}")


def _check_table(table: pd.DataFrame, columns: list[str], value: str, name: str = "table") -> None:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing} (has {list(table.columns)})")
    if table.empty:
        raise ValueError(f"{name} is empty: no questions to bootstrap over")
    if not pd.api.types.is_numeric_dtype(table[value]):
        raise ValueError(f"{name}[{value!r}] must be numeric (e.g. correct 0/1), got dtype {table[value].dtype}")
    nan = [c for c in columns if table[c].isna().any()]
    if nan:
        raise ValueError(f"{name} has NaN/missing values in column(s) {nan}")
    if not np.all(np.isfinite(table[value].to_numpy(dtype=float))):
        raise ValueError(f"{name}[{value!r}] must be finite (no inf)")


def _per_question(table: pd.DataFrame, value: str, bin_column: str | None, name: str = "table") -> pd.DataFrame:
    """One row per question (sorted by question_id): ``value`` = mean over its rows, plus its bin."""
    columns = [QUESTION, value] + ([bin_column] if bin_column else [])
    _check_table(table, columns, value, name)
    grouped = table.groupby(QUESTION, sort=True)
    out = grouped[value].mean().astype(float).to_frame(value)
    if bin_column:
        bins = grouped[bin_column].nunique()
        if (bins > 1).any():
            bad = bins[bins > 1].index[:3].tolist()
            raise ValueError(f"{name}: {int((bins > 1).sum())} question(s) have more than one "
                             f"{bin_column!r}, e.g. {bad}; a question must sit in one bin")
        out[bin_column] = grouped[bin_column].first()
    return out


def resample_index(strata: np.ndarray | None, n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) indices into the questions: resampled with replacement, within each stratum
    (stratum values sorted) when ``strata`` is given, so each replicate keeps the stratum counts.
    The one source of bootstrap draws (``ratio_bootstrap`` and ``auroc`` draw here too)."""
    rng = np.random.default_rng(seed)
    if strata is None:
        return rng.integers(0, n, size=(n_boot, n))
    blocks = []
    for stratum in np.unique(strata):  # sorted: the draw order is fixed for a seed
        members = np.flatnonzero(strata == stratum)
        blocks.append(members[rng.integers(0, len(members), size=(n_boot, len(members)))])
    return np.concatenate(blocks, axis=1)


def _replicates(values: np.ndarray, index: np.ndarray) -> tuple[float, np.ndarray]:
    """(estimate, replicate means). The estimate is the correctly rounded mean (``math.fsum``; a
    constant is returned as itself); replicates are it plus the mean of the resampled deviations
    from it, so a constant gives every replicate exactly equal to the estimate (a point)."""
    constant = bool(np.all(values == values[0]))
    estimate = float(values[0]) if constant else math.fsum(values.tolist()) / len(values)
    return estimate, estimate + (values - estimate)[index].mean(axis=1)


def _summary(estimate: float, replicates: np.ndarray, n: int, level: float) -> dict:
    low, high = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return {"estimate": float(estimate), "ci_low": float(low), "ci_high": float(high), "n_questions": int(n)}


def _strata(questions: pd.DataFrame, bin_column: str | None) -> np.ndarray | None:
    return None if bin_column is None else questions[bin_column].to_numpy()


def bootstrap_replicates(table: pd.DataFrame, value: str = "correct", *, bin_column: str | None = None,
                         n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """The ``n_boot`` replicate means behind ``bootstrap_mean`` (a numpy array, for inspecting the
    bootstrap distribution; not JSON: summaries take ``bootstrap_mean``'s dict)."""
    _check_options(n_boot, 0.95, seed)
    questions = _per_question(table, value, bin_column)
    index = resample_index(_strata(questions, bin_column), len(questions), n_boot, seed)
    return _replicates(questions[value].to_numpy(dtype=float), index)[1]


def bootstrap_mean(table: pd.DataFrame, value: str = "correct", *, bin_column: str | None = None,
                   n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Mean of ``value`` over questions with a percentile bootstrap interval over questions.

    Rows of one question (seeds, subsets) are averaged first; with ``bin_column`` questions are
    resampled within their bin (bin counts fixed) and the estimate is the mean over all questions
    (bins weighted by their counts). Returns ``{"estimate", "ci_low", "ci_high", "n_questions"}``
    as plain floats/int."""
    _check_options(n_boot, level, seed)
    questions = _per_question(table, value, bin_column)
    index = resample_index(_strata(questions, bin_column), len(questions), n_boot, seed)
    estimate, reps = _replicates(questions[value].to_numpy(dtype=float), index)
    return _summary(estimate, reps, len(questions), level)


def bootstrap_difference(a: pd.DataFrame, b: pd.DataFrame, value: str = "correct", *,
                         bin_column: str | None = None, n_boot: int = 2000, seed: int = 0,
                         level: float = 0.95) -> dict:
    """Paired bootstrap of mean(a) - mean(b) over the questions both tables hold.

    Each table's rows are averaged per question first; each replicate resamples the same shared
    questions for both sides (the per-question difference a - b is resampled), within bins when
    ``bin_column`` is given (read from ``a``; where ``b`` has it too it must agree). Returns
    ``{"estimate", "ci_low", "ci_high", "n_questions", "mean_a", "mean_b", "only_a", "only_b"}``:
    ``only_a``/``only_b`` count the questions left out because only that side had them. Raises
    when the tables share no question."""
    _check_options(n_boot, level, seed)
    qa = _per_question(a, value, bin_column, "a")
    b_bins = bin_column if bin_column and bin_column in b.columns else None
    qb = _per_question(b, value, b_bins, "b")
    shared = qa.index.intersection(qb.index).sort_values()
    only_a, only_b = len(qa) - len(shared), len(qb) - len(shared)
    if len(shared) == 0:
        raise ValueError(f"a and b share no question: a has {len(qa)} question(s), b has {len(qb)} "
                         f"(e.g. a: {qa.index[:3].tolist()}, b: {qb.index[:3].tolist()})")
    qa, qb = qa.loc[shared], qb.loc[shared]
    if b_bins is not None:
        differ = qa[bin_column].to_numpy() != qb[bin_column].to_numpy()
        if differ.any():
            raise ValueError(f"a and b put {int(differ.sum())} shared question(s) in different "
                             f"{bin_column!r}, e.g. {shared[differ][:3].tolist()}")
    diff = qa[value].to_numpy(dtype=float) - qb[value].to_numpy(dtype=float)
    index = resample_index(_strata(qa, bin_column), len(shared), n_boot, seed)
    estimate, reps = _replicates(diff, index)
    out = _summary(estimate, reps, len(shared), level)
    out.update(mean_a=float(qa[value].mean()), mean_b=float(qb[value].mean()), only_a=int(only_a), only_b=int(only_b))
    return out


def _percentile_or_none(replicates: np.ndarray, q: float) -> float | None:
    """numpy's linear percentile of the replicates, None where it reaches an infinite one."""
    ordered = np.sort(replicates)
    position = q * (len(ordered) - 1)
    low, high = int(math.floor(position)), int(math.ceil(position))
    if not np.isfinite(ordered[high]):
        return None
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def bootstrap_ratio(table: pd.DataFrame, numerator: str, denominator: str, *, bin_column: str | None = None,
                    n_boot: int = 2000, seed: int = 0, level: float = 0.95, zero: str = "drop") -> dict:
    """Paired bootstrap of mean(numerator) / mean(denominator) over questions (a ratio of sums: a
    rate such as correct→wrong revisions per correct attempt, or small / large accuracy).

    Both columns are averaged per question first (seeds nested) and every replicate resamples the
    same questions for both (within bins with ``bin_column``). A replicate whose denominator mean
    is 0 is left out (``zero="drop"``: the rate is conditional on having a denominator; counted in
    ``dropped``) or counted as +inf (``zero="unbounded"``: a ratio over 0 has no upper bound; an
    interval end that reaches such replicates is None with a ``reason``). An estimate over a zero
    denominator is undefined: estimate, ci_low, ci_high None and a ``reason``."""
    _check_options(n_boot, level, seed)
    if zero not in ("drop", "unbounded"):
        raise ValueError(f"zero must be 'drop' or 'unbounded', got {zero!r}")
    columns = [QUESTION, numerator, denominator] + ([bin_column] if bin_column else [])
    _check_table(table, columns, denominator)
    nums = _per_question(table, numerator, bin_column)
    dens = _per_question(table[[QUESTION, denominator]], denominator, None)[denominator]
    n = len(nums)
    if dens.sum() == 0:
        return {"estimate": None, "ci_low": None, "ci_high": None, "n_questions": n,
                "reason": f"the denominator {denominator!r} is 0 on every question"}
    index = resample_index(_strata(nums, bin_column), n, n_boot, seed)
    top, bottom = nums[numerator].to_numpy(float)[index].mean(axis=1), dens.to_numpy(float)[index].mean(axis=1)
    empty = bottom == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = np.where(empty, np.inf, top / np.where(empty, 1.0, bottom))
    if zero == "drop":
        reps = reps[~empty]
        if not len(reps):
            return {"estimate": None, "ci_low": None, "ci_high": None, "n_questions": n,
                    "reason": f"the denominator {denominator!r} is 0 in every resample"}
    estimate = math.fsum(nums[numerator].tolist()) / math.fsum(dens.tolist())
    low, high = (_percentile_or_none(reps, q) for q in ((1 - level) / 2, (1 + level) / 2))
    out = {"estimate": float(estimate), "ci_low": low, "ci_high": high, "n_questions": n}
    if zero == "drop":
        out["dropped"] = int(empty.sum())
    elif low is None or high is None:
        out["reason"] = (f"{denominator!r} is 0 on all resampled questions in {int(empty.sum())} of {n_boot} "
                         "resamples: the ratio has no upper bound")
    return out


def bootstrap_curve(table: pd.DataFrame, x: str = "budget", value: str = "correct", *,
                    bin_column: str | None = None, n_boot: int = 2000, seed: int = 0,
                    level: float = 0.95) -> pd.DataFrame:
    """One row per ``x`` (sorted): ``x``, estimate, ci_low, ci_high, n_questions.

    Rows are averaged per (x, question) first (seeds nested inside a question). One index matrix
    serves every x, so each replicate resamples the same questions at every x and the bands are
    coherent; every question must have a value at every x (raises naming the gaps otherwise).
    ``bin_column`` as in ``bootstrap_mean`` (a question's bin must be the same at every x)."""
    _check_options(n_boot, level, seed)
    columns = [QUESTION, x, value] + ([bin_column] if bin_column else [])
    _check_table(table, columns, value)
    grid = table.groupby([x, QUESTION], sort=True)[value].mean().astype(float).unstack(x)
    gaps = grid.isna()
    if gaps.to_numpy().any():
        where = gaps.stack()
        question, point = (v.item() if isinstance(v, np.generic) else v for v in where[where].index[0])
        raise ValueError(f"{int(gaps.to_numpy().sum())} (question, {x}) pair(s) have no value, e.g. "
                         f"question {question!r} at {x}={point!r}: every question needs every {x} "
                         f"(filter the table to complete questions first)")
    questions = _per_question(table, value, bin_column)
    if not questions.index.equals(grid.index):  # both sorted by question_id: row i is one question
        raise RuntimeError("internal: per-question bins and the x grid list different questions")
    index = resample_index(_strata(questions, bin_column), len(grid), n_boot, seed)
    rows = []
    for point in grid.columns:
        estimate, reps = _replicates(grid[point].to_numpy(dtype=float), index)
        summary = _summary(estimate, reps, len(grid), level)
        rows.append({x: point.item() if isinstance(point, np.generic) else point, **summary})
    return pd.DataFrame(rows, columns=[x] + CURVE_COLUMNS)


def interval(estimate: dict, digits: int = 2) -> str:
    """"0.62 [0.55, 0.69], 120 questions" from a ``bootstrap_mean``/``bootstrap_difference`` dict
    (or a curve row); a difference also names the questions left out, if any. An undefined interval
    (``estimate`` None, with its ``reason``) reads "undefined (reason)"."""
    if estimate.get("estimate", 0) is None:
        return f"undefined ({estimate.get('reason', 'no reason given')})"
    for key in ("estimate", "ci_low", "ci_high", "n_questions"):
        if key not in estimate:
            raise ValueError(f"interval() needs key {key!r}, got {sorted(estimate)}")
    text = (f"{estimate['estimate']:.{digits}f} [{estimate['ci_low']:.{digits}f}, {estimate['ci_high']:.{digits}f}], "
            f"{int(estimate['n_questions'])} questions")
    if estimate.get("only_a") or estimate.get("only_b"):
        text += f" (left out: {estimate.get('only_a', 0)} only in a, {estimate.get('only_b', 0)} only in b)"
    return text
