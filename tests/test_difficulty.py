"""Difficulty bins: oracle/predicted difficulty, quantile and absolute bins, agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ttc_lib.analysis import difficulty as d


def make_pool(correct_by_q: dict[str, list[bool]], score_by_q: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for q, flags in correct_by_q.items():
        for i, (c, s) in enumerate(zip(flags, score_by_q[q])):
            rows.append({"question_id": q, "sample": i, "correct": c, "score": s})
    return pd.DataFrame(rows)


def test_oracle_is_pass1_and_predicted_is_mean_score():
    pool = make_pool({"a": [True, True, False, False], "b": [True, False, False, False]},
                     {"a": [0.9, 0.8, 0.1, 0.2], "b": [0.5, 0.5, 0.0, 1.0]})
    assert d.oracle_difficulty(pool).to_dict() == {"a": 0.5, "b": 0.25}
    assert d.predicted_difficulty(pool).to_dict() == pytest.approx({"a": 0.5, "b": 0.5})


@pytest.mark.parametrize("n", [10, 23, 100])
def test_quantile_bins_balanced_and_ordered(n):
    rng = np.random.default_rng(n)
    values = pd.Series(rng.random(n), index=[f"q{i:03d}" for i in range(n)])
    bins = d.quantile_bins(values, 5)
    sizes = bins.value_counts().reindex(range(1, 6), fill_value=0)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == n
    # ordered: bin 1 holds the highest values (easiest), each bin >= the next one
    for b in range(1, 5):
        assert values[bins == b].min() >= values[bins == b + 1].max()
    assert bins[values.idxmax()] == 1 and bins[values.idxmin()] == 5


def test_quantile_bins_exact_on_a_small_example():
    values = pd.Series([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], index=list("abcdefghij"))
    bins = d.quantile_bins(values, 5)
    assert bins.to_dict() == {"j": 1, "i": 1, "h": 2, "g": 2, "f": 3, "e": 3, "d": 4, "c": 4, "b": 5, "a": 5}


def test_ties_split_by_question_id_and_deterministic():
    # six questions at pass@1 = 1.0 and four at 0: balanced bins split the tied group by id
    values = pd.Series([1.0] * 6 + [0.0] * 4, index=[f"q{i}" for i in range(10)])
    bins = d.quantile_bins(values, 5)
    assert bins.to_dict() == {"q0": 1, "q1": 1, "q2": 2, "q3": 2, "q4": 3, "q5": 3,
                              "q6": 4, "q7": 4, "q8": 5, "q9": 5}
    shuffled = values.sample(frac=1.0, random_state=3)
    assert d.quantile_bins(shuffled, 5).sort_index().equals(bins.sort_index())


def test_ties_group_keeps_tied_values_together():
    values = pd.Series([1.0] * 6 + [0.0] * 4, index=[f"q{i}" for i in range(10)])
    bins = d.quantile_bins(values, 5, ties="group")
    assert set(bins[values == 1.0]) == {2}  # median rank 2.5 -> rank 2 -> bin 2
    assert set(bins[values == 0.0]) == {4}  # ranks 6..9, median 7.5 -> rank 7 -> bin 4
    untied = pd.Series(np.linspace(0, 1, 10), index=[f"q{i}" for i in range(10)])
    assert d.quantile_bins(untied, 5, ties="group").equals(d.quantile_bins(untied, 5))


def test_absolute_bins_thresholds():
    values = pd.Series([1.0, 0.5, 0.4999, 0.1, 0.0999, 0.0], index=list("abcdef"))
    assert d.absolute_bins(values).tolist() == [1, 1, 2, 2, 3, 3]
    with pytest.raises(ValueError, match="thresholds"):
        d.absolute_bins(values, (0.1, 0.5))


def test_predicted_bins_use_no_ground_truth():
    rng = np.random.default_rng(0)
    qids = [f"q{i:02d}" for i in range(20)]
    pool = make_pool({q: list(rng.random(8) < 0.5) for q in qids}, {q: list(rng.random(8)) for q in qids})
    base = d.difficulty_bins(pool)
    flipped = pool.assign(correct=~pool.correct.astype(bool))
    other = d.difficulty_bins(flipped)
    assert other.predicted_bin.tolist() == base.predicted_bin.tolist()
    assert other.predicted_score.tolist() == base.predicted_score.tolist()
    assert other.oracle_bin.tolist() != base.oracle_bin.tolist()  # the oracle side did change
    # and without the correct column at all, prediction still works
    assert d.predicted_difficulty(pool.drop(columns="correct")).equals(d.predicted_difficulty(pool))


def test_difficulty_bins_table_columns_and_levels():
    pool = make_pool({"a": [True, True], "b": [False, False], "c": [True, False]},
                     {"a": [0.9, 0.9], "b": [0.1, 0.2], "c": [0.5, 0.6]})
    table = d.difficulty_bins(pool, levels={"a": 1, "b": 3, "c": 2}, n_bins=3)
    assert list(table.columns) == d.BIN_COLUMNS
    assert table.set_index("question_id").level.to_dict() == {"a": 1, "b": 3, "c": 2}
    assert table.set_index("question_id").oracle_bin.to_dict() == {"a": 1, "c": 2, "b": 3}
    absolute = d.difficulty_bins(pool, scheme="absolute")
    assert absolute.set_index("question_id").oracle_bin.to_dict() == {"a": 1, "c": 1, "b": 3}
    assert absolute.set_index("question_id").predicted_bin.to_dict() == {"a": 1, "c": 1, "b": 2}
    with pytest.raises(ValueError, match="levels has no entry"):
        d.difficulty_bins(pool, levels={"a": 1})


def test_confusion_and_spearman_on_a_hand_made_example():
    bins = pd.DataFrame({"question_id": list("abcde"),
                         "oracle_pass1": [0.9, 0.7, 0.5, 0.3, 0.1], "oracle_bin": [1, 1, 2, 3, 3],
                         "predicted_score": [0.8, 0.9, 0.2, 0.4, 0.1], "predicted_bin": [1, 1, 3, 2, 3]})
    matrix = d.confusion_matrix(bins, 3)
    assert matrix.to_numpy().tolist() == [[2, 0, 0], [0, 0, 1], [0, 1, 1]]
    report = d.agreement(bins, 3)
    # ranks: oracle 5,4,3,2,1; predicted 4,5,2,3,1 -> d^2 = 1+1+1+1+0 = 4; rho = 1 - 6*4/(5*24) = 0.8
    assert report["spearman"] == pytest.approx(0.8)
    assert report["exact"] == pytest.approx(3 / 5) and report["within_one"] == pytest.approx(1.0)
    assert report["confusion"] == [[2, 0, 0], [0, 0, 1], [0, 1, 1]]
    assert d.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(d.spearman([1, 1, 1], [1, 2, 3]))


def test_spearman_with_ties_uses_average_ranks():
    # x ranks: 1.5, 1.5, 3, 4; y ranks 1, 2, 3, 4 -> pearson of ranks
    rx, ry = np.array([1.5, 1.5, 3, 4]), np.array([1, 2, 3, 4.0])
    expected = np.corrcoef(rx, ry)[0, 1]
    assert d.spearman([0, 0, 1, 2], [10, 20, 30, 40]) == pytest.approx(expected)
    assert expected < 1


def test_bin_edges_and_balanced_subset():
    rng = np.random.default_rng(1)
    qids = [f"q{i:02d}" for i in range(25)]
    pool = make_pool({q: list(rng.random(10) < rng.random()) for q in qids}, {q: list(rng.random(10)) for q in qids})
    table = d.difficulty_bins(pool)
    edges = d.bin_edges(table)
    assert sorted(edges) == [1, 2, 3, 4, 5]
    assert all(edges[b][0] >= edges[b + 1][1] for b in range(1, 5))
    subset = d.balanced_subset(table, 3, seed=0)
    assert len(subset) == 15 and subset == sorted(subset)
    per_bin = table.set_index("question_id").loc[subset].oracle_bin.value_counts()
    assert per_bin.to_dict() == {1: 3, 2: 3, 3: 3, 4: 3, 5: 3}
    assert d.balanced_subset(table, 3, seed=0) == subset
    assert d.balanced_subset(table, 3, seed=1) != subset
    assert len(d.balanced_subset(table, 99)) == 25  # a bin smaller than per_bin gives all it has
    assert set(d.balanced_subset(table, 2, seed=0)) < set(subset) < set(d.balanced_subset(table, 4, seed=0))  # nested


def test_guards_name_the_problem():
    pool = make_pool({"a": [True, False], "b": [True]}, {"a": [0.1, 0.2], "b": [0.3]})
    with pytest.raises(ValueError, match="same number of samples"):
        d.oracle_difficulty(pool)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['score'\]"):
        d.predicted_difficulty(pool.drop(columns="score"))
    with pytest.raises(ValueError, match="empty"):
        d.oracle_difficulty(pool.iloc[:0])
    with pytest.raises(ValueError, match="n_bins"):
        d.quantile_bins(pd.Series([0.1, 0.2], index=["a", "b"]), 0)
    with pytest.raises(ValueError, match="ties"):
        d.quantile_bins(pd.Series([0.1, 0.2], index=["a", "b"]), 2, ties="random")
    with pytest.raises(ValueError, match="finite"):
        d.quantile_bins(pd.Series([0.1, np.nan], index=["a", "b"]))
    with pytest.raises(ValueError, match="scheme"):
        d.bin_values(pd.Series([0.1], index=["a"]), "median")
    with pytest.raises(ValueError, match="missing values"):
        d.oracle_difficulty(make_pool({"a": [True, None]}, {"a": [0.1, 0.2]}))
