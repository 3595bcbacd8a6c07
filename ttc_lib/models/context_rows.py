"""Context rows: training rows in which a question is followed by attempts at *that same* question,
then its reference solution — the policy learns to read a draft before it answers.

Why: the revision model is the policy fine-tuned on its own wrong answers. A policy that has only
ever seen its question at the start of a row fails as soon as any text follows it, and a policy
trained with attempts at *other* problems in its prompt learns that attempts are to be ignored —
the revision model inherited exactly that (its pass@1 fell with each revision step). Here every
attempt is about the row's own question, in the revision format (``prompts.revision_question``:
the question first, then the attempts, then "Revision:"), and is either

- the reference solution itself (a correct attempt, with probability ``correct_share``): keeping it
  is the cheapest way to the target, or
- the reference solution with a slip like the policy's own (``tasks.slips``: a wrong result, a
  miscopied operand, a skipped step, every later step computed consistently from the wrong value):
  the target shares the attempt's steps up to the slip, so copying the correct part and
  recomputing from the first wrong step is what lowers the loss.

The loss stays on the row's own solution only (the attempts are prompt, see
batches.tokenize_problems); the solution is the reference derivation, so no information enters
training that the plain rows do not hold. The measured effect on the policy and on the reviser is
in notebook 01 (pass@1 by level) and notebook 05 (the context probe).
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from ttc_lib.tasks.arithmetic import reference_steps
from ttc_lib.tasks.problem import Problem
from ttc_lib.tasks.prompts import MAX_ATTEMPTS, revision_question, training_text
from ttc_lib.tasks.slips import attempts_for

CORRECT_SHARE = 0.25  # probability that an attempt of a context row is the reference solution itself


def with_context_rows(problems: list[Problem], share: float, seed: int = 0, *, tokenizer: Any = None,
                      max_tokens: int | None = None, max_attempts: int = MAX_ATTEMPTS,
                      correct_share: float = CORRECT_SHARE, min_level: int = 0) -> list[Problem]:
    """A copy of ``problems`` in which a ``share`` of the rows of level >= ``min_level`` (each row
    independently, seeded; rows below it stay plain) reads 1..``max_attempts`` attempts at its own
    question (module docstring) before its solution. Why a level floor: reading pays only where the
    policy's own computation is unsure; on the easy levels it answers from the question alone. Ids,
    answers, solutions and levels are unchanged; rows keep their order. With ``tokenizer`` and
    ``max_tokens``, a row too long for the model's position limit drops its oldest attempts until
    it fits (none left: the plain question). share 0 returns the problems unchanged. Every problem
    must be an arithmetic-world problem (the slips are made from its reference steps)."""
    if not isinstance(share, (int, float)) or isinstance(share, bool) or not 0 <= share <= 1:
        raise ValueError(f"context share must be a number in [0, 1], got {share!r}")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or not 1 <= max_attempts <= MAX_ATTEMPTS:
        raise ValueError(f"max_attempts must be an int in 1..{MAX_ATTEMPTS} (the revision format's limit), "
                         f"got {max_attempts!r}")
    if isinstance(min_level, bool) or not isinstance(min_level, int) or min_level < 0:
        raise ValueError(f"min_level must be an int >= 0 (0: every level), got {min_level!r}")
    if (tokenizer is None) != (max_tokens is None):
        raise ValueError("give both tokenizer and max_tokens (the length guard), or neither")
    if share == 0:
        return list(problems)
    rng = random.Random(seed)
    rows: list[Problem] = []
    for problem in problems:
        if problem.level < min_level or rng.random() >= share:
            rows.append(problem)
            continue
        try:
            reference_steps(problem.question)
        except ValueError:
            raise ValueError(f"context rows need arithmetic-world problems (their slips are made from the reference "
                             f"steps); problem {problem.id} is not one: set context_share: 0 for other data") from None
        attempts = attempts_for(problem, rng.randint(1, max_attempts), rng, correct_share)
        while (attempts and tokenizer is not None
               and row_tokens(tokenizer, problem.question, attempts, problem.solution) > max_tokens):
            attempts = attempts[1:]
        rows.append(replace(problem, question=revision_question(problem.question, attempts)))
    return rows


def context_share(rows: list[Problem], problems: list[Problem]) -> float:
    """The share of ``rows`` (from with_context_rows) whose question carries attempts."""
    return sum(a.question != b.question for a, b in zip(rows, problems)) / max(1, len(rows))


def row_tokens(tokenizer: Any, question: str, attempts: list[str], solution: str) -> int:
    """Tokens of the training row that reads ``attempts`` at ``question`` before ``solution``: what
    must fit the model's position limit."""
    prompt, target = training_text(revision_question(question, attempts), solution)
    # +1: the BOS/special tokens a tokenizer may add to the prompt
    return len(tokenizer(prompt).input_ids) + len(tokenizer(target, add_special_tokens=False).input_ids) + 1
