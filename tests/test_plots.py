"""Figures draw from the tables they are given (smoke tests; no maths lives in plots.py)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from ttc_lib.analysis import plots


def curves() -> pd.DataFrame:
    rows = []
    for method in ("best_of_n[selection=weighted]", "beam[lookahead=0,width=4]"):
        for b in ["all", 1, 2, 3]:
            for budget in (1, 4, 16):
                rows.append({"method": method, "budget": budget, "bin": b, "mean": 0.5, "std": 0.1,
                             "generations": budget, "total_flops": 1e6 * budget})
    return pd.DataFrame(rows)


def test_accuracy_figures_have_one_panel_per_bin():
    fig = plots.accuracy_by_bin(curves(), x="total_flops")
    assert len(fig.axes) == 3 and fig.axes[0].get_xscale() == "log"
    fig = plots.accuracy_vs_budget(curves(), methods=["beam[lookahead=0,width=4]"])
    assert len(fig.axes[0].lines) == 1
    with pytest.raises(ValueError, match="no curves for method"):
        plots.accuracy_vs_budget(curves(), methods=["nope"])
    with pytest.raises(ValueError, match="no per-bin curves"):
        plots.accuracy_by_bin(curves()[curves()["bin"] == "all"])


def test_difficulty_figures():
    rng = np.random.default_rng(0)
    bins = pd.DataFrame({"question_id": [f"q{i}" for i in range(20)], "level": rng.integers(1, 5, 20),
                         "oracle_pass1": rng.random(20), "oracle_bin": np.repeat([1, 2, 3, 4, 5], 4),
                         "predicted_score": rng.random(20), "predicted_bin": rng.integers(1, 6, 20)})
    fig = plots.difficulty_overview(bins, [[1, 0], [0, 1]])
    assert len(fig.axes) >= 3
    assert plots.pass1_by_level(bins).axes
