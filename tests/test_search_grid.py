"""The search grid: feasible jobs, one cached record per job, resume, best-of-N from the pool."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from ttc_lib import search
from ttc_lib.models.cost import Cost
from ttc_lib.search.common import RESULT_COLUMNS, SearchResult
from ttc_lib.search.grid import Job, grid, pool_jobs, question_tag, run_jobs
from ttc_lib.storage import ResultCache
from ttc_lib.tasks.problem import Problem

PROBLEMS = [Problem(id=f"q{i}", question=f"q {i}", answer=str(i), solution="", level=1) for i in range(3)]
CALLS: list[tuple] = []
RULES: list[str] = []  # the aggregate rule each call received


def fake(generator, verifier, problems, budget, *, seed=0, temperature=1.0, max_new_tokens=256, progress=True,
         aggregate="last", width=4):
    CALLS.append((budget, seed, width))
    RULES.append(aggregate)
    return [SearchResult(p.id, "fake", {"width": width}, budget, seed, p.answer if seed == 0 else "x", [],
                         Cost(10, 5, budget, 7, 3, 2)) for p in problems]


@pytest.fixture(autouse=True)
def fake_strategy(monkeypatch):
    monkeypatch.setitem(search.STRATEGIES, "fake", fake)
    CALLS.clear()
    RULES.clear()


def test_grid_crosses_specs_budgets_seeds_and_skips_infeasible_lookahead():
    jobs, skipped = grid([{"strategy": "beam", "width": 4, "lookahead": 3}, {"strategy": "dvts", "width": 4}],
                         [2, 4], [0, 1])
    assert [(j.strategy, j.budget, j.seed) for j in jobs] == [("beam", 4, 0), ("beam", 4, 1), ("dvts", 2, 0),
                                                              ("dvts", 2, 1), ("dvts", 4, 0), ("dvts", 4, 1)]
    assert len(skipped) == 1 and "lookahead 3 needs N >= 4" in skipped[0]
    assert jobs[0].key("t") == "beam[lookahead=3,width=4]|N=4|seed=0|t"
    with pytest.raises(ValueError, match="strategy"):
        grid([{"width": 4}], [4], [0])
    with pytest.raises(ValueError, match="budgets"):
        grid([{"strategy": "dvts"}], [0], [0])


def test_run_jobs_table_and_resume(tmp_path):
    jobs, _ = grid([{"strategy": "fake", "width": 2}], [4, 8], [0, 1])
    cache_path = tmp_path / "jobs.jsonl"
    policy, verifier = SimpleNamespace(identity="policy-a"), SimpleNamespace(identity="verifier-a")
    run = lambda gen, jobs=jobs: run_jobs(jobs, gen, verifier, PROBLEMS, max_new_tokens=9,  # noqa: E731
                                          cache=ResultCache(cache_path), progress=False)
    table = run(policy)
    assert list(table.columns) == RESULT_COLUMNS and len(table) == 4 * 3
    assert table[table.seed == 0].correct.all() and not table[table.seed == 1].correct.any()
    assert table.config.unique().tolist() == ["width=2"] and len(CALLS) == 4
    timed = sorted((r["method"], r["budget"], r["seed"]) for r in table.attrs["seconds"])
    assert timed == sorted((j.key().split("|")[0], j.budget, j.seed) for j in jobs)
    again = run(policy)
    assert len(CALLS) == 4  # every job came from the cache
    pd.testing.assert_frame_equal(again, table)
    run(SimpleNamespace(identity="policy-b"), jobs[:1])
    assert len(CALLS) == 5  # another policy (retrained at the same path) is other work


def test_pool_jobs_budgets_subsets_and_guard():
    pool = pd.DataFrame({"question_id": ["q0"] * 4 + ["q1"] * 4, "sample": list(range(4)) * 2,
                         "text": "t", "answer": ["0", "0", "5", "5", "1", "2", "2", "2"], "correct": False,
                         "generated_tokens": 10, "prompt_tokens": 3, "verifier_tokens": 4,
                         "score": [0.9, 0.9, 0.1, 0.1, 0.9, 0.2, 0.2, 0.2]})
    refs = {"q0": "0", "q1": "2"}
    table = pool_jobs(pool, [1, 4], ["weighted", "majority"], n_subsets=3, seed=0, generator_params=10,
                      verifier_params=5, references=refs)
    assert len(table) == 2 * 2 * 2 * 3
    full = table[table.budget == 4].set_index(["config", "question_id"]).correct.groupby(level=[0, 1]).mean()
    assert full["selection=weighted", "q0"] == 1
    assert full["selection=weighted", "q1"] == 0  # one answer at .9 outweighs three at .2
    assert full["selection=majority", "q1"] == 1  # 2 appears three times
    assert (table.generations <= table.budget).all()
    with pytest.raises(ValueError, match="exceed the pool"):
        pool_jobs(pool, [8], ["weighted"], n_subsets=1, seed=0, generator_params=1, verifier_params=1, references=refs)


def test_question_tag_depends_on_the_questions():
    assert question_tag(PROBLEMS) == question_tag(list(PROBLEMS))
    assert question_tag(PROBLEMS) != question_tag(PROBLEMS[:2])
    edited = [PROBLEMS[0], Problem(id="q1", question="q 1", answer="7", solution="", level=1), PROBLEMS[2]]
    assert question_tag(edited) != question_tag(PROBLEMS)  # same ids, another reference answer
    assert isinstance(Job("fake", (("width", 2),), 4, 0).config_dict, dict)


def test_run_jobs_passes_the_aggregation_rule_to_every_job():
    jobs, _ = grid([{"strategy": "fake", "width": 2}], [4, 8], [0])
    run_jobs(jobs, None, None, PROBLEMS, max_new_tokens=9, progress=False, aggregate="prod")
    assert RULES == ["prod"] * len(jobs) and len(jobs) == 2
