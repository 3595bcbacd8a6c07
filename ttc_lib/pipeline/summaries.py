"""Each stage's ``summary.json``, built in one place per stage from what its notebook computed.

A summary holds a stage's headline numbers and what later stages read (checkpoint paths, the
chosen verifier, budgets). The notebooks call these builders instead of assembling dicts in cells.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ttc_lib.analysis.accuracy import summary_dict
from ttc_lib.analysis.claims import RULE, verdict_counts
from ttc_lib.analysis.difficulty import bin_edges, per_bin_table
from ttc_lib.analysis.exchange import inference_multiplier
from ttc_lib.analysis.exchange_intervals import exchange_ci, exchange_ci_all, headline
from ttc_lib.analysis.ratio_study import RatioStudy
from ttc_lib.analysis.results_table import with_methods
from ttc_lib.analysis.verifier_quality import accuracy_table, method_columns, prm_vs_baselines, quality_intervals
from ttc_lib.generation.pass_at_1 import pass1_by_level
from ttc_lib.models.context_rows import context_share
from ttc_lib.models.study_models import recipe_differences
from ttc_lib.revisions.analysis import nested_accuracy
from ttc_lib.search.pool import pool_cost, pool_throughput
from ttc_lib.tasks.problem import Problem


def too_long_record(ids: Sequence[str]) -> dict:
    """The ``too_long_prompts`` entry of a summary: test questions left out because their prompt plus
    max_new_tokens does not fit the model's positions (generation.context_limit)."""
    return {"count": len(ids), "ids": list(ids)}


def generator_summary(accuracy: pd.DataFrame, records: dict[str, dict], paths: dict[str, Any], *,
                      max_new_tokens: int, training_rows: Sequence[Problem] | None, train: Sequence[Problem],
                      prompt_style: str, device: str, own_models: bool,
                      too_long_prompts: dict[str, Sequence[str]] | None = None, step_delimiter: str = "newline") -> dict:
    """Notebook 01: pass@1 by level (policy and every model), sizes, tokens, FLOPs, checkpoints, the
    prompt style and step contract every later stage loads its models with, and per model the test
    questions left out of its evaluation as too long for it."""
    return {
        "pass1_sampled_by_level": pass1_by_level(accuracy, "policy", "sampled"),
        "pass1_greedy_by_level": pass1_by_level(accuracy, "policy", "greedy"),
        "params": {"small": records["policy"]["params"], "large": records.get("large", {}).get("params"),
                   "verifier_backbone": records["verifier_backbone"]["params"]},
        "large_to_small_params": round(records["large"]["params"] / records["policy"]["params"], 2)
        if "large" in records else None,
        "training_flops": {name: r["training_flops"] for name, r in records.items()},
        "tokens": {name: r["tokens"] for name, r in records.items()},
        "wall_seconds": {name: r["wall_seconds"] for name, r in records.items()},
        "models": {name: {decoding: pass1_by_level(accuracy, name, decoding) for decoding in ("greedy", "sampled")}
                   for name in paths},
        "max_new_tokens": max_new_tokens,
        "checkpoints": {name: str(Path(path)) if isinstance(path, Path) else str(path) for name, path in paths.items()},
        "context_share": None if own_models else round(context_share(training_rows, train), 4),
        # the exchange of notebook 07 is a finding only when the larger model had the policy's recipe
        "recipe_differences": recipe_differences(records["policy"], records["large"]) if "large" in records else None,
        "same_recipe": not recipe_differences(records["policy"], records["large"]) if "large" in records else None,
        "large_lr_ratio": _lr_ratio(records),
        "prompt_style": prompt_style, "step_delimiter": step_delimiter, "device": device, "own_models": own_models,
        "too_long_prompts": {name: too_long_record(ids) for name, ids in (too_long_prompts or {}).items()},
    }


def _lr_ratio(records: dict[str, dict]) -> float | None:
    # the one recipe field the larger model may set apart: its peak lr over the policy's
    lrs = [(records.get(k) or {}).get("config", {}).get("lr") for k in ("large", "policy")]
    return round(lrs[0] / lrs[1], 4) if all(lrs) else None


