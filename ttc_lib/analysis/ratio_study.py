"""Notebook 06's efficiency-ratio study: which curves are compared, on which questions, and how the
results are reported (the maths is ``ratio_bootstrap``'s).

* **Search** (notebook 04's methods): the cross-validated envelope, with oracle and with predicted
  bins, against two baselines on the envelope's questions: "best_of_n_weighted" (the paper's,
  ``results_table.BASELINE``) and "best_fixed" (``ratio_curve.best_fixed_strategy``: the one method
  per budget chosen by the same cross-validation, halves and bins as the envelope), so choosing per
  difficulty is credited only with what it adds.
* **Revisions** (notebook 05's, when it ran): the revisions envelope against "parallel" (the
  revision model's N independent first attempts, ``efficiency.method_curve``) and against
  "best_of_n_weighted" of notebook 04 on the same questions. Skipped: every value says why.
* One set of replicates per envelope kind (its questions, resampled within their oracle bins) is
  shared by every baseline, bin kind, budget and unit (generations and FLOPs).
* ``predicted_vs_oracle`` and ``differences``: paired accuracy differences per budget
  (``uncertainty.bootstrap_difference``, questions resampled within oracle bins).
* ``pool_note``: when every sample of notebook 03's pool was truncated, every accuracy is 0 and each
  "all_zero" reason says that this is why.
* Strict JSON: a value that does not exist is None with a ``reason``, never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from ttc_lib.analysis.compute_optimal import Envelope
from ttc_lib.analysis.ratio_bootstrap import (
    LEVEL,
    band,
    geometric_mean_interval,
    question_curve,
    ratio_bootstrap,
    resample_counts,
    row_dict,
)
from ttc_lib.analysis.ratio_curve import best_fixed_strategy
from ttc_lib.analysis.results_table import BASELINE, attach_bins
from ttc_lib.analysis.uncertainty import bootstrap_difference

BIN_KINDS = ("oracle", "predicted")
BASELINES = {"search": ("best_of_n_weighted", "best_fixed"), "revisions": ("parallel", "best_of_n_weighted")}
UNITS = {"generations": "budget", "flops": "total_flops"}


def undefined(reason: str) -> dict:
    """An interval that does not exist, and why."""
    return {"estimate": None, "ci_low": None, "ci_high": None, "reason": reason}


def pool_note(difficulty_summary: Mapping) -> str | None:
    """Why every accuracy is 0 when every sample of notebook 03's pool was truncated (its summary's
    ``truncated_fraction`` is 1), else None."""
    fraction = difficulty_summary.get("truncated_fraction")
    if fraction is None or fraction < 1:
        return None
    return (f"every sample of notebook 03's pool was truncated (truncated_fraction = {fraction}, max_new_tokens = "
            f"{difficulty_summary.get('max_new_tokens')}): no sample has an answer, so every accuracy is 0")


def best_fixed_envelopes(table: pd.DataFrame, bins: pd.DataFrame, *, n_splits: int, seed: int) -> dict[str, Envelope]:
    """bin kind -> the best fixed strategy of ``table`` chosen by the envelope's cross-validation."""
    return {kind: best_fixed_strategy(attach_bins(table, bins, kind), n_splits=n_splits, seed=seed,
                                      name=f"best fixed/{kind}") for kind in BIN_KINDS}


