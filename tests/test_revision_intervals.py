"""Intervals over questions for notebook 05 (analysis.revision_intervals) and the ratio bootstrap
they use (uncertainty.bootstrap_ratio): small synthetic attempts/results tables, hand-worked values."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from ttc_lib.analysis import plots_revisions, revision_intervals as ri
from ttc_lib.analysis.uncertainty import bootstrap_ratio
from ttc_lib.revisions.analysis import pass1_by_step, transitions

QUESTIONS = [f"q{i:02d}" for i in range(10)]
BINS = pd.DataFrame({"question_id": QUESTIONS, "oracle_bin": [1] * 5 + [2] * 5, "predicted_bin": 1})


def attempts(correct_of) -> pd.DataFrame:
    """A staircase like the sweep's: chains 0, 1 of 2 steps and chain 2 of 4, two seeds per question;
    ``correct_of(question index, seed, chain, step)`` -> bool."""
    rows = [{"question_id": q, "seed": s, "chain": c, "step": t, "correct": bool(correct_of(i, s, c, t))}
            for i, q in enumerate(QUESTIONS) for s in (0, 1) for c, length in enumerate((2, 2, 4))
            for t in range(length)]
    return pd.DataFrame(rows)


def results(accuracy_of) -> pd.DataFrame:
    """A revisions results table at N = 4 for every split and two selections;
    ``accuracy_of(question index, chains, selection)`` -> correct (same for both seeds)."""
    rows = []
    for selection in ("hierarchical", "majority"):
        for chains, length in ((4, 1), (2, 2), (1, 4)):
            for i, q in enumerate(QUESTIONS):
                for seed in (0, 1):
                    rows.append({"strategy": "revisions", "config": f"chains={chains},length={length},selection={selection}",
                                 "budget": 4, "seed": seed, "question_id": q,
                                 "correct": bool(accuracy_of(i, chains, selection))})
    return pd.DataFrame(rows)


def test_ratio_of_a_column_with_itself_is_a_point_so_the_resamples_are_paired():
    table = pd.DataFrame({"question_id": QUESTIONS, "x": np.arange(1.0, 11.0)})
    out = bootstrap_ratio(table.assign(y=table.x), "x", "y")
    assert out["estimate"] == out["ci_low"] == out["ci_high"] == 1.0 and out["dropped"] == 0
    doubled = bootstrap_ratio(table.assign(y=2 * table.x), "y", "x")
    assert doubled["ci_low"] == pytest.approx(2.0) and doubled["ci_high"] == pytest.approx(2.0)


def test_ratio_is_a_ratio_of_sums_and_zero_denominators_follow_the_rule():
    table = pd.DataFrame({"question_id": QUESTIONS, "num": [1.0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                          "den": [2.0, 1, 1, 0, 0, 0, 0, 0, 0, 0]})
    dropped = bootstrap_ratio(table, "num", "den", zero="drop")
    assert dropped["estimate"] == pytest.approx(0.25) and dropped["dropped"] > 0
    assert 0 <= dropped["ci_low"] <= dropped["estimate"] <= dropped["ci_high"] <= 1
    unbounded = bootstrap_ratio(table, "num", "den", zero="unbounded")
    assert unbounded["ci_high"] is None and "no upper bound" in unbounded["reason"]
    nothing = bootstrap_ratio(table.assign(den=0.0), "num", "den")
    assert nothing["estimate"] is None and "0 on every question" in nothing["reason"]
    with pytest.raises(ValueError, match="zero must be"):
        bootstrap_ratio(table, "num", "den", zero="ignore")


def test_step_intervals_match_pass1_by_step_and_pair_the_steps():
    frame = attempts(lambda i, s, c, t: (i + t + s) % 3 == 0)
    curve = ri.step_curve(frame, BINS)
    assert curve.estimate.tolist() == pytest.approx(pass1_by_step(frame).pass1.tolist())
    assert (curve.ci_low <= curve.estimate).all() and (curve.estimate <= curve.ci_high).all()
    later = attempts(lambda i, s, c, t: t >= 3)  # every attempt from step 4 on is right, none before
    diff = ri.step_difference(later, 4, 1, BINS)
    assert diff["estimate"] == diff["ci_low"] == diff["ci_high"] == 1.0 and diff["n_questions"] == 10
    assert ri.step_difference(later, 5, 1, BINS)["estimate"] is None


def test_correct_to_wrong_is_the_share_of_transitions():
    frame = attempts(lambda i, s, c, t: (t % 2 == 0) if i < 4 else (i + c + t) % 2 == 0)
    out = ri.correct_to_wrong_ci(frame, BINS)
    assert out["estimate"] == pytest.approx(transitions(frame)["correct_to_wrong"])
    assert out["pairs"] == transitions(frame)["correct_pairs"]
    assert out["ci_low"] <= out["estimate"] <= out["ci_high"]
    assert ri.correct_to_wrong_ci(attempts(lambda *a: False), BINS)["estimate"] is None


def test_sequential_vs_parallel_names_the_ratio_and_is_paired():
    # hierarchical: sequential (1 chain of 4) right on every question of bin 1, parallel never
    table = results(lambda i, chains, sel: sel == "hierarchical" and chains == 1 and i < 5)
    out = ri.sequential_vs_parallel(table, BINS)["4"]
    assert out["all"]["ratio"] == "4:1" and out["all"]["versus"] == "1:4"
    assert out["all"]["estimate"] == pytest.approx(0.5)
    assert out["1"]["estimate"] == out["1"]["ci_low"] == 1.0 and out["2"]["estimate"] == 0.0
    selection = ri.selection_differences(table, BINS)["4"]["hierarchical - majority"]
    assert selection["estimate"] == pytest.approx(0.5) and selection["n_questions"] == 10


def test_best_ratio_per_bin_lists_ties_and_gives_an_interval():
    table = results(lambda i, chains, sel: chains == 2 if i < 5 else True)
    ratios = ri.ratio_intervals(table, BINS)
    best = ri.best_ratio_by_bin(ratios)["4"]
    assert best["1"]["ratio"] == "1:1" and best["1"]["estimate"] == 1.0 and best["1"]["tied"] == 1
    assert best["2"]["ratio"] == "1:4 = 1:1 = 4:1" and best["2"]["tied"] == 3
    assert best["all"]["n_questions"] == 10
    fig = plots_revisions.accuracy_vs_ratio(ratios, hue="bin")
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="hue must be"):
        plots_revisions.accuracy_vs_ratio(ratios, hue="seed")


def test_revision_intervals_hold_the_summary_keys_and_draw():
    frame = attempts(lambda i, s, c, t: (i + t) % 2 == 0)
    table = results(lambda i, chains, sel: (i + chains) % 3 == 0)
    out = ri.revision_intervals(frame, table, BINS)
    probe = pd.DataFrame({"question_id": QUESTIONS * 2, "condition": ["none"] * 10 + ["own_wrong"] * 10,
                          "pass1": [0.5] * 10 + [0.75] * 10})
    out["context_probe_ci"] = ri.probe_differences(probe, BINS)
    assert set(out) == set(ri.SUMMARY_KEYS)
    assert out["context_probe_ci"]["own_wrong - none"]["estimate"] == pytest.approx(0.25)
    assert sorted(out["pass1_step_ci"], key=int) == ["1", "2", "3", "4"]
    fig = plots_revisions.pass1_by_step(out["pass1_step_ci"])
    assert fig.axes[0].get_xlabel().startswith("revision step")
