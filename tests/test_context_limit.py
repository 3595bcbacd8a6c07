"""Prompts longer than the model's positions (generation/context_limit.py): refused by the Generator
with a message that says what to change, left out and counted by fitting_problems, and a huge
text fails at once without being tokenised."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from ttc_lib.generation.context_limit import fitting_problems
from ttc_lib.tasks.problem import Problem
from ttc_lib.tasks.prompts import format_prompt

SHORT = "Start with 4. Multiply by 5. What is the result?"
LONG = "Start with 23. " + "Add 7, multiply by 3, subtract 15. " * 40 + "What is the result?"  # ~600 tokens
HUGE = "Start with 23. " + "Add 7, multiply by 3, subtract 15. " * 150_000  # 5 MB


def problem(pid: str, question: str) -> Problem:
    return Problem(id=pid, question=question, answer="1", solution="\\boxed{1}", level=1)


def prompt_tokens(gen, question: str) -> int:
    return len(gen.tokenizer(format_prompt(question, gen.prompt_style))["input_ids"])


class NoHugeTexts:
    """The generator's tokenizer, failing the test if it is ever handed a huge text."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)

    def __call__(self, texts, *args, **kwargs):
        longest = max(map(len, [texts] if isinstance(texts, str) else texts), default=0)
        assert longest < 1_000_000, f"a {longest:,}-character text was tokenised"
        return self.tokenizer(texts, *args, **kwargs)


@pytest.fixture()
def gen(tiny_generator):
    assert tiny_generator.max_positions == 256  # conftest's tiny checkpoint
    return tiny_generator


def test_a_prompt_longer_than_the_positions_is_refused(gen):
    assert prompt_tokens(gen, LONG) > 256
    with pytest.raises(ValueError) as err:
        gen.sample([SHORT, LONG], 2, max_new_tokens=8, progress=False)
    msg = str(err.value)
    assert "1 of 2 prompts do not fit the model's 256 positions with max_new_tokens=8" in msg, msg
    assert f"the longest is {prompt_tokens(gen, LONG)} tokens" in msg and "fitting_problems" in msg, msg
    assert "lower max_new_tokens" in msg and "more positions" in msg, msg
    with pytest.raises(ValueError, match="1 of 1 prompts do not fit"):
        gen.sample_steps([LONG], [""], 2, max_new_tokens=8, progress=False)


def test_prompt_plus_max_new_tokens_must_fit_exactly(gen):
    room = 256 - prompt_tokens(gen, SHORT)
    (sample,) = gen.sample([SHORT], 1, temperature=0.0, max_new_tokens=room, progress=False)[0]
    assert sample.num_tokens <= room  # exactly at the limit: generated
    with pytest.raises(ValueError, match=rf"the longest is {256 - room} tokens"):
        gen.sample([SHORT], 1, temperature=0.0, max_new_tokens=room + 1, progress=False)
    with pytest.raises(ValueError, match="do not fit"):  # a prefix counts: the prompt is question + prefix
        gen.sample_steps([SHORT], ["4*5=20\n" * 60], 1, max_new_tokens=8, progress=False)


def test_fitting_problems_leaves_out_and_names_the_long_ones(gen):
    problems = [problem("a", SHORT), problem("b", LONG), problem("c", SHORT + " Then add 1."), problem("d", HUGE)]
    kept, dropped = fitting_problems(gen, problems, 8)
    assert [p.id for p in kept] == ["a", "c"] and dropped == ["b", "d"]
    room = 256 - prompt_tokens(gen, SHORT)
    assert fitting_problems(gen, problems[:1], room) == (problems[:1], [])
    with pytest.raises(ValueError, match="none of the 1 problems fits the model's 256 positions"):
        fitting_problems(gen, problems[:1], room + 1)
    gen.sample([p.question for p in kept], 1, max_new_tokens=8, progress=False)  # what is kept runs
    stand_in = SimpleNamespace(prompt_style="plain")  # no max_positions: nothing is left out
    assert fitting_problems(stand_in, problems, 8) == (problems, [])


def test_a_5_mb_problem_fails_at_once_without_tokenising(gen, monkeypatch):
    assert len(HUGE) > 5_000_000
    monkeypatch.setattr(gen, "tokenizer", NoHugeTexts(gen.tokenizer))
    started = time.perf_counter()
    with pytest.raises(ValueError) as err:
        gen.sample([SHORT, HUGE], 2, max_new_tokens=8, progress=False)
    assert time.perf_counter() - started < 0.5
    msg = str(err.value)
    assert "1 of 2 prompts do not fit the model's 256 positions" in msg and "characters, not tokenised" in msg, msg
    started = time.perf_counter()
    assert fitting_problems(gen, [problem("a", SHORT), problem("z", HUGE)], 8)[1] == ["z"]
    assert time.perf_counter() - started < 0.5
