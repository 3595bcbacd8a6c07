"""Search-method accuracies and paired differences with intervals over questions (analysis.comparisons)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ttc_lib.analysis.comparisons import (
    accuracy_intervals,
    difference_table,
    differences,
    interval_table,
    lookahead_versus_beam,
)
from ttc_lib.search.common import RESULT_COLUMNS


def rows(strategy, config, budget, questions, correct, seeds=(0, 1)):
    out = []
    for seed in seeds:
        for q, c in zip(questions, correct):
            out.append({"strategy": strategy, "config": config, "budget": budget, "seed": seed, "question_id": q,
                        "answer": "1", "correct": bool(c), "generations": budget, "generated_tokens": 1,
                        "prompt_tokens": 1, "verifier_tokens": 1, "generator_flops": 1.0, "verifier_flops": 1.0,
                        "total_flops": 2.0})
    return out


QUESTIONS = [f"q{i:03d}" for i in range(100)]
BINS = pd.DataFrame({"question_id": QUESTIONS, "oracle_bin": [1 + i % 5 for i in range(100)],
                     "predicted_bin": [1] * 100})
HALF = [i % 2 for i in range(100)]


def table():
    rng = np.random.default_rng(0)
    data = rows("best_of_n", "selection=weighted", 4, QUESTIONS, HALF)
    data += rows("beam", "lookahead=0,width=4", 4, QUESTIONS, [1] * 100)
    data += rows("beam", "lookahead=1,width=4", 4, QUESTIONS[:40], rng.random(40) < 0.5)
    return pd.DataFrame(data, columns=RESULT_COLUMNS)


def test_paired_difference_per_bin_and_pooled():
    diffs = differences(table(), BINS)
    cell = diffs["beam[lookahead=0,width=4]"]["4"]
    assert cell["all"]["estimate"] == pytest.approx(0.5) and cell["all"]["n_questions"] == 100
    assert cell["all"]["ci_low"] < 0.5 < cell["all"]["ci_high"] + 1e-12
    assert sorted(cell) == ["1", "2", "3", "4", "5", "all"] and cell["1"]["n_questions"] == 20
    assert "best_of_n[selection=weighted]" not in diffs
    # the lookahead method ran 40 questions: judged on those only
    assert diffs["beam[lookahead=1,width=4]"]["4"]["all"]["n_questions"] == 40
    json.dumps(diffs, allow_nan=False)


def test_accuracy_intervals_count_each_cells_questions():
    acc = accuracy_intervals(table(), BINS)
    assert acc["beam[lookahead=0,width=4]"]["4"]["all"] == {"estimate": 1.0, "ci_low": 1.0, "ci_high": 1.0,
                                                             "n_questions": 100}
    assert acc["beam[lookahead=1,width=4]"]["4"]["all"]["n_questions"] == 40
    frame = interval_table(acc)
    assert set(frame.columns) >= {"method", "budget", "bin", "estimate", "ci_low", "ci_high", "n_questions"}
    assert len(difference_table(differences(table(), BINS), budgets=[4])) == 12


def test_lookahead_against_beam_without_it():
    out = lookahead_versus_beam(table(), BINS)
    assert list(out) == ["lookahead=1"] and out["lookahead=1"]["4"]["all"]["n_questions"] == 40
    assert out["lookahead=1"]["4"]["all"]["estimate"] < 0


def test_missing_baseline_and_unbinned_questions_are_errors():
    with pytest.raises(ValueError, match="baseline 'nope' has no rows"):
        differences(table(), BINS, baseline="nope")
    with pytest.raises(ValueError, match="no bin"):
        accuracy_intervals(table(), BINS.iloc[:50])
