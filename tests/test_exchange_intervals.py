"""Intervals over questions for notebook 07 (analysis.exchange_intervals): the per-question small
side averages to exchange_table's accuracy, pairing with the larger model, undefined cases, Figure 9."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

from ttc_lib.analysis import exchange_intervals as xi, plots_exchange
from ttc_lib.analysis.exchange import exchange_table, flops_match

QUESTIONS = [f"q{i}" for i in range(8)]
COMMON = dict(small_params=10, large_params=40, small_pretrain_tokens=1000, large_pretrain_tokens=1000)
MATCHES = {2.25: flops_match(**COMMON, large_tokens_per_question=5, r=2.25),  # K = 8 (arxiv); 800 FLOPs
           22.0: flops_match(**COMMON, large_tokens_per_question=1, r=22.0)}  # ~88 FLOPs: unaffordable


def per_question() -> pd.DataFrame:
    """One envelope, one bin, budgets 4 and 16: question i is right at 4 when i < 2, at 16 when i < 6."""
    rows = [{"envelope": "search", "bin": 1, "budget": b, "question_id": q,
             "accuracy": float(i < (2 if b == 4 else 6)), "total_flops": 100.0 * b}
            for b in (4, 16) for i, q in enumerate(QUESTIONS)]
    return pd.DataFrame(rows)


def greedy(large_right: int = 2, small_right: int = 1) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "problem_id": q, "correct": i < n}
                         for m, n in (("large", large_right), ("policy", small_right)) for i, q in enumerate(QUESTIONS)])


def test_per_question_small_side_averages_to_exchange_table():
    paired = xi.exchange_per_question(per_question(), greedy(), MATCHES, size_ratio=4)
    means = per_question().groupby(["bin", "budget"])[["accuracy", "total_flops"]].mean().reset_index()
    table = exchange_table(means, {1: 2 / 8}, size_ratio=4, matches=MATCHES)
    joined = paired.groupby(["r", "accounting", "bin"]).small.mean().reset_index().merge(table, on=["r", "accounting", "bin"])
    assert len(joined) == 6
    assert joined.small.fillna(-1).tolist() == pytest.approx(joined.small_accuracy.fillna(-1).tolist())
    arxiv = paired[(paired.r == 2.25) & (paired.accounting == "arxiv")].set_index("question_id").small
    assert arxiv["q0"] == pytest.approx(1.0) and arxiv["q3"] == pytest.approx(0.5) and arxiv["q7"] == 0.0


def test_intervals_pair_both_sides_and_say_why_undefined():
    intervals = xi.exchange_intervals(xi.exchange_per_question(per_question(), greedy(), MATCHES, size_ratio=4))
    row = intervals[(intervals.r == 2.25) & (intervals.accounting == "arxiv")].iloc[0]
    assert row.difference["estimate"] == pytest.approx(0.5 - 0.25) and row.difference["n_questions"] == 8
    assert row.relative["estimate"] == pytest.approx(100.0)  # 0.5 / 0.25 - 1
    assert row.small_greedy_relative == pytest.approx(-50.0)  # 1/8 vs 2/8
    unaffordable = intervals[(intervals.r == 22.0) & (intervals.accounting == "measured")].iloc[0]
    assert unaffordable.difference["estimate"] is None and "unaffordable" in unaffordable.difference["reason"]
    same = xi.exchange_intervals(xi.exchange_per_question(per_question().assign(accuracy=lambda d: (
        d.question_id < "q2").astype(float)), greedy(), MATCHES, size_ratio=4))
    point = same[(same.r == 2.25) & (same.accounting == "arxiv")].iloc[0].difference
    assert point["estimate"] == point["ci_low"] == point["ci_high"] == 0.0  # same answers: paired, a point
    never = xi.exchange_intervals(xi.exchange_per_question(per_question(), greedy(large_right=0), MATCHES, size_ratio=4))
    assert never.relative.iloc[0]["estimate"] is None  # the larger model answers none: no relative gain
    ci = xi.exchange_ci(intervals, "search", "arxiv")
    assert sorted(ci) == ["1"] and sorted(ci["1"], key=float) == ["2.25", "22.0"]
    assert set(xi.exchange_ci_all(intervals)["search"]) == {"arxiv", "iclr", "measured"}
    fig = plots_exchange.figure9(pd.concat([intervals, never.assign(envelope="pooled")]), [2.25, 22.0],
                                 ["search", "pooled"], "oracle")
    assert len(fig.axes) == 6


def test_rebuilt_envelope_must_equal_06s_and_greedy_must_cover_it():
    envelope = per_question().groupby(["envelope", "bin", "budget"]).accuracy.mean().reset_index()
    xi.check_envelope(per_question(), envelope)
    with pytest.raises(ValueError, match="rerun 06_compute_optimal"):
        xi.check_envelope(per_question(), envelope.assign(accuracy=envelope.accuracy + 0.01))
    with pytest.raises(ValueError, match="no greedy answer"):
        xi.exchange_per_question(per_question(), greedy().iloc[2:], MATCHES, size_ratio=4)


def test_paper_side_and_headline():
    assert [xi.paper_side(b, 0.16) for b in (1, 3, 4, 5)] == [">", ">", "<", "<"]
    assert xi.paper_side(2, 22.0) is None and xi.paper_side(5, 22.0) == "<"
    assert xi.headline(["search", "pooled"]) == ("search", "arxiv") and xi.headline(["pooled"])[0] == "pooled"
