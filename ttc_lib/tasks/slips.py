"""Attempts with slips: wrong derivations of an arithmetic-world problem made from its reference
solution, going wrong the way the policy's own samples do.

Why: a reviser learns to *read* its attempts only if reading pays — if the correct part of an
attempt can be copied and the derivation recomputed from its first wrong step. Revision rows built
from these attempts (the question, then the attempts, then the reference solution) make that the
cheapest way to lower the loss; an independently sampled correct target carries no information
about the attempt (every correct derivation of a world problem is the same string).

Rules
-----
* A slip happens at step ``at`` (0-based, an operation step; never the final box) and is one of
  ``SLIPS``:
  - ``"wrong_result"``: step ``at`` reads its correct operands and a wrong result (the correct one
    plus a nonzero offset of at most ``MAX_OFFSET``);
  - ``"wrong_operand"``: step ``at`` copies the question's operand wrong (a nonzero offset of at most
    ``MAX_OFFSET``, never below 1), and computes its result correctly from that operand;
  - ``"skipped_step"``: operation ``at`` is left out; the next step continues from the value before it.
* Every later step applies the question's own operation to the running (wrong) value, correctly
  computed; the attempt ends in ``\\boxed{}`` of the last value. So every step but the slip is
  arithmetically right, and ``first_wrong_step`` of the attempt is ``at`` — for a skipped step, the
  first step whose text differs from the reference (skipping one of two equal operations in a row
  reads as skipping the later one).
* The attempt's answer differs from the reference answer: a draw whose derivation lands on it anyway
  is redrawn; after ``MAX_TRIES`` draws the slip is refused with a ValueError naming the problem.
* Deterministic for a ``random.Random`` state; the text uses the world's step format
  ("left op operand=result", one step per line).
"""

from __future__ import annotations

import random
from typing import Sequence

from ttc_lib.tasks.arithmetic import reference_steps
from ttc_lib.tasks.problem import Problem
from ttc_lib.tasks.steps import join_steps

SLIPS = ("wrong_result", "wrong_operand", "skipped_step")
MAX_OFFSET = 9  # the largest |offset| of a wrong result or a miscopied operand
MAX_TRIES = 20  # offsets drawn before a slip that keeps hitting the right answer is refused


def _apply(value: int, op: str, operand: int) -> int:
    return value + operand if op == "+" else value - operand if op == "-" else value * operand


def _offset(rng: random.Random) -> int:
    return rng.choice([d for d in range(-MAX_OFFSET, MAX_OFFSET + 1) if d])


def _derivation(steps: Sequence[tuple[int, str, int, int]], slip: str, at: int, rng: random.Random) -> list[str]:
    lines, value = [], steps[0][0]
    for i, (_, op, operand, _result) in enumerate(steps):
        if i == at and slip == "skipped_step":
            continue
        if i == at and slip == "wrong_operand":
            wrong = operand + _offset(rng)
            while wrong < 1 or wrong == operand:
                wrong = operand + _offset(rng)
            new = _apply(value, op, wrong)
            lines.append(f"{value}{op}{wrong}={new}")
        else:
            new = _apply(value, op, operand)
            if i == at:  # wrong_result
                new += _offset(rng)
            lines.append(f"{value}{op}{operand}={new}")
        value = new
    return lines + [f"\\boxed{{{value}}}"]


def slipped_attempt(problem: Problem, slip: str, at: int, rng: random.Random) -> str:
    """A derivation of ``problem`` that slips at operation step ``at`` (module rules)."""
    if slip not in SLIPS:
        raise ValueError(f"slip must be one of {SLIPS}, got {slip!r}")
    steps = reference_steps(problem.question)
    if isinstance(at, bool) or not isinstance(at, int) or not 0 <= at < len(steps):
        raise ValueError(f"at must be an operation step 0..{len(steps) - 1} of problem {problem.id}, got {at!r}")
    if slip == "skipped_step" and len(steps) == 1:
        raise ValueError(f"problem {problem.id} has one operation: skipping it leaves no derivation")
    for _ in range(MAX_TRIES):
        lines = _derivation(steps, slip, at, rng)
        if lines[-1] != f"\\boxed{{{problem.answer.strip()}}}":
            return join_steps(lines)
    raise ValueError(f"problem {problem.id}: a {slip} at step {at} keeps reaching the right answer "
                     f"after {MAX_TRIES} draws")


def attempts_for(problem: Problem, k: int, rng: random.Random, correct_share: float = 0.25) -> list[str]:
    """``k`` attempts at ``problem`` in order: each the reference solution with probability
    ``correct_share``, else a slip of a random kind at a random operation step (a skipped step only
    where the problem has more than one operation; a kind and step whose every slip keeps the
    right answer, as before multiplying a 0, give way to another)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if not 0 <= correct_share <= 1:
        raise ValueError(f"correct_share must lie in [0, 1], got {correct_share!r}")
    n_ops = len(reference_steps(problem.question))
    kinds = [s for s in SLIPS if s != "skipped_step" or n_ops > 1]
    out = []
    for _ in range(k):
        if rng.random() < correct_share:
            out.append(problem.solution)
        else:
            out.append(_some_slip(problem, kinds, n_ops, rng))
    return out


def _some_slip(problem: Problem, kinds: list[str], n_ops: int, rng: random.Random) -> str:
    # a random (kind, step); one that cannot change the answer (a slip before "multiply" of a 0)
    # gives way to the next of a seeded shuffle of all of them
    first = (rng.choice(kinds), rng.randrange(n_ops))
    rest = [(k, a) for k in kinds for a in range(n_ops) if (k, a) != first]
    rng.shuffle(rest)
    for kind, at in [first] + rest:
        try:
            return slipped_attempt(problem, kind, at, rng)
        except ValueError:
            continue
    raise ValueError(f"problem {problem.id}: no slip changes its answer")
