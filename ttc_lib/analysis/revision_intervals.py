"""Revision chains with intervals over questions (notebook 05): pass@1 by revision step, the share
of correct answers revised into wrong ones, sequential vs parallel at equal budget, the best
sequential:parallel ratio per difficulty bin, selection rules, and the context probe.

Rules
-----
* The unit is the question: every interval is a bootstrap over questions (``uncertainty``), seeds
  and chains nested inside a question. On all questions together ("all") questions are resampled
  within their oracle bin (notebook 05 evaluates a balanced draw per bin); within a bin, plainly.
* **pass@1 at step t**: per question, the share of its attempts at step t that are correct (over
  the chains reaching t and the seeds). Every question runs the same staircase of chains, so the
  mean over questions is ``revisions.analysis.pass1_by_step``'s. The curve over steps is one
  bootstrap (coherent band); a step difference is paired (the same questions at both steps) and
  undefined, with a reason, when the chains do not reach the later step.
* **correct→wrong**: consecutive attempts of a chain. Per question: correct attempts followed by a
  wrong one, and correct attempts followed by any; the rate is their ratio of sums
  (``revisions.analysis.transitions``' number), the interval a paired ratio bootstrap (resamples
  without a correct attempt are left out and counted in ``dropped``).
* **Ratios**: a result's config gives chains × length; the method is selection[/verifier] as
  ``revisions.analysis.accuracy_by_ratio`` names it ("hierarchical" = the revision-aware ORM, the
  paper's selection). A question's accuracy at a split is its mean over seeds.
* **Sequential vs parallel** (per N; "all" and each bin): the sequential-leaning ratio (length >
  chains) with the highest accuracy on all questions, one per N so every bin compares the same
  ratio (ties: the more sequential), minus fully parallel (length 1: best-of-N from the reviser).
  Each entry names both (``ratio``, ``versus``). With several sequential-leaning ratios (N ≥ 8)
  the choice is made on the same questions, so that difference leans optimistic.
* **Best ratio** per (N, bin): the highest mean accuracy; ties joined most parallel first
  ("1:4 = 1:1", as ``revisions.analysis.best_ratios``), the interval that of the first listed,
  ``tied`` counting them.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from ttc_lib.analysis.results_table import attach_bins, parse_config_key
from ttc_lib.analysis.uncertainty import bootstrap_curve, bootstrap_difference, bootstrap_mean, bootstrap_ratio
from ttc_lib.revisions.analysis import ratio_label

METHOD = "hierarchical"  # the revision-aware ORM with hierarchical selection (the paper's)
SUMMARY_KEYS = ("pass1_step_ci", "pass1_step4_minus_step1", "pass1_last_minus_step4", "correct_to_wrong_ci",
                "sequential_vs_parallel", "best_ratio_by_bin_ci", "selection_differences", "context_probe_ci")


def undefined(reason: str) -> dict:
    """The contract's undefined interval: no numbers, a reason."""
    return {"estimate": None, "ci_low": None, "ci_high": None, "reason": reason}


def _binned(frame: pd.DataFrame, bins: pd.DataFrame | None) -> tuple[pd.DataFrame, str | None]:
    if bins is None:
        return frame, None
    return attach_bins(frame, bins, "oracle", missing="raise"), "bin"


def step_curve(frame: pd.DataFrame, bins: pd.DataFrame | None = None, *, n_boot: int = 2000,
               seed: int = 0) -> pd.DataFrame:
    """pass@1 at each revision step (1-based) of an attempts frame (question_id, seed, chain, step
    0-based, correct) with a coherent bootstrap band: step, estimate, ci_low, ci_high, n_questions."""
    data, strata = _binned(frame.assign(step=frame.step + 1, correct=frame.correct.astype(float)), bins)
    return bootstrap_curve(data, "step", "correct", bin_column=strata, n_boot=n_boot, seed=seed)


def step_difference(frame: pd.DataFrame, later: int, earlier: int, bins: pd.DataFrame | None = None, *,
                    n_boot: int = 2000, seed: int = 0) -> dict:
    """Paired pass@1 at step ``later`` minus at step ``earlier`` (1-based), same questions."""
    last = int(frame.step.max()) + 1
    if later > last or earlier > last:
        return undefined(f"the chains reach step {last}: no step {max(later, earlier)} (a budget N >= "
                         f"{max(later, earlier)} runs a chain that long)")
    data, strata = _binned(frame.assign(step=frame.step + 1, correct=frame.correct.astype(float)), bins)
    return bootstrap_difference(data[data.step == later], data[data.step == earlier], "correct",
                                bin_column=strata, n_boot=n_boot, seed=seed)


