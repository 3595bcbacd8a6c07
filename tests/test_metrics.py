"""Verifier metrics: AUROC against pair counting, and the difficulty-only PRM failure mode."""

from __future__ import annotations

import numpy as np
import pytest

from ttc_lib.analysis.auroc import auroc, per_group_auroc, roc_curve, within_question_auroc


def _pair_count_auroc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auroc_matches_pair_counting_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = rng.integers(0, 5, 40) / 4  # many ties
        labels = rng.random(40) < 0.4
        if 0 < labels.sum() < 40:
            assert auroc(scores, labels) == pytest.approx(_pair_count_auroc(scores, labels))
    assert auroc([0.1, 0.9], [0, 1]) == 1.0 and auroc([0.5, 0.5], [0, 1]) == 0.5


def test_auroc_input_errors():
    with pytest.raises(ValueError, match="both classes"):
        auroc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="binary"):
        auroc([0.1, 0.2], [0.3, 1.0])
    with pytest.raises(ValueError, match="labels"):
        auroc([0.1, 0.2, 0.3], [0, 1])


def test_difficulty_only_score_is_chance_within_questions():
    """A PRM that learned difficulty, not correctness, looks good globally and is chance within questions."""
    rng = np.random.default_rng(1)
    questions = np.repeat(np.arange(50), 20)
    p_correct = np.linspace(0.05, 0.95, 50)[questions]  # easy questions have mostly right steps
    labels = rng.random(questions.size) < p_correct
    difficulty_score = p_correct  # the same score for every step of a question
    assert auroc(difficulty_score, labels) > 0.75
    assert within_question_auroc(difficulty_score, labels, questions) == pytest.approx(0.5)
    # a verifier that sees correctness is good under both views
    informed = labels + rng.normal(0, 0.3, labels.size)
    assert within_question_auroc(informed, labels, questions) > 0.9


def test_within_question_skips_single_class_groups():
    scores = [0.9, 0.1, 0.5, 0.6, 0.7]
    labels = [1, 0, 1, 1, 1]
    groups = ["a", "a", "b", "b", "c"]
    assert list(per_group_auroc(scores, labels, groups).index) == ["a"]
    assert within_question_auroc(scores, labels, groups) == 1.0
    assert np.isnan(within_question_auroc([0.1, 0.2], [1, 1], ["a", "b"]))


def test_roc_curve_points_and_area():
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 6, 60) / 5
    labels = rng.random(60) < 0.5
    fpr, tpr, thresholds = roc_curve(scores, labels)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0) and np.all(np.diff(thresholds) < 0)
    assert len(thresholds) == len(np.unique(scores)) + 1  # one point per distinct score
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(auroc(scores, labels))
