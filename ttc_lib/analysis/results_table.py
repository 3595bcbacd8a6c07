"""The long results table of notebooks 04/05 as one row per (method, budget, question).

Rows come in as ``search.common.RESULT_COLUMNS`` (one per strategy, config, budget, seed, question);
a method is "strategy[config]" (``method_name``). ``per_question`` averages over seeds/subsets,
``attach_bins`` adds notebook 03's difficulty bin. Both the envelope selection
(``compute_optimal``) and the efficiency ratios (``efficiency``) start from this table.
"""

from __future__ import annotations

import pandas as pd

from ttc_lib.search.common import RESULT_COLUMNS

BASELINE = "best_of_n[selection=weighted]"  # the paper's baseline method name
BIN_COLUMNS = {"oracle": "oracle_bin", "predicted": "predicted_bin"}
COST_COLUMNS = ("generations", "total_flops")


def method_name(strategy: str, config: str) -> str:
    """"strategy[config]" as the 04 summary spells it ("beam[lookahead=0,width=4]")."""
    return f"{strategy}[{config}]" if config not in ("", "-") else strategy


def parse_config_key(text: str) -> dict:
    """Inverse of ``search.common.config_key``: "lookahead=1,width=4" -> {"lookahead": 1, "width": 4}."""
    if text in ("", "-"):
        return {}
    config = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"config {text!r}: item {item!r} is not key=value")
        config[key] = _literal(value)
    return config


def _literal(value: str):
    if value in ("True", "False"):
        return value == "True"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def per_question(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, budget, question): accuracy (mean of ``correct`` over seeds/subsets),
    mean generations and total FLOPs, and the strategy/config that produced it."""
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise ValueError(f"results table lacks columns {missing} (see search.common.RESULT_COLUMNS)")
    if results.empty:
        raise ValueError("results table is empty")
    frame = results.assign(method=[method_name(s, c) for s, c in zip(results.strategy, results.config)],
                           correct=results.correct.astype(float))
    table = (frame.groupby(["method", "budget", "question_id"], sort=True)
             .agg(strategy=("strategy", "first"), config=("config", "first"), accuracy=("correct", "mean"),
                  generations=("generations", "mean"), total_flops=("total_flops", "mean"),
                  seeds=("seed", "nunique"))
             .reset_index())
    table["budget"] = table.budget.astype(int)
    return table


def attach_bins(table: pd.DataFrame, bins: pd.DataFrame, kind: str = "oracle") -> pd.DataFrame:
    """``table`` with a ``bin`` column (oracle or predicted) for the questions that have a bin."""
    column = BIN_COLUMNS.get(kind)
    if column is None:
        raise ValueError(f"bin kind must be one of {sorted(BIN_COLUMNS)}, got {kind!r}")
    for needed in ("question_id", column):
        if needed not in bins.columns:
            raise ValueError(f"bins table lacks column {needed!r}")
    lookup = bins.drop_duplicates("question_id").set_index("question_id")[column].astype(int)
    out = table[table.question_id.isin(lookup.index)].copy()
    out["bin"] = out.question_id.map(lookup).astype(int)
    return out
