"""Question difficulty relative to the policy: oracle bins, predicted bins, and how well they agree.

Rules (Snell et al. 2024, *Difficulty*; Liu et al. 2025 for the absolute bins)
---------------------------------------------------------------------------
* Input is the sample pool of notebook 03: one row per (question_id, sample) with ``correct``
  (the sample's answer graded against the reference; an unfinished sample is wrong) and
  ``score`` (the verifier's solution score; 0 for an unfinished sample). Every question must
  have the same number of samples S >= 1 and no missing values.
* **Oracle difficulty** of a question = its pass@1 = mean of ``correct`` over its S samples.
* **Predicted difficulty** = mean of ``score`` over the same S samples. It reads only
  ``question_id`` and ``score``: no ground truth (``predicted_difficulty`` never touches
  ``correct``).
* **Quantile bins** (the paper's): K bins (default 5) of equal size, **bin 1 = easiest**
  (highest pass@1 / highest mean score). Questions are ranked by value, descending; ties are
  ordered by ``question_id`` ascending, so the ranking is a total order and the same input
  always gives the same bins. Rank r (0-based) of n goes to bin ``floor(r·K/n) + 1``: bin
  sizes differ by at most one and bins are ordered (every value in bin b >= every value in
  bin b+1).
  ``ties="split"`` (default) keeps bins balanced, so a group of tied values (e.g. many
  questions at pass@1 = 1.0) may straddle a bin edge. ``ties="group"`` keeps tied values
  together: the whole group goes to the bin of its *median* rank — still ordered and
  deterministic, but bins may be unequal or empty.
* **Absolute bins** (Liu et al.): 1 = easy (value >= 0.5), 2 = medium (0.1 <= value < 0.5),
  3 = hard (value < 0.1). Predicted absolute bins apply the same thresholds to the mean
  verifier score.
* **Agreement**: confusion matrix (rows oracle bin, columns predicted bin, every bin present,
  zeros included), Spearman rank correlation between oracle pass@1 and predicted score (ties
  get average ranks; NaN when either side is constant), exact and within-one-bin agreement.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

BIN_COLUMNS = ["question_id", "level", "oracle_pass1", "oracle_bin", "predicted_score", "predicted_bin"]
ABSOLUTE_THRESHOLDS = (0.5, 0.1)  # easy >= 0.5 > medium >= 0.1 > hard
ABSOLUTE_NAMES = {1: "easy", 2: "medium", 3: "hard"}


def _check_pool(pool: pd.DataFrame, columns: tuple[str, ...]) -> None:
    _require(pool, columns, what="pool", empty="pool is empty: no samples to estimate difficulty from")
    bad = [c for c in columns if pool[c].isna().any()]
    if bad:
        raise ValueError(f"pool has missing values in column(s) {bad}")
    sizes = pool.groupby("question_id").size()
    if sizes.nunique() != 1:
        raise ValueError(f"every question needs the same number of samples S; got sizes "
                         f"{sorted(sizes.unique().tolist())} (e.g. {sizes.idxmin()!r} has {sizes.min()})")


def oracle_difficulty(pool: pd.DataFrame) -> pd.Series:
    """pass@1 per question (index question_id, sorted): mean of ``correct`` over its samples."""
    _check_pool(pool, ("question_id", "correct"))
    return pool.groupby("question_id")["correct"].mean().astype(float).rename("oracle_pass1")


def predicted_difficulty(pool: pd.DataFrame) -> pd.Series:
    """Mean verifier score per question (index question_id, sorted); reads no ground truth."""
    _check_pool(pool, ("question_id", "score"))
    scores = pool[["question_id", "score"]]
    if not np.all(np.isfinite(scores["score"].to_numpy(dtype=float))):
        raise ValueError("pool.score must be finite (no NaN/inf)")
    return scores.groupby("question_id")["score"].mean().astype(float).rename("predicted_score")


def _ranking(values: pd.Series) -> np.ndarray:
    """Positions of ``values`` sorted by value descending, then index (question_id) ascending."""
    frame = pd.DataFrame({"value": values.to_numpy(dtype=float), "qid": values.index.astype(str)})
    return frame.sort_values(["value", "qid"], ascending=[False, True], kind="mergesort").index.to_numpy()


def quantile_bins(values: pd.Series, n_bins: int = 5, ties: str = "split") -> pd.Series:
    """Equal-size bins of ``values`` (index = question_id), 1 = highest value = easiest.

    See the module rules for the tie rule; ``n_bins`` may exceed the number of questions (some
    bins are then empty)."""
    if not isinstance(values, pd.Series):
        raise TypeError(f"values must be a pandas Series indexed by question_id, got {type(values).__name__}")
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be an int >= 1, got {n_bins!r}")
    if ties not in ("split", "group"):
        raise ValueError(f"ties must be 'split' or 'group', got {ties!r}")
    if values.empty:
        raise ValueError("quantile_bins: no values to bin")
    if values.isna().any() or not np.all(np.isfinite(values.to_numpy(dtype=float))):
        raise ValueError("quantile_bins: values must be finite (no NaN/inf)")
    if values.index.has_duplicates:
        raise ValueError("quantile_bins: duplicate question ids in the index")
    n = len(values)
    order = _ranking(values)
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n)
    if ties == "group":
        v = values.to_numpy(dtype=float)
        median_rank = pd.Series(ranks).groupby(v).transform("median").to_numpy()
        ranks = np.floor(median_rank).astype(np.int64)
    bins = ranks * n_bins // n + 1
    return pd.Series(bins.astype(int), index=values.index, name="bin")


def absolute_bins(values: pd.Series, thresholds: tuple[float, float] = ABSOLUTE_THRESHOLDS) -> pd.Series:
    """Liu et al.'s bins: 1 easy (>= thresholds[0]), 2 medium (>= thresholds[1]), 3 hard."""
    if not isinstance(values, pd.Series):
        raise TypeError(f"values must be a pandas Series indexed by question_id, got {type(values).__name__}")
    high, low = thresholds
    if not 0 <= low < high <= 1:
        raise ValueError(f"thresholds must satisfy 0 <= low < high <= 1, got {thresholds}")
    v = values.to_numpy(dtype=float)
    if np.isnan(v).any():
        raise ValueError("absolute_bins: values must not be NaN")
    bins = np.where(v >= high, 1, np.where(v >= low, 2, 3))
    return pd.Series(bins.astype(int), index=values.index, name="bin")


