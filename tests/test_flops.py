"""The FLOPs exchange of the paper's section 7, checked against hand-worked values."""

from __future__ import annotations

import pytest

from ttc_lib.analysis.exchange import PAPER_R, flops_match, inference_flops, inference_multiplier, pretraining_flops


def test_pretraining_and_inference_flops_by_hand():
    assert pretraining_flops(1000, 50) == 300_000  # 6 * 1000 * 50
    assert inference_flops(1000, 50) == 100_000  # 2 * 1000 * 50
    assert inference_flops(1000, 50, variant="iclr") == 200_000  # 4 * 1000 * 50


@pytest.mark.parametrize("m, r, variant, expected", [
    (14, 1.0, "arxiv", 14 + 3 * 13),  # 53
    (14, 1.0, "iclr", 14 + 1.5 * 13),  # 33.5
    (4, 0.16, "arxiv", 4 + 3 * 3 / 0.16),  # 60.25
    (4, 22.0, "arxiv", 4 + 9 / 22),  # 4.409...
    (14, 0.79, "iclr", 14 + 1.5 * 13 / 0.79),  # 38.68...
    (1, 0.16, "arxiv", 1.0),  # same size: no extra budget
])
def test_multiplier_matches_hand_worked_values(m, r, variant, expected):
    assert inference_multiplier(m, r, variant) == pytest.approx(expected, rel=1e-12)


def test_multiplier_hand_worked_numbers_written_out():
    assert inference_multiplier(14, 1.0) == pytest.approx(53.0)
    assert inference_multiplier(4, 0.16) == pytest.approx(60.25)
    assert inference_multiplier(14, 1.0, "iclr") == pytest.approx(33.5)


def test_multiplier_equalises_total_flops():
    """6·M·N·D_p + 2·M·N·D_i == 6·N·D_p + 2·N·K·D_i for the K returned (both variants)."""
    n, d_p = 1_000_000, 3e5
    for r in PAPER_R:
        for variant, c in (("arxiv", 2), ("iclr", 4)):
            m, d_i = 3.3, r * d_p
            k = inference_multiplier(m, r, variant)
            large = 6 * m * n * d_p + c * m * n * d_i
            small = 6 * n * d_p + c * n * k * d_i
            assert small == pytest.approx(large, rel=1e-12)


def test_multiplier_falls_with_r():
    values = [inference_multiplier(14, r) for r in PAPER_R]
    assert values == sorted(values, reverse=True)
    assert values[-1] > 14


@pytest.mark.parametrize("m, r", [(0.5, 1.0), (14, 0.0), (14, -1.0), (float("nan"), 1.0), (True, 1.0)])
def test_multiplier_rejects_bad_input(m, r):
    with pytest.raises(ValueError):
        inference_multiplier(m, r)


def test_unknown_variant_named():
    with pytest.raises(ValueError, match="variant"):
        inference_multiplier(14, 1.0, "neurips")


def test_flops_match_by_hand():
    # small 10 params, large 40 (M=4), both trained on 1000 tokens; large answers in 5 tokens; R = 0.5
    match = flops_match(small_params=10, large_params=40, small_pretrain_tokens=1000, large_pretrain_tokens=1000,
                        large_tokens_per_question=5, r=0.5)
    assert match.queries == 100  # D_i = 500 tokens / 5
    assert match.large_pretrain == 240_000 and match.large_inference == 40_000  # 6*40*1000, 2*40*500
    assert match.small_pretrain == 60_000
    assert match.small_inference_allowance == 220_000
    assert match.per_question_allowance == 2_200
    assert match.multiplier_tokens == pytest.approx(inference_multiplier(4, 0.5))  # 4 + 3*3/0.5 = 22
    assert match.multiplier_tokens == pytest.approx(22.0)
    assert match.small_total(2_200) == pytest.approx(match.large_total)
    assert match.small_total(1_000) < match.large_total


def test_flops_match_rejects_bad_input():
    with pytest.raises(ValueError, match="large_tokens_per_question"):
        flops_match(small_params=10, large_params=40, small_pretrain_tokens=1000, large_pretrain_tokens=1000,
                    large_tokens_per_question=0, r=0.5)


def test_exchange_table_by_hand():
    import math

    import pandas as pd

    from ttc_lib.analysis.exchange import exchange_table

    envelope = pd.DataFrame({"bin": 1, "budget": [1, 4, 16], "accuracy": [0.2, 0.4, 0.6],
                             "total_flops": [100.0, 400.0, 1600.0]})
    common = dict(small_params=10, large_params=40, small_pretrain_tokens=1000, large_pretrain_tokens=1000)
    matches = {2.25: flops_match(**common, large_tokens_per_question=5, r=2.25),  # allowance 800 / question
               22.0: flops_match(**common, large_tokens_per_question=1, r=22.0)}  # allowance ~88 / question
    table = exchange_table(envelope, {1: 0.45}, size_ratio=4, matches=matches).set_index(["r", "accounting"])
    arxiv = table.loc[(2.25, "arxiv")]  # K = 4 + 3*3/2.25 = 8 generations: log-midpoint of 4 and 16
    assert arxiv.small_budget == pytest.approx(8) and arxiv.small_accuracy == pytest.approx(0.5)
    assert arxiv.relative_improvement == pytest.approx(0.05 / 0.45 * 100) and arxiv.winner == "test-time compute"
    assert arxiv.large_flops_total == pytest.approx(240_000 + 2 * 40 * 2250)
    iclr = table.loc[(2.25, "iclr")]  # K = 4 + 1.5*3/2.25 = 6
    assert iclr.small_budget == pytest.approx(6)
    assert iclr.small_accuracy == pytest.approx(0.4 + 0.2 * math.log(1.5) / math.log(4))
    measured = table.loc[(2.25, "measured")]  # 800 FLOPs per question: log-midpoint of 400 and 1600
    assert measured.small_accuracy == pytest.approx(0.5) and measured.small_budget == pytest.approx(8)
    assert measured.small_flops_total == pytest.approx(measured.large_flops_total)
    assert table.loc[(22.0, "measured")].flag == "unaffordable" and table.loc[(22.0, "measured")].winner == "pretraining"
    assert table.loc[(22.0, "arxiv")].small_budget == pytest.approx(4 + 9 / 22)
    big = exchange_table(envelope, {1: 0.7}, size_ratio=14, matches={0.16: matches[2.25]}).set_index("accounting")
    assert big.loc["arxiv"].flag == "capped" and big.loc["arxiv"].small_budget == 16
    assert big.loc["arxiv"].winner == "pretraining"
    late = envelope.assign(budget=[8, 16, 32])  # the smallest measured budget 8 > K(22) = 4.4
    over = exchange_table(late, {1: 0.1}, size_ratio=4, matches={22.0: matches[22.0]}).set_index("accounting")
    assert over.loc["arxiv"].flag == "over_share" and over.loc["arxiv"].small_budget == 8
