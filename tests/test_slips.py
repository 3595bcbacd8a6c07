"""Attempts with slips (tasks.slips): wrong exactly at the slip, arithmetic right everywhere else,
a wrong final answer, deterministic for a seed, guards."""

from __future__ import annotations

import random
import re

import pytest

from ttc_lib.tasks import ArithmeticWorld, first_wrong_step, make_splits
from ttc_lib.tasks.problem import Problem
from ttc_lib.tasks.slips import SLIPS, attempts_for, slipped_attempt
from ttc_lib.tasks.steps import split_steps

STEP = re.compile(r"(-?\d+)([-+*])(-?\d+)=(-?\d+)")
TRAIN, TEST = make_splits(ArithmeticWorld(min_ops=1, max_ops=8), n_train=200, n_test=80, seed=0)


def arithmetic_is_right(line: str) -> bool:
    a, op, b, c = STEP.fullmatch(line).groups()
    a, b, c = int(a), int(b), int(c)
    return c == (a + b if op == "+" else a - b if op == "-" else a * b)


@pytest.mark.parametrize("slip", SLIPS)
def test_wrong_exactly_at_the_slip_and_consistent_after_it(slip):
    rng = random.Random(0)
    checked = 0
    for problem in TEST:
        n_ops = problem.level
        if slip == "skipped_step" and n_ops == 1:
            continue
        at = rng.randrange(n_ops)
        text = slipped_attempt(problem, slip, at, rng)
        lines = split_steps(text)
        reference = split_steps(problem.solution)
        differs = next(i for i, line in enumerate(lines) if line != reference[i])
        assert first_wrong_step(problem, text) == differs
        assert differs == at if slip != "skipped_step" else differs >= at
        assert lines[-1] != f"\\boxed{{{problem.answer}}}"
        ops = lines[:-1]
        assert len(ops) == n_ops - (slip == "skipped_step")
        right = [arithmetic_is_right(line) for line in ops]
        assert right == [not (slip == "wrong_result" and i == at) for i in range(len(ops))]
        assert lines[-1] == f"\\boxed{{{STEP.fullmatch(ops[-1]).group(4)}}}" if ops else True
        for before, after in zip(ops, ops[1:]):  # each step continues from the value before it
            assert STEP.fullmatch(after).group(1) == STEP.fullmatch(before).group(4)
        checked += 1
    assert checked > 50


def test_attempts_are_deterministic_for_a_seed_and_mix_correct_ones():
    problem = next(p for p in TEST if p.level >= 4)
    first = attempts_for(problem, 40, random.Random(3), correct_share=0.25)
    assert first == attempts_for(problem, 40, random.Random(3), correct_share=0.25)
    correct = [a for a in first if a == problem.solution]
    assert 0 < len(correct) < 40
    assert all(first_wrong_step(problem, a) is not None for a in first if a != problem.solution)
    assert attempts_for(problem, 5, random.Random(0), correct_share=1.0) == [problem.solution] * 5


def test_guards():
    problem = next(p for p in TEST if p.level == 1)
    with pytest.raises(ValueError, match="slip must be one of"):
        slipped_attempt(problem, "typo", 0, random.Random(0))
    with pytest.raises(ValueError, match="at must be an operation step 0..0"):
        slipped_attempt(problem, "wrong_operand", 1, random.Random(0))  # 0 times any operand is 0
    with pytest.raises(ValueError, match="one operation"):
        slipped_attempt(problem, "skipped_step", 0, random.Random(0))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        attempts_for(problem, 0, random.Random(0))
    assert all(first_wrong_step(problem, a) in (None, 0) for a in attempts_for(problem, 20, random.Random(1)))


def test_a_step_no_slip_can_change_gives_way_to_another():
    # every value after 2-2 is 0 and stays 0 through the multiplications: slips there keep the answer
    problem = Problem("z", "Start with 2. Subtract 2, multiply by 5, multiply by 4, add 7. What is the result?", "7",
                      "2-2=0\n0*5=0\n0*4=0\n0+7=7\n\\boxed{7}", 4)
    with pytest.raises(ValueError, match="keeps reaching the right answer"):
        slipped_attempt(problem, "wrong_operand", 1, random.Random(0))  # 0 times any operand is 0
    rng = random.Random(0)
    attempts = attempts_for(problem, 60, rng, correct_share=0.0)
    assert all(first_wrong_step(problem, a) is not None and a.splitlines()[-1] != "\\boxed{7}" for a in attempts)
