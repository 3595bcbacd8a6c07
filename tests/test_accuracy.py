"""Accuracy curves per method/budget/bin with the spread over seeds, and the 04 summary layout."""

from __future__ import annotations

import pandas as pd
import pytest

from ttc_lib.analysis.accuracy import accuracy_curves, summary_dict
from ttc_lib.search.common import RESULT_COLUMNS


def row(strategy, config, budget, seed, qid, correct, flops=1.0):
    return {"strategy": strategy, "config": config, "budget": budget, "seed": seed, "question_id": qid,
            "answer": "1", "correct": correct, "generations": budget, "generated_tokens": 10, "prompt_tokens": 5,
            "verifier_tokens": 3, "generator_flops": flops, "verifier_flops": 0.0, "total_flops": flops}


RESULTS = pd.DataFrame([
    # beam width 4, budget 4: seed 0 gets 2/2 right, seed 1 gets 1/2 -> mean .75, std .25
    row("beam", "lookahead=0,width=4", 4, 0, "a", True, 10), row("beam", "lookahead=0,width=4", 4, 0, "b", True, 30),
    row("beam", "lookahead=0,width=4", 4, 1, "a", True, 10), row("beam", "lookahead=0,width=4", 4, 1, "b", False, 30),
    # best-of-N weighted, budget 1: one seed, 1/2 right
    row("best_of_n", "selection=weighted", 1, 0, "a", False, 2), row("best_of_n", "selection=weighted", 1, 0, "b", True, 4),
], columns=RESULT_COLUMNS)
BINS = pd.DataFrame({"question_id": ["a", "b"], "oracle_bin": [1, 5], "predicted_bin": [2, 5]})


def test_overall_and_per_bin_curves():
    curves = accuracy_curves(RESULTS, BINS)
    beam = curves[(curves.method == "beam[lookahead=0,width=4]")].set_index("bin")
    assert beam.loc["all", "mean"] == pytest.approx(0.75) and beam.loc["all", "std"] == pytest.approx(0.25)
    assert beam.loc["all", "seeds"] == 2 and beam.loc["all", "questions"] == 2
    assert beam.loc["all", "total_flops"] == pytest.approx(20.0)
    assert beam.loc[1, "mean"] == pytest.approx(1.0) and beam.loc[1, "std"] == 0
    assert beam.loc[5, "mean"] == pytest.approx(0.5) and beam.loc[5, "std"] == pytest.approx(0.5)
    predicted = accuracy_curves(RESULTS, BINS, kind="predicted")
    assert set(predicted.bin) == {"all", 2, 5}
    assert set(accuracy_curves(RESULTS).bin) == {"all"}


def test_summary_layout():
    summary = summary_dict(accuracy_curves(RESULTS, BINS))
    assert summary["accuracy"] == {"beam[lookahead=0,width=4]": {"4": 0.75}, "best_of_n[selection=weighted]": {"1": 0.5}}
    assert summary["accuracy_std"]["beam[lookahead=0,width=4]"]["4"] == 0.25
    assert summary["by_bin"]["best_of_n[selection=weighted]"] == {"1": {"1": 0.0, "5": 1.0}}
    assert summary["by_bin_std"]["beam[lookahead=0,width=4]"]["4"] == {"1": 0.0, "5": 0.5}


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="1 question.* no bin.*'b'"):  # attach_bins(missing="raise")
        accuracy_curves(RESULTS, BINS.iloc[:1])
    with pytest.raises(ValueError, match="lacks column"):
        accuracy_curves(RESULTS.drop(columns="seed"))
    with pytest.raises(ValueError, match="empty"):
        accuracy_curves(RESULTS.iloc[:0])
