"""Verifier quality against ground-truth step labels: AUROC, within-question and same-step AUROC
(with question-bootstrap intervals), ROC points.

Rules
-----
* Labels are binary (bool or 0/1; threshold soft Monte-Carlo labels before calling). Scores
  are finite reals; higher means "more likely correct".
* ``auroc`` is the Mann-Whitney statistic: the probability that a random positive scores
  above a random negative, ties counting one half (average ranks). It needs at least one
  positive and one negative, else ValueError.
* ``within_question_auroc`` is the mean of the per-group AUROC over the groups (questions)
  that have both positive and negative labels; NaN when no group has both. Why:
  global AUROC is misleading - a PRM that only learned question difficulty scores every step
  of a hard question low and of an easy one high, which earns a high global AUROC while
  ranking steps *within* a question no better than chance (0.5). Report this one.
* ``same_step_auroc`` groups by (question, step index) instead: the mean of the per-group AUROC
  over the (question, step) groups with both labels, each group weighing one, as in
  ``within_question_auroc``. Why: oracle step labels are monotone (after the first wrong step every
  step is wrong), so within a question later steps are wrong more often and a score that only falls
  with the step index - no model at all - earns a high within-question AUROC. Comparing steps at the
  same index of the same question removes both question difficulty and position: such a score is
  constant inside every group and gets exactly 0.5. Choose verifiers by this one.
* Intervals (``within_question_auroc_ci``, ``same_step_auroc_ci``, ``grouped_auroc_interval``):
  a percentile bootstrap over *questions*. The per-group AUROCs are computed once; a replicate
  resamples the questions that have at least one defined group, with replacement, and takes the
  mean over the groups of the drawn questions (a question drawn twice counts its groups twice), so
  the groups of one question travel together. ``n_questions`` counts those questions. The estimate
  is the plain mean over groups; a constant per-group value gives a point. No defined group gives
  the undefined form ``{"estimate": None, "ci_low": None, "ci_high": None, "reason": ...}``.
* ``roc_curve`` gives one point per distinct score threshold (ties never split), from (0, 0)
  at threshold +inf to (1, 1); its trapezoid area equals ``auroc``.
"""

from __future__ import annotations

from typing import Hashable, Sequence

import numpy as np
import pandas as pd

from ttc_lib.analysis.uncertainty import resample_index


def _prepare(scores: Sequence[float], labels: Sequence) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"got {s.size} scores but {y.size} labels")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite (no NaN/inf)")
    if y.dtype != bool:
        yf = y.astype(float)
        if not np.all((yf == 0) | (yf == 1)):
            raise ValueError("labels must be binary (bool or 0/1); threshold soft labels first")
        y = yf == 1
    return s, y


