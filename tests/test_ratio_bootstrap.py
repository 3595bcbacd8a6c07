"""The efficiency ratio curve with a question-bootstrap interval (``analysis.ratio_bootstrap``), notebook
06's study of it (``analysis.ratio_study``) and 06's guards, on synthetic per-question tables (no models)."""

from __future__ import annotations

import functools
import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ttc_lib.analysis import (  # noqa: E402
    compute_optimal as co,
    efficiency as eff,
    ratio_bootstrap as rb,
    ratio_curve as rc,
    ratio_figures,
    ratio_study as rs,
)
from ttc_lib.analysis.uncertainty import bootstrap_curve  # noqa: E402
from ttc_lib.storage import json_text  # noqa: E402

BUDGETS = [1, 2, 4, 8, 16, 32, 64]
N_BOOT = 200


def questions(n: int = 60) -> tuple[list[str], np.ndarray]:
    ids = [f"q{i:03d}" for i in range(n)]
    return ids, np.arange(n) % 5 + 1  # five oracle bins


def log_linear_rows(ids, budgets, shift=1.0, seed=0, flops_per_generation=1e6) -> pd.DataFrame:
    """Per question a_q + 0.06 log2(shift * budget), a_q spread over questions: every replicate's mean
    curve is straight on a log-budget axis, so a curve shifted 2x cheaper is 2x at every budget."""
    offset = np.random.default_rng(seed).uniform(0.05, 0.35, len(ids))
    return pd.DataFrame([{"question_id": q, "budget": b, "accuracy": a + 0.06 * math.log2(shift * b),
                          "total_flops": flops_per_generation * b} for q, a in zip(ids, offset) for b in budgets])


def curve_of(rows, ids):
    return rb.question_curve(rows, ids)


# ------------------------------------------------------------------------- the cases
def test_a_baseline_against_itself_is_one_with_a_point_interval():
    ids, strata = questions()
    noisy = log_linear_rows(ids, BUDGETS)
    noisy["accuracy"] = np.clip(noisy.accuracy + np.random.default_rng(1).normal(0, 0.2, len(noisy)), 0, 1)
    base = curve_of(noisy, ids)
    counts = rb.resample_counts(strata, N_BOOT, 0)
    for cost in rb.COSTS:
        table, reps = rb.ratio_bootstrap(base, base, counts, cost)
        defined = table[table.status == "defined"]
        assert len(defined) >= 1
        assert defined.estimate.tolist() == [1.0] * len(defined)
        assert defined.ci_low.tolist() == [1.0] * len(defined) and defined.ci_high.tolist() == [1.0] * len(defined)
        assert (defined.censored == 0).all()
        summary = rb.geometric_mean_interval(table, reps)
        assert (summary["estimate"], summary["ci_low"], summary["ci_high"]) == (1.0, 1.0, 1.0)


def test_an_envelope_twice_as_cheap_is_two_in_generations_and_flops():
    ids, strata = questions()
    base = curve_of(log_linear_rows(ids, BUDGETS), ids)
    env = curve_of(log_linear_rows(ids, [1, 3, 5, 12, 24, 40, 64], shift=2.0), ids)  # interpolated, not at B/2
    counts = rb.resample_counts(strata, N_BOOT, 3)
    for cost in rb.COSTS:
        table, reps = rb.ratio_bootstrap(base, env, counts, cost)
        defined = table[table.status == "defined"]
        assert defined.budget.tolist() == BUDGETS[2:]
        for column in ("estimate", "ci_low", "ci_high"):
            assert defined[column].to_numpy(float) == pytest.approx([2.0] * len(defined), rel=1e-9)
        assert table.set_index("budget").status[[1, 2]].tolist() == ["no_reference"] * 2
        assert rb.geometric_mean_interval(table, reps)["estimate"] == pytest.approx(2.0)


