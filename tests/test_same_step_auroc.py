"""Same-step AUROC (groups = question x step index) and question-bootstrap intervals of the grouped
AUROCs (analysis.auroc), and what notebook 02 builds on them (analysis.verifier_quality): position
alone games the within-question AUROC but not the same-step one; the verifier is chosen by it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ttc_lib.analysis.auroc import (
    auroc,
    grouped_auroc_interval,
    per_group_auroc,
    same_step_auroc,
    same_step_auroc_ci,
    same_step_per_group,
    within_question_auroc,
    within_question_auroc_ci,
)
from ttc_lib.analysis.verifier_quality import (
    POSITION_ONLY,
    choice_column,
    choose_verifier,
    prm_vs_baselines,
    quality_intervals,
    quality_table,
)


def monotone_steps(n_questions: int = 120, samples: int = 8, steps: int = 6, seed: int = 0) -> pd.DataFrame:
    """Solutions whose steps are right until a random first wrong step (harder questions fail earlier)."""
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(n_questions):
        skill = rng.uniform(0.3, 1.0)  # per-question difficulty
        for s in range(samples):
            first_wrong = min(rng.geometric(1 - skill) - 1, steps)  # steps before it are right
            rows += [(f"q{q:03d}", s, k, k < first_wrong) for k in range(steps)]
    return pd.DataFrame(rows, columns=["question_id", "sample", "step", "oracle"])


def test_position_alone_games_within_question_but_is_chance_at_the_same_step():
    table = monotone_steps()
    position = -table.step.astype(float)
    assert within_question_auroc(position, table.oracle, table.question_id) > 0.75
    assert same_step_auroc(position, table.oracle, table.question_id, table.step) == 0.5
    ci = same_step_auroc_ci(position, table.oracle, table.question_id, table.step)
    assert ci["estimate"] == ci["ci_low"] == ci["ci_high"] == 0.5
    wq = within_question_auroc_ci(position, table.oracle, table.question_id)
    assert wq["ci_low"] > 0.7 and wq["ci_low"] <= wq["estimate"] <= wq["ci_high"]


def test_a_perfect_scorer_gets_one_in_both():
    table = monotone_steps(seed=1)
    perfect = table.oracle.astype(float) - 0.01 * table.step  # right steps above wrong ones, position too
    for ci in (within_question_auroc_ci(perfect, table.oracle, table.question_id),
               same_step_auroc_ci(perfect, table.oracle, table.question_id, table.step)):
        assert ci["estimate"] == ci["ci_low"] == ci["ci_high"] == 1.0


def test_a_constant_score_is_a_point_at_one_half():
    table = monotone_steps(seed=2)
    constant = np.full(len(table), 0.3)
    for ci in (within_question_auroc_ci(constant, table.oracle, table.question_id),
               same_step_auroc_ci(constant, table.oracle, table.question_id, table.step)):
        assert ci["estimate"] == ci["ci_low"] == ci["ci_high"] == 0.5


def test_a_noisy_informed_scorer_is_good_at_the_same_step_and_its_interval_covers_it():
    table = monotone_steps(seed=3)
    rng = np.random.default_rng(3)
    informed = table.oracle + rng.normal(0, 0.6, len(table))
    ci = same_step_auroc_ci(informed, table.oracle, table.question_id, table.step)
    assert 0.75 < ci["ci_low"] < ci["estimate"] < ci["ci_high"] < 1.0
    assert ci["n_questions"] == table.question_id.nunique() - (table.groupby("question_id").oracle.nunique() < 2).sum()


def test_per_group_values_match_the_pairwise_auroc_with_ties():
    rng = np.random.default_rng(4)
    n = 600
    questions, steps = rng.integers(0, 30, n), rng.integers(0, 4, n)
    scores, labels = rng.integers(0, 4, n) / 3, rng.random(n) < 0.5  # many ties
    per_group = same_step_per_group(scores, labels, questions, steps)
    for (q, k), value in per_group.items():
        inside = (questions == q) & (steps == k)
        assert value == pytest.approx(auroc(scores[inside], labels[inside]))
    groups = pd.DataFrame({"q": questions, "k": steps, "y": labels}).groupby(["q", "k"]).y.nunique()
    assert len(per_group) == int((groups == 2).sum())  # exactly the groups with both labels
    for q, value in per_group_auroc(scores, labels, questions).items():
        assert value == pytest.approx(auroc(scores[questions == q], labels[questions == q]))


def test_the_bootstrap_resamples_questions_and_their_groups_together():
    # question a has three groups at 1.0, question b one group at 0.0: the estimate weighs groups
    # (0.75); a replicate drawing b twice has mean 0, drawing a twice 1
    per_group = pd.Series([1.0, 1.0, 1.0, 0.0])
    result = grouped_auroc_interval(per_group, ["a", "a", "a", "b"], n_boot=2000, seed=0)
    assert result["estimate"] == 0.75 and result["n_questions"] == 2
    assert result["ci_low"] == 0.0 and result["ci_high"] == 1.0
    # a brute-force loop with the same index matrix gives the same replicates
    rng = np.random.default_rng(5)
    values, owners = rng.random(40), rng.integers(0, 12, 40).astype(str)
    fast = grouped_auroc_interval(pd.Series(values), list(owners), n_boot=500, seed=9)
    uniques = np.unique(owners)
    index = np.random.default_rng(9).integers(0, len(uniques), size=(500, len(uniques)))
    slow = [np.concatenate([values[owners == uniques[i]] for i in row]).mean() for row in index]
    assert (fast["ci_low"], fast["ci_high"]) == pytest.approx(tuple(np.quantile(slow, [0.025, 0.975])))


def test_undefined_when_no_group_has_both_labels_and_strict_json():
    table = monotone_steps(n_questions=5, seed=6)
    all_wrong = np.zeros(len(table), dtype=bool)
    ci = same_step_auroc_ci(table.step, all_wrong, table.question_id, table.step)
    assert ci["estimate"] is None and ci["ci_low"] is None and "both a right and a wrong step" in ci["reason"]
    json.dumps(ci, allow_nan=False)
    assert np.isnan(same_step_auroc(table.step, all_wrong, table.question_id, table.step))


def test_bootstrap_guards_and_determinism():
    table = monotone_steps(n_questions=40, seed=7)
    noisy = table.oracle + np.random.default_rng(7).normal(0, 1, len(table))
    args = (noisy, table.oracle, table.question_id, table.step)
    assert same_step_auroc_ci(*args, seed=1) == same_step_auroc_ci(*args, seed=1)
    assert same_step_auroc_ci(*args, seed=1) != same_step_auroc_ci(*args, seed=2)
    with pytest.raises(ValueError, match="n_boot"):
        same_step_auroc_ci(*args, n_boot=10)
    with pytest.raises(ValueError, match="step indices"):
        same_step_auroc(noisy, table.oracle, table.question_id, table.step[:-1])


def step_tables() -> dict[str, pd.DataFrame]:
    table = monotone_steps(n_questions=60, seed=8)
    rng = np.random.default_rng(8)
    return {"judge": table.assign(score=table.oracle + rng.normal(0, 1.5, len(table))),
            "position_lover": table.assign(score=-table.step + rng.normal(0, 0.1, len(table))),
            "oracle_prm": table.assign(score=table.oracle.astype(float))}


def test_the_verifier_is_chosen_by_same_step_auroc_never_by_position():
    quality = quality_table(step_tables())
    assert POSITION_ONLY in quality.index and quality.loc[POSITION_ONLY, "same_step_auroc"] == 0.5
    # position wins within questions, the judge at the same step: the judge is chosen
    assert quality.loc["position_lover", "within_question_auroc"] > quality.loc["judge", "within_question_auroc"]
    assert choice_column(quality, exclude=["oracle_prm"]) == "same_step_auroc"
    assert choose_verifier(quality, exclude=["oracle_prm"]) == "judge"
    undefined = quality.assign(same_step_auroc=np.nan)
    assert choice_column(undefined, exclude=["oracle_prm"]) == "within_question_auroc"
    assert choose_verifier(undefined, exclude=["oracle_prm"]) == "position_lover"
    intervals = quality_intervals(step_tables(), n_boot=200)
    assert set(intervals) == {"same_step_auroc", "within_question_auroc_ci"}
    assert set(intervals["same_step_auroc"]) == {"judge", "position_lover", "oracle_prm", POSITION_ONLY}


def test_prm_vs_baselines_is_a_paired_difference_per_n():
    rng = np.random.default_rng(9)
    rows = []
    for q in range(80):
        base = rng.random() < 0.5
        for n in (1, 4):
            rows += [(f"q{q}", n, "majority", float(base)), (f"q{q}", n, "weighted[orm:last]", float(base)),
                     (f"q{q}", n, "weighted[prm:min]", float(base or (n == 4 and q % 4 == 0)))]
    per_question = pd.DataFrame(rows, columns=["question", "n", "method", "accuracy"])
    out = prm_vs_baselines(per_question, {"prm": "min", "absent": "last"}, n_boot=500)
    assert out["prm"]["1"]["vs_majority"]["estimate"] == out["prm"]["1"]["vs_orm"]["ci_high"] == 0.0
    gain = per_question[(per_question.n == 4) & (per_question.method == "weighted[prm:min]")].accuracy.mean() - \
        per_question[(per_question.n == 4) & (per_question.method == "majority")].accuracy.mean()
    assert out["prm"]["4"]["vs_majority"]["estimate"] == pytest.approx(gain) and gain > 0
    assert out["prm"]["4"]["vs_majority"]["n_questions"] == 80
    assert out["absent"]["4"]["vs_orm"]["estimate"] is None and "absent" in out["absent"]["4"]["vs_orm"]["reason"]
    json.dumps(out, allow_nan=False)