def bin_values(values: pd.Series, scheme: str = "quantile", n_bins: int = 5, ties: str = "split") -> pd.Series:
    """``quantile_bins`` or ``absolute_bins`` by name."""
    if scheme == "quantile":
        return quantile_bins(values, n_bins, ties)
    if scheme == "absolute":
        return absolute_bins(values)
    raise ValueError(f"unknown binning scheme {scheme!r}; use 'quantile' or 'absolute'")


def n_bins_of(scheme: str, n_bins: int = 5) -> int:
    """How many bins a scheme makes (absolute: 3)."""
    return 3 if scheme == "absolute" else n_bins


def difficulty_bins(pool: pd.DataFrame, levels: Mapping[str, int] | None = None, scheme: str = "quantile",
                    n_bins: int = 5, ties: str = "split") -> pd.DataFrame:
    """The ``bins.parquet`` table: one row per question with BIN_COLUMNS, sorted by question_id.

    ``levels`` maps question_id to the source's own level (None: level -1 everywhere)."""
    oracle = oracle_difficulty(pool)
    predicted = predicted_difficulty(pool)
    if levels is not None:
        missing = [q for q in oracle.index if q not in levels]
        if missing:
            raise ValueError(f"levels has no entry for {len(missing)} question(s), e.g. {missing[:3]}")
    table = pd.DataFrame({
        "question_id": oracle.index.astype(str),
        "level": [int(levels[q]) if levels is not None else -1 for q in oracle.index],
        "oracle_pass1": oracle.to_numpy(),
        "oracle_bin": bin_values(oracle, scheme, n_bins, ties).to_numpy(),
        "predicted_score": predicted.reindex(oracle.index).to_numpy(),
        "predicted_bin": bin_values(predicted, scheme, n_bins, ties).reindex(oracle.index).to_numpy(),
    })
    return table[BIN_COLUMNS].reset_index(drop=True)


