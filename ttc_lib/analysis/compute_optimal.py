"""Compute-optimal test-time scaling: cross-validated selection, efficiency ratios, the policy fit.

From the long results tables of notebooks 04/05 (``search.common.RESULT_COLUMNS``) joined with
the difficulty bins of notebook 03:

* ``per_question`` — accuracy of every method ("strategy[config]") at every budget on every
  question (mean over seeds/subsets), with its mean generations and FLOPs (``results_table``).
* ``cross_validated_envelope`` — the paper's 2-fold selection within each bin: the bin's
  questions are split in two random halves; for every budget the method with the best accuracy
  on one half is charged on the *other* half, then the halves swap. Every question is thus
  evaluated exactly once, by a choice made without it; the bin's accuracy is the mean over its
  questions. Repeated over ``n_splits`` random splits (mean / std). Ties in selection go to the
  cheaper method (mean FLOPs on the selection half), then to the name.
* ``efficiency_ratios`` — the envelope's compute saving over best-of-N (``efficiency``).
* ``fit_choices`` / ``fit_policy`` — the (uncross-validated) choice per (bin, budget) on the
  questions given, and the usable policy: thresholds on the *predicted* difficulty score plus
  the choice per predicted bin and budget (``policy.Policy``, saved as policy.json).

The table helpers and the efficiency ratios live in ``results_table`` and ``efficiency``; their
public names are re-exported here, so ``from ttc_lib import compute_optimal as co`` still
reaches all of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

# re-exported: notebooks and tests reach the whole workflow as ``co.<name>``
from ttc_lib.analysis.difficulty import balanced_subset
from ttc_lib.analysis.results_table import (
    BASELINE,
    attach_bins,
    parse_config_key,
)


# ------------------------------------------------------------------------- cross-validation
@dataclass
class Envelope:
    """A cross-validated compute-optimal envelope (one envelope kind, one bin kind).

    ``by_question``: split, bin, budget, question_id, method (chosen without the question),
    accuracy, generations, total_flops. ``by_bin`` / ``overall``: their means per split.
    """

    by_question: pd.DataFrame
    name: str = ""

    @property
    def by_bin(self) -> pd.DataFrame:
        return (self.by_question.groupby(["split", "bin", "budget"])[["accuracy", "generations", "total_flops"]]
                .mean().reset_index())

    @property
    def overall(self) -> pd.DataFrame:
        return (self.by_question.groupby(["split", "budget"])[["accuracy", "generations", "total_flops"]]
                .mean().reset_index())

    def summary(self, by_bin: bool = False) -> pd.DataFrame:
        """Mean and std over splits of accuracy (and mean costs) per budget (and bin)."""
        frame, keys = (self.by_bin, ["bin", "budget"]) if by_bin else (self.overall, ["budget"])
        out = frame.groupby(keys).agg(accuracy=("accuracy", "mean"), accuracy_std=("accuracy", "std"),
                                      generations=("generations", "mean"), total_flops=("total_flops", "mean"))
        return out.reset_index().fillna({"accuracy_std": 0.0})


def _choose(acc: np.ndarray, cost: np.ndarray, names: Sequence[str], cols: np.ndarray) -> int:
    """Row of the best mean accuracy over ``cols``; ties: lower mean cost, then name."""
    means, costs = acc[:, cols].mean(axis=1), cost[:, cols].mean(axis=1)
    return min(range(len(names)), key=lambda i: (-round(float(means[i]), 12), float(costs[i]), names[i]))


def _budget_matrices(table: pd.DataFrame, budget: int, questions: Sequence[str]):
    """accuracy / flops / generations matrices (methods x questions) at one budget; methods that
    lack any of ``questions`` are left out."""
    sub = table[table.budget == budget]
    acc = sub.pivot(index="method", columns="question_id", values="accuracy").reindex(columns=questions)
    keep = acc.notna().all(axis=1)
    acc = acc[keep]
    flops = sub.pivot(index="method", columns="question_id", values="total_flops").reindex(
        index=acc.index, columns=questions)
    gens = sub.pivot(index="method", columns="question_id", values="generations").reindex(
        index=acc.index, columns=questions)
    return list(acc.index), acc.to_numpy(float), flops.to_numpy(float), gens.to_numpy(float)


def candidate_rows(table: pd.DataFrame, n_splits: int, methods: Iterable[str] | None = None) -> pd.DataFrame:
    """The rows a cross-validated selection chooses from (``methods`` restricts them), after the
    checks every such selection needs: a ``bin`` column and at least one split."""
    if "bin" not in table.columns:
        raise ValueError("table has no 'bin' column: call attach_bins(table, bins, kind) first")
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    if methods is not None:
        methods = set(methods)
        table = table[table.method.isin(methods)]
        if table.empty:
            raise ValueError(f"no rows for methods {sorted(methods)}")
    return table


def cross_validated_envelope(table: pd.DataFrame, *, n_splits: int = 10, seed: int = 0,
                             methods: Iterable[str] | None = None, name: str = "") -> Envelope:
    """2-fold cross-validated compute-optimal selection within each bin (see the module doc).

    ``table``: ``per_question`` output with a ``bin`` column (``attach_bins``). ``methods``
    restricts the candidates. A bin with a single question cannot be split: that question is
    scored with the method chosen on all other questions of the table (never on itself).
    """
    table = candidate_rows(table, n_splits, methods)
    questions_of = {b: sorted(g.question_id.unique()) for b, g in table.groupby("bin")}
    alone = [qs[0] for qs in questions_of.values() if len(qs) == 1]
    matrices = {(b, budget): _budget_matrices(table[table.bin == b], budget, qs)
                for b, qs in questions_of.items() for budget in sorted(table.budget.unique()) if len(qs) > 1}
    rng = np.random.default_rng(seed)
    rows = []
    for q in alone:  # a bin of one question: chosen on every other question (of all bins) instead
        rows.extend((split, *row) for split in range(n_splits) for row in _choose_without(table, q))
    for split in range(n_splits):
        for b, qs in questions_of.items():
            if len(qs) < 2:
                continue
            order = rng.permutation(len(qs))
            halves = (np.sort(order[: len(qs) // 2]), np.sort(order[len(qs) // 2:]))
            for budget in sorted(table.budget.unique()):
                names, acc, flops, gens = matrices[(b, budget)]
                if not names:
                    continue
                for select, evaluate in ((halves[0], halves[1]), (halves[1], halves[0])):
                    i = _choose(acc, flops, names, select)
                    rows.extend((split, b, budget, qs[j], names[i], acc[i, j], gens[i, j], flops[i, j])
                                for j in evaluate)
    frame = pd.DataFrame(rows, columns=["split", "bin", "budget", "question_id", "method", "accuracy",
                                        "generations", "total_flops"])
    return Envelope(frame, name)


def _choose_without(table: pd.DataFrame, question: str) -> list[tuple]:
    """(bin, budget, question, method, accuracy, generations, flops) per budget for ``question``,
    the method chosen on all *other* questions of ``table`` (methods that also ran ``question``)."""
    out = []
    for budget, sub in table.groupby("budget"):
        mine = sub[sub.question_id == question].set_index("method")
        others = sub[(sub.question_id != question) & sub.method.isin(mine.index)]
        if others.empty:
            continue
        stats = others.groupby("method").agg(acc=("accuracy", "mean"), flops=("total_flops", "mean"))
        best = min(stats.index, key=lambda m: (-round(float(stats.acc[m]), 12), float(stats.flops[m]), m))
        row = mine.loc[best]
        out.append((int(row.bin), int(budget), question, best, float(row.accuracy), float(row.generations),
                    float(row.total_flops)))
    return out


def common_questions(table: pd.DataFrame) -> list[str]:
    """Questions every method of ``table`` was run on (at some budget): where they compare."""
    sets = table.groupby("method").question_id.agg(lambda s: set(s))
    return sorted(set.intersection(*sets)) if len(sets) else []


def fit_choices(table: pd.DataFrame) -> pd.DataFrame:
    """The choice per (bin, budget) fitted on all questions of ``table`` (no cross-validation):
    bin, budget, method, strategy, config, accuracy, total_flops, questions."""
    rows = []
    for b, group in table.groupby("bin"):
        qs = sorted(group.question_id.unique())
        for budget in sorted(group.budget.unique()):
            names, acc, flops, _ = _budget_matrices(group, budget, qs)
            if not names:
                continue
            i = _choose(acc, flops, names, np.arange(len(qs)))
            first = group[(group.method == names[i])].iloc[0]
            rows.append({"bin": int(b), "budget": int(budget), "method": names[i], "strategy": first.strategy,
                         "config": first.config, "accuracy": float(acc[i].mean()),
                         "total_flops": float(flops[i].mean()), "questions": len(qs)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------- policy
def difficulty_thresholds(bins: pd.DataFrame) -> tuple[list[float], bool]:
    """Ascending score edges between adjacent predicted bins (midpoints) and whether a higher
    predicted score means an easier question (bin 1 = easiest), from bins.parquet rows."""
    for needed in ("predicted_score", "predicted_bin"):
        if needed not in bins.columns:
            raise ValueError(f"bins table lacks column {needed!r}")
    labels = sorted(bins.predicted_bin.astype(int).unique())
    if labels != list(range(1, len(labels) + 1)) or len(labels) < 2:
        raise ValueError(f"predicted bins must be 1..K with K >= 2 all present, got {labels}")
    means = bins.groupby("predicted_bin").predicted_score.mean()
    higher_is_easier = bool(means.iloc[0] >= means.iloc[-1])
    edges = []
    for k in labels[:-1]:
        easy, hard = bins[bins.predicted_bin == k].predicted_score, bins[bins.predicted_bin == k + 1].predicted_score
        edges.append((easy.min() + hard.max()) / 2 if higher_is_easier else (easy.max() + hard.min()) / 2)
    return sorted(float(e) for e in edges), higher_is_easier


def fit_policy(table: pd.DataFrame, bins: pd.DataFrame, *, probe_samples: int, envelope: str,
               aggregate: str = "last", threshold_questions: Iterable[str] | None = None, meta: dict | None = None):
    """The usable policy fitted on the questions of ``table``: the best method per (predicted bin,
    budget), and thresholds on the predicted score from the rows of ``bins`` of
    ``threshold_questions`` (default: the table's questions; the score uses no ground truth).
    A predicted bin without questions in ``table`` gets the choice fitted on all of them."""
    from ttc_lib.analysis.strategy_policy import Choice, Policy

    fit_ids = set(table.question_id)
    edges_from = set(threshold_questions) if threshold_questions is not None else fit_ids
    thresholds, higher_is_easier = difficulty_thresholds(bins[bins.question_id.isin(edges_from)])
    binned = attach_bins(table, bins, "predicted")
    per_bin = fit_choices(binned)
    pooled = fit_choices(binned.assign(bin=0))
    choices: dict[int, dict[int, Choice]] = {}
    for b in range(1, len(thresholds) + 2):
        frame = per_bin[per_bin.bin == b] if (per_bin.bin == b).any() else pooled
        for row in frame.itertuples(index=False):
            choices.setdefault(b, {})[int(row.budget)] = Choice(
                strategy=row.strategy, config=parse_config_key(row.config), fitted_accuracy=round(float(row.accuracy), 6))
    info = {"questions": len(fit_ids), "bins_without_questions": sorted(set(choices) - set(per_bin.bin)),
            **(meta or {})}
    return Policy(thresholds=tuple(thresholds), higher_is_easier=higher_is_easier, choices=choices,
                  probe_samples=probe_samples, aggregate=aggregate, envelope=envelope, meta=info)


def split_questions(bins: pd.DataFrame, heldout_fraction: float, seed: int = 0,
                    by: str = "predicted_bin") -> tuple[list[str], list[str]]:
    """(fit ids, held-out ids): ``heldout_fraction`` of each ``by`` bin held out at random
    (round(heldout_fraction x its questions)). Raises, naming the questions per bin and the
    parameter, when that leaves no held-out question or no fit question at all."""
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    fit, held, sizes = [], [], {}
    for b, group in bins.sort_values("question_id").groupby(by):
        ids = group.question_id.astype(str).to_numpy()
        order = np.random.default_rng([seed, int(b)]).permutation(len(ids))
        n_held = int(round(heldout_fraction * len(ids)))
        held += ids[order[:n_held]].tolist()
        fit += ids[order[n_held:]].tolist()
        sizes[int(b)] = (len(ids), n_held)
    if not held or not fit:
        per_bin = ", ".join(f"bin {b}: {n} question(s), {h} held out" for b, (n, h) in sizes.items()) or "no binned question"
        raise ValueError(f"too few questions per {by} to split: heldout_fraction = {heldout_fraction} leaves "
                         f"{len(held)} held-out and {len(fit)} fit question(s) ({per_bin}); the policy needs both: "
                         f"change heldout_fraction or compare more questions in notebooks 03/04")
    return sorted(fit), sorted(held)


def solve_sample(bins: pd.DataFrame, heldout_ids: Sequence[str], n_questions: int, seed: int = 0) -> list[str]:
    """The held-out questions ``solve()`` is evaluated on: all of them (``n_questions`` 0), else about
    ``n_questions`` balanced across their oracle bins."""
    held = bins[bins.question_id.isin(heldout_ids)]
    if held.empty:
        raise ValueError(f"no held-out question to run solve() on: {len(heldout_ids)} held-out id(s), "
                         f"{len(held)} of them binned (solve_questions = {n_questions}); hold out more questions "
                         f"(heldout_fraction) or compare more questions in notebooks 03/04")
    if not n_questions:
        return list(heldout_ids)
    return balanced_subset(held, max(1, n_questions // held.oracle_bin.nunique()), seed)


def reproduced_bins(policy, bins: pd.DataFrame) -> float:
    """Share of ``bins``' questions whose predicted bin the policy's thresholds give back."""
    return float(np.mean([policy.bin_of(s) == b for s, b in zip(bins.predicted_score, bins.predicted_bin)]))


def heldout_comparison(solved: pd.DataFrame, table: pd.DataFrame, bins: pd.DataFrame, policy,
                       baseline: str = BASELINE, bin_kind: str = "oracle") -> pd.DataFrame:
    """Per bin and budget, on the questions ``solved`` holds (rows of policy.evaluate_policy):
    solve()'s accuracy and mean generations / FLOPs (probes included) against best-of-N weighted
    at the same total budget from ``table``, and the policy's choice read off ``table`` with
    notebook 03's predicted bins and no probe cost (what the paper's accounting would report).
    A row ``bin = "all"`` pools the bins."""
    frame = attach_bins(solved, bins, bin_kind, missing="raise")
    frame["predicted"] = attach_bins(solved, bins, "predicted", missing="raise").bin
    base = table[table.method == baseline].set_index(["budget", "question_id"])
    by_method = table.set_index(["method", "budget", "question_id"])
    rows = []
    for row in frame.itertuples(index=False):
        key = (int(row.budget), row.question_id)
        pick = policy.choose(int(row.predicted), int(row.budget))
        chosen = (pick[1].method, pick[0], row.question_id) if pick else None
        rows.append({"bin": row.bin, "budget": int(row.budget), "solve_accuracy": float(row.correct),
                     "solve_generations": row.generations, "solve_flops": row.total_flops,
                     "baseline_accuracy": base.accuracy.get(key, math.nan),
                     "baseline_flops": base.total_flops.get(key, math.nan),
                     "policy_table_accuracy": by_method.accuracy.get(chosen, math.nan) if chosen else math.nan})
    per = pd.DataFrame(rows)
    out = pd.concat([per, per.assign(bin="all")]).groupby(["budget", "bin"]).agg(
        questions=("solve_accuracy", "size"), solve_accuracy=("solve_accuracy", "mean"),
        baseline_accuracy=("baseline_accuracy", "mean"), policy_table_accuracy=("policy_table_accuracy", "mean"),
        solve_generations=("solve_generations", "mean"), solve_flops=("solve_flops", "mean"),
        baseline_flops=("baseline_flops", "mean"))
    return out.reset_index()
