"""Cross-validated compute-optimal selection, efficiency ratios and the policy fit, on synthetic
results tables in the RESULT_COLUMNS schema (no models)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from ttc_lib.analysis import compute_optimal as co, efficiency, results_table as rt
from ttc_lib.search.common import RESULT_COLUMNS, config_key


def results(rows) -> pd.DataFrame:
    """rows: (strategy, config dict, budget, seed, question_id, correct[, total_flops])."""
    out = []
    for row in rows:
        strategy, config, budget, seed, qid, correct = row[:6]
        flops = row[6] if len(row) > 6 else 100.0 * budget
        out.append({"strategy": strategy, "config": config_key(config), "budget": budget, "seed": seed,
                    "question_id": qid, "answer": "1" if correct else "2", "correct": bool(correct),
                    "generations": budget, "generated_tokens": 10 * budget, "prompt_tokens": 5,
                    "verifier_tokens": 10 * budget, "generator_flops": flops / 2, "verifier_flops": flops / 2,
                    "total_flops": flops})
    return pd.DataFrame(out, columns=RESULT_COLUMNS)


def bins_for(questions, bin_of) -> pd.DataFrame:
    return pd.DataFrame({"question_id": questions, "level": 1, "oracle_pass1": 0.5,
                         "oracle_bin": [bin_of[q] for q in questions], "predicted_score": 0.5,
                         "predicted_bin": [bin_of[q] for q in questions]})


def test_method_name_and_config_round_trip():
    config = {"lookahead": 1, "width": 4, "selection": "weighted", "t": 0.5, "flag": True}
    assert rt.parse_config_key(config_key(config)) == config
    assert rt.method_name("beam", "lookahead=0,width=4") == "beam[lookahead=0,width=4]"
    assert rt.parse_config_key("-") == {}
    with pytest.raises(ValueError, match="key=value"):
        rt.parse_config_key("width4")


def test_per_question_averages_seeds_and_names_missing_columns():
    table = rt.per_question(results([("best_of_n", {"selection": "weighted"}, 4, s, "q0", s < 3) for s in range(4)]))
    assert len(table) == 1
    assert table.accuracy.iloc[0] == pytest.approx(0.75)
    assert table.method.iloc[0] == rt.BASELINE
    assert table.seeds.iloc[0] == 4
    with pytest.raises(ValueError, match="total_flops"):
        rt.per_question(results([("x", {}, 1, 0, "q0", True)]).drop(columns="total_flops"))


def test_cross_validation_never_credits_a_choice_on_the_questions_it_was_chosen_on():
    """One method per half-sized subset S of the bin's questions, right exactly on S. Whatever the
    split, the method chosen on one half is perfect there and wrong on the other half: honest
    2-fold selection scores 0, any leak of the evaluated half into the choice scores > 0."""
    questions = [f"q{i}" for i in range(6)]
    rows = []
    for subset in itertools.combinations(questions, 3):
        for q in questions:
            rows.append(("oracle", {"subset": "".join(s[1:] for s in subset)}, 8, 0, q, q in subset))
    table = rt.attach_bins(rt.per_question(results(rows)), bins_for(questions, {q: 1 for q in questions}))
    env = co.cross_validated_envelope(table, n_splits=7, seed=3)
    assert (env.by_question.accuracy == 0).all()
    # in-sample selection on the whole bin would have credited 0.5; on a half it would credit 1.0
    assert co.fit_choices(table).accuracy.iloc[0] == pytest.approx(0.5)
    # every question evaluated exactly once per split, by a method perfect on the *other* half
    counts = env.by_question.groupby(["split", "question_id"]).size()
    assert (counts == 1).all() and len(counts) == 7 * 6
    for (split, method), group in env.by_question.groupby(["split", "method"]):
        chosen_on = {f"q{c}" for c in method.split("subset=")[1].rstrip("]")}
        assert not chosen_on & set(group.question_id)


def test_envelope_with_a_dominant_method_equals_it_and_bins_stay_apart():
    questions = [f"q{i}" for i in range(8)]
    bin_of = {q: 1 if i < 4 else 2 for i, q in enumerate(questions)}
    rows = []
    for i, q in enumerate(questions):
        rows.append(("beam", {"width": 2}, 4, 0, q, bin_of[q] == 1))  # right on every bin-1 question only
        rows.append(("best_of_n", {"selection": "weighted"}, 4, 0, q, bin_of[q] == 2))  # bin 2 only
    table = rt.attach_bins(rt.per_question(results(rows)), bins_for(questions, bin_of))
    env = co.cross_validated_envelope(table, n_splits=3)
    by_bin = env.summary(by_bin=True).set_index("bin")
    assert by_bin.accuracy.loc[1] == 1.0 and by_bin.accuracy.loc[2] == 1.0
    assert set(env.by_question[env.by_question.bin == 1].method) == {"beam[width=2]"}
    assert set(env.by_question[env.by_question.bin == 2].method) == {rt.BASELINE}
    assert env.summary().accuracy.iloc[0] == 1.0


def test_ties_go_to_the_cheaper_method():
    questions = ["a", "b", "c", "d"]
    rows = [(s, {}, 4, 0, q, True, flops) for q in questions for s, flops in (("costly", 900.0), ("cheap", 100.0))]
    table = rt.attach_bins(rt.per_question(results(rows)), bins_for(questions, {q: 1 for q in questions}))
    assert set(co.cross_validated_envelope(table, n_splits=2).by_question.method) == {"cheap"}
    assert co.fit_choices(table).method.tolist() == ["cheap"]


def test_a_method_missing_questions_at_a_budget_is_not_a_candidate():
    questions = ["a", "b", "c", "d"]
    rows = [("good", {}, 4, 0, q, True) for q in questions[:3]]  # lacks "d"
    rows += [("plain", {}, 4, 0, q, False) for q in questions]
    table = rt.attach_bins(rt.per_question(results(rows)), bins_for(questions, {q: 1 for q in questions}))
    assert co.fit_choices(table).method.tolist() == ["plain"]


def test_attach_bins_drops_or_raises_on_a_question_without_a_bin():
    table = rt.per_question(results([("m", {}, 1, 0, q, True) for q in ("a", "b", "c")]))
    bins = pd.concat([bins_for(["a", "c"], {"a": 1, "c": 3}), bins_for(["a"], {"a": 5})], ignore_index=True)
    dropped = rt.attach_bins(table, bins)  # default missing="drop": "b" left out; first row per question
    assert dropped.question_id.tolist() == ["a", "c"] and dropped.bin.tolist() == [1, 3]
    assert dropped.bin.dtype == int and "bin" not in table
    with pytest.raises(ValueError, match=r"1 question\(s\) have no bin.*'b'"):
        rt.attach_bins(table, bins, missing="raise")
    full = rt.attach_bins(table[table.question_id != "b"], bins, "predicted", missing="raise")
    assert full.index.tolist() == [0, 2] and full.bin.tolist() == [1, 3]
    other = pd.DataFrame({"problem_id": ["c", "a"], "x": [1, 2]})  # notebook 07's greedy table
    assert rt.attach_bins(other, bins, missing="raise", on="problem_id").bin.tolist() == [3, 1]
    with pytest.raises(ValueError, match="missing must be"):
        rt.attach_bins(table, bins, missing="keep")


def test_heldout_comparison_bins_every_solved_question():
    class NoChoice:
        def choose(self, predicted_bin, budget):
            return None

    rows = [(rt.BASELINE.split("[")[0], {"selection": "weighted"}, 4, 0, q, q == "a") for q in "ab"]
    table = rt.per_question(results(rows))
    bins = bins_for(["a", "b"], {"a": 1, "b": 2}).assign(predicted_bin=[2, 2])
    solved = pd.DataFrame({"question_id": ["a", "b"], "budget": 4, "correct": [True, True], "bin": [9, 9],
                           "generations": 4, "total_flops": 1.0})
    out = co.heldout_comparison(solved, table, bins, NoChoice()).set_index("bin")
    assert out.loc[1, "baseline_accuracy"] == 1.0 and out.loc[2, "baseline_accuracy"] == 0.0  # oracle bins, not 9
    assert out.loc["all", "questions"] == 2
    with pytest.raises(ValueError, match="no bin"):
        co.heldout_comparison(solved, table, bins.iloc[:1], NoChoice())


def test_cross_validation_rejects_missing_bins():
    table = rt.per_question(results([("m", {}, 1, 0, q, True) for q in ("a", "b", "c")]))
    with pytest.raises(ValueError, match="attach_bins"):
        co.cross_validated_envelope(table)
    with pytest.raises(ValueError, match="bin kind"):
        rt.attach_bins(table, bins_for(["a"], {"a": 1}), "absolute")


# ------------------------------------------------------------------------------ efficiency
def test_log_interpolation_by_hand():
    assert efficiency.interpolate_log([1, 4, 16], [0.2, 0.4, 0.6], 2) == pytest.approx(0.3)
    assert efficiency.interpolate_log([1, 4, 16], [0.2, 0.4, 0.6], 8) == pytest.approx(0.5)
    assert efficiency.matching_cost([1, 4, 16], [0.2, 0.4, 0.6], 0.5) == (pytest.approx(8.0), "")
    assert efficiency.matching_cost([1, 4, 16], [0.2, 0.4, 0.6], 0.3) == (pytest.approx(2.0), "")
    assert efficiency.matching_cost([1, 4, 16], [0.2, 0.4, 0.6], 0.25)[0] == pytest.approx(math.sqrt(2))
    assert efficiency.matching_cost([1, 4, 16], [0.2, 0.4, 0.6], 0.4) == (4.0, "")
    cost, flag = efficiency.matching_cost([1, 4, 16], [0.2, 0.4, 0.6], 0.7)
    assert math.isnan(cost) and flag == "not_reached"
    assert efficiency.matching_cost([2, 4], [0.5, 0.6], 0.3) == (2.0, "lower_bound_ratio")
    # the *smallest* cost: a later dip and recovery does not count
    assert efficiency.matching_cost([1, 2, 4, 8], [0.1, 0.5, 0.3, 0.5], 0.5) == (2.0, "")


# --------------------------------------------------------------------------------- policy
def test_difficulty_thresholds_reproduce_the_predicted_bins():
    rng = np.random.default_rng(0)
    scores = rng.random(50)
    order = np.argsort(-scores)
    bins = np.empty(50, int)
    bins[order] = np.arange(50) * 5 // 50 + 1  # quantile bins, 1 = highest score = easiest
    table = pd.DataFrame({"question_id": [f"q{i}" for i in range(50)], "predicted_score": scores,
                          "predicted_bin": bins})
    edges, higher_is_easier = co.difficulty_thresholds(table)
    assert higher_is_easier and len(edges) == 4 and edges == sorted(edges)
    from ttc_lib.analysis.strategy_policy import Choice, Policy

    policy = Policy(tuple(edges), higher_is_easier, {b: {1: Choice("best_of_n")} for b in range(1, 6)}, 1)
    assert [policy.bin_of(s) for s in scores] == bins.tolist()
    flipped = table.assign(predicted_score=-scores)
    edges2, easier2 = co.difficulty_thresholds(flipped)
    policy2 = Policy(tuple(edges2), easier2, {b: {1: Choice("best_of_n")} for b in range(1, 6)}, 1)
    assert not easier2 and [policy2.bin_of(-s) for s in scores] == bins.tolist()


def test_fit_policy_choices_per_predicted_bin():
    questions = [f"q{i}" for i in range(8)]
    bins = pd.DataFrame({"question_id": questions, "oracle_bin": 1, "predicted_bin": [1] * 4 + [2] * 4,
                         "predicted_score": [0.9, 0.8, 0.85, 0.95, 0.1, 0.2, 0.3, 0.15]})
    rows = []
    for i, q in enumerate(questions):
        for n in (2, 8):
            rows.append(("beam", {"lookahead": 0, "width": 2}, n, 0, q, i >= 4))
            rows.append(("best_of_n", {"selection": "weighted"}, n, 0, q, i < 4))
    policy = co.fit_policy(rt.per_question(results(rows)), bins, probe_samples=2, envelope="search")
    assert policy.thresholds == pytest.approx((0.55,))
    assert policy.choices[1][8].strategy == "best_of_n" and policy.choices[1][8].config == {"selection": "weighted"}
    assert policy.choices[2][2].strategy == "beam" and policy.choices[2][2].config == {"lookahead": 0, "width": 2}
    assert policy.choices[2][2].fitted_accuracy == 1.0
    assert policy.meta["questions"] == 8
    assert policy.bin_of(0.9) == 1 and policy.bin_of(0.2) == 2


def test_a_bin_of_one_question_is_scored_by_a_choice_made_on_the_other_questions():
    rows = [("lucky", {}, 4, 0, q, q == "c") for q in "abc"]  # right only on the lone question
    rows += [("steady", {}, 4, 0, q, q != "c", 1e6) for q in "abc"]  # right elsewhere, costly
    table = rt.attach_bins(rt.per_question(results(rows)), bins_for(list("abc"), {"a": 1, "b": 1, "c": 2}))
    env = co.cross_validated_envelope(table, n_splits=3)
    lone = env.by_question[env.by_question.question_id == "c"]
    assert len(lone) == 3 and set(lone.method) == {"steady"} and (lone.accuracy == 0).all()


def test_common_questions_and_fit_policy_fallback_for_an_empty_bin():
    rows = [("best_of_n", {"selection": "weighted"}, 2, 0, q, True) for q in "abcd"]
    rows += [("beam", {"width": 2}, 2, 0, q, q == "a", 10.0) for q in "ab"]
    table = rt.per_question(results(rows))
    assert co.common_questions(table) == ["a", "b"]
    bins = pd.DataFrame({"question_id": list("abcd"), "oracle_bin": 1, "predicted_bin": [1, 1, 2, 2],
                         "predicted_score": [0.9, 0.8, 0.2, 0.1]})
    policy = co.fit_policy(table[table.question_id.isin(["a", "b"])], bins, probe_samples=1, envelope="search",
                           threshold_questions=list("abcd"))
    assert policy.thresholds == pytest.approx((0.5,))
    assert policy.meta["bins_without_questions"] == [2]
    assert policy.choices[2] == policy.choices[1]  # bin 2 has no fit question: the pooled choice
    assert policy.choices[1][2].strategy == "best_of_n"


def test_method_curve_matches_the_config_exactly_apart_from_vary():
    rows = []
    for n in (2, 4):
        for q in "ab":
            rows.append(("revisions", {"chains": n, "length": 1, "selection": "hierarchical"}, n, 0, q, q == "a"))
            rows.append(("revisions", {"chains": n, "length": 1, "selection": "hierarchical", "verifier": "plain"},
                         n, 0, q, True))
            rows.append(("revisions", {"chains": 1, "length": n, "selection": "hierarchical"}, n, 0, q, True))
    table = rt.per_question(results(rows))
    curve = efficiency.method_curve(table, "revisions", vary=("chains",), length=1, selection="hierarchical")
    assert curve.budget.tolist() == [2, 4] and curve.accuracy.tolist() == [0.5, 0.5]
    assert curve.method.tolist() == ["revisions[chains=2,length=1,selection=hierarchical]",
                                     "revisions[chains=4,length=1,selection=hierarchical]"]
    with pytest.raises(ValueError, match="several methods"):
        efficiency.method_curve(table, "revisions", vary=("chains", "verifier"), length=1, selection="hierarchical")
