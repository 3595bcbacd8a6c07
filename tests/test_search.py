"""Search strategies: budgets, lookahead cost, beam survivors, DVTS independence, selection,
determinism, the cost ledger and the results table (tiny model trained in the test)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from ttc_lib import search
from ttc_lib.generation.generator import Generator
from ttc_lib.models.cost import Cost
from ttc_lib.search import beam as beam_mod, common
from ttc_lib.search.best_of_n import from_pool
from ttc_lib.search.common import RESULT_COLUMNS, SearchResult, results_table
from ttc_lib.tasks.prompts import format_prompt
from ttc_lib.verifiers.hash_verifier import HashVerifier

MAX_NEW = 48


@pytest.fixture(scope="module")
def world(trained_policy, one_thread):
    """conftest's tiny trained policy as a Generator, and its 3 test problems."""
    path, test = trained_policy
    return Generator.from_pretrained(path, device="cpu"), test


def run(gen, problems, name, budget, seed=0, verifier=None, **config):
    return search.run_strategy(name, gen, verifier or HashVerifier(), problems, budget, seed=seed,
                               max_new_tokens=MAX_NEW, progress=False, **config)


def record_rounds(monkeypatch):
    """Wrap the shared expand step: every round's (questions, prefixes, counts, children)."""
    calls = []
    real = common.expand_and_score

    def spy(generator, verifier, questions, prefixes, counts, **kw):
        out = real(generator, verifier, questions, prefixes, counts, **kw)
        calls.append((list(questions), list(prefixes), list(counts), out.children))
        return out

    monkeypatch.setattr(beam_mod, "expand_and_score", spy)
    return calls


STRATEGY_CASES = [("best_of_n", {"selection": "weighted"}), ("best_of_n", {"selection": "majority"}),
                  ("beam", {"width": 4}), ("beam", {"width": "sqrt"}), ("beam", {"width": 4, "lookahead": 1}),
                  ("dvts", {"width": 4}), ("dvts", {"width": 2})]


@pytest.mark.parametrize("name,config", STRATEGY_CASES)
def test_budget_never_exceeded(world, monkeypatch, name, config):
    gen, problems = world
    calls = record_rounds(monkeypatch)
    for budget in (2, 4, 16):
        calls.clear()
        results = run(gen, problems, name, budget, **config)
        assert [r.question_id for r in results] == [p.id for p in problems]
        for r in results:
            assert r.cost.generations <= budget and len(r.candidates) <= budget
        if name == "best_of_n":
            assert all(r.cost.generations == budget for r in results)
            continue
        beams = budget // (config.get("lookahead", 0) + 1)
        # per question: children in flight + finished candidates never exceed the N slots
        for q in {p.question for p in problems}:
            finished = 0
            for questions, _, counts, children in calls:
                mine = [i for i, x in enumerate(questions) if x == q]
                assert sum(counts[i] for i in mine) + finished <= beams
                finished += sum(c.status == "final" for i in mine for c in children[i])


def test_every_token_is_charged(world):
    gen, problems = world
    verifier = HashVerifier()
    for name, config in (("beam", {"width": 2, "lookahead": 2}), ("dvts", {"width": 4}), ("best_of_n", {})):
        g0, v0 = gen.generated_tokens, verifier.tokens_scored
        results = run(gen, problems, name, 12, verifier=verifier, **config)
        assert sum(r.cost.generated_tokens for r in results) == gen.generated_tokens - g0
        assert sum(r.cost.verifier_tokens for r in results) == verifier.tokens_scored - v0
        assert all(r.cost.prompt_tokens > 0 and r.cost.verifier_params == 1000 for r in results)
        assert all(r.cost.generator_params == gen.num_params for r in results)


@pytest.mark.parametrize("budget,k,beams", [(8, 1, 4), (8, 3, 2), (9, 1, 4), (16, 3, 4)])
def test_lookahead_cost_is_n_times_k_plus_1(world, budget, k, beams):
    gen, problems = world
    results = run(gen, problems, "beam", budget, width=2, lookahead=k)
    for r in results:
        assert r.info["beams"] == beams
        assert r.cost.generations == beams * (k + 1) <= budget


