"""The long results table of notebooks 04/05 as one row per (method, budget, question).

Rows come in as ``search.common.RESULT_COLUMNS`` (one per strategy, config, budget, seed, question);
a method is "strategy[config]" (``method_name``). ``with_methods`` checks the schema and names each
row's method (the first step of every reading of the table: ``per_question`` here, the
per-seed accuracy curves of ``accuracy``); ``per_question`` averages over seeds/subsets;
``attach_bins`` adds notebook 03's difficulty bin — the one way any table gets its bin, its
``missing`` argument saying whether a question without a bin is left out or an error. Both the
envelope selection (``compute_optimal``) and the efficiency ratios (``efficiency``) start from
``per_question``.
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


def with_methods(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` (one row per strategy, config, budget, seed, question) plus a ``method`` column
    and ``correct`` as float; raises on a missing RESULT_COLUMNS column or an empty table."""
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise ValueError(f"results table lacks column(s) {missing} (see search.common.RESULT_COLUMNS)")
    if results.empty:
        raise ValueError("results table is empty")
    return results.assign(method=[method_name(s, c) for s, c in zip(results.strategy, results.config)],
                          correct=results.correct.astype(float))


def per_question(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, budget, question): accuracy (mean of ``correct`` over seeds/subsets),
    mean generations and total FLOPs, and the strategy/config that produced it."""
    frame = with_methods(results)
    table = (frame.groupby(["method", "budget", "question_id"], sort=True)
             .agg(strategy=("strategy", "first"), config=("config", "first"), accuracy=("correct", "mean"),
                  generations=("generations", "mean"), total_flops=("total_flops", "mean"),
                  seeds=("seed", "nunique"))
             .reset_index())
    table["budget"] = table.budget.astype(int)
    return table


def attach_bins(table: pd.DataFrame, bins: pd.DataFrame, kind: str = "oracle", *, missing: str = "drop",
                on: str = "question_id") -> pd.DataFrame:
    """``table`` with an int ``bin`` column: notebook 03's oracle or predicted bin (``kind``) of
    each row's question (``bins``: question_id -> ``oracle_bin`` / ``predicted_bin``, first row
    per question; ``on``: the table's question column).

    ``missing`` decides the rows whose question has no bin: "drop" leaves them out (the
    envelope and policy fits compare binned questions only), "raise" fails naming them (accuracy
    curves and notebook 07 bin every row, so a missing bin is an error there)."""
    column = BIN_COLUMNS.get(kind)
    if column is None:
        raise ValueError(f"bin kind must be one of {sorted(BIN_COLUMNS)}, got {kind!r}")
    if missing not in ("drop", "raise"):
        raise ValueError(f"missing must be 'drop' or 'raise', got {missing!r}")
    for needed in ("question_id", column):
        if needed not in bins.columns:
            raise ValueError(f"bins table lacks column {needed!r}")
    lookup = bins.drop_duplicates("question_id").set_index("question_id")[column].astype(int)
    binned = table[on].isin(lookup.index)
    if missing == "raise" and not binned.all():
        unbinned = table[on][~binned].unique()
        raise ValueError(f"{len(unbinned)} question(s) have no bin in the bins table, e.g. {list(unbinned[:3])}")
    out = table[binned].copy()
    out["bin"] = out[on].map(lookup).astype(int)
    return out
