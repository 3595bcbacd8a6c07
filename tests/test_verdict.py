"""The verdict rule (analysis.verdict): an interval on the paper's side reproduces, on the other
side contradicts, across the threshold is inconclusive; missing intervals are "not measured"."""

from __future__ import annotations

import math

import pytest

from ttc_lib.analysis.verdict import verdict, verdict_line


def iv(low, high, est=None):
    return {"estimate": (low + high) / 2 if est is None else est, "ci_low": low, "ci_high": high, "n_questions": 100}


@pytest.mark.parametrize("low,high,side,threshold,expected", [
    (0.01, 0.05, ">", 0, "reproduces"), (-0.05, -0.01, ">", 0, "contradicts"), (-0.01, 0.05, ">", 0, "inconclusive"),
    (0.0, 0.05, ">", 0, "inconclusive"), (-0.05, -0.01, "<", 0, "reproduces"), (0.01, 0.05, "<", 0, "contradicts"),
    (1.5, 3.0, ">", 1, "reproduces"), (0.5, 0.9, ">", 1, "contradicts"), (0.9, 1.2, ">", 1, "inconclusive"),
])
def test_rule(low, high, side, threshold, expected):
    assert verdict(iv(low, high), side, threshold) == expected


def test_missing_and_undefined_are_not_measured():
    assert verdict(None, ">") == "not measured"
    assert verdict({}, ">") == "not measured"
    assert verdict({"estimate": None, "ci_low": None, "ci_high": None, "reason": "baseline flat"}, ">") == "not measured"
    assert verdict(iv(math.nan, 1.0), ">") == "not measured"
    assert "baseline flat" in verdict_line("ratio", {"ci_low": None, "ci_high": None, "reason": "baseline flat"}, ">", 1)


def test_guards():
    with pytest.raises(ValueError, match="side"):
        verdict(iv(0, 1), ">=")
    with pytest.raises(ValueError, match="ci_low <= ci_high"):
        verdict(iv(1, 0), ">")
    with pytest.raises(ValueError, match="threshold"):
        verdict(iv(0, 1), ">", math.nan)


def test_line_names_numbers_and_verdict():
    line = verdict_line("beam - best-of-N at N=4", iv(0.02, 0.08, 0.05), ">", 0)
    assert "0.050 [0.020, 0.080] (100 questions)" in line and line.endswith("reproduces")