def _average_ranks(s: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of the ranks they span."""
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # last rank of each distinct value
    return (ends - (counts - 1) / 2.0)[inverse]


def auroc(scores: Sequence[float], labels: Sequence) -> float:
    """Area under the ROC curve, rank-based with ties averaged (no sklearn)."""
    s, y = _prepare(scores, labels)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUROC needs both classes, got {n_pos} positive and {n_neg} negative labels")
    rank_sum = _average_ranks(s)[y].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _group_aurocs(s: np.ndarray, y: np.ndarray, codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(AUROC per group code, mask of groups with both classes), vectorised: ranks within each group
    (ties averaged) and the Mann-Whitney statistic from per-group rank sums."""
    ranks = pd.Series(s).groupby(codes).rank(method="average").to_numpy()
    size = np.bincount(codes, minlength=n_groups)
    n_pos = np.bincount(codes, weights=y.astype(float), minlength=n_groups)
    n_neg = size - n_pos
    rank_pos = np.bincount(codes, weights=np.where(y, ranks, 0.0), minlength=n_groups)
    defined = (n_pos > 0) & (n_neg > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = (rank_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    return np.where(defined, values, np.nan), defined


def _grouped(scores: Sequence[float], labels: Sequence, keys: pd.Index | np.ndarray) -> pd.Series:
    s, y = _prepare(scores, labels)
    if len(keys) != s.size:
        raise ValueError(f"got {s.size} scores but {len(keys)} group ids")
    codes, uniques = pd.factorize(keys, sort=False, use_na_sentinel=False)  # groups in order of appearance
    values, defined = _group_aurocs(s, y, np.asarray(codes), len(uniques))
    return pd.Series(values[defined], index=uniques[defined], dtype=float, name="auroc")


def per_group_auroc(scores: Sequence[float], labels: Sequence, groups: Sequence[Hashable]) -> pd.Series:
    """AUROC of every group that has both positive and negative labels (index: group, in order of
    first appearance)."""
    return _grouped(scores, labels, pd.Index(pd.Series(list(groups), dtype=object)))


def same_step_per_group(scores: Sequence[float], labels: Sequence, questions: Sequence[Hashable],
                        steps: Sequence[int]) -> pd.Series:
    """AUROC of every (question, step index) group with both labels (index: MultiIndex question, step)."""
    q, st = list(questions), list(steps)
    if len(q) != len(st):
        raise ValueError(f"got {len(q)} question ids but {len(st)} step indices")
    return _grouped(scores, labels, pd.MultiIndex.from_arrays([q, st], names=["question", "step"]))


def within_question_auroc(scores: Sequence[float], labels: Sequence, groups: Sequence[Hashable]) -> float:
    """Mean AUROC over groups (questions) with both classes; NaN if there is none."""
    per_group = per_group_auroc(scores, labels, groups)
    return float(per_group.mean()) if len(per_group) else float("nan")


def same_step_auroc(scores: Sequence[float], labels: Sequence, questions: Sequence[Hashable],
                    steps: Sequence[int]) -> float:
    """Mean AUROC over (question, step index) groups with both classes; NaN if there is none."""
    per_group = same_step_per_group(scores, labels, questions, steps)
    return float(per_group.mean()) if len(per_group) else float("nan")


def _check_bootstrap(n_boot: int, level: float, seed: int) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 100:
        raise ValueError(f"n_boot must be an integer >= 100, got {n_boot!r}")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be a number strictly between 0 and 1, got {level!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer (the bootstrap is deterministic for a seed), got {seed!r}")


def grouped_auroc_interval(per_group: pd.Series, group_questions: Sequence[Hashable], *, n_boot: int = 2000,
                           seed: int = 0, level: float = 0.95, what: str = "groups") -> dict:
    """Question-bootstrap interval of the mean of ``per_group`` (one AUROC per defined group;
    ``group_questions``: the question each group belongs to). Vectorised: per-question sums of the
    groups' deviations from the estimate, one (n_boot, questions) index matrix."""
    _check_bootstrap(n_boot, level, seed)
    values = np.asarray(per_group, dtype=float)
    if len(group_questions) != values.size:
        raise ValueError(f"got {values.size} group values but {len(group_questions)} group questions")
    if values.size == 0:
        return {"estimate": None, "ci_low": None, "ci_high": None,
                "reason": f"no {what} holds both a right and a wrong step"}
    estimate = float(values.mean())
    codes, uniques = pd.factorize(pd.Index(pd.Series(list(group_questions), dtype=object)), sort=True)
    deviation = np.bincount(codes, weights=values - estimate, minlength=len(uniques))
    count = np.bincount(codes, minlength=len(uniques)).astype(float)
    index = resample_index(None, len(uniques), n_boot, seed)
    replicates = estimate + deviation[index].sum(axis=1) / count[index].sum(axis=1)
    low, high = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return {"estimate": estimate, "ci_low": float(low), "ci_high": float(high), "n_questions": int(len(uniques))}


def within_question_auroc_ci(scores: Sequence[float], labels: Sequence, questions: Sequence[Hashable], *,
                             n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """``within_question_auroc`` with its question-bootstrap interval (an interval dict)."""
    per_group = per_group_auroc(scores, labels, questions)
    return grouped_auroc_interval(per_group, list(per_group.index), n_boot=n_boot, seed=seed, level=level,
                                  what="question")


def same_step_auroc_ci(scores: Sequence[float], labels: Sequence, questions: Sequence[Hashable],
                       steps: Sequence[int], *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """``same_step_auroc`` with its question-bootstrap interval (the groups of a question resampled
    together; an interval dict)."""
    per_group = same_step_per_group(scores, labels, questions, steps)
    return grouped_auroc_interval(per_group, list(per_group.index.get_level_values(0)), n_boot=n_boot, seed=seed,
                                  level=level, what="(question, step) group")


def roc_curve(scores: Sequence[float], labels: Sequence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) for plotting: predict positive when score >= threshold.

    Thresholds run from +inf (nothing predicted positive) down through every distinct score.
    """
    s, y = _prepare(scores, labels)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC needs both classes, got {n_pos} positive and {n_neg} negative labels")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last_of_value = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]  # end of each run of ties
    tp = np.cumsum(y)[last_of_value]
    fp = (last_of_value + 1) - tp
    fpr = np.r_[0.0, fp / n_neg]
    tpr = np.r_[0.0, tp / n_pos]
    return fpr, tpr, np.r_[np.inf, s[last_of_value]]