def test_a_flat_baseline_is_undefined_with_the_reason():
    ids, strata = questions()
    rows = log_linear_rows(ids, BUDGETS)
    rows["accuracy"] = rows.accuracy - 0.06 * np.log2(np.maximum(rows.budget, 8) / 8)  # flat from 8 on
    table, reps = rb.ratio_bootstrap(curve_of(rows, ids), curve_of(log_linear_rows(ids, BUDGETS, 2.0), ids),
                                     rb.resample_counts(strata, N_BOOT, 0))
    beyond = table[table.budget > 8]
    assert (beyond.status == "baseline_flat").all() and (beyond.reason.str.len() > 0).all()
    assert beyond.estimate.isna().all() and beyond.ci_low.isna().all()
    summary = rb.geometric_mean_interval(table, reps)
    assert summary["undefined_budgets"] == [1, 2, 16, 32, 64] and "baseline_flat" in summary["reason"]
    row = rb.row_dict(beyond.iloc[0].to_dict())
    assert row["estimate"] is None and row["ci_low"] is None and json.loads(json.dumps(row, allow_nan=False))


def test_censored_replicates_are_counted_and_rank_lowest():
    ids, strata = questions(100)
    base = log_linear_rows(ids, BUDGETS)
    base["accuracy"] = (np.random.default_rng(5).random(len(base)) < base.accuracy).astype(float)  # 0/1 per question
    base_curve = curve_of(base, ids)
    top = base_curve.accuracy.mean(axis=0)[-1]
    # the envelope reaches the baseline's best just barely, on other questions: some replicates never do
    env = pd.DataFrame([{"question_id": q, "budget": b, "total_flops": 1e6 * b,
                         "accuracy": float(i < round((top + 0.005) * len(ids))) if b == 64 else 0.0}
                        for i, q in enumerate(ids) for b in BUDGETS])
    counts = rb.resample_counts(strata, N_BOOT, 0)
    table, reps = rb.ratio_bootstrap(base_curve, curve_of(env, ids), counts)
    row = table.set_index("budget").loc[64]
    assert row.status == "defined" and row.estimate == pytest.approx(1.0)
    assert 0.05 < row.censored < 0.95
    assert row.censored == pytest.approx((reps[:, -1] == 0).mean())
    assert row.ci_low == 0.0  # more than 2.5% censored: the lower end is "never reaches"
    summary = rb.geometric_mean_interval(table, reps)
    assert summary["censored"] >= row.censored and summary["ci_low"] == 0.0


def test_replicates_agree_with_ratio_curve_and_bands_with_uncertainty():
    ids, strata = questions(40)
    rng = np.random.default_rng(7)
    base, env = log_linear_rows(ids, BUDGETS, seed=1), log_linear_rows(ids, BUDGETS, shift=1.5, seed=2)
    for frame in (base, env):
        frame["accuracy"] = np.clip(frame.accuracy + rng.normal(0, 0.15, len(frame)), 0, 1)
        frame["total_flops"] = frame.total_flops * rng.uniform(0.8, 1.2, len(frame))
    b, e = curve_of(base, ids), curve_of(env, ids)
    counts = rb.resample_counts(strata, N_BOOT, 11)
    compared = 0
    for cost in rb.COSTS:
        _, reps = rb.ratio_bootstrap(b, e, counts, cost)
        for r in range(5):  # a replicate = the mean curves of its drawn questions, compared by ratio_curve
            frame = {name: pd.DataFrame({"budget": c.budgets, "accuracy": rb.replicate_means(c.accuracy, counts)[r],
                                         "total_flops": rb.replicate_means(c.flops, counts)[r]}) for name, c in
                     (("b", b), ("e", e))}
            by_hand = rc.ratio_curve(frame["b"], frame["e"], cost).set_index("budget")
            for k, budget in enumerate(b.budgets):
                if by_hand.status[budget] == "defined":  # B is where the baseline first reaches its hull
                    assert reps[r, k] == pytest.approx(by_hand.ratio[budget], rel=1e-9)
                    compared += 1
                elif by_hand.status[budget] == "censored":
                    assert reps[r, k] == 0
    assert compared >= 20
    stacked = base.assign(oracle_bin=base.question_id.map(dict(zip(ids, strata))))
    expected = bootstrap_curve(stacked, "budget", "accuracy", bin_column="oracle_bin", n_boot=N_BOOT, seed=11)
    got = rb.band(b, counts)
    assert got.ci_low.to_numpy() == pytest.approx(expected.ci_low.to_numpy(), abs=1e-12)
    assert got.ci_high.to_numpy() == pytest.approx(expected.ci_high.to_numpy(), abs=1e-12)