def verifier_summary(stage: Any, *, chosen_verifier: str, label_kind: str, chosen_aggregation: str,
                     aggregation_validation: pd.DataFrame, aggregation_set: Sequence[Problem],
                     aggregation_seconds: float, curve_summary: pd.DataFrame, verifiers: dict[str, Any],
                     records: dict[str, dict], test_quality: pd.DataFrame, validation: pd.DataFrame,
                     agreement: dict, labels: pd.DataFrame, eval_questions: int, eval_samples: int,
                     chosen_by: str, test_tables: dict[str, pd.DataFrame], per_question: pd.DataFrame,
                     n_boot: int = 2000, seed: int = 0) -> dict:
    """Notebook 02: the chosen verifier and aggregation (and the validation column that chose it), accuracy
    vs N of every selection rule per verifier, step quality on validation and test with question-bootstrap
    intervals of the same-step and within-question AUROC (``position_only`` row included), weighted
    best-of-N minus majority / ORM per verifier (the chosen one with its aggregation, the others with
    ``last``), label agreement and costs."""
    intervals = quality_intervals(test_tables, n_boot=n_boot, seed=seed)
    compared = {v: chosen_aggregation if v == chosen_verifier else "last" for v in verifiers if v != "orm"}
    per_verifier = {v: accuracy_table(curve_summary, method_columns(v)) for v in verifiers}
    accuracy = accuracy_table(curve_summary, {**method_columns(chosen_verifier), "weighted[orm:last]": "orm_weighted",
                                              "weighted[oracle_prm:last]": "oracle_prm_weighted"})
    accuracy = {n: {**row, "prm_weighted_chosen": row[f"prm_weighted_{chosen_aggregation}"]}
                for n, row in accuracy.items()}
    return {
        "chosen_verifier": chosen_verifier,
        "chosen_verifier_path": str(stage.path("verifiers", chosen_verifier)),
        "label_kind": label_kind,
        "chosen_aggregation": chosen_aggregation,
        "chosen_by": chosen_by,
        **intervals,
        "prm_vs_baselines": prm_vs_baselines(per_question, compared, n_boot=n_boot, seed=seed),
        "prm_vs_baselines_aggregation": compared,
        "aggregation_validation": {int(n): row.round(4).to_dict() for n, row in aggregation_validation.iterrows()},
        "aggregation_validation_questions": [p.id for p in aggregation_set],
        "aggregation_seconds": aggregation_seconds,
        "accuracy": accuracy,
        "verifiers": per_verifier,
        "prm_step_auroc": float(test_quality.loc[chosen_verifier, "step_auroc"]),
        "prm_within_question_auroc": float(test_quality.loc[chosen_verifier, "within_question_auroc"]),
        "test_step_quality": test_quality.to_dict(orient="index"),
        "validation_step_quality": validation.to_dict(orient="index"),
        "label_agreement": agreement,
        "labelling_throughput": labels.attrs["throughput"],
        "samples_dropped": labels.attrs["dropped"],
        "verifier_training": {n: {k: r[k] for k in ("tokens", "training_flops", "wall_seconds")} for n, r in records.items()},
        "verifier_params": {n: v.num_params for n, v in verifiers.items()},
        "eval_questions": eval_questions, "eval_samples": eval_samples,
    }


def difficulty_summary(stage: Any, *, bins: pd.DataFrame, pool: pd.DataFrame, report: dict, absolute: pd.Series,
                       n_samples: int, bin_scheme: str, n_bins: int, ties: str, verifier: Any, aggregate: str,
                       max_new_tokens: int, policy_params: int, wall_seconds: float,
                       too_long_prompts: Sequence[str] = ()) -> dict:
    """Notebook 03: bins (edges, sizes, pass@1), oracle vs predicted agreement, the pool's cost, and the
    test questions left out (not binned) because their prompt does not fit the policy's positions."""
    per_bin = per_bin_table(bins)
    return {
        "questions": len(bins), "too_long_prompts": too_long_record(too_long_prompts),
        "samples_per_question": n_samples, "bin_scheme": bin_scheme, "n_bins": n_bins,
        "ties": ties, "verifier": verifier.name,
        "verifier_path": str(stage.read_summary("02_train_verifier")["chosen_verifier_path"]), "aggregate": aggregate,
        "oracle_bin_edges": bin_edges(bins), "predicted_bin_edges": bin_edges(bins, "predicted_score", "predicted_bin"),
        "questions_per_bin": {str(b): int(n) for b, n in per_bin.questions.items()},
        "oracle_pass1_by_bin": {str(b): round(float(v), 4) for b, v in per_bin.oracle_pass1.items()},
        "oracle_pass1_mean": round(float(bins.oracle_pass1.mean()), 4),
        "confusion": report["confusion"], "spearman": round(report["spearman"], 4),
        "bin_agreement": round(report["exact"], 4), "bin_agreement_within_one": round(report["within_one"], 4),
        "absolute_bins_of_oracle": {name: int(v) for name, v in absolute.items()},
        "truncated_fraction": round(float((pool.generated_tokens >= max_new_tokens).mean()), 4),
        "max_new_tokens": max_new_tokens,
        "pool_cost": {**pool_cost(pool, policy_params, verifier.num_params).to_row(),
                      "per_question_generations": n_samples},
        "throughput": pool_throughput(pool),
        "wall_seconds": round(wall_seconds, 1),
    }


