"""Accuracy curves from a long results table: per method and budget, overall and per difficulty
bin, with the spread over seeds.

Rules
-----
* Input: a results table with ``search.common.RESULT_COLUMNS`` (one row per strategy, config,
  budget, seed, question; checked and named by ``results_table.with_methods``) and, for per-bin
  numbers, the ``bins.parquet`` table of notebook 03 (``results_table.attach_bins`` with
  ``missing="raise"``: a result whose question has no bin is an error).
* A method is ``results_table.method_name(strategy, config)`` = "strategy[config]", e.g.
  "beam[lookahead=0,width=4]" (the key of 04's summary.json).
* For each (method, budget[, bin]) and each seed: accuracy = mean of ``correct`` over that
  seed's questions. Reported: ``mean`` and ``std`` (population std, ddof=0; 0 for one seed)
  of those per-seed accuracies over seeds. Best-of-N from the pool stores its random subsets as
  seeds (seed·1000 + subset), so its spread is over subsets. ``generations`` and
  ``total_flops`` are means per question over all rows (the cost axis).
* ``summary_dict`` turns curves into the JSON of 04's summary: ``accuracy`` method → budget →
  mean, ``accuracy_std`` the same for std, ``by_bin`` method → budget → bin → mean,
  ``by_bin_std`` likewise; budgets and bins as strings (JSON keys), values rounded to 4 places.
"""

from __future__ import annotations

import pandas as pd

from ttc_lib.analysis.results_table import attach_bins, with_methods

CURVE_COLUMNS = ["method", "strategy", "config", "budget", "bin", "mean", "std", "seeds", "questions",
                 "generations", "total_flops"]
ALL = "all"  # the ``bin`` value of the overall curve


def _curves(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    per_seed = frame.groupby(keys + ["seed"], sort=True).agg(acc=("correct", "mean"), n=("question_id", "nunique"))
    stats = per_seed.groupby(keys, sort=True).agg(mean=("acc", "mean"), std=("acc", lambda s: s.std(ddof=0)),
                                                  seeds=("acc", "size"), questions=("n", "max"))
    costs = frame.groupby(keys, sort=True).agg(strategy=("strategy", "first"), config=("config", "first"),
                                               generations=("generations", "mean"),
                                               total_flops=("total_flops", "mean"))
    return stats.join(costs).reset_index()


def accuracy_curves(results: pd.DataFrame, bins: pd.DataFrame | None = None, kind: str = "oracle") -> pd.DataFrame:
    """CURVE_COLUMNS: one row per (method, budget, bin) with bin = "all" for the overall curve;
    per-bin rows only when ``bins`` is given (``kind``: "oracle" or "predicted" bins)."""
    frame = with_methods(results)
    overall = _curves(frame, ["method", "budget"]).assign(bin=ALL)
    parts = [overall]
    if bins is not None:
        parts.append(_curves(attach_bins(frame, bins, kind, missing="raise"), ["method", "budget", "bin"]))
    curves = pd.concat(parts, ignore_index=True)
    curves["bin"] = curves["bin"].astype(object)
    return curves[CURVE_COLUMNS]


def summary_dict(curves: pd.DataFrame) -> dict:
    """The 04 summary's ``accuracy``/``accuracy_std`` and ``by_bin``/``by_bin_std`` (module rules)."""
    out: dict[str, dict] = {"accuracy": {}, "accuracy_std": {}, "by_bin": {}, "by_bin_std": {}}
    for row in curves.itertuples():
        budget = str(int(row.budget))
        if row.bin == ALL:
            out["accuracy"].setdefault(row.method, {})[budget] = round(float(row.mean), 4)
            out["accuracy_std"].setdefault(row.method, {})[budget] = round(float(row.std), 4)
        else:
            b = str(int(row.bin))
            out["by_bin"].setdefault(row.method, {}).setdefault(budget, {})[b] = round(float(row.mean), 4)
            out["by_bin_std"].setdefault(row.method, {}).setdefault(budget, {})[b] = round(float(row.std), 4)
    return out
