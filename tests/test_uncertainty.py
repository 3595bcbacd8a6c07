"""Bootstrap over questions (analysis.uncertainty): points for constants, binomial coverage, seeds
nested inside a question, paired differences, stratified bins, coherent curves, guards."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ttc_lib.analysis.uncertainty import (
    bootstrap_curve,
    bootstrap_difference,
    bootstrap_mean,
    bootstrap_replicates,
    interval,
)


def bernoulli_table(n: int, p: float, seed: int, **extra) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"question_id": [f"q{i:04d}" for i in range(n)],
                         "correct": (rng.random(n) < p).astype(float), **extra})


def width(result: dict) -> float:
    return result["ci_high"] - result["ci_low"]


def test_the_interval_of_a_constant_is_a_point():
    table = pd.DataFrame({"question_id": range(50), "correct": 0.3})
    result = bootstrap_mean(table)
    assert result["ci_low"] == result["ci_high"] == result["estimate"] == 0.3
    assert result["n_questions"] == 50


def test_the_95_percent_interval_covers_a_binomial_mean_at_about_95_percent():
    # 200 simulated data sets of 200 Bernoulli(0.3) questions, fixed seeds: deterministic.
    # Measured coverage 0.94; the percentile interval of a mean of 200 questions is close to nominal.
    covered = [bootstrap_mean(bernoulli_table(200, 0.3, seed=1000 + s), n_boot=1000, seed=s)
               for s in range(200)]
    rate = np.mean([r["ci_low"] <= 0.3 <= r["ci_high"] for r in covered])
    assert 0.90 <= rate <= 0.98, rate


def test_the_same_seed_gives_the_same_interval_and_another_seed_another():
    table = bernoulli_table(300, 0.5, seed=1)
    assert bootstrap_mean(table, seed=7) == bootstrap_mean(table, seed=7)
    assert bootstrap_mean(table, seed=7) != bootstrap_mean(table, seed=8)


def test_seeds_are_nested_inside_a_question():
    table = bernoulli_table(120, 0.6, seed=2)
    twice = pd.concat([table.assign(seed=0), table.assign(seed=1)], ignore_index=True)
    assert bootstrap_mean(twice) == bootstrap_mean(table)
    # unequal seed counts: the estimate is the mean of per-question means, not of rows
    uneven = pd.DataFrame({"question_id": ["a", "a", "a", "a", "b"], "seed": [0, 1, 2, 3, 0],
                           "correct": [1.0, 1.0, 1.0, 1.0, 0.0]})
    result = bootstrap_mean(uneven)
    assert result["estimate"] == 0.5 and result["n_questions"] == 2


def test_a_paired_difference_of_a_table_with_itself_is_exactly_zero():
    table = bernoulli_table(200, 0.4, seed=3)
    result = bootstrap_difference(table, table)
    assert result["estimate"] == result["ci_low"] == result["ci_high"] == 0.0
    assert (result["only_a"], result["only_b"], result["n_questions"]) == (0, 0, 200)


def test_a_paired_difference_is_tighter_than_an_unpaired_one():
    a = bernoulli_table(400, 0.5, seed=4)
    b = a.copy()
    wrong = np.flatnonzero(b.correct.to_numpy() == 0.0)[:20]  # b also solves 20 of a's failures
    b.loc[wrong, "correct"] = 1.0
    paired = bootstrap_difference(b, a, seed=0)
    assert paired["estimate"] == pytest.approx(20 / 400)
    assert paired["mean_a"] - paired["mean_b"] == pytest.approx(paired["estimate"])
    unpaired = bootstrap_replicates(b, seed=1) - bootstrap_replicates(a, seed=2)
    low, high = np.quantile(unpaired, [0.025, 0.975])
    assert width(paired) < 0.5 * (high - low)
    assert paired["ci_low"] > 0 and low < 0  # pairing resolves a difference independent sides cannot


def test_a_difference_uses_shared_questions_and_reports_the_rest():
    a = bernoulli_table(100, 0.5, seed=5)
    b = pd.concat([a.iloc[10:], pd.DataFrame({"question_id": ["extra1", "extra2"], "correct": [1.0, 0.0]})])
    result = bootstrap_difference(a, b)
    assert (result["n_questions"], result["only_a"], result["only_b"]) == (90, 10, 2)
    assert result["estimate"] == 0.0
    assert "10 only in a, 2 only in b" in interval(result)


def test_a_difference_without_shared_questions_is_refused_naming_the_counts():
    a = pd.DataFrame({"question_id": ["a1", "a2", "a3"], "correct": [1.0, 0.0, 1.0]})
    b = pd.DataFrame({"question_id": ["b1", "b2"], "correct": [1.0, 0.0]})
    with pytest.raises(ValueError, match="share no question: a has 3 question.*b has 2"):
        bootstrap_difference(a, b)


def test_stratified_replicates_keep_each_bins_count():
    # bin 1 always right, bin 2 always wrong: with the counts fixed every replicate is 30/100
    table = pd.DataFrame({"question_id": range(100), "correct": [1.0] * 30 + [0.0] * 70,
                          "bin": [1] * 30 + [2] * 70})
    stratified = bootstrap_replicates(table, bin_column="bin")
    assert np.all(stratified == stratified[0]) and stratified[0] == pytest.approx(0.3)
    assert bootstrap_replicates(table).std() > 0.03
    result = bootstrap_mean(table, bin_column="bin")
    assert result["estimate"] == 0.3 and width(result) == pytest.approx(0.0, abs=1e-12)


def test_stratifying_by_bins_with_different_means_shrinks_the_spread():
    parts = [bernoulli_table(150, p, seed=10 + k).assign(question_id=lambda t, k=k: f"b{k}-" + t.question_id, bin=k)
             for k, p in enumerate([0.95, 0.6, 0.1])]
    table = pd.concat(parts, ignore_index=True)
    plain, stratified = bootstrap_mean(table), bootstrap_mean(table, bin_column="bin")
    assert stratified["estimate"] == plain["estimate"] == pytest.approx(table.correct.mean())
    assert width(stratified) < width(plain)
    assert bootstrap_replicates(table, bin_column="bin").std() < 0.85 * bootstrap_replicates(table).std()


def test_a_question_must_sit_in_one_bin():
    table = pd.DataFrame({"question_id": ["a", "a", "b"], "correct": [1.0, 0.0, 1.0], "bin": [1, 2, 1]})
    with pytest.raises(ValueError, match="more than one 'bin'.*'a'"):
        bootstrap_mean(table, bin_column="bin")


def test_the_curve_resamples_the_same_questions_at_every_x():
    base = bernoulli_table(250, 0.5, seed=6)
    better = base.assign(correct=np.maximum(base.correct, bernoulli_table(250, 0.5, seed=7).correct))
    table = pd.concat([base.assign(budget=1), base.assign(budget=2), better.assign(budget=4)], ignore_index=True)
    curve = bootstrap_curve(table, x="budget")
    assert list(curve.columns) == ["budget", "estimate", "ci_low", "ci_high", "n_questions"]
    assert curve.budget.tolist() == [1, 2, 4]
    one, two, four = (curve.iloc[i].to_dict() for i in range(3))
    assert {k: one[k] for k in ("estimate", "ci_low", "ci_high")} == {k: two[k] for k in ("estimate", "ci_low", "ci_high")}
    assert four["estimate"] > one["estimate"]
    # each point alone equals bootstrap_mean with the same seed (same index matrix)
    alone = bootstrap_mean(better)
    assert (four["estimate"], four["ci_low"], four["ci_high"]) == (alone["estimate"], alone["ci_low"], alone["ci_high"])


def test_the_curve_needs_every_question_at_every_x():
    table = pd.DataFrame({"question_id": ["a", "b", "a"], "budget": [1, 1, 2], "correct": [1.0, 0.0, 1.0]})
    with pytest.raises(ValueError, match="question 'b' at budget=2"):
        bootstrap_curve(table)


def test_every_number_is_json_safe():
    table = bernoulli_table(80, 0.5, seed=8, bin=np.arange(80) % 3, budget=np.int64(4))
    results = [bootstrap_mean(table, bin_column="bin"), bootstrap_difference(table, table, bin_column="bin"),
               *bootstrap_curve(table, bin_column="bin").to_dict("records")]
    for result in results:
        assert all(type(v) in (float, int) for v in result.values()), result
    json.dumps(results)


def test_interval_prints_estimate_bounds_and_questions():
    assert interval({"estimate": 0.6213, "ci_low": 0.55, "ci_high": 0.694, "n_questions": 120}) == \
        "0.62 [0.55, 0.69], 120 questions"
    with pytest.raises(ValueError, match="ci_low"):
        interval({"estimate": 0.5, "n_questions": 3})


@pytest.mark.parametrize("table, kwargs, message", [
    (pd.DataFrame({"question_id": [], "correct": []}), {}, "empty"),
    (pd.DataFrame({"question": [1], "correct": [1.0]}), {}, r"lacks column\(s\) \['question_id'\]"),
    (pd.DataFrame({"question_id": [1], "correct": [1.0]}), {"bin_column": "oracle_bin"}, "'oracle_bin'"),
    (pd.DataFrame({"question_id": [1, 2], "correct": [1.0, np.nan]}), {}, r"NaN.*\['correct'\]"),
    (pd.DataFrame({"question_id": [1, None], "correct": [1.0, 0.0]}), {}, r"NaN.*\['question_id'\]"),
    (pd.DataFrame({"question_id": [1, 2], "correct": ["yes", "no"]}), {}, "numeric"),
    (pd.DataFrame({"question_id": [1], "correct": [1.0]}), {"level": 1.0}, "level"),
    (pd.DataFrame({"question_id": [1], "correct": [1.0]}), {"level": 0}, "level"),
    (pd.DataFrame({"question_id": [1], "correct": [1.0]}), {"n_boot": 99}, "n_boot"),
])
def test_guards_name_the_problem(table, kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_mean(table, **kwargs)
