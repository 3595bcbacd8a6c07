"""Plain accuracy of a generator: sampled and greedy pass@1 per difficulty level.

A sample counts as correct only when it finished (``finish_reason != "length"``: a truncated
solution is never graded) and the answer in its last ``\\boxed{}`` matches the reference.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from ttc_lib.tasks.grading import extract_answer, grade_answer
from ttc_lib.tasks.problem import Problem


def grade_samples(problems: Sequence[Problem], samples: Sequence[Sequence]) -> pd.DataFrame:
    """One row per (problem, sample): level, answer, finished, correct, tokens."""
    if len(problems) != len(samples):
        raise ValueError(f"got {len(problems)} problems but {len(samples)} sample lists")
    rows = []
    for problem, group in zip(problems, samples):
        for index, sample in enumerate(group):
            finished = sample.finish_reason != "length"
            answer = extract_answer(sample.text) if finished else None
            rows.append({"problem_id": problem.id, "level": problem.level, "sample": index,
                         "answer": answer, "finished": finished,
                         "correct": bool(answer is not None and grade_answer(answer, problem.answer)),
                         "tokens": sample.num_tokens})
    return pd.DataFrame(rows)


def pass_at_1_by_level(generator, problems: Sequence[Problem], *, n: int, temperature: float,
                       max_new_tokens: int, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Mean correctness per level over ``n`` samples per problem (``temperature=0``: greedy, n=1)."""
    if temperature == 0:
        n = 1
    samples = generator.sample([p.question for p in problems], n, temperature=temperature,
                               max_new_tokens=max_new_tokens, seed=seed, progress=progress)
    graded = grade_samples(problems, samples)
    table = graded.groupby("level").agg(pass1=("correct", "mean"), truncated=("finished", lambda s: 1 - s.mean()),
                                        questions=("problem_id", "nunique"), mean_tokens=("tokens", "mean"))
    return table.reset_index()


def max_new_tokens_for(problems: Sequence[Problem], tokenizer, margin: float = 1.5, slack: int = 16) -> int:
    """A length budget that never truncates a correct solution: the longest reference, with margin.

    FINDINGS.md: a budget fitted too tightly (12·ops+16) silently truncated long solutions.
    """
    longest = max(len(tokenizer(p.solution, add_special_tokens=False).input_ids) for p in problems)
    return int(longest * margin) + slack
