"""Answer selection: hand-worked examples, pass@k against enumeration, the fast path against the slow one."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest

from ttc_lib.search.selection import (
    CandidatePool,
    accuracy_vs_n,
    aggregate,
    best_of_n,
    build_pool,
    group_answers,
    majority,
    pass_at_k,
    weighted,
)


def test_weighted_majority_and_naive_disagree_as_worked_by_hand():
    answers = ["5", "5", "7"]
    assert majority(answers) == "5"  # two votes against one
    assert best_of_n(answers, [0.1, 0.2, 0.9]) == "7"  # the single top score
    assert weighted(answers, [0.1, 0.2, 0.9]) == "7"  # 0.9 > 0.1 + 0.2
    assert weighted(answers, [0.5, 0.5, 0.9]) == "5"  # 1.0 > 0.9
    assert best_of_n(answers, [0.5, 0.5, 0.9]) == "7"


def test_equivalent_answers_share_a_group():
    assert group_answers(["1/2", "0.5", "\\frac{1}{2}", "3", "3.0", None, "0.50"]) == [0, 0, 0, 1, 1, None, 0]
    # two spellings of 1/2 outvote a single 3
    assert majority(["3", "\\frac{1}{2}", "0.5"]) == "\\frac{1}{2}"


def test_none_never_wins():
    answers = [None, None, None, "4"]
    assert majority(answers) == "4"
    assert best_of_n(answers, [0.9, 0.9, 0.9, 0.1]) == "4"
    assert weighted(answers, [0.9, 0.9, 0.9, 0.1]) == "4"
    assert majority([None, ""]) is None and best_of_n([None], [1.0]) is None and weighted([], []) is None


def test_ties_go_to_the_earliest_candidate():
    assert majority(["7", "5", "5", "7"]) == "7"
    assert weighted(["7", "5"], [0.5, 0.5]) == "7"
    assert best_of_n(["7", "5", "9"], [0.3, 0.8, 0.8]) == "5"


def test_score_validation():
    with pytest.raises(ValueError, match="scores"):
        weighted(["1", "2"], [0.5])
    with pytest.raises(ValueError, match="finite"):
        best_of_n(["1"], [float("nan")])


def test_aggregate():
    assert aggregate([0.9, 0.2, 0.8], "last") == 0.8
    assert aggregate([0.9, 0.2, 0.8], "min") == 0.2
    assert aggregate([0.9, 0.2, 0.8], "prod") == pytest.approx(0.144)
    assert aggregate([0.7]) == 0.7  # "last" is the default
    with pytest.raises(ValueError, match="step_scores"):
        aggregate([], "last")
    with pytest.raises(ValueError, match="how"):
        aggregate([0.5], "mean")  # type: ignore[arg-type]


def test_pass_at_k_matches_enumeration():
    for n, c in [(5, 0), (5, 2), (6, 3), (7, 7), (8, 1)]:
        outcomes = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(outcomes, k))
            brute = sum(any(s) for s in subsets) / len(subsets)
            assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


def _random_pool(q: int, c: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    vocab = ["1", "2", "3", "4", None]
    answers = [[vocab[i] for i in rng.integers(0, len(vocab), c)] for _ in range(q)]
    references = [str(r) for r in rng.integers(1, 5, q)]
    # a coarse score grid makes ties (the tie-break rule) common
    scores = {"last": rng.integers(0, 4, (q, c)) / 4, "min": rng.random((q, c))}
    return answers, references, scores


def test_accuracy_at_full_pool_equals_selecting_over_the_full_set():
    answers, refs, scores = _random_pool(30, 6)
    pool = build_pool(answers, refs, scores)
    curve = accuracy_vs_n(pool, [1, 3, 6], n_subsets=4, seed=1).summary.set_index(["n", "method"])["accuracy"]
    assert curve[6, "majority"] == pytest.approx(np.mean([majority(a) == r for a, r in zip(answers, refs)]))
    for name, s in scores.items():
        bon = np.mean([best_of_n(a, s[i]) == r for i, (a, r) in enumerate(zip(answers, refs))])
        wtd = np.mean([weighted(a, s[i]) == r for i, (a, r) in enumerate(zip(answers, refs))])
        assert curve[6, f"best_of_n[{name}]"] == pytest.approx(bon)
        assert curve[6, f"weighted[{name}]"] == pytest.approx(wtd)
    assert curve[1, "majority"] == pytest.approx(curve[1, "pass@1"], abs=0.2)


def test_accuracy_on_each_subset_equals_the_slow_path():
    """Every sub-sampled subset must select exactly what the one-question functions select."""
    answers, refs, scores = _random_pool(8, 7, seed=3)
    pool = build_pool(answers, refs, scores)
    n, subsets = 3, 5
    got = accuracy_vs_n(pool, [n], n_subsets=subsets, seed=7).per_question.set_index(["question", "method"])
    for i, (a, r) in enumerate(zip(answers, refs)):
        rng = np.random.default_rng([7, i])  # the documented per-question stream
        ranks = np.argsort(np.argsort(rng.random((subsets, len(a))), -1), -1)
        picks = [np.flatnonzero(row < n) for row in ranks]
        sub = [[a[j] for j in p] for p in picks]
        assert got.loc[(i, "majority"), "accuracy"] == pytest.approx(np.mean([majority(x) == r for x in sub]))
        for name, s in scores.items():
            w = np.mean([weighted(x, s[i][p]) == r for x, p in zip(sub, picks)])
            b = np.mean([best_of_n(x, s[i][p]) == r for x, p in zip(sub, picks)])
            assert got.loc[(i, f"weighted[{name}]"), "accuracy"] == pytest.approx(w)
            assert got.loc[(i, f"best_of_n[{name}]"), "accuracy"] == pytest.approx(b)


def test_accuracy_vs_n_is_fast_and_pass_at_n_exact():
    rng = np.random.default_rng(0)
    q, c = 400, 64
    groups = rng.integers(-1, 6, (q, c))
    pool = CandidatePool(groups, groups == 0, {k: rng.random((q, c)) for k in ("last", "min", "prod")})
    start = time.perf_counter()
    curve = accuracy_vs_n(pool, [1, 2, 4, 8, 16, 32, 64], n_subsets=10, seed=0)
    assert time.perf_counter() - start < 3.0
    assert set(curve.summary["method"]) >= {"majority", "weighted[last]", "best_of_n[prod]", "pass@n", "pass@1"}
    assert len(curve.per_question) == q * 7 * curve.summary["method"].nunique()
    k = int(pool.correct[0].sum())
    row = curve.per_question.query("question == 0 and n == 4 and method == 'pass@n'")
    assert row["accuracy"].item() == pytest.approx(1 - math.comb(c - k, 4) / math.comb(c, 4))
    with pytest.raises(ValueError, match="pool size"):
        accuracy_vs_n(pool, [65])