def test_lookahead_rolls_out_and_scores_the_rollout(world, monkeypatch):
    gen, problems = world
    greedy = []
    real = gen.sample_steps

    def spy(questions, prefixes, n, **kw):
        out = real(questions, prefixes, n, **kw)
        if kw.get("temperature") == 0:
            greedy.append(sum(s.num_tokens for row in out for s in row))
        return out

    monkeypatch.setattr(gen, "sample_steps", spy)
    plain = run(gen, problems[:1], "beam", 4, width=2)
    assert not greedy  # plain beam search never rolls out
    ahead = run(gen, problems[:1], "beam", 8, width=2, lookahead=1)
    assert greedy and plain[0].info["beams"] == ahead[0].info["beams"] == 4
    # same beams and seed: the step samples are alike, the extra tokens are the rollouts
    assert ahead[0].cost.generated_tokens >= sum(greedy)


def test_beam_keeps_the_top_n_over_m_survivors(world, monkeypatch):
    gen, problems = world
    calls = record_rounds(monkeypatch)
    results = run(gen, problems, "beam", 16, width=4)
    assert len(calls) >= 2
    assert calls[0][2] == [16] * len(problems)  # round 0: N first steps from the bare prompt
    for (qs, _, _, kids), (next_qs, next_prefixes, next_counts, _) in zip(calls, calls[1:]):
        for q in set(next_qs):
            children = [c for i, x in enumerate(qs) if x == q for c in kids[i]]
            open_ = [c for c in children if c.status == "open"]
            expanded = [p for x, p in zip(next_qs, next_prefixes) if x == q]
            assert len(expanded) <= 16 // 4
            if all(c.status != "final" for c in children):  # no slot used: exactly N/M survive
                assert len(expanded) == min(4, len(open_))
            best = sorted(open_, key=lambda c: -c.score)[:len(expanded)]
            assert sorted(expanded) == sorted(c.text for c in best)
    q0 = problems[0].question
    assert results[0].info["survivors"] == [qs.count(q0) for qs, *_ in calls if q0 in qs]
    assert max(r.info["survivors"][1] for r in results) == 4  # N/M = 4 survivors after round 0


def test_dvts_subtrees_are_independent(world):
    gen, problems = world
    small = run(gen, problems, "dvts", 8, width=4)  # 2 subtrees
    large = run(gen, problems, "dvts", 16, width=4)  # 4 subtrees: the first two must not change
    for a, b in zip(small, large):
        assert a.info["subtrees"] == 2 and b.info["subtrees"] == 4
        assert b.info["tree_sizes"][:2] == a.info["tree_sizes"]
        assert b.candidates[:len(a.candidates)] == a.candidates
        assert b.info["survivors"][:2] == a.info["survivors"]
    # subtrees start from the same prompt: only their own streams make them differ
    first = [r.candidates[:r.info["tree_sizes"][0]] for r in large]
    second = [r.candidates[r.info["tree_sizes"][0]:sum(r.info["tree_sizes"][:2])] for r in large]
    assert [[c.text for c in x] for x in first] != [[c.text for c in x] for x in second]


def _sums(candidates):
    totals = {}
    for c in candidates:
        if c.answer is not None:
            totals[c.answer] = totals.get(c.answer, 0.0) + c.score
    return totals


@pytest.mark.parametrize("name", ["best_of_n", "beam", "dvts"])
def test_weighted_selection_sums_scores_per_answer(world, name):
    gen, problems = world
    for r in run(gen, problems, name, 16):
        totals = _sums(r.candidates)
        if totals:
            assert math.isclose(totals[r.answer], max(totals.values()))
        else:
            assert r.answer is None


def _pool(answers, scores, qid="q1"):
    return pd.DataFrame({"question_id": qid, "sample": range(len(answers)), "text": [f"s{i}" for i in range(len(answers))],
                         "answer": answers, "correct": False, "generated_tokens": [10 * (i + 1) for i in range(len(answers))],
                         "prompt_tokens": 5, "verifier_tokens": 7, "score": scores})