def bin_edges(bins: pd.DataFrame, value: str = "oracle_pass1", bin_column: str = "oracle_bin") -> dict[int, list[float]]:
    """bin -> [min, max] of ``value`` inside it (the realised edges; empty bins left out)."""
    _require(bins, (value, bin_column))
    grouped = bins.groupby(bin_column)[value].agg(["min", "max"])
    return {int(b): [round(float(r["min"]), 6), round(float(r["max"]), 6)] for b, r in grouped.iterrows()}


def spearman(x, y) -> float:
    """Spearman rank correlation (average ranks for ties); NaN if either side is constant."""
    x, y = pd.Series(np.asarray(x, dtype=float)), pd.Series(np.asarray(y, dtype=float))
    if len(x) != len(y):
        raise ValueError(f"spearman: lengths differ ({len(x)} vs {len(y)})")
    if len(x) < 2 or x.isna().any() or y.isna().any():
        raise ValueError("spearman needs at least two pairs and no NaN")
    rx, ry = x.rank(method="average").to_numpy(), y.rank(method="average").to_numpy()
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def confusion_matrix(bins: pd.DataFrame, n_bins: int | None = None) -> pd.DataFrame:
    """Counts of questions per (oracle_bin row, predicted_bin column); all bins 1..n_bins shown."""
    _require(bins, ("oracle_bin", "predicted_bin"))
    k = int(n_bins or max(bins.oracle_bin.max(), bins.predicted_bin.max()))
    labels = list(range(1, k + 1))
    table = pd.crosstab(bins.oracle_bin, bins.predicted_bin).reindex(index=labels, columns=labels, fill_value=0)
    table.index.name, table.columns.name = "oracle_bin", "predicted_bin"
    return table.astype(int)


def agreement(bins: pd.DataFrame, n_bins: int | None = None) -> dict:
    """How well predicted bins match oracle bins: confusion matrix (list of rows, oracle bins
    1..K down, predicted across), Spearman of oracle pass@1 vs predicted score, exact and
    within-one-bin agreement rates."""
    _require(bins, ("oracle_pass1", "predicted_score", "oracle_bin", "predicted_bin"))
    matrix = confusion_matrix(bins, n_bins)
    gap = (bins.oracle_bin - bins.predicted_bin).abs()
    return {"confusion": matrix.to_numpy().tolist(),
            "spearman": spearman(bins.oracle_pass1, bins.predicted_score),
            "exact": float((gap == 0).mean()), "within_one": float((gap <= 1).mean()),
            "questions": int(len(bins))}


def per_bin_table(bins: pd.DataFrame) -> pd.DataFrame:
    """One row per oracle bin: questions, mean / min / max oracle pass@1, mean predicted score and level."""
    return bins.groupby("oracle_bin").agg(questions=("question_id", "size"), oracle_pass1=("oracle_pass1", "mean"),
                                          pass1_min=("oracle_pass1", "min"), pass1_max=("oracle_pass1", "max"),
                                          predicted_score=("predicted_score", "mean"), mean_level=("level", "mean"))


def balanced_subset(bins: pd.DataFrame, per_bin: int, seed: int = 0, bin_column: str = "oracle_bin") -> list[str]:
    """``per_bin`` question ids drawn at random from each bin (all of a smaller bin), sorted.

    Deterministic for a seed: the first ``per_bin`` of a permutation drawn by a numpy Generator seeded
    by (seed, bin), so draws of one seed are nested: the questions drawn with 8 per bin are among
    those drawn with 24 (notebook 05's questions lie within 04's, 04's grid within its headline set)."""
    _require(bins, ("question_id", bin_column))
    if per_bin < 1:
        raise ValueError(f"per_bin must be >= 1, got {per_bin}")
    chosen: list[str] = []
    for b, group in bins.sort_values("question_id").groupby(bin_column):
        ids = group.question_id.astype(str).to_numpy()
        take = min(per_bin, len(ids))
        pick = np.random.default_rng([seed, int(b)]).permutation(len(ids))[:take]
        chosen.extend(ids[np.sort(pick)].tolist())
    return sorted(chosen)


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str = "table",
             empty: str = "table is empty") -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} is missing column(s) {missing}; it has {list(frame.columns)}")
    if frame.empty:
        raise ValueError(empty)
