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
  (integers, largest remainder; the chunk total is exact). Unscored samples get 0.
* Resume: finished questions are stored in a ``runs.ResultCache`` keyed by question id and
  every knob that changes the samples or their scores, the models' identities included (through
  ``cache_tag``: ``model_identity.identity_tag``); a killed run redoes at most one chunk.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ttc_lib.search.selection import aggregate
from ttc_lib.storage import ResultCache
from ttc_lib.tasks.grading import extract_answer, grade_answer
from ttc_lib.tasks.problem import Problem
from ttc_lib.tasks.prompts import format_prompt

POOL_COLUMNS = ["question_id", "sample", "text", "answer", "correct", "generated_tokens", "prompt_tokens",
                "verifier_tokens", "score"]


def split_tokens(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` split into integers proportional to ``weights`` (largest remainder; sums to total)."""
    w = np.asarray(weights, dtype=float)
    if total < 0 or (w < 0).any():
        raise ValueError(f"split_tokens needs total >= 0 and weights >= 0, got {total}, {weights}")
    if len(w) == 0 or w.sum() == 0:
        if total and len(w) == 0:
            raise ValueError(f"cannot split {total} tokens over no samples")
        w = np.ones(len(w))
    exact = total * w / w.sum()
    out = np.floor(exact).astype(int)
    rest = total - int(out.sum())
    out[np.argsort(-(exact - out), kind="stable")[:rest]] += 1
    return out.tolist()


def pool_key(question_id: str, n_samples: int, seed: int, temperature: float, max_new_tokens: int,
             verifier_name: str, aggregate_how: str, tag: str = "") -> str:
    return (f"{question_id}|S={n_samples}|seed={seed}|T={temperature}|max_new={max_new_tokens}"
            f"|verifier={verifier_name}:{aggregate_how}|{tag}")


def sample_pool(generator, verifier, problems: Sequence[Problem], n_samples: int, *, max_new_tokens: int,
                temperature: float = 1.0, seed: int = 0, aggregate_how: str = "last",
                cache: ResultCache | None = None, cache_tag: str = "", rows_per_call: int = 512,
                progress: bool = True) -> pd.DataFrame:
    """The pool table (POOL_COLUMNS, questions in the given order, samples 0..S-1).

    ``rows_per_call`` samples (whole questions, at least one) go to the generator per call; the
    result does not depend on it. ``df.attrs["timing"]``: seconds and samples of the sampling
    and scoring done in this call (cached questions excluded). ``cache`` keys hold the question,
    these settings and the verifier's name; ``cache_tag`` must name the generator and verifier
    themselves (``model_identity.identity_tag(policy=..., verifier=...)``), or models retrained at the same
    paths are served the old samples and scores."""
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if rows_per_call < 1:
        raise ValueError(f"rows_per_call must be >= 1, got {rows_per_call}")
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        raise ValueError("sample_pool: duplicate question ids")
    name = getattr(verifier, "name", type(verifier).__name__)
    key = {p.id: pool_key(p.id, n_samples, seed, temperature, max_new_tokens, name, aggregate_how, cache_tag)
           for p in problems}
    memory: dict[str, dict] = {}
    todo = [p for p in problems if cache is None or key[p.id] not in cache]
    per_call = max(1, rows_per_call // n_samples)
    chunks = [todo[i:i + per_call] for i in range(0, len(todo), per_call)]
    timing = {"sample_seconds": 0.0, "score_seconds": 0.0, "samples": 0, "generated_tokens": 0}
    bar = {} if progress else {"disable": True}
    for chunk in tqdm(chunks, desc="pool", unit="chunk", **bar):
        start = time.perf_counter()
        samples = generator.sample([p.question for p in chunk], n_samples, temperature=temperature,
                                   max_new_tokens=max_new_tokens, seed=seed, progress=False)
        timing["sample_seconds"] += time.perf_counter() - start
        start = time.perf_counter()
        records = _grade_and_score(generator, verifier, chunk, samples, aggregate_how)
        timing["score_seconds"] += time.perf_counter() - start
        timing["samples"] += len(chunk) * n_samples
        timing["generated_tokens"] += sum(sum(r["generated_tokens"]) for r in records)
        items = [(key[p.id], r) for p, r in zip(chunk, records)]
        if cache is not None:
            cache.put_many(items)
        memory.update(items)
    frames = []
    for p in problems:
        record = memory.get(key[p.id]) or cache.get(key[p.id])  # type: ignore[union-attr]
        frames.append(pd.DataFrame({"question_id": p.id, "sample": np.arange(n_samples), **record}))
    pool = pd.concat(frames, ignore_index=True)[POOL_COLUMNS]
    pool["correct"] = pool["correct"].astype(bool)
    pool.attrs["timing"] = timing
    return pool


def _grade_and_score(generator, verifier, chunk: Sequence[Problem], samples, how: str) -> list[dict]:
    prompt_len = [len(generator.tokenizer(format_prompt(p.question, generator.prompt_style))["input_ids"])
                  for p in chunk]
    copies: dict[tuple[int, str], list[int]] = {}  # (question, text) -> finished samples with that text
    for qi, group in enumerate(samples):
        for si, s in enumerate(group):
            if s.finish_reason != "length":
                copies.setdefault((qi, s.text), []).append(si)
    unique = list(copies)
    before = verifier.tokens_scored
    step_scores = verifier.score([chunk[qi].question for qi, _ in unique], [text for _, text in unique]) \
        if unique else []
    used = verifier.tokens_scored - before
    shares = split_tokens(used, [prompt_len[qi] + samples[qi][copies[qi, t][0]].num_tokens for qi, t in unique])
    records = []
    for qi, (problem, group) in enumerate(zip(chunk, samples)):
        answers = [extract_answer(s.text) if s.finish_reason != "length" else None for s in group]
        records.append({"text": [s.text for s in group], "answer": answers,
                        "correct": [bool(a is not None and grade_answer(a, problem.answer)) for a in answers],
                        "generated_tokens": [int(s.num_tokens) for s in group],
                        "prompt_tokens": [prompt_len[qi]] * len(group),
                        "verifier_tokens": [0] * len(group), "score": [0.0] * len(group)})
    for (qi, text), scores, share in zip(unique, step_scores, shares):
        score = float(aggregate(scores, how)) if len(scores) else 0.0
        members = copies[qi, text]
        for si, part in zip(members, split_tokens(share, [1] * len(members))):
            records[qi]["score"][si] = score
            records[qi]["verifier_tokens"][si] = int(part)
    return records