def method_rows(table: pd.DataFrame, methods: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``table`` of the (budget, method) pairs of ``methods`` (e.g. ``method_curve``'s)."""
    pairs = set(zip(methods.budget.astype(int), methods.method))
    return table[[(int(b), m) in pairs for b, m in zip(table.budget, table.method)]]


def oracle_bins(questions: list[str] | tuple[str, ...], bins: pd.DataFrame) -> np.ndarray:
    """The oracle bin of each of ``questions`` (the bootstrap's strata); raises naming unbinned ones."""
    lookup = bins.drop_duplicates("question_id").set_index("question_id").oracle_bin
    missing = [q for q in questions if q not in lookup.index]
    if missing:
        raise ValueError(f"{len(missing)} question(s) have no oracle bin, e.g. {missing[:3]}")
    return lookup.loc[list(questions)].to_numpy(int)


@dataclass
class RatioStudy:
    """``table``: every ratio row (envelope, baseline, bins, unit + ``ratio_bootstrap.TABLE_COLUMNS``);
    ``bands``: accuracy bands of the search curves (curve, bins, budget, estimate, ci_low, ci_high,
    n_questions); ``summary``: unit -> envelope -> baseline -> bins -> geometric mean interval."""

    table: pd.DataFrame
    bands: pd.DataFrame
    summary: dict
    n_boot: int
    seed: int
    level: float
    note: str | None = None

    def curve(self, unit: str = "generations", envelope: str = "search") -> dict:
        """baseline -> bins -> budget (a string) -> the row as strict JSON (the summary's curve)."""
        rows = self.table[(self.table.unit == unit) & (self.table.envelope == envelope)]
        return {base: {kind: {str(r["budget"]): row_dict({k: v for k, v in r.items() if k not in
                                                          ("envelope", "baseline", "bins", "unit", "budget")})
                              for r in g.to_dict(orient="records")} for kind, g in part.groupby("bins", sort=False)}
                for base, part in rows.groupby("baseline", sort=False)}

    def overview(self, unit: str = "generations", envelope: str = "search", digits: int = 2) -> pd.DataFrame:
        """(baseline, bins) x budget: "estimate [ci_low, ci_high]" (+ the censored share when any),
        "censored (share)" or the status of an undefined budget — the table a reader wants."""
        rows = self.table[(self.table.unit == unit) & (self.table.envelope == envelope)]
        cell = [f"{r.estimate:.{digits}f} [{r.ci_low:.{digits}f}, {r.ci_high:.{digits}f}]"
                + (f" ({r.censored:.0%} censored)" if r.censored > 0 else "") if r.status == "defined"
                else f"censored ({r.censored:.0%})" if r.status == "censored" else r.status
                for r in rows.itertuples(index=False)]
        return rows.assign(cell=cell).pivot(index=["baseline", "bins"], columns="budget", values="cell")

    def summary_table(self, unit: str = "generations") -> pd.DataFrame:
        """One row per (envelope, baseline, bins): the geometric mean, its interval, the censored share
        of replicates and the defined / censored / undefined budgets."""
        return pd.DataFrame([{"envelope": k, "baseline": n, "bins": b,
                              **{f: v.get(f) for f in ("estimate", "ci_low", "ci_high", "censored", "defined_budgets",
                                                       "censored_budgets", "undefined_budgets", "reason")}}
                             for k, by_name in self.summary[unit].items() for n, by_bins in by_name.items()
                             for b, v in by_bins.items()])

    def summary_keys(self) -> dict:
        """The summary.json keys of the study (see notes in ``compute_optimal_summary``)."""
        return {"efficiency_ratio_curve": self.curve("generations"), "efficiency_ratio_curve_flops": self.curve("flops"),
                "efficiency_ratio_summary": self.summary["generations"],
                "efficiency_ratio_summary_flops": self.summary["flops"],
                "efficiency_ratio_bootstrap": {"n_boot": self.n_boot, "seed": self.seed, "level": self.level,
                                               "strata": "oracle_bin", "margin": "half-width of the baseline's interval",
                                               "censored": "share of replicates, counted as ratio 0"},
                "pool_all_truncated": self.note}


def _baselines(kind: str, raw: Mapping[str, pd.DataFrame], fixed: Mapping[str, Envelope],
               parallel: pd.DataFrame | None) -> dict:
    """baseline name -> rows, or bin kind -> rows."""
    bon = raw["search"][raw["search"].method == BASELINE]
    if kind == "search":
        return {"best_of_n_weighted": bon, "best_fixed": {b: env.by_question for b, env in fixed.items()}}
    if parallel is None:
        raise ValueError("the revisions envelope needs parallel: efficiency.method_curve of the parallel revisions "
                         "(N chains of length 1), or revisions_skipped with the reason")
    return {"parallel": method_rows(raw["revisions"], parallel), "best_of_n_weighted": bon}


def _with_note(table: pd.DataFrame, note: str | None) -> pd.DataFrame:
    if note:
        zero = table.status == "all_zero"
        table.loc[zero, "reason"] = table.loc[zero, "reason"] + f" ({note})"
    return table


def efficiency_study(raw: Mapping[str, pd.DataFrame], envelopes: Mapping[tuple[str, str], Envelope],
                     fixed: Mapping[str, Envelope], bins: pd.DataFrame, *, parallel: pd.DataFrame | None = None,
                     revisions_skipped: str | None = None, n_boot: int = 1000, seed: int = 0, level: float = LEVEL,
                     note: str | None = None) -> RatioStudy:
    """The ratio curves and their geometric means for every envelope kind, baseline, bin kind and unit.

    ``raw``: kind -> ``per_question`` table ("search", and "revisions" unless ``revisions_skipped``);
    ``envelopes``: (kind, bin kind) -> cross-validated envelope; ``fixed``: bin kind -> best fixed
    strategy of the search table; ``parallel``: ``method_curve`` of the parallel revisions baseline;
    ``note``: ``pool_note``. A baseline that cannot be compared (not run on the envelope's questions)
    is undefined with the reason for the revisions envelope, an error for the search one."""
    frames, bands = [], []
    summary = {unit: {} for unit in UNITS}
    for kind, names in BASELINES.items():
        if kind == "revisions" and (revisions_skipped or kind not in raw):
            why = f"notebook 05 was skipped: {revisions_skipped}" if revisions_skipped else "no revisions table given"
            for unit in UNITS:
                summary[unit][kind] = {n: {b: undefined(why) for b in BIN_KINDS} for n in names}
            continue
        questions = sorted(set(envelopes[kind, "oracle"].by_question.question_id))
        counts = resample_counts(oracle_bins(questions, bins), n_boot, seed)
        envs = {b: question_curve(envelopes[kind, b].by_question, questions, f"{kind} envelope ({b} bins)")
                for b in BIN_KINDS}
        if kind == "search":
            bands += [band(c, counts, level).assign(curve="envelope", bins=b) for b, c in envs.items()]
        for name, rows in _baselines(kind, raw, fixed, parallel).items():
            for b in BIN_KINDS:
                try:
                    base = question_curve(rows[b] if isinstance(rows, dict) else rows, questions, f"{name} baseline")
                except ValueError as err:
                    if kind == "search":
                        raise
                    for unit in UNITS:
                        summary[unit].setdefault(kind, {}).setdefault(name, {})[b] = undefined(str(err))
                    continue
                if kind == "search" and (isinstance(rows, dict) or b == "oracle"):
                    bands.append(band(base, counts, level).assign(curve=name, bins=b if isinstance(rows, dict) else "any"))
                for unit, cost in UNITS.items():
                    table, reps = ratio_bootstrap(base, envs[b], counts, cost, level)
                    table = _with_note(table, note)
                    result = geometric_mean_interval(table, reps, level)
                    if note and result["estimate"] is None:
                        result["reason"] += f" ({note})"
                    summary[unit].setdefault(kind, {}).setdefault(name, {})[b] = result
                    frames.append(table.assign(envelope=kind, baseline=name, bins=b, unit=unit))
    table = pd.concat(frames, ignore_index=True)
    front = ["envelope", "baseline", "bins", "unit"]
    return RatioStudy(table[front + [c for c in table.columns if c not in front]],
                      pd.concat(bands, ignore_index=True), summary, n_boot, seed, level, note)


def _oracle_column(rows: pd.DataFrame, bins: pd.DataFrame) -> pd.DataFrame:
    lookup = bins.drop_duplicates("question_id").set_index("question_id").oracle_bin.astype(int)
    return rows[rows.question_id.isin(lookup.index)].assign(oracle_bin=lambda f: f.question_id.map(lookup))


def differences(a: pd.DataFrame, b: pd.DataFrame, bins: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0,
                level: float = LEVEL, per_bin: bool = False) -> dict:
    """budget (a string) -> {"all": paired difference interval of accuracy a - b} over the questions
    both ran at that budget (rows per question, e.g. splits or seeds, averaged; questions resampled
    within oracle bins), plus one entry per oracle bin ("1".."5", within that bin) with ``per_bin``."""
    a, b = _oracle_column(a, bins), _oracle_column(b, bins)
    out = {}
    for budget in sorted(set(a.budget) & set(b.budget)):
        pa, pb = a[a.budget == budget], b[b.budget == budget]
        entry = {"all": bootstrap_difference(pa, pb, "accuracy", bin_column="oracle_bin", n_boot=n_boot, seed=seed,
                                             level=level)}
        for k in (sorted(set(pa.oracle_bin) & set(pb.oracle_bin)) if per_bin else []):
            entry[str(k)] = bootstrap_difference(pa[pa.oracle_bin == k], pb[pb.oracle_bin == k], "accuracy",
                                                 n_boot=n_boot, seed=seed, level=level)
        out[str(int(budget))] = entry
    return out


def predicted_vs_oracle(envelopes: Mapping[tuple[str, str], Envelope], bins: pd.DataFrame, *, n_boot: int = 1000,
                        seed: int = 0, level: float = LEVEL, kind: str = "search") -> dict:
    """budget (a string) -> the paired difference interval of the ``kind`` envelope's accuracy with
    predicted bins minus with oracle bins (per question: mean over splits)."""
    pair = differences(envelopes[kind, "predicted"].by_question, envelopes[kind, "oracle"].by_question, bins,
                       n_boot=n_boot, seed=seed, level=level)
    return {budget: entry["all"] for budget, entry in pair.items()}