def correct_to_wrong_ci(frame: pd.DataFrame, bins: pd.DataFrame | None = None, *, n_boot: int = 2000,
                        seed: int = 0) -> dict:
    """Share of correct attempts whose next attempt in the chain is wrong (module rules), with
    ``pairs`` (correct attempts followed by another)."""
    f = frame.sort_values(["seed", "question_id", "chain", "step"])
    pairs = f.assign(next=f.groupby(["seed", "question_id", "chain"]).correct.shift(-1)).dropna(subset=["next"])
    right = pairs.correct.astype(bool)
    counts = pd.DataFrame({"question_id": pairs.question_id, "flipped": (right & ~pairs.next.astype(bool)).astype(float),
                           "correct_pairs": right.astype(float)})
    data, strata = _binned(counts, bins)
    if not len(data) or data.correct_pairs.sum() == 0:
        return undefined("no correct attempt is followed by another in its chain")
    out = bootstrap_ratio(data, "flipped", "correct_pairs", bin_column=strata, n_boot=n_boot, seed=seed, zero="drop")
    return {**out, "pairs": int(data.correct_pairs.sum())}


def with_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """A revisions results table (RESULT_COLUMNS) as one row per (method, budget, chains, length,
    question): ``correct`` = mean over seeds, plus ratio (length / chains) and ratio_label."""
    config = [parse_config_key(c) for c in table.config]
    frame = table.assign(method=[c["selection"] + (f"/{c['verifier']}" if "verifier" in c else "") for c in config],
                         chains=[int(c["chains"]) for c in config], length=[int(c["length"]) for c in config],
                         correct=table.correct.astype(float))
    out = frame.groupby(["method", "budget", "chains", "length", "question_id"]).correct.mean().reset_index()
    out["budget"] = out.budget.astype(int)
    out["ratio"] = out.length / out.chains
    out["ratio_label"] = [ratio_label(c, n) for c, n in zip(out.chains, out.length)]
    return out


def _bin_parts(data: pd.DataFrame) -> list[tuple[str, pd.DataFrame, str | None]]:
    """("all", every row, stratified by bin) then (bin, its rows, plain) per bin."""
    return [("all", data, "bin")] + [(str(b), part, None) for b, part in data.groupby("bin")]