def test_weighted_beats_naive_when_votes_add_up():
    pool = _pool(["7", "8", "8"], [0.9, 0.5, 0.5])
    pick = {s: from_pool(pool, 3, 1, 0, s, 100, 50)[0].answer for s in ("weighted", "naive", "majority")}
    assert pick == {"weighted": "8", "naive": "7", "majority": "8"}
    pool = _pool(["7", "8", "8"], [0.9, 0.4, 0.4])  # 0.8 < 0.9: now the sum favours 7
    assert from_pool(pool, 3, 1, 0, "weighted", 100, 50)[0].answer == "7"


def test_from_pool_subsets_costs_and_seeds():
    pool = pd.concat([_pool(["1", "2", None, "2", "3", "1"], [0.1, 0.2, 0.0, 0.3, 0.9, 0.4], qid)
                      for qid in ("qa", "qb")])
    res = from_pool(pool, 4, 3, 2, "weighted", 100, 50)
    assert [(r.question_id, r.seed) for r in res] == [(q, 2000 + s) for q in ("qa", "qb") for s in range(3)]
    tokens = dict(zip(pool["text"], pool["generated_tokens"]))
    for r in res:
        assert len(r.candidates) == 4 and len({c.text for c in r.candidates}) == 4
        assert r.cost.generations == 4 and r.cost.verifier_tokens == 28 and r.cost.prompt_tokens == 20
        assert r.cost.generated_tokens == sum(tokens[c.text] for c in r.candidates)
    # nested across budgets: the 2-subset is inside the 4-subset of the same subset index
    for a, b in zip(from_pool(pool, 2, 3, 2, "weighted", 100, 50), res):
        assert {c.text for c in a.candidates} <= {c.text for c in b.candidates}
    # a question's subsets do not depend on the other questions in the pool
    alone = from_pool(pool[pool.question_id == "qb"], 4, 3, 2, "weighted", 100, 50)
    assert [r.candidates for r in alone] == [r.candidates for r in res[3:]]
    assert from_pool(pool, 4, 3, 2, "majority", 100, 50)[0].cost.verifier_tokens == 0
    with pytest.raises(ValueError, match="fewer than budget"):
        from_pool(pool, 7, 1, 0, "weighted", 100, 50)


@pytest.mark.parametrize("name,config", [("best_of_n", {}), ("beam", {"width": 2, "lookahead": 1}),
                                         ("dvts", {"width": 2})])
def test_same_seed_same_results(world, name, config):
    gen, problems = world
    a = run(gen, problems, name, 8, seed=3, **config)
    assert a == run(gen, problems, name, 8, seed=3, **config)
    assert [r.candidates for r in a] != [r.candidates for r in run(gen, problems, name, 8, seed=4, **config)]


def test_likelihood_prm_drives_beam_search(world):
    from ttc_lib.verifiers.likelihood_prm import LikelihoodPRM

    gen, problems = world
    prm = LikelihoodPRM(gen, [1.0, 1.0, 0.5], 2.0)
    results = run(gen, problems, "beam", 8, verifier=prm, width=4)
    assert sum(r.cost.verifier_tokens for r in results) == prm.tokens_scored > 0
    cands = [c for r in results for c in r.candidates]
    assert cands and all(0 < c.score < 1 for c in cands)


def test_cost_arithmetic():
    a, b = Cost(10, 20, 1, 5, 3, 7), Cost(10, 0, 2.5, 1, 1, 1)
    c = a + b
    assert (c.generator_params, c.verifier_params, c.generations) == (10, 20, 3.5)
    assert (c.generated_tokens, c.prompt_tokens, c.verifier_tokens) == (6, 4, 8)
    assert c.generator_flops == 2 * 10 * 6 and c.verifier_flops == 2 * 20 * 8
    assert c.total_flops == c.generator_flops + c.verifier_flops  # prompt tokens are not charged
    assert c.to_row()["total_flops"] == 440 and set(c.to_row()) <= set(RESULT_COLUMNS)