def test_ratio_bootstrap_guards():
    ids, strata = questions(10)
    c = curve_of(log_linear_rows(ids, BUDGETS), ids)
    other = curve_of(log_linear_rows(ids[:5], BUDGETS), ids[:5])
    with pytest.raises(ValueError, match="share one question list"):
        rb.ratio_bootstrap(c, other, rb.resample_counts(strata, N_BOOT, 0))
    with pytest.raises(ValueError, match="n_boot must be an integer >= 100"):
        rb.resample_counts(strata, 10, 0)
    with pytest.raises(ValueError, match="cost must be one of"):
        rb.ratio_bootstrap(c, c, rb.resample_counts(strata, N_BOOT, 0), "generations")
    rows = log_linear_rows(ids, BUDGETS)
    with pytest.raises(ValueError, match="no budget has a row for each of the 11 questions"):
        rb.question_curve(rows, ids + ["q999"])


# ------------------------------------------------------------------------------ the study
@functools.lru_cache(maxsize=None)  # shared by the tests (none of them changes what it returns)
def study_inputs(all_zero: bool = False, n: int = 10):
    ids, strata = questions(n)
    bins = pd.DataFrame({"question_id": ids, "oracle_bin": strata, "predicted_bin": np.roll(strata, 3)})
    rows = []
    for method, shift in (("best_of_n[selection=weighted]", 1.0), ("beam[width=4]", 2.0), ("best_of_n[selection=naive]", 1.2)):
        part = log_linear_rows(ids, [1, 4, 16, 64], shift=shift, seed=len(method))
        part["accuracy"] = 0.0 if all_zero else np.clip(part.accuracy + np.where(part.question_id.map(
            dict(zip(ids, strata))) > 3, 0.1, -0.1) * (shift == 2.0), 0, 1)
        rows.append(part.assign(method=method, strategy=method.split("[")[0], config=method[:-1].split("[")[1],
                                generations=part.budget))
    table = pd.concat(rows, ignore_index=True)
    envelopes = {("search", b): co.cross_validated_envelope(co.attach_bins(table, bins, b), n_splits=2, seed=0)
                 for b in rs.BIN_KINDS}
    return table, bins, envelopes, rs.best_fixed_envelopes(table, bins, n_splits=2, seed=0)


def test_the_study_reports_both_baselines_in_strict_json():
    table, bins, envelopes, fixed = study_inputs()
    study = rs.efficiency_study({"search": table}, envelopes, fixed, bins, revisions_skipped="no training data",
                                n_boot=N_BOOT, seed=0)
    keys = study.summary_keys()
    assert set(keys["efficiency_ratio_curve"]) == {"best_of_n_weighted", "best_fixed"}
    assert set(keys["efficiency_ratio_curve"]["best_fixed"]) == {"oracle", "predicted"}
    row = keys["efficiency_ratio_curve"]["best_of_n_weighted"]["oracle"]["16"]
    assert {"estimate", "ci_low", "ci_high", "censored", "status", "reason", "n_questions"} <= set(row)
    assert row["status"] == "defined" and row["ci_low"] <= row["estimate"] <= row["ci_high"]
    search = keys["efficiency_ratio_summary"]["search"]["best_of_n_weighted"]["oracle"]
    assert search["defined_budgets"] == [4, 16, 64] and search["estimate"] > 1
    skipped = keys["efficiency_ratio_summary"]["revisions"]["parallel"]["predicted"]
    assert skipped["estimate"] is None and "no training data" in skipped["reason"]
    assert "nulls" not in json.loads(json_text(keys))  # no NaN anywhere: nothing for json_text to null
    assert set(study.bands.curve) == {"envelope", "best_of_n_weighted", "best_fixed"}
    fig = ratio_figures.figure4_ratio(study.bands, study.table)
    assert len(fig.axes) == 3 and fig.axes[1].get_yscale() == "log"
    plt.close(fig)
    diff = rs.predicted_vs_oracle(envelopes, bins, n_boot=N_BOOT, seed=0)
    assert set(diff) == {"1", "4", "16", "64"} and diff["16"]["n_questions"] == 10


