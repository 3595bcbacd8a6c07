"""Choosing the step-score aggregation on validation questions (aggregation.py), and the stages
downstream honouring a non-default rule: search scoring, best-of-N, revisions, the policy."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ttc_lib.analysis.aggregation import (
    aggregation_table,
    check_disjoint,
    choose_aggregation,
    recorded_aggregation,
    validation_set,
)
from ttc_lib.analysis.strategy_policy import Choice, Policy, solve_many
from ttc_lib.analysis.verifier_quality import extract_answers
from ttc_lib.generation.generator import Sample
from ttc_lib.models.cost import Cost
from ttc_lib.search import grid as search_grid
from ttc_lib.search.best_of_n import best_of_n
from ttc_lib.search.common import SearchResult, expand_and_score, score_texts
from ttc_lib.search.revision_chains import Attempt, score_chains
from ttc_lib.tasks.problem import Problem
from ttc_lib.tasks.steps import split_steps

STEP_SCORES = {"low": 0.2, "high": 0.9, "next": 0.8}  # any other step scores 0.5


class TableVerifier:
    """Each step's score depends on the step's text only (STEP_SCORES), so aggregates are known."""

    name, num_params = "table", 10

    def __init__(self) -> None:
        self.tokens_scored = 0

    def score(self, questions, solutions):
        self.tokens_scored += sum(len(s) for s in solutions)
        return [[STEP_SCORES.get(step, 0.5) for step in split_steps(s)] for s in solutions]


class FakeGenerator:
    """Every next step is "next"; full samples alternate "low" (answer 0) and "high" (answer 1)."""

    prompt_style, num_params = "plain", 100

    def tokenizer(self, texts, **_):
        return {"input_ids": [t.split() for t in texts]}

    def sample_steps(self, questions, contexts, n, **_):
        return [[Sample("next", 2, "step") for _ in range(n)] for _ in questions]

    def sample(self, questions, n, **_):
        return [[Sample(f"{'high' if i % 2 else 'low'}\nnext\n\\boxed{{{i % 2}}}", 4, "end") for i in range(n)]
                for _ in questions]


def prod_of(text: str) -> float:
    return math.prod(STEP_SCORES.get(s, 0.5) for s in split_steps(text))


# ---- the choice --------------------------------------------------------------------------------
def test_choose_aggregation_takes_the_best_mean_over_n_not_the_last_n():
    table = pd.DataFrame({"majority": [.5, .6, .6], "weighted_last": [.5, .6, .9],
                          "weighted_min": [.5, .8, .8], "weighted_prod": [.5, .75, .82]}, index=[1, 4, 16])
    assert choose_aggregation(table) == "min"  # mean .700 beats prod .690 and last .667 (best at N=16)
    table["weighted_prod"] = [.5, .9, .9]
    assert choose_aggregation(table) == "prod"


def test_choose_aggregation_ties_go_to_last_then_min():
    flat = pd.DataFrame({f"weighted_{h}": [.5, .7] for h in ("prod", "min", "last")}, index=[1, 2])
    assert choose_aggregation(flat) == "last"
    assert choose_aggregation(flat.drop(columns="weighted_last")) == "min"
    with pytest.raises(ValueError, match="no weighted"):
        choose_aggregation(pd.DataFrame({"majority": [.5]}))


def test_aggregation_table_scores_each_rule_and_the_choice_follows_it():
    """Two wrong candidates with flat step scores outvote the right one under last and min;
    prod sees their three middling steps and picks the right answer."""
    answers = [["9", "9", "7", None]]
    steps = [[[.5, .5, .5], [.5, .5, .5], [.45, .95], []]]  # the unfinished sample has no steps
    table = aggregation_table(answers, ["7"], steps, [4], n_subsets=2, seed=0)
    assert list(table.columns) == ["majority", "weighted_last", "weighted_min", "weighted_prod"]
    assert table.loc[4].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert choose_aggregation(table) == "prod"


def test_validation_questions_are_held_out_training_questions_disjoint_from_test():
    from ttc_lib.tasks.arithmetic import ArithmeticWorld, make_splits

    train, test = make_splits(ArithmeticWorld(min_ops=1, max_ops=3), n_train=120, n_test=20, seed=0)
    labelled = train[:40]
    held = {p.id for p in labelled[-10:]}  # notebook 02's val_ids
    chosen = validation_set(labelled, held, limit=6)
    assert [p.id for p in chosen] == [p.id for p in labelled[-10:-4]]
    assert validation_set(labelled, held) == labelled[-10:]  # 0: all of them
    check_disjoint(chosen, test)  # no error
    twin = Problem("other-id", test[0].question, test[0].answer, "", 1)
    with pytest.raises(ValueError, match="overlap"):
        check_disjoint(chosen + [twin], test)  # the same question under another id
    with pytest.raises(ValueError, match="overlap"):
        check_disjoint(chosen + [test[1]], test)


def test_recorded_aggregation_defaults_to_last_for_older_summaries():
    assert recorded_aggregation({"chosen_verifier": "x"}) == "last"
    assert recorded_aggregation({"chosen_aggregation": "prod"}) == "prod"
    assert recorded_aggregation({"aggregate": "min"}, "aggregate") == "min"
    with pytest.raises(ValueError):
        recorded_aggregation({"chosen_aggregation": "mean"})


# ---- downstream consumers honour a non-default rule -------------------------------------------
def test_search_scores_prefixes_with_the_rule():
    """Two prefixes whose last steps score the same: 'last' ties them, 'prod' ranks them apart."""
    args = (FakeGenerator(), TableVerifier(), ["q", "q"], ["low", "high"], [1, 1])
    default = expand_and_score(*args, max_new_tokens=50)
    prod = expand_and_score(*args, max_new_tokens=50, aggregate="prod")
    assert [k[0].score for k in default.children] == [0.8, 0.8]
    assert [k[0].score for k in prod.children] == pytest.approx([0.2 * 0.8, 0.9 * 0.8])
    scores, _ = score_texts(TableVerifier(), ["q"], ["low\nnext"], [0], 1, how="min")
    assert scores == [0.2]
    with pytest.raises(ValueError, match="unknown how"):
        score_texts(TableVerifier(), ["q"], ["low"], [0], 1, how="mean")


def test_best_of_n_weights_candidates_with_the_rule():
    problem = Problem("p", "q", "1", "", 1)
    for how, expected in (("last", "0"), ("prod", "1")):
        (result,) = best_of_n(FakeGenerator(), TableVerifier(), [problem], 4, aggregate=how, progress=False)
        assert [c.score for c in result.candidates] == pytest.approx(
            [0.5 if how == "last" else prod_of(c.text) for c in result.candidates])
        assert result.answer == expected  # last: all tie at .5, the earliest wins; prod: "high" wins


def test_revision_chains_are_scored_with_the_rule():
    problem = Problem("p", "q", "1", "", 1)
    chains = [[[Attempt("low\nnext", None, True, 2, 3, ()), Attempt("high\nnext", None, True, 2, 3, ())]]]
    got = score_chains(TableVerifier(), [problem], chains, with_context=False, how="prod")
    assert [s for s, _ in got[0][0]] == pytest.approx([0.16, 0.72])
    default = score_chains(TableVerifier(), [problem], chains, with_context=False)
    assert [s for s, _ in default[0][0]] == [0.8, 0.8]


def test_run_jobs_passes_the_rule_to_every_strategy(monkeypatch):
    seen = []
    monkeypatch.setattr(search_grid, "run_strategy", lambda *a, **kw: seen.append(kw["aggregate"]) or [])
    jobs, _ = search_grid.grid([{"strategy": "beam", "width": 2}, {"strategy": "dvts", "width": 2}], [2], [0])
    search_grid.run_jobs(jobs, None, None, [], max_new_tokens=8, aggregate="min", progress=False)
    assert seen == ["min", "min"]


def test_policy_probes_and_strategies_use_the_policys_rule():
    calls = []

    def runner(name, generator, verifier, problems, budget, **kwargs):
        calls.append(kwargs.get("aggregate"))
        return [SearchResult(p.id, name, {}, budget, 0, "1", [], Cost(1, 1, generations=budget)) for p in problems]

    policy = Policy(thresholds=(0.3, 0.6), higher_is_easier=True, probe_samples=2, aggregate="prod",
                    choices={b: {2: Choice("beam", {"width": 2})} for b in (1, 2, 3)})
    problems = [Problem("p", "q", "1", "", 1)]
    (result,) = solve_many(problems, 4, generator=FakeGenerator(), verifier=TableVerifier(), policy=policy,
                           runner=runner)
    assert calls == ["prod"]
    assert result.difficulty_score == pytest.approx((prod_of("low\nnext\nx") + prod_of("high\nnext\nx")) / 2)
    solve_many(problems, 4, generator=FakeGenerator(), verifier=TableVerifier(), policy=policy, runner=runner,
               strategy_models={"beam": (FakeGenerator(), TableVerifier())})
    assert calls == ["prod", None]  # a strategy with its own verifier keeps that verifier's default


def test_extract_answers_reads_finished_samples_and_samples_nothing():
    samples = [[Sample("a\n\\boxed{3}", 4, "end"), Sample("a\n\\boxed{3}", 9, "length"), Sample("no box", 2, "end")],
               []]
    assert extract_answers(samples) == [["3", None, None], []]