def test_results_table():
    cost = Cost(10, 20, 4, 5, 3, 7)
    rows = [SearchResult("q1", "beam", {"width": 4, "lookahead": 0}, 4, 0, "12", cost=cost),
            SearchResult("q2", "beam", {"width": 4, "lookahead": 0}, 4, 0, None, cost=cost),
            SearchResult("q3", "best_of_n", {}, 4, 0, "3", cost=cost)]
    table = results_table(rows, {"q1": "12", "q2": "5", "q3": "4"})
    assert list(table.columns) == RESULT_COLUMNS
    assert table["correct"].tolist() == [True, False, False]
    assert table["config"].tolist() == ["lookahead=0,width=4", "lookahead=0,width=4", "-"]
    assert table["total_flops"].tolist() == [2 * 10 * 5 + 2 * 20 * 7] * 3
    with pytest.raises(KeyError, match="q3"):
        results_table(rows, {"q1": "12", "q2": "5"})
    assert common.result_from_dict(common.result_to_dict(rows[0])) == rows[0]


def test_split_total_is_exact():
    assert common.split_total(10, [1, 1, 1]) == [4, 3, 3]
    assert sum(common.split_total(97, [3, 5, 11, 2])) == 97
    assert sum(common.split_total(101, [3, 5, 7, 11])) == 101


def test_split_total_largest_remainder_ties_to_the_earlier_weight():
    # exact shares 2.5, 2.5, 5.0: one leftover unit, the tied remainders go to the earlier weight
    assert common.split_total(10, [1, 1, 2]) == [3, 2, 5]
    assert common.split_total(2, [1, 1, 1, 1]) == [1, 1, 0, 0]
    # the largest remainder wins over order: 7 * [1, 2] / 3 = 2.33, 4.67
    assert common.split_total(7, [1, 2]) == [2, 5]
    # all-zero weights split evenly by the same rule; nothing to split over nothing is fine
    assert common.split_total(5, [0, 0]) == [3, 2]
    assert common.split_total(0, []) == []
    assert common.split_total(0, [3, 4]) == [0, 0]


def test_split_total_refuses_what_it_cannot_split():
    with pytest.raises(ValueError, match="no weights"):
        common.split_total(3, [])
    with pytest.raises(ValueError, match=">= 0"):
        common.split_total(-1, [1, 1])
    with pytest.raises(ValueError, match=">= 0"):
        common.split_total(4, [2, -1])


def test_clear_errors(world):
    gen, problems = world
    with pytest.raises(ValueError, match="unknown search strategy 'bfs'"):
        search.run_strategy("bfs", gen, HashVerifier(), problems, 4)
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['beam_width'\]"):
        search.run_strategy("beam", gen, HashVerifier(), problems, 4, beam_width=4)
    with pytest.raises(ValueError, match="below lookahead"):
        run(gen, problems, "beam", 3, lookahead=3)
    with pytest.raises(ValueError, match="unknown selection"):
        run(gen, problems, "best_of_n", 4, selection="best")
    assert set(search.STRATEGIES) == {"best_of_n", "beam", "dvts", "revisions"}
    assert search.config_keys("revisions") == ["chains", "selection", "max_context", "verifier_context"]
    assert search.config_keys("beam") == ["width", "lookahead", "max_rounds"]


def test_shared_stem_logprobs_match_one_forward_per_solution(world):
    """The verifier's shared-stem scoring (beam children of one parent share their prefix) gives
    the log-probs of a plain forward over each whole text."""
    gen, problems = world
    q = problems[0].question
    parent = "12+3=15\n15*2=30"
    solutions = [parent + "\n30-4=26", parent + "\n30-4=27", parent + "\n\\boxed{30}", parent, parent + "\n30-4=26",
                 "9", "12+3=15\n15*2=31\n31-4=27", ""]
    questions = [q] * 7 + [problems[1].question]
    small = Generator(gen.model, gen.tokenizer, device="cpu", max_batch_rows=2)  # forces several batches
    for g in (gen, small):
        got = g.token_logprobs(questions, solutions)
        for question, solution, tl in zip(questions, solutions, got):
            prompt = gen.tokenizer(format_prompt(question))["input_ids"]
            sol = gen.tokenizer(solution, add_special_tokens=False)["input_ids"]
            assert list(tl.token_ids) == sol and len(tl.logprobs) == len(sol)
            if not sol:
                continue
            with torch.inference_mode():
                lp = gen.model(input_ids=torch.tensor([prompt + sol])).logits[0].float().log_softmax(-1)
            expected = lp[len(prompt) - 1:-1].gather(-1, torch.tensor(sol)[:, None])[:, 0]
            assert torch.allclose(torch.tensor(tl.logprobs), expected, atol=1e-4)
