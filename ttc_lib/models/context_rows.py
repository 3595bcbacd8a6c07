"""Context rows: training rows whose question comes after other problems, so the policy learns to
answer its question wherever it sits in the prompt.

Why (measured in trials whose scripts were not kept): a policy trained from scratch only on rows
that *start* with their question fails as soon as any text precedes it — 1 to 4 previous attempts
(or 20 dots) raised its loss on its own correct answers from .008 to 3-8 nats/token, and 100-150
revision fine-tuning steps recovered only part of it. A revision model fine-tuned from such a
policy first has to learn to read past a context at all. With 30% of the rows carrying 1-3 other
training problems before their question (no loss on them), the loss on correct revision targets
with 1/2/3/4 attempts in context was .23/.19/.21/.44 vs 2.07/2.67/2.51/3.64 without, at 1000
steps each, and plain pass@1 was unchanged (.065 vs .067 over all levels).

The context is other *training* problems (their questions and reference solutions), so no new
information enters training; the loss stays on the row's own solution only (the context is part
of the prompt, see training.tokenize_problems). Yet at 2000 steps it made a much better policy on
the cpu profile's world: sampled pass@1 by level .94 .86 .73 .76 .58 .66 .41 .26 .16 .11 .12 .04
with share .25 vs .85 .78 .65 .54 .33 .13 .06 .06 .03 .06 .03 .02 without (notebook 01, same
problems and steps) -- reading past other problems seems to make the model look its operands up
by content rather than by position. The price: +43% tokens and ~1.8x the training time at share
.25 (long rows make attention the larger cost).
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from ttc_lib.tasks.problem import Problem
from ttc_lib.tasks.prompts import CONTEXT_MODES, context_question, training_text

MAX_OTHERS = 3  # other problems per context row: 1..MAX_OTHERS, uniform (revision prompts carry up to 4 attempts)


def with_context_rows(problems: list[Problem], share: float, seed: int = 0, *, tokenizer: Any = None,
                      max_tokens: int | None = None, max_others: int = MAX_OTHERS) -> list[Problem]:
    """A copy of ``problems`` in which a ``share`` of the rows (each row independently, seeded)
    has 1..``max_others`` other problems of the list put before its question, half of them as
    solved problems and half as revision attempts (prompts.context_question). Ids, answers,
    solutions and levels are unchanged; rows keep their order. With ``tokenizer`` and
    ``max_tokens``, a row whose prompt and solution would exceed ``max_tokens`` tokens keeps its
    plain question (the model's position limit). share 0 returns the problems unchanged."""
    if not isinstance(share, (int, float)) or isinstance(share, bool) or not 0 <= share <= 1:
        raise ValueError(f"context share must be a number in [0, 1], got {share!r}")
    if not isinstance(max_others, int) or max_others < 1:
        raise ValueError(f"max_others must be a positive int, got {max_others!r}")
    if (tokenizer is None) != (max_tokens is None):
        raise ValueError("give both tokenizer and max_tokens (the length guard), or neither")
    if share == 0 or len(problems) < 2:
        return list(problems)
    rng = random.Random(seed)
    rows: list[Problem] = []
    for i, problem in enumerate(problems):
        if rng.random() >= share:
            rows.append(problem)
            continue
        k = rng.randint(1, max_others)
        others = [problems[j] for j in _others(rng, len(problems), i, k)]
        mode = rng.choice(CONTEXT_MODES)
        question = context_question(problem.question, [(o.question, o.solution) for o in others], mode)
        if tokenizer is not None and _length(tokenizer, question, problem.solution) > max_tokens:
            rows.append(problem)
            continue
        rows.append(replace(problem, question=question))
    return rows


def context_share(rows: list[Problem], problems: list[Problem]) -> float:
    """The share of ``rows`` (from with_context_rows) whose question carries a context."""
    return sum(a.question != b.question for a, b in zip(rows, problems)) / max(1, len(rows))


def _others(rng: random.Random, n: int, skip: int, k: int) -> list[int]:
    # k indices other than the row's own (with replacement across rows, distinct within one)
    picked: list[int] = []
    while len(picked) < min(k, n - 1):
        j = rng.randrange(n)
        if j != skip and j not in picked:
            picked.append(j)
    return picked


def _length(tokenizer: Any, question: str, solution: str) -> int:
    prompt, target = training_text(question, solution)
    # +1: the BOS/special tokens a tokenizer may add to the prompt
    return len(tokenizer(prompt).input_ids) + len(tokenizer(target, add_special_tokens=False).input_ids) + 1