def ratio_intervals(table: pd.DataFrame, bins: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Accuracy with its interval per (method, budget, split, bin): method, budget, chains, length,
    ratio, ratio_label, bin ("all", "1".."5"), estimate, ci_low, ci_high, n_questions."""
    data = attach_bins(with_ratios(table), bins, "oracle", missing="raise")
    rows = []
    for (method, budget, chains, length), split in data.groupby(["method", "budget", "chains", "length"]):
        for name, part, strata in _bin_parts(split):
            rows.append({"method": method, "budget": int(budget), "chains": int(chains), "length": int(length),
                         "ratio": length / chains, "ratio_label": ratio_label(chains, length), "bin": name,
                         **bootstrap_mean(part, "correct", bin_column=strata, n_boot=n_boot, seed=seed)})
    return pd.DataFrame(rows)


def sequential_vs_parallel(table: pd.DataFrame, bins: pd.DataFrame, *, method: str = METHOD, n_boot: int = 2000,
                           seed: int = 0) -> dict:
    """{N: {"all" | bin: paired difference (best sequential-leaning ratio − fully parallel) with
    ``ratio`` and ``versus`` naming both}} (module rules)."""
    data = attach_bins(with_ratios(table), bins, "oracle", missing="raise")
    data = data[data.method == method]
    if data.empty:
        raise ValueError(f"no results of method {method!r}")
    out: dict = {}
    for budget, part in data.groupby("budget"):
        leaning = part[part.length > part.chains]
        parallel = part[part.length == 1]
        if leaning.empty or parallel.empty:
            out[str(budget)] = {"all": undefined(f"N = {budget} has no sequential-leaning split (length > chains)")}
            continue
        means = leaning.groupby(["ratio", "ratio_label"]).correct.mean().reset_index()
        best = means.sort_values(["correct", "ratio"], ascending=False).iloc[0]
        chosen = leaning[leaning.ratio == best.ratio]
        names = {"ratio": best.ratio_label, "versus": parallel.ratio_label.iloc[0], "method": method}
        out[str(budget)] = {name: {**bootstrap_difference(chosen[chosen.question_id.isin(p.question_id)], p, "correct",
                                                          bin_column=strata, n_boot=n_boot, seed=seed), **names}
                            for name, p, strata in _bin_parts(parallel)}
    return out


def best_ratio_by_bin(ratios: pd.DataFrame, *, method: str = METHOD, tolerance: float = 1e-9) -> dict:
    """{N: {"all" | bin: {"ratio", "tied", **interval}}} from a ``ratio_intervals`` table."""
    out: dict = {}
    for (budget, name), part in ratios[ratios.method == method].groupby(["budget", "bin"]):
        top = part[part.estimate >= part.estimate.max() - tolerance].sort_values("ratio")
        first = top.iloc[0]
        interval = {k: first[k] for k in ("estimate", "ci_low", "ci_high")}
        out.setdefault(str(budget), {})[str(name)] = {"ratio": " = ".join(top.ratio_label), "tied": len(top),
                                                       **{k: float(v) for k, v in interval.items()},
                                                       "n_questions": int(first.n_questions)}
    return out


def selection_differences(table: pd.DataFrame, bins: pd.DataFrame, *, method: str = METHOD,
                          others: Sequence[str] = ("majority", "hierarchical/plain"), n_boot: int = 2000,
                          seed: int = 0) -> dict:
    """{N: {"<method> - <other>": paired difference}} at the fully sequential split (1 chain of N),
    all questions: does the revision-aware ORM select a chain's answer better than the others?"""
    data = attach_bins(with_ratios(table), bins, "oracle", missing="raise")
    sequential = data[data.chains == 1]
    out: dict = {}
    for budget, part in sequential.groupby("budget"):
        mine = part[part.method == method]
        for other in others:
            theirs = part[part.method == other]
            if len(mine) and len(theirs):
                out.setdefault(str(budget), {})[f"{method} - {other}"] = bootstrap_difference(
                    mine, theirs, "correct", bin_column="bin", n_boot=n_boot, seed=seed)
    return out


def probe_differences(probe: pd.DataFrame, bins: pd.DataFrame | None = None, *, n_boot: int = 2000,
                      seed: int = 0) -> dict:
    """{"<condition> - none": paired difference of pass@1} for each context of the probe
    (``revisions.probe``), on the questions that have that context."""
    data, strata = _binned(probe, bins)
    base = data[data.condition == "none"]
    return {f"{c} - none": bootstrap_difference(data[data.condition == c], base, "pass1", bin_column=strata,
                                                n_boot=n_boot, seed=seed)
            for c in ("other_question", "own_correct", "own_wrong") if (data.condition == c).any() and len(base)}


def revision_intervals(frame: pd.DataFrame, table: pd.DataFrame, bins: pd.DataFrame, *,
                       ratios: pd.DataFrame | None = None, n_boot: int = 2000, seed: int = 0) -> dict:
    """The intervals of notebook 05's summary (``SUMMARY_KEYS`` but the probe's, which
    ``probe_differences`` gives once the probe ran): ``frame`` the attempts, ``table`` the results,
    ``ratios`` a ``ratio_intervals`` table if made already."""
    ratios = ratio_intervals(table, bins, n_boot=n_boot, seed=seed) if ratios is None else ratios
    curve = step_curve(frame, bins, n_boot=n_boot, seed=seed)
    last = int(curve.step.max())
    options = {"n_boot": n_boot, "seed": seed}
    return {
        "pass1_step_ci": {str(int(r.step)): {"estimate": float(r.estimate), "ci_low": float(r.ci_low),
                                             "ci_high": float(r.ci_high), "n_questions": int(r.n_questions)}
                          for r in curve.itertuples()},
        "pass1_step4_minus_step1": step_difference(frame, 4, 1, bins, **options),
        "pass1_last_minus_step4": step_difference(frame, last, 4, bins, **options) if last > 4
        else undefined(f"the chains reach step {last}: nothing past step 4"),
        "correct_to_wrong_ci": correct_to_wrong_ci(frame, bins, **options),
        "sequential_vs_parallel": sequential_vs_parallel(table, bins, **options),
        "best_ratio_by_bin_ci": best_ratio_by_bin(ratios),
        "selection_differences": selection_differences(table, bins, **options),
    }
