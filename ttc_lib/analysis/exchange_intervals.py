"""Test-time compute vs a larger model with intervals over questions (notebook 07, Figure 9).

Rules
-----
* **The small side per question** is the cross-validated compute-optimal envelope exactly as
  notebook 06 builds it (``envelopes.envelope_tables`` of 04/05's results, then
  ``compute_optimal.cross_validated_envelope`` with 06's ``n_splits`` and ``seed``), each
  question's accuracy averaged over the splits: in every split a question is scored once, by a
  choice made without it, so the mean over a bin's questions is 06's ``envelope_by_bin``
  accuracy — ``check_envelope`` raises where it is not (06 ran on other inputs or another rule).
* At a bin, R and accounting, a question's small value is sum(weight · its envelope accuracy at
  the measured budgets) with ``exchange.matched_point``'s weights (the matched budget, log-axis
  interpolation, capping): its mean over the bin is ``exchange_table``'s ``small_accuracy``. An
  "unaffordable" point has no value: the interval is undefined, with the reason.
* **The large side per question** is its greedy answer's ``correct`` (0/1) on the same questions.
* ``difference``: paired bootstrap (``uncertainty.bootstrap_difference``) of small − large over
  the bin's questions — ``exchange_ci``. ``relative``: (mean small / mean large − 1) · 100, a
  paired ratio bootstrap (``bootstrap_ratio``, ``zero="unbounded"``): undefined where the larger
  model answers none of the bin's questions, without an upper end where it answers none in the
  resamples that end reaches. ``small_greedy_relative``: the small model's own greedy pass@1 on
  the same questions, relative to the large model's (Figure 9's reference line; None without it).
* **The paper's side** (``paper_side``): test-time compute wins (> 0) on easy and medium bins
  when R < 1, pretraining wins (< 0) on the two hardest bins at every R; no stated side elsewhere.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from ttc_lib.analysis.compute_optimal import cross_validated_envelope
from ttc_lib.analysis.exchange import ACCOUNTINGS, matched_point
from ttc_lib.analysis.results_table import attach_bins
from ttc_lib.analysis.uncertainty import bootstrap_difference, bootstrap_ratio

HEADLINE = ("search", "arxiv")  # exchange_ci: the search envelope (always run) and the paper's accounting
INTERVAL_KEYS = ("estimate", "ci_low", "ci_high", "n_questions")


def undefined(reason: str) -> dict:
    return {"estimate": None, "ci_low": None, "ci_high": None, "reason": reason}


def envelope_per_question(tables: dict[str, pd.DataFrame], bins: pd.DataFrame, bin_kind: str,
                          kinds: Sequence[str], *, n_splits: int, seed: int) -> pd.DataFrame:
    """envelope, bin, budget, question_id, accuracy, total_flops: each question's cross-validated
    envelope accuracy (mean over splits) per envelope kind, as notebook 06 builds the envelopes."""
    missing = [k for k in kinds if k not in tables]
    if missing:
        raise ValueError(f"no results table for envelope(s) {missing} (have {sorted(tables)})")
    parts = []
    for kind in kinds:
        env = cross_validated_envelope(attach_bins(tables[kind], bins, bin_kind), n_splits=n_splits, seed=seed,
                                       name=f"{kind}/{bin_kind}")
        means = env.by_question.groupby(["bin", "budget", "question_id"])[["accuracy", "total_flops"]].mean()
        parts.append(means.reset_index().assign(envelope=kind))
    return pd.concat(parts, ignore_index=True)


def check_envelope(per_question: pd.DataFrame, envelope: pd.DataFrame, tolerance: float = 1e-9) -> None:
    """Raise unless the per-question envelope averages to ``envelope`` (06's envelope_by_bin rows of
    one bin kind: envelope, bin, budget, accuracy) at every (envelope, bin, budget)."""
    keys = ["envelope", "bin", "budget"]
    mine = per_question.groupby(keys).accuracy.mean()
    theirs = envelope.set_index(keys).accuracy
    joined = pd.concat([mine.rename("here"), theirs.rename("06")], axis=1)
    bad = joined[(joined.here - joined["06"]).abs().gt(tolerance) | joined.isna().any(axis=1)]
    if len(bad):
        first = bad.index[0]
        raise ValueError(f"the envelope rebuilt from 04/05's results differs from 06's envelope_by_bin.csv at "
                         f"{len(bad)} (envelope, bin, budget), e.g. {first}: {bad.iloc[0].to_dict()}; rerun "
                         "06_compute_optimal (its inputs or its rule changed since)")


def exchange_per_question(per_question: pd.DataFrame, greedy: pd.DataFrame, matches: dict,
                          size_ratio: float) -> pd.DataFrame:
    """envelope, accounting, r, bin, flag, question_id, small, large, small_greedy: both sides per
    question at each matched point (module rules). ``greedy``: model ("large", optionally
    "policy"), problem_id, correct."""
    answers = greedy.assign(correct=greedy.correct.astype(float)).pivot_table(
        index="problem_id", columns="model", values="correct", aggfunc="mean")
    if "large" not in answers:
        raise ValueError("greedy has no answers of model 'large'")
    rows = []
    for (kind, b), part in per_question.groupby(["envelope", "bin"]):
        wide = part.pivot(index="question_id", columns="budget", values="accuracy")
        lacking = wide.index.difference(answers.index[answers["large"].notna()])
        if len(lacking):
            raise ValueError(f"{len(lacking)} question(s) of envelope {kind!r} have no greedy answer of the larger model, e.g. "
                             f"{list(lacking[:3])}: decode them first")
        means = part.groupby("budget")[["accuracy", "total_flops"]].mean().reset_index()
        large = answers.loc[wide.index, "large"].to_numpy(float)
        small_greedy = answers.loc[wide.index, "policy"].to_numpy(float) if "policy" in answers else np.nan
        for r, match in sorted(matches.items()):
            for accounting in ACCOUNTINGS:
                point = matched_point(means, match, r, size_ratio, accounting)
                weights = point["weights"]
                small = (np.full(len(wide), np.nan) if weights is None
                         else sum(w * wide[k].to_numpy(float) for k, w in weights.items()))
                rows.append(pd.DataFrame({"envelope": kind, "accounting": accounting, "r": r, "bin": int(b),
                                          "flag": point["flag"], "question_id": wide.index, "small": small,
                                          "large": large, "small_greedy": small_greedy}))
    return pd.concat(rows, ignore_index=True)


def _relative(ratio: dict) -> dict:
    """A ratio interval as a relative improvement in percent (ratio − 1) · 100, None kept."""
    out = {k: (None if ratio.get(k) is None else (ratio[k] - 1) * 100) for k in ("estimate", "ci_low", "ci_high")}
    return {**out, "n_questions": ratio.get("n_questions"), **({"reason": ratio["reason"]} if "reason" in ratio else {})}


def exchange_intervals(paired: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (envelope, accounting, r, bin) of an ``exchange_per_question`` table: flag,
    ``difference`` (interval dict), ``relative`` (percent, interval dict), ``small_greedy_relative``."""
    rows = []
    for (kind, accounting, r, b), part in paired.groupby(["envelope", "accounting", "r", "bin"], sort=True):
        flag = part.flag.iloc[0]
        if part.small.isna().any():
            diff = rel = undefined(f"{flag}: the test-time allowance at R = {r} is below the cheapest configuration")
        else:
            a = part[["question_id", "small"]].rename(columns={"small": "correct"})
            z = part[["question_id", "large"]].rename(columns={"large": "correct"})
            diff = bootstrap_difference(a, z, "correct", n_boot=n_boot, seed=seed)
            rel = _relative(bootstrap_ratio(part, "small", "large", n_boot=n_boot, seed=seed, zero="unbounded"))
        large, greedy = part.large.mean(), part.small_greedy.mean()
        reference = None if large == 0 or math.isnan(greedy) else float((greedy / large - 1) * 100)
        rows.append({"envelope": kind, "accounting": accounting, "r": r, "bin": int(b), "flag": flag,
                     "difference": diff, "relative": rel, "small_greedy_relative": reference})
    return pd.DataFrame(rows)