def test_a_pool_where_every_sample_was_truncated_is_reported_as_such():
    note = rs.pool_note({"truncated_fraction": 1.0, "max_new_tokens": 24})
    assert "every sample of notebook 03's pool was truncated" in note
    assert rs.pool_note({"truncated_fraction": 0.3}) is None
    table, bins, envelopes, fixed = study_inputs(all_zero=True)
    study = rs.efficiency_study({"search": table}, envelopes, fixed, bins, revisions_skipped="skipped",
                                n_boot=N_BOOT, seed=0, note=note)
    assert set(study.table.status) == {"all_zero"} and study.table.reason.str.contains("truncated").all()
    summary = study.summary_keys()["efficiency_ratio_summary"]["search"]["best_fixed"]["oracle"]
    assert summary["estimate"] is None and "truncated" in summary["reason"]
    assert study.summary_keys()["pool_all_truncated"] == note


def test_the_revisions_envelope_against_parallel_and_a_missing_baseline_with_its_reason():
    search, bins, search_envelopes, fixed = study_inputs()
    extra = pd.DataFrame({"question_id": ["q999"], "oracle_bin": [1], "predicted_bin": [1]})
    bins = pd.concat([bins, extra], ignore_index=True)  # a question best-of-N weighted never ran: not comparable
    ids = sorted(bins.question_id)
    rows = [log_linear_rows(ids, [1, 4, 16], shift=shift).assign(
        method=f"revisions[chains={c},length={n},selection=hierarchical]", config=f"chains={c},length={n}")
        for c, n, shift in ((1, 1, 1.0), (4, 1, 1.0), (16, 1, 1.0), (1, 4, 2.0), (1, 16, 2.0))]
    rev = pd.concat(rows, ignore_index=True).assign(strategy="revisions", generations=lambda f: f.budget)
    rev["method"] = [f"revisions[chains={b},length=1,selection=hierarchical]" if c.endswith("length=1") else m
                     for b, c, m in zip(rev.budget, rev.config, rev.method)]  # N chains of length 1 at budget N
    rev = rev.drop_duplicates(["method", "budget", "question_id"])
    rev["config"] = rev.method.str.slice(len("revisions["), -1)
    envelopes = {("revisions", b): co.cross_validated_envelope(co.attach_bins(rev, bins, b), n_splits=2, seed=0)
                 for b in rs.BIN_KINDS}
    parallel = eff.method_curve(rev, "revisions", vary=("chains",), length=1, selection="hierarchical")
    study = rs.efficiency_study({"search": search, "revisions": rev}, {**search_envelopes, **envelopes}, fixed, bins,
                                parallel=parallel, n_boot=N_BOOT, seed=0)
    versus = study.summary["generations"]["revisions"]
    assert versus["parallel"]["oracle"]["estimate"] == pytest.approx(2.0)  # sequential chains reach it 2x cheaper
    assert versus["best_of_n_weighted"]["oracle"]["estimate"] is None
    assert "no budget has a row for each of the 11 questions" in versus["best_of_n_weighted"]["oracle"]["reason"]
    with pytest.raises(ValueError, match="needs parallel"):
        rs.efficiency_study({"search": search, "revisions": rev}, {**search_envelopes, **envelopes}, fixed, bins,
                            n_boot=N_BOOT, seed=0)


# ------------------------------------------------------------------------------ 06's guards
def test_too_few_questions_per_bin_for_the_split_names_the_numbers_and_the_parameter():
    one_each = pd.DataFrame({"question_id": [f"q{i}" for i in range(5)], "predicted_bin": [1, 2, 3, 4, 5],
                             "oracle_bin": [1, 2, 3, 4, 5]})
    with pytest.raises(ValueError, match=r"heldout_fraction = 0\.5 leaves 0 held-out and 5 fit .*bin 1: 1 question"):
        co.split_questions(one_each, 0.5)
    with pytest.raises(ValueError, match="no binned question"):
        co.split_questions(one_each.iloc[:0], 0.5)
    fit, held = co.split_questions(pd.concat([one_each, one_each.assign(question_id=lambda f: f.question_id + "b")]), 0.5)
    assert len(fit) == len(held) == 5
    with pytest.raises(ValueError, match=r"no held-out question to run solve\(\) on: 0 held-out id\(s\).*solve_questions = 10"):
        co.solve_sample(one_each, [], 10)
    assert co.solve_sample(one_each, ["q1", "q2"], 0) == ["q1", "q2"]