def search_summary(curves: pd.DataFrame, results: pd.DataFrame, job_seconds: pd.DataFrame, *, questions: int,
                   per_bin: int, seeds: list[int], n_subsets: int, pool_budgets: list[int], search_budgets: list[int],
                   left_out: list[str], verifier: Any, aggregate: str, max_new_tokens: int, pool_seconds: float,
                   wall_seconds: float, comparisons: dict | None = None) -> dict:
    """Notebook 04: accuracy per method and budget (overall and per bin) on the grid's questions, each
    method's mean cost, and ``comparisons`` (baseline_method, accuracy_ci, differences, lookahead_vs_beam,
    headline_questions, headline_budgets: ``analysis.comparisons``) as given."""
    cost = with_methods(results).groupby(["method", "budget"]).agg(generations=("generations", "mean"),
                                                                   total_flops=("total_flops", "mean"))
    return {
        **summary_dict(curves),
        "cost": {m: {str(b): {"generations": round(float(r.generations), 3), "total_flops": float(r.total_flops)}
                     for (_, b), r in part.iterrows()} for m, part in cost.groupby(level=0)},
        "questions": questions, "questions_per_bin": int(per_bin), "seeds": seeds, "n_subsets": n_subsets,
        "pool_budgets": pool_budgets, "search_budgets": search_budgets, "left_out": left_out,
        "verifier": verifier.name, "aggregate": aggregate, "max_new_tokens": max_new_tokens,
        "search_seconds": {m: round(float(x), 1) for m, x in job_seconds.groupby("method").seconds.sum().items()},
        "pool_seconds": pool_seconds,
        **(comparisons or {}),
        "wall_seconds": round(wall_seconds, 1),
    }


def _rate(value: float) -> float | None:
    return None if np.isnan(value) else round(value, 4)


def revisions_summary(stage: Any, *, by_step: pd.DataFrame, flips: dict, probe: pd.DataFrame, effects: pd.DataFrame,
                      probe_samples: int, acc: pd.DataFrame, acc_bins: pd.DataFrame, best_ratio: pd.DataFrame,
                      revision_record: dict, orm_record: dict, plain_path: str, plain_aggregate: str,
                      revision_examples: int, eval_questions: int, budgets: list[int], seeds: list[int],
                      frame: pd.DataFrame, intervals: dict) -> dict:
    """Notebook 05: pass@1 by revision step, transitions, the context probe, sequential vs parallel
    accuracy (overall and per bin), the best ratio per bin, the revision model and ORM records, and
    ``intervals`` (``analysis.revision_intervals.revision_intervals``: the contract's interval keys)."""
    return {
        **intervals,
        "pass1_by_revision_step": {int(r.step): round(float(r.pass1), 4) for r in by_step.itertuples()},
        "correct_to_wrong_rate": _rate(flips["correct_to_wrong"]),
        "wrong_to_correct_rate": _rate(flips["wrong_to_correct"]),
        "transition_pairs": {"correct": flips["correct_pairs"], "wrong": flips["wrong_pairs"]},
        "context_probe": {"pass1": {c: round(float(v), 4) for c, v in probe.groupby("condition").pass1.mean().items()},
                          "paired": effects.round(4).to_dict(orient="records"), "samples": probe_samples},
        "accuracy": nested_accuracy(acc),
        "by_bin": nested_accuracy(acc_bins),
        "best_ratio_by_bin": {m: {int(n): {int(b): r for b, r in zip(g.bin, g.ratio_label)}
                                  for n, g in gm.groupby("budget")} for m, gm in best_ratio.groupby("method")},
        "revision_model": {k: revision_record[k] for k in ("best_step", "chosen_step", "turned_up", "stopped_early",
                                                           "val_curve", "train_examples", "val_examples",
                                                           "training_flops", "own_training_flops")},
        "revision_model_path": str(stage.path("revision_model")),
        "revision_orm_path": str(stage.path("verifiers", "revision_orm")),
        "plain_verifier_path": plain_path, "plain_verifier_aggregate": plain_aggregate,
        "orm_training": {k: orm_record[k] for k in ("best_epoch", "solutions", "tokens", "training_flops")},
        "revision_examples": revision_examples, "eval_questions": eval_questions, "budgets": budgets, "seeds": seeds,
        "generated_tokens": int(frame.generated_tokens.sum()), "prompt_tokens": int(frame.prompt_tokens.sum()),
    }


