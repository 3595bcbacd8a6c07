"""The efficiency ratio as a curve over the baseline's budget (``analysis.ratio_curve``), on synthetic
curves and per-question tables (no models)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ttc_lib.analysis import compute_optimal as co, ratio_curve as rc

BUDGETS = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def curve(costs, accuracy, cost="budget", **extra) -> pd.DataFrame:
    return pd.DataFrame({cost: costs, "accuracy": accuracy, **extra})


def log_linear(costs, shift=1.0):
    """0.1 + 0.08 log2(shift * cost): a curve straight on a log-cost axis."""
    return [0.1 + 0.08 * math.log2(shift * c) for c in costs]


# ----------------------------------------------------------------------------- hulls
def test_monotone_hull_is_the_best_accuracy_at_no_more_cost():
    hull = rc.monotone_hull(curve([4, 1, 2, 4, 8], [0.55, 0.5, 0.4, 0.6, 0.58]))
    assert hull.budget.tolist() == [1, 2, 4, 8]
    assert hull.accuracy.tolist() == [0.5, 0.5, 0.6, 0.6]
    assert rc.hull_at(hull, 3) == 0.5
    assert math.isnan(rc.hull_at(hull, 0.5))


# ------------------------------------------------------------------- the cases
def test_a_baseline_against_itself_is_one_at_every_defined_budget():
    base = curve(BUDGETS, [0.2, 0.3, 0.35, 0.5, 0.45, 0.55, 0.56, 0.58, 0.57],
                 generations=BUDGETS, total_flops=[100.0 * b for b in BUDGETS])
    out = rc.ratio_curve(base, base)
    defined = out[out.status == "defined"]
    assert len(defined) >= 4
    assert defined.ratio.tolist() == [1.0] * len(defined)
    assert set(out.status) <= {"defined", "baseline_flat", "no_reference"}
    # .45 at 16 is below .5 at 8, .57 at 256 below .58 at 128: the hull is flat there, never 2x
    assert out.set_index("budget").status[[16, 256]].tolist() == ["baseline_flat", "baseline_flat"]


def test_a_baseline_flat_after_eight_is_undefined_beyond():
    base = curve(BUDGETS, [0.1, 0.2, 0.3, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4])
    out = rc.ratio_curve(base, curve(BUDGETS, log_linear(BUDGETS, 2.0))).set_index("budget")
    assert out.status[[1, 2]].tolist() == ["no_reference"] * 2
    assert out.status[[4, 8]].tolist() == ["defined"] * 2
    assert (out.status[out.index > 8] == "baseline_flat").all()
    assert out.ratio[out.index > 8].isna().all()
    assert (out.reason[out.index > 8] != "").all()


def test_an_envelope_twice_as_cheap_is_two_at_every_defined_budget():
    costs = [0.3, 0.7, 1.9, 5.0, 13.0, 40.0, 90.0, 150.0]  # measured elsewhere than B / 2
    out = rc.ratio_curve(curve(BUDGETS, log_linear(BUDGETS)), curve(costs, log_linear(costs, 2.0)))
    defined = out[out.status == "defined"]
    assert defined.budget.tolist() == BUDGETS[2:]
    assert defined.ratio.to_numpy() == pytest.approx([2.0] * 7, rel=1e-9)
    assert defined.matched_cost.to_numpy() == pytest.approx(defined.budget.to_numpy() / 2, rel=1e-9)
    assert (defined.bound == "").all()


def test_flops_as_cost_carry_the_budget():
    flops = [1e9 * b for b in BUDGETS]
    base = curve(flops, log_linear(BUDGETS), cost="total_flops", budget=BUDGETS)
    env = curve([f / 2 for f in flops], log_linear(BUDGETS), cost="total_flops")
    out = rc.ratio_curve(base, env, cost="total_flops")
    assert out.columns[:2].tolist() == ["total_flops", "budget"]
    defined = out[out.status == "defined"]
    assert defined.budget.tolist() == BUDGETS[2:]
    assert defined.ratio.to_numpy() == pytest.approx([2.0] * 7, rel=1e-9)
    by_budget = rc.ratio_curve(base, env, cost="total_flops", improvement_margin={b: 0.5 * (b == 4) for b in BUDGETS})  # keyed by budget
    assert by_budget.set_index("budget").status[4] == "baseline_flat"


def test_an_envelope_that_never_reaches_the_baseline_is_censored_and_counted():
    base = curve(BUDGETS, log_linear(BUDGETS))
    env = curve(BUDGETS[:6], [min(a, 0.45) for a in log_linear(BUDGETS[:6], 2.0)])
    out = rc.ratio_curve(base, env).set_index("budget")
    assert out.status[[4, 8, 16]].tolist() == ["defined"] * 3  # the baseline reaches .42 at 16, .50 at 32
    censored = out[out.status == "censored"]
    assert censored.index.tolist() == [32, 64, 128, 256]
    assert censored.ratio.isna().all() and (censored.bound == "below").all()
    assert censored.ratio_bound.tolist() == pytest.approx([1, 2, 4, 8])
    assert censored.envelope_best.tolist() == pytest.approx([0.45] * 4)
    summary = rc.aggregate_ratios(out.reset_index()[out.reset_index().budget == 64])
    assert summary["defined"] == 0 and summary["geometric_mean"] is None
    assert summary["counts"]["censored"] == 1


def test_inverse_and_forward_cases_are_never_averaged_together():
    rows = pd.DataFrame({"ratio": [0.5, 2.0], "status": ["defined", "defined"], "bound": ["", ""]})
    summary = rc.aggregate_ratios(rows)
    assert summary["geometric_mean"] == pytest.approx(1.0)
    assert summary["median"] == pytest.approx(1.25)
    assert summary["below_one"] == 1
    censored = pd.DataFrame({"ratio": [math.nan], "status": ["censored"], "bound": ["below"]})
    with_censored = rc.aggregate_ratios([rows, censored])
    assert with_censored["geometric_mean"] == summary["geometric_mean"]
    assert with_censored["median"] == summary["median"]
    assert with_censored["counts"] == {**summary["counts"], "censored": 1}
    assert with_censored["total"] == 3 and with_censored["defined"] == 2


def test_an_envelope_worse_than_the_baseline_is_a_ratio_below_one():
    out = rc.ratio_curve(curve(BUDGETS, log_linear(BUDGETS)), curve([2 * b for b in BUDGETS], log_linear(BUDGETS)))
    defined = out[out.status == "defined"]
    assert defined.ratio.to_numpy() == pytest.approx([0.5] * len(defined), rel=1e-9)


def test_all_zero_accuracy_is_undefined():
    zeros = curve(BUDGETS, [0.0] * len(BUDGETS))
    assert set(rc.ratio_curve(zeros, zeros).status) == {"all_zero"}
    late = rc.ratio_curve(curve(BUDGETS, [0, 0, 0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), zeros).set_index("budget")
    assert late.status[[1, 2, 4]].tolist() == ["all_zero"] * 3
    assert late.status[[8, 256]].tolist() == ["censored"] * 2


def test_the_margin_is_the_baselines_interval():
    base = curve(BUDGETS, log_linear(BUDGETS))  # gains 0.16 from B/4 to B
    assert set(rc.ratio_curve(base, base, improvement_margin=0.2).status) == {"no_reference", "baseline_flat"}
    assert (rc.ratio_curve(base, base, improvement_margin=0.1).status == "defined").sum() == 7
    margins = {b: (0.2 if b >= 64 else 0.0) for b in BUDGETS}
    out = rc.ratio_curve(base, base, improvement_margin=margins).set_index("budget")
    assert out.status[[16, 32]].tolist() == ["defined"] * 2
    assert out.status[[64, 128, 256]].tolist() == ["baseline_flat"] * 3
    with pytest.raises(ValueError, match="no entry for cost 256"):
        rc.ratio_curve(base, base, improvement_margin={b: 0.0 for b in BUDGETS[:-1]})
    with pytest.raises(ValueError, match=">= 0"):
        rc.ratio_curve(base, base, improvement_margin=-0.1)


def test_an_envelope_better_at_its_first_point_is_a_lower_bound():
    base = curve(BUDGETS, log_linear(BUDGETS))
    out = rc.ratio_curve(base, curve([4, 8], [0.9, 0.95])).set_index("budget")
    assert out.status[16] == "defined" and out.bound[16] == "at_least" and out.ratio[16] == 4.0
    assert rc.aggregate_ratios(out.reset_index())["at_least"] == (out.bound == "at_least").sum()


def test_input_guards():
    good = curve(BUDGETS, log_linear(BUDGETS))
    with pytest.raises(ValueError, match=r"baseline lacks column\(s\) \['accuracy'\]"):
        rc.ratio_curve(good.drop(columns="accuracy"), good)
    with pytest.raises(ValueError, match="total_flops"):
        rc.ratio_curve(good, good, cost="total_flops")
    with pytest.raises(ValueError, match="positive"):
        rc.ratio_curve(good, curve([0, 1], [0.1, 0.2]))
    with pytest.raises(ValueError, match="positive"):
        rc.monotone_hull(curve([-1, 1], [0.1, 0.2]))
    with pytest.raises(ValueError, match="NaN"):
        rc.ratio_curve(good, curve([1, 2], [0.1, math.nan]))
    with pytest.raises(ValueError, match="empty"):
        rc.ratio_curve(good, good.iloc[:0])
    with pytest.raises(ValueError, match="status"):
        rc.aggregate_ratios(pd.DataFrame({"ratio": [1.0]}))
    with pytest.raises(ValueError, match="unknown status"):
        rc.aggregate_ratios(pd.DataFrame({"ratio": [1.0], "status": ["lower_bound_ratio"]}))


# ------------------------------------------------------------------ best fixed strategy
def table_of(accuracy: dict, bin_of: dict, budgets=(1, 4)) -> pd.DataFrame:
    """A per_question table: accuracy[method][question] at every budget (flops 100 per generation)."""
    rows = [{"method": m, "strategy": m, "config": "-", "budget": b, "question_id": q, "accuracy": a,
             "generations": float(b), "total_flops": 100.0 * b, "bin": bin_of[q]}
            for m, by_q in accuracy.items() for q, a in by_q.items() for b in budgets]
    return pd.DataFrame(rows)


def sorted_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["split", "budget", "question_id"]).reset_index(drop=True)


def test_with_one_bin_the_best_fixed_strategy_is_the_envelope():
    rng = np.random.default_rng(3)
    questions = [f"q{i}" for i in range(9)]
    bin_of = {q: 1 for q in questions[:8]} | {"q8": 2}  # and a bin of one question
    accuracy = {m: {q: float(rng.integers(0, 5)) / 4 for q in questions} for m in ("a", "b", "c")}
    table = table_of(accuracy, bin_of)
    envelope = co.cross_validated_envelope(table, n_splits=4, seed=7)
    fixed = rc.best_fixed_strategy(table, n_splits=4, seed=7)
    pd.testing.assert_frame_equal(sorted_rows(fixed.by_question), sorted_rows(envelope.by_question),
                                  check_dtype=False)
    ratios = rc.split_ratio_curves(fixed, envelope)
    assert (ratios[ratios.status == "defined"].ratio == 1.0).all()


def test_the_halves_are_the_envelopes_halves():
    """One method per question, right on it only: the method chosen on a half names the half's
    first question, so the envelope's choices reveal its halves."""
    questions = [f"q{i:02d}" for i in range(14)]
    bin_of = {q: 1 if i < 8 else 2 for i, q in enumerate(questions)}
    table = table_of({f"m_{q}": {p: float(p == q) for p in questions} for q in questions}, bin_of, budgets=(1,))
    envelope = co.cross_validated_envelope(table, n_splits=5, seed=11).by_question
    fixed = rc.best_fixed_strategy(table, n_splits=5, seed=11).by_question.set_index(["split", "question_id"])
    for split, (first, second) in enumerate(rc.cross_validation_halves(table, n_splits=5, seed=11)):
        assert sorted(first + second) == questions
        for q in questions:
            other = second if q in first else first
            chosen = envelope[(envelope.split == split) & (envelope.question_id == q)].method.item()
            assert chosen == "m_" + min(p for p in other if bin_of[p] == bin_of[q])
            assert fixed.method[(split, q)] == "m_" + min(other)


def test_choosing_per_difficulty_is_credited_only_with_what_it_adds():
    questions = [f"q{i}" for i in range(8)]
    bin_of = {q: 1 if i < 4 else 2 for i, q in enumerate(questions)}
    table = table_of({"easy": {q: float(bin_of[q] == 1) for q in questions},
                      "hard": {q: float(bin_of[q] == 2) for q in questions}}, bin_of)
    envelope = co.cross_validated_envelope(table, n_splits=3, seed=0)
    fixed = rc.best_fixed_strategy(table, n_splits=3, seed=0)
    assert (envelope.overall.accuracy == 1.0).all()
    assert (fixed.overall.accuracy == 0.5).all()
    assert fixed.by_question.groupby(["split", "budget"]).method.nunique().le(2).all()
    with pytest.raises(ValueError, match="bin"):
        rc.best_fixed_strategy(table.drop(columns="bin"))
