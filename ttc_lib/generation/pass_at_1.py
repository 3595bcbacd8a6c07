"""Plain accuracy of a generator: sampled and greedy pass@1 per difficulty level.

A sample counts as correct only when it finished (``finish_reason != "length"``: a truncated
solution is never graded) and the answer in its last ``\\boxed{}`` matches the reference.
``greedy_answers`` keeps each question's greedy answer in a cache keyed by the generator's
``identity`` and the question's content, and grades on reading.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
from tqdm.auto import tqdm

from ttc_lib.generation.generator import Sample
from ttc_lib.models.identity import identity_of
from ttc_lib.models.workers import run_tasks
from ttc_lib.storage import ResultCache, key_digest
from ttc_lib.tasks.grading import extract_answer, grade_answer
from ttc_lib.tasks.problem import Problem, content_id

GREEDY_CHUNK = 64  # questions per greedy decoding call: one cache write and one shard each


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


def greedy_answers(generator, problems: Sequence[Problem], *, max_new_tokens: int, cache_path=None,
                   progress: bool = True, workers: int = 1) -> pd.DataFrame:
    """``grade_samples`` of one greedy (temperature 0) answer per problem. With ``cache_path``, each
    answer is kept in a storage.ResultCache under the generator's ``identity`` (a model retrained
    in place decodes again), the question's content and ``max_new_tokens``; the grade is computed
    on reading, so it always follows the reference answer. The questions not cached are decoded in
    chunks of ``GREEDY_CHUNK``, each cached as it is done; ``workers`` > 1 (or ``executor: ray``) decodes
    the chunks side by side (``models.workers``: the same chunks whatever the number of workers)."""
    cache = ResultCache(cache_path) if cache_path else None
    model = identity_of(generator) if cache is not None else None
    keys = {p.id: f"greedy|{p.id}|{key_digest(model, content_id(p), max_new_tokens)}" for p in problems}
    todo = [p for p in problems if cache is None or keys[p.id] not in cache]
    chunks = [todo[i:i + GREEDY_CHUNK] for i in range(0, len(todo), GREEDY_CHUNK)]
    tasks = [{"questions": [p.question for p in chunk], "max_new_tokens": max_new_tokens} for chunk in chunks]
    done = {}
    for i, answers in tqdm(run_tasks(_greedy_chunk, tasks, {"generator": generator}, workers), total=len(tasks),
                           desc="greedy (chunk)", disable=not progress):
        found = {keys[p.id]: answer for p, answer in zip(chunks[i], answers)}
        if cache is not None:
            cache.put_many(found.items())
        done.update(found)
    if cache is not None:
        done.update((keys[p.id], cache.get(keys[p.id])) for p in problems if keys[p.id] not in done)
        cache.close()
    return grade_samples(problems, [[Sample(*done[keys[p.id]])] for p in problems])


def _greedy_chunk(generator, questions: list[str], max_new_tokens: int) -> list[list]:
    """One chunk of ``greedy_answers`` (a task of ``models.workers.run_tasks``): [text, tokens, finish reason]
    of each question's greedy answer."""
    out = generator.sample(questions, 1, temperature=0.0, max_new_tokens=max_new_tokens, progress=False)
    return [[s.text, s.num_tokens, s.finish_reason] for (s,) in out]


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

    Why the margin: a budget fitted tightly to typical solution lengths silently truncates the
    longest solutions, and a truncated solution has no answer (it counts as wrong).
    """
    longest = max(len(tokenizer(p.solution, add_special_tokens=False).input_ids) for p in problems)
    return int(longest * margin) + slack


def pass1_by_level(table: pd.DataFrame, model: str, decoding: str) -> dict[int, float]:
    """level -> pass@1 (4 decimals) of one model and decoding ("sampled" / "greedy") from a table with
    columns model, decoding, level, pass1 (notebook 01's accuracy table)."""
    rows = table[(table.model == model) & (table.decoding == decoding)]
    return {int(r.level): round(float(r.pass1), 4) for r in rows.itertuples()}
