"""The notebook-03 sample pool: grading, scoring, cost columns, chunk independence, resume."""

from __future__ import annotations

import pandas as pd
import pytest

from ttc_lib.generation.generator import Sample
from ttc_lib.search.pool import POOL_COLUMNS, sample_pool
from ttc_lib.storage import ResultCache
from ttc_lib.tasks.problem import Problem


class FakeTokenizer:
    def __call__(self, text):
        return {"input_ids": text.split()}


class FakeGenerator:
    """Sample i of a question answers i (mod 3); sample 2 of every question is cut off."""

    prompt_style, identity = "plain", "fake-policy"

    def __init__(self):
        self.tokenizer = FakeTokenizer()
        self.calls: list[list[str]] = []

    def sample(self, questions, n, *, temperature, max_new_tokens, seed, progress):
        self.calls.append(list(questions))
        out = []
        for q in questions:
            group = []
            for i in range(n):
                text = f"{q.split()[-1]}+{i % 3}=x\n\\boxed{{{i % 3 + seed}}}"
                group.append(Sample(text, 5 + i, "length" if i == 2 else "end"))
            out.append(group)
        return out


class FakeVerifier:
    name, num_params, identity = "fake", 10, "fake-verifier"

    def __init__(self):
        self.tokens_scored = 0

    def score(self, questions, solutions):
        self.tokens_scored += 7 * len(solutions)
        return [[0.5, 0.1 * (1 + int(s[-2]))] for s in solutions]  # last step: 0.1·(answer+1)


PROBLEMS = [Problem(id=f"q{i}", question=f"what is {i}", answer="1", solution="", level=i) for i in range(3)]


def test_pool_columns_grading_scores_and_costs():
    verifier = FakeVerifier()
    pool = sample_pool(FakeGenerator(), verifier, PROBLEMS, 4, max_new_tokens=9, progress=False)
    assert list(pool.columns) == POOL_COLUMNS and len(pool) == 12
    q0 = pool[pool.question_id == "q0"].reset_index(drop=True)
    assert q0["sample"].tolist() == [0, 1, 2, 3]
    assert q0.answer[[0, 1, 3]].tolist() == ["0", "1", "0"] and pd.isna(q0.answer[2])
    assert q0.correct.tolist() == [False, True, False, False]  # the cut-off sample never counts
    assert q0.score.tolist() == pytest.approx([0.1, 0.2, 0.0, 0.1])  # aggregate "last"; unscored 0
    assert q0.generated_tokens.tolist() == [5, 6, 7, 8]
    assert q0.prompt_tokens.tolist() == [3, 3, 3, 3]
    assert q0.verifier_tokens[2] == 0
    # samples 0 and 3 share their text: scored once (2 distinct texts per question), cost shared
    assert pool.verifier_tokens.sum() == verifier.tokens_scored == 7 * 6
    assert abs(q0.verifier_tokens[0] - q0.verifier_tokens[3]) <= 1 and q0.verifier_tokens[1] > q0.verifier_tokens[0]
    assert pool.attrs["timing"]["samples"] == 12
    mins = sample_pool(FakeGenerator(), FakeVerifier(), PROBLEMS, 4, max_new_tokens=9, aggregate_how="min",
                       progress=False)
    assert mins.score[0] == pytest.approx(0.1) and mins.score[1] == pytest.approx(0.2)


def test_pool_does_not_depend_on_chunking():
    one = sample_pool(FakeGenerator(), FakeVerifier(), PROBLEMS, 4, max_new_tokens=9, rows_per_call=1, progress=False)
    gen = FakeGenerator()
    many = sample_pool(gen, FakeVerifier(), PROBLEMS, 4, max_new_tokens=9, rows_per_call=512, progress=False)
    assert len(gen.calls) == 1
    pd.testing.assert_frame_equal(one.drop(columns="verifier_tokens"), many.drop(columns="verifier_tokens"))


def test_pool_resumes_from_cache(tmp_path):
    cache_path = tmp_path / "pool.jsonl"
    first = sample_pool(FakeGenerator(), FakeVerifier(), PROBLEMS[:1], 4, max_new_tokens=9,
                        cache=ResultCache(cache_path), progress=False)
    gen = FakeGenerator()
    full = sample_pool(gen, FakeVerifier(), PROBLEMS, 4, max_new_tokens=9, rows_per_call=4,
                       cache=ResultCache(cache_path), progress=False)
    assert gen.calls == [["what is 1"], ["what is 2"]]  # q0 came from the cache
    pd.testing.assert_frame_equal(full[full.question_id == "q0"].reset_index(drop=True), first)
    again = FakeGenerator()
    sample_pool(again, FakeVerifier(), PROBLEMS, 4, max_new_tokens=9, cache=ResultCache(cache_path), progress=False)
    assert again.calls == []
    other_seed = FakeGenerator()
    sample_pool(other_seed, FakeVerifier(), PROBLEMS, 4, max_new_tokens=9, seed=1, cache=ResultCache(cache_path),
                progress=False)
    assert len(other_seed.calls) == 1  # a different seed is different work


def test_bad_arguments():  # the token split itself: tests/test_search.py::test_split_total_*
    with pytest.raises(ValueError):
        sample_pool(FakeGenerator(), FakeVerifier(), PROBLEMS, 0, max_new_tokens=9)
    with pytest.raises(ValueError, match="duplicate"):
        sample_pool(FakeGenerator(), FakeVerifier(), PROBLEMS + PROBLEMS[:1], 2, max_new_tokens=9)
