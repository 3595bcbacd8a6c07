"""The sample pool of notebook 03: S sampled solutions per test question, graded and scored once.

The pool serves twice: its pass@1 / mean verifier score give each question's oracle /
predicted difficulty (difficulty.py), and best-of-N budgets are sub-sampled from it
(``search.best_of_n.from_pool``). Columns: POOL_COLUMNS (CONTRACTS.md).

Rules
-----
* ``Generator.sample`` draws S full solutions per question (seeded per question, so the pool
  does not depend on how questions are chunked). A sample that ran out of tokens
  (``finish_reason == "length"``) has no answer, is wrong, is not scored and gets score 0.
* ``answer`` = ``grading.extract_answer(text)`` of a finished sample; ``correct`` = its answer
  graded against the reference.
* ``score`` = ``selection.aggregate(verifier step scores, how)`` (the paper's "last" by default).
* Identical finished texts of one question are scored once (their scores are identical anyway).
* Cost columns per sample: ``generated_tokens`` = tokens the policy generated for it;
  ``prompt_tokens`` = tokens of its prompt (what a standalone sample prefills; information only,
  never charged); ``verifier_tokens`` = the verifier's own measured token count
  (``verifier.tokens_scored``) for the chunk, split over the chunk's distinct scored texts in
  proportion to their prompt + generated tokens, and a text's share split evenly over its copies
  (integers, ``common.split_total``: largest remainder, ties to the earlier text or copy; the
  chunk total is exact). Unscored samples get 0.
* Resume: a question's samples (graded) and their scores are two records of a
  ``storage.ResultCache`` (``pool_keys``): the samples keyed by the generator's ``identity``, the
  question's content (text and reference answer) and the sampling knobs, the scores by the
  samples' key, the verifier's ``identity`` and the aggregation rule. A policy retrained in place
  samples again; another verifier re-scores the cached samples without sampling. A killed run
  redoes at most one chunk.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ttc_lib.models.cost import Cost
from ttc_lib.models.identity import identity_of
from ttc_lib.models.workers import forget_history, run_tasks
from ttc_lib.search.common import split_total
from ttc_lib.search.selection import aggregate
from ttc_lib.storage import ResultCache, key_digest
from ttc_lib.tasks.grading import extract_answer, grade_answer
from ttc_lib.tasks.problem import Problem, content_id
from ttc_lib.tasks.prompts import model_prompt
from ttc_lib.verifiers.base import Verifier

POOL_COLUMNS = ["question_id", "sample", "text", "answer", "correct", "generated_tokens", "prompt_tokens",
                "verifier_tokens", "score"]


def pool_keys(problem: Problem, generator, verifier: Verifier, n_samples: int, seed: int, temperature: float,
              max_new_tokens: int, aggregate_how: str) -> tuple[str, str]:
    """(samples key, scores key) of a question's pool record: the samples are keyed by the
    generator's identity, the question's content (text, reference answer), S, seed and sampling
    knobs; the scores by the samples' key, the verifier's identity and the aggregation rule."""
    digest = key_digest(identity_of(generator), content_id(problem), n_samples, seed, temperature, max_new_tokens)
    samples = f"samples|{problem.id}|{digest}"
    return samples, f"scores|{problem.id}|{key_digest(samples, identity_of(verifier), aggregate_how)}"


def sample_pool(generator, verifier: Verifier, problems: Sequence[Problem], n_samples: int, *, max_new_tokens: int,
                temperature: float = 1.0, seed: int = 0, aggregate_how: str = "last",
                cache: ResultCache | None = None, rows_per_call: int = 512,
                progress: bool = True, workers: int = 1) -> pd.DataFrame:
    """The pool table (POOL_COLUMNS, questions in the given order, samples 0..S-1).

    ``rows_per_call`` samples (whole questions, at least one) go to the generator per call; the
    result does not depend on it. ``df.attrs["timing"]``: seconds and samples of the sampling
    and scoring done in this call (cached questions excluded). ``cache`` holds the samples and
    their scores under separate keys (``pool_keys``: the models' identities, never their paths):
    a retrained policy samples again, a changed verifier only scores the cached samples again.
    ``workers`` > 1 draws chunks in that many single-thread processes (``models.workers``): the
    same pool, sooner; each finished chunk is cached as it arrives. Timing sums the workers'
    busy seconds (so samples per second is per worker)."""
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if rows_per_call < 1:
        raise ValueError(f"rows_per_call must be >= 1, got {rows_per_call}")
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        raise ValueError("sample_pool: duplicate question ids")
    keys = {p.id: pool_keys(p, generator, verifier, n_samples, seed, temperature, max_new_tokens, aggregate_how)
            if cache is not None else (f"samples|{p.id}", f"scores|{p.id}") for p in problems}
    memory: dict[str, dict] = {}

    def stored(key: str) -> dict | None:
        return memory.get(key) or (cache.get(key) if cache is not None else None)

    todo = [p for p in problems if any(stored(k) is None for k in keys[p.id])]
    per_call = max(1, rows_per_call // n_samples)
    chunks = [todo[i:i + per_call] for i in range(0, len(todo), per_call)]
    tasks = [{"chunk": chunk, "have": {p.id: stored(keys[p.id][0]) for p in chunk if stored(keys[p.id][0])},
              "n_samples": n_samples, "temperature": temperature, "max_new_tokens": max_new_tokens, "seed": seed,
              "aggregate_how": aggregate_how} for chunk in chunks]
    timing = {"sample_seconds": 0.0, "score_seconds": 0.0, "samples": 0, "generated_tokens": 0}
    bar = tqdm(total=len(chunks), desc="pool", unit="chunk", **({} if progress else {"disable": True}))
    for i, (samples, scores, spent) in run_tasks(_pool_chunk, tasks, {"generator": generator, "verifier": verifier},
                                                 workers):
        chunk = chunks[i]
        _store(cache, memory, [(keys[p.id][0], samples[p.id]) for p in chunk if p.id in samples])
        _store(cache, memory, [(keys[p.id][1], scores[p.id]) for p in chunk if p.id in scores])
        timing = {k: timing[k] + spent[k] for k in timing}
        bar.update(1)
    bar.close()
    frames = []
    for p in problems:
        record = {**stored(keys[p.id][0]), **stored(keys[p.id][1])}  # type: ignore[dict-item]
        frames.append(pd.DataFrame({"question_id": p.id, "sample": np.arange(n_samples), **record}))
    pool = pd.concat(frames, ignore_index=True)[POOL_COLUMNS]
    pool["correct"] = pool["correct"].astype(bool)
    pool.attrs["timing"] = timing
    return pool


def pool_throughput(pool: pd.DataFrame) -> dict:
    """Samples drawn by this call of ``sample_pool`` (cached questions excluded) and their seconds."""
    timing = pool.attrs["timing"]
    busy = timing["sample_seconds"] + timing["score_seconds"]
    return {"samples_new": timing["samples"], "sample_seconds": round(timing["sample_seconds"], 1),
            "score_seconds": round(timing["score_seconds"], 1),
            "samples_per_second": round(timing["samples"] / max(1e-9, busy), 1)}


def pool_cost(pool: pd.DataFrame, generator_params: int, verifier_params: int) -> Cost:
    """What drawing and scoring the whole pool cost (every sample, cached or not)."""
    return Cost(generator_params=generator_params, verifier_params=verifier_params, generations=len(pool),
                generated_tokens=int(pool.generated_tokens.sum()), prompt_tokens=int(pool.prompt_tokens.sum()),
                verifier_tokens=int(pool.verifier_tokens.sum()))


def _store(cache: ResultCache | None, memory: dict, items: list[tuple[str, dict]]) -> None:
    if cache is not None and items:
        cache.put_many(items)
    memory.update(items)


def _pool_chunk(generator, verifier: Verifier, chunk: Sequence[Problem], have: dict[str, dict], n_samples: int,
                temperature: float, max_new_tokens: int, seed: int, aggregate_how: str) -> tuple[dict, dict, dict]:
    """One chunk of the pool (a task of ``models.workers.run_tasks``): samples for the questions not in
    ``have`` (id -> cached graded samples), then scores for every question of the chunk. Returns
    (id -> graded samples drawn here, id -> scores, timing). Starts from the generator's fresh state, as a
    search job does (``Generator.forget``)."""
    forget_history(generator)
    timing = {"sample_seconds": 0.0, "score_seconds": 0.0, "samples": 0, "generated_tokens": 0}
    fresh = [p for p in chunk if p.id not in have]
    drawn: dict[str, dict] = {}
    if fresh:
        start = time.perf_counter()
        samples = generator.sample([p.question for p in fresh], n_samples, temperature=temperature,
                                   max_new_tokens=max_new_tokens, seed=seed, progress=False)
        timing["sample_seconds"] = time.perf_counter() - start
        drawn = {p.id: r for p, r in zip(fresh, _grade(generator, fresh, samples))}
        timing["samples"] = len(fresh) * n_samples
        timing["generated_tokens"] = sum(sum(r["generated_tokens"]) for r in drawn.values())
    graded = [drawn.get(p.id) or have[p.id] for p in chunk]
    start = time.perf_counter()
    scores = _score(verifier, chunk, graded, aggregate_how)
    timing["score_seconds"] = time.perf_counter() - start
    return drawn, {p.id: r for p, r in zip(chunk, scores)}, timing


def _grade(generator, chunk: Sequence[Problem], samples) -> list[dict]:
    """Per question, its samples graded: text, answer, finished, correct, generated and prompt tokens."""
    records = []
    for problem, group in zip(chunk, samples):
        prompt = model_prompt(generator, problem.question)
        prompt_len = len(generator.tokenizer(prompt)["input_ids"])
        answers = [extract_answer(s.text) if s.finish_reason != "length" else None for s in group]
        records.append({"text": [s.text for s in group], "answer": answers,
                        "finished": [s.finish_reason != "length" for s in group],
                        "correct": [bool(a is not None and grade_answer(a, problem.answer)) for a in answers],
                        "generated_tokens": [int(s.num_tokens) for s in group],
                        "prompt_tokens": [prompt_len] * len(group)})
    return records


def _score(verifier: Verifier, chunk: Sequence[Problem], graded: list[dict], how: str) -> list[dict]:
    """Per question, the score and verifier tokens of each of its samples (module rules): the
    distinct finished texts of the chunk in one verifier call."""
    copies: dict[tuple[int, str], list[int]] = {}  # (question, text) -> finished samples with that text
    for qi, record in enumerate(graded):
        for si, (text, finished) in enumerate(zip(record["text"], record["finished"])):
            if finished:
                copies.setdefault((qi, text), []).append(si)
    unique = list(copies)
    before = verifier.tokens_scored
    step_scores = verifier.score([chunk[qi].question for qi, _ in unique], [text for _, text in unique]) \
        if unique else []
    used = verifier.tokens_scored - before
    shares = split_total(used, [graded[qi]["prompt_tokens"][0] + graded[qi]["generated_tokens"][copies[qi, t][0]]
                                 for qi, t in unique])
    records = [{"verifier_tokens": [0] * len(r["text"]), "score": [0.0] * len(r["text"])} for r in graded]
    for (qi, text), scores, share in zip(unique, step_scores, shares):
        score = float(aggregate(scores, how)) if len(scores) else 0.0
        members = copies[qi, text]
        for si, part in zip(members, split_total(share, [1] * len(members))):
            records[qi]["score"][si] = score
            records[qi]["verifier_tokens"][si] = int(part)
    return records
