"""Verifier quality against ground-truth step labels: AUROC, within-question AUROC, ROC points.

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
* ``roc_curve`` gives one point per distinct score threshold (ties never split), from (0, 0)
  at threshold +inf to (1, 1); its trapezoid area equals ``auroc``.
"""

from __future__ import annotations

from typing import Hashable, Sequence

import numpy as np
import pandas as pd


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


def per_group_auroc(scores: Sequence[float], labels: Sequence, groups: Sequence[Hashable]) -> pd.Series:
    """AUROC of every group that has both positive and negative labels (index: group)."""
    s, y = _prepare(scores, labels)
    g = np.asarray(groups, dtype=object).ravel()
    if g.shape != s.shape:
        raise ValueError(f"got {s.size} scores but {g.size} group ids")
    frame = pd.DataFrame({"s": s, "y": y, "g": pd.Series(g, dtype=object)})
    out = {}
    for key, part in frame.groupby("g", sort=False, dropna=False):
        if 0 < part["y"].sum() < len(part):
            out[key] = auroc(part["s"].to_numpy(), part["y"].to_numpy())
    return pd.Series(out, dtype=float, name="auroc")


def within_question_auroc(scores: Sequence[float], labels: Sequence, groups: Sequence[Hashable]) -> float:
    """Mean AUROC over groups (questions) with both classes; NaN if there is none."""
    per_group = per_group_auroc(scores, labels, groups)
    return float(per_group.mean()) if len(per_group) else float("nan")


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