def compute_optimal_summary(stage: Any, *, study: RatioStudy, predicted_vs_oracle: dict, curves: pd.DataFrame,
                            baseline: pd.DataFrame, policy_envelope: str, probe_samples: int, fit_ids: list[str],
                            heldout_ids: list[str], same_choices: bool, bins_reproduced: float, solve_ids: list[str],
                            budgets: list[int], heldout: pd.DataFrame, solved: pd.DataFrame, n_splits: int,
                            tables: dict[str, pd.DataFrame], revisions_skipped: str | None) -> dict:
    """Notebook 06: the efficiency ratio curves and their geometric means with question-bootstrap
    intervals (``RatioStudy.summary_keys``: ``efficiency_ratio_curve[_flops]`` baseline -> bins ->
    budget, ``efficiency_ratio_summary[_flops]`` envelope -> baseline -> bins), predicted minus
    oracle bins per budget, envelope and baseline accuracy, the fitted policy and solve() on held-out
    questions, each envelope's questions."""
    return {
        **study.summary_keys(),
        "predicted_vs_oracle": predicted_vs_oracle,
        "paper_efficiency_ratio": 4.0,
        "envelope_accuracy": {f"{k}/{b}": dict(zip(g.budget.astype(int), g.accuracy.round(4)))
                              for (k, b), g in curves.groupby(["envelope", "bins"])},
        "baseline_accuracy": dict(zip(baseline.budget.astype(int), baseline.accuracy.round(4))),
        "policy": {"path": str(stage.path("policy.json")), "envelope": policy_envelope, "probe_samples": probe_samples,
                   "fit_questions": len(fit_ids), "heldout_questions": len(heldout_ids),
                   "reload_same_choices": bool(same_choices), "fit_bins_reproduced": bins_reproduced,
                   "solve_questions": len(solve_ids), "solve_budgets": budgets},
        "solve_heldout": heldout.assign(bin=heldout.bin.astype(str)).to_dict(orient="records"),
        "solve_within_budget": bool((solved.generations <= solved.budget).all()),
        "n_splits": n_splits,
        "envelope_questions": {kind: sorted(t.question_id.unique()) for kind, t in tables.items()},
        **({"skipped": {"revisions": revisions_skipped, "pooled": revisions_skipped}} if revisions_skipped else {}),
    }


def exchange_summary(*, size_ratio: float, same_recipe: bool, recipe_differences: list[str], params: dict, tokens: dict, bin_kind: str,
                     r_values: list, pass1: pd.DataFrame, small_greedy: bool, large_tokens: float, matches: dict,
                     exchange: pd.DataFrame, intervals: pd.DataFrame) -> dict:
    """Notebook 07: greedy pass@1 of both models per bin, the FLOPs-matched multipliers per R, who
    wins each (envelope, accounting, R, bin), and the paired intervals over questions of
    (test-time accuracy − the larger model's greedy pass@1): ``exchange_ci`` for the headline
    envelope and accounting (``exchange_intervals.headline``), ``exchange_ci_all`` for every one."""
    envelope, accounting = headline(sorted(intervals.envelope.unique()))
    return {
        "exchange_ci": exchange_ci(intervals, envelope, accounting), "exchange_ci_envelope": envelope,
        "exchange_ci_accounting": accounting, "exchange_ci_all": exchange_ci_all(intervals),
        "size_ratio": size_ratio, "paper_size_ratio": 14, "same_recipe": same_recipe,
        "recipe_differences": [] if same_recipe else list(recipe_differences), "params": params,
        "training_tokens": tokens, "bin_kind": bin_kind, "r_values": r_values,
        "large_greedy_pass1_by_bin": {int(b): float(v) for b, v in pass1["large"].items()},
        "small_greedy_pass1_by_bin": {int(b): float(v) for b, v in pass1["policy"].items()} if small_greedy else None,
        "large_tokens_per_question": large_tokens,
        "multipliers": {str(r): {"arxiv": inference_multiplier(size_ratio, r),
                                 "iclr": inference_multiplier(size_ratio, r, "iclr"),
                                 "measured": m.multiplier_tokens, "per_question_flops": m.per_question_allowance}
                        for r, m in matches.items()},
        "winners": {kind: {acc: {str(r): {int(b): w for b, w in zip(g.bin, g.winner)} for r, g in part.groupby("r")}
                           for acc, part in by_kind.groupby("accounting")}
                    for kind, by_kind in exchange.groupby("envelope")},
        "exchange": exchange.drop(columns="cell", errors="ignore").to_dict(orient="records"),
    }


def claims_summary(rows: list[dict], *, docs_path: str | None) -> dict:
    """Notebook 08: the claims table (``analysis.claims.claims_table`` rows), how many rows got each
    verdict, the rule in words, and where ``claims.md`` was also written under docs/ (None: not)."""
    return {"claims": rows, "verdict_counts": verdict_counts(rows), "rule": RULE, "docs_claims_md": docs_path}