def exchange_ci(intervals: pd.DataFrame, envelope: str, accounting: str) -> dict:
    """{bin: {R: difference interval}} of one envelope and accounting (keys as strings)."""
    part = intervals[(intervals.envelope == envelope) & (intervals.accounting == accounting)]
    if part.empty:
        raise ValueError(f"no exchange intervals for envelope {envelope!r} and accounting {accounting!r}")
    out: dict = {}
    for row in part.itertuples():
        out.setdefault(str(row.bin), {})[str(row.r)] = row.difference
    return out


def exchange_ci_all(intervals: pd.DataFrame) -> dict:
    """{envelope: {accounting: {bin: {R: difference interval}}}}."""
    return {kind: {acc: exchange_ci(intervals, kind, acc) for acc in sorted(part.accounting.unique())}
            for kind, part in intervals.groupby("envelope")}


def headline(envelopes: Sequence[str]) -> tuple[str, str]:
    """(envelope, accounting) of ``exchange_ci``: ``HEADLINE`` where its envelope ran, else the first."""
    if not envelopes:
        raise ValueError("no envelope to compare")
    return (HEADLINE[0] if HEADLINE[0] in envelopes else envelopes[0]), HEADLINE[1]


def paper_side(bin_number: int, r: float, n_bins: int = 5) -> str | None:
    """The side of 0 the paper puts (test-time accuracy − larger model's greedy pass@1) on, or None
    where it states none (module rules): bins above ``n_bins - 2`` are the hardest."""
    if bin_number > n_bins - 2:
        return "<"
    return ">" if r < 1 else None
