"""Revision model: training data from the policy's own mistakes, fine-tuning, and its ORM's data.

The paper's recipe (Snell et al. 2024, "Scaling LLM Test-Time Compute Optimally", section 6,
revisions), on the synthetic world:
- **Data.** The policy samples many answers per training question at a higher temperature
  (``sample_answers``, cached per question). For each correct answer, k ~ U{0..4} incorrect
  answers of the same question become its context (fewer if the question has fewer): the last
  one is the incorrect answer closest to the correct one by character edit distance, the others
  are drawn at random; the target is the correct answer (``build_revision_data``). Incorrect
  means finished with a parsable, wrong answer (truncated samples are never used). Per-question
  RNG streams: one seed gives the same data whatever the question order or batch size.
- **Optional additions** (off at 0 = the paper's data). The paper's contexts are always wrong, so
  "change the last answer" is always right in its training data. ``keep_share`` adds "keep"
  trajectories whose *last* attempt is already correct (the target another correct answer), so a
  change has to be justified by an error; ``plain_share`` adds correct answers again as plain
  k = 0 trajectories (rehearsal of answering from scratch). Both come from the same samples (no
  extra generation). What each does on the cpu profile is measured by notebook 05 (pass@1 by
  revision step, correct->wrong share, the context probe).
- **Reading attempts is learnt before this data**: the policy's training rows already read
  attempts at their own question with slips like its own (``models.context_rows``), so the
  fine-tuning starts from a model that copies an attempt's correct steps and recomputes from its
  first wrong one, and this on-policy data adapts it to the policy's own mistakes.
- **Format.** ``prompts.revision_question`` (the one owner of the format) turns the question
  and the attempts into the question text the model reads; ``to_problems`` makes Problems of
  it, so the existing trainer masks the whole context and takes the loss on the target only.
- **Fine-tuning**: revisions/training.py (validation-loss curve, the checkpoint right after its minimum).
- **Revision-aware ORM data** (``orm_examples``): attempts of revision chains (search/revision_chains.py)
  labelled by final correctness at the last step, their context in the question, as 02's ORM.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ttc_lib.models.identity import identity_of
from ttc_lib.storage import ResultCache, key_digest
from ttc_lib.tasks.grading import extract_answer, grade_answer
from ttc_lib.tasks.problem import Problem, content_id
from ttc_lib.tasks.prompts import MAX_ATTEMPTS, revision_question

MAX_CONTEXT = MAX_ATTEMPTS  # previous attempts a revision sees (paper: 4): the revision format's own limit


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings (unit-cost insert, delete, substitute)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def closest(target: str, candidates: Sequence[str]) -> int:
    """Index of the candidate closest to ``target`` by edit distance (ties: the earliest)."""
    if not candidates:
        raise ValueError("closest: no candidates")
    distances = [edit_distance(target, c) for c in candidates]
    return int(np.argmin(distances))


@dataclass(frozen=True)
class RevisionExample:
    """One training trajectory: context attempts (oldest first) -> the correct target."""

    question_id: str
    question: str
    context: tuple[str, ...]
    target: str
    level: int = 0


def question_rng(seed: int, question_id: str, salt: int = 0) -> np.random.Generator:
    """An RNG stream of its own for each (seed, question): results do not depend on question order."""
    return np.random.default_rng([seed, zlib.crc32(question_id.encode()), salt])


def training_splits(train: Sequence[Problem], revision_questions: int, orm_questions: int,
                    min_level: int = 0) -> tuple[list[Problem], list[Problem]]:
    """(revision-data questions, revision-ORM questions): disjoint, from the END of the training split
    (notebook 02 labels the first ones). The revision questions are the last ``revision_questions``
    of level >= ``min_level`` (0: any level; why a floor: the policy's answers to easy questions are
    all correct, so they give no wrong attempt to revise), the ORM questions the last
    ``orm_questions`` of the rest, in training order."""
    if revision_questions < 1 or orm_questions < 0 or revision_questions + orm_questions > len(train):
        raise ValueError(f"revision_questions={revision_questions} + orm_questions={orm_questions} must be >= 1 and "
                         f"fit in the {len(train)} training problems")
    if isinstance(min_level, bool) or not isinstance(min_level, int) or min_level < 0:
        raise ValueError(f"min_level must be an int >= 0 (0: any level), got {min_level!r}")
    chosen = [i for i in range(len(train) - 1, -1, -1) if train[i].level >= min_level][:revision_questions]
    if len(chosen) < revision_questions:
        raise ValueError(f"only {len(chosen)} training problems have level >= {min_level}; lower the revision "
                         f"questions' level floor or revision_questions ({revision_questions})")
    taken = set(chosen)
    rest = [i for i in range(len(train) - 1, -1, -1) if i not in taken][:orm_questions]
    return [train[i] for i in sorted(chosen)], [train[i] for i in sorted(rest)]


def sample_answers(generator, problems: Sequence[Problem], n: int, *, temperature: float, max_new_tokens: int,
                   seed: int = 0, cache_path: str | Path | None = None, chunk_size: int = 32,
                   progress: bool = True) -> pd.DataFrame:
    """n sampled answers per problem, graded: one row per (question_id, sample) with text, answer,
    finished, correct, tokens. Cached per chunk of questions (resumable) under keys of the
    generator's ``identity`` (a policy retrained in place samples again), the question's content
    (text, reference answer: an edited answer is graded again) and these settings."""
    from tqdm.auto import tqdm

    cache = ResultCache(cache_path) if cache_path else None
    model = identity_of(generator) if cache is not None else None
    key = lambda p: f"{p.id}|{key_digest(model, content_id(p), n, temperature, max_new_tokens, seed)}"  # noqa: E731
    rows = {}
    chunks = [list(problems[i:i + chunk_size]) for i in range(0, len(problems), chunk_size)]
    for chunk in tqdm(chunks, desc="revision data samples", **({} if progress else {"disable": True})):
        todo = [p for p in chunk if cache is None or key(p) not in cache]
        if todo:
            samples = generator.sample([p.question for p in todo], n, temperature=temperature,
                                       max_new_tokens=max_new_tokens, seed=seed, progress=False)
            done = []
            for p, group in zip(todo, samples):
                out = []
                for s in group:
                    finished = s.finish_reason != "length"
                    answer = extract_answer(s.text) if finished else None
                    out.append([s.text, answer, finished, bool(answer is not None and grade_answer(answer, p.answer)),
                                s.num_tokens])
                done.append((key(p), out))
            if cache is not None:
                cache.put_many(done)
            rows.update(done)
        for p in chunk:
            rows.setdefault(key(p), cache.get(key(p)) if cache is not None else None)
    if cache is not None:
        cache.close()
    table = [{"question_id": p.id, "sample": i, "text": t, "answer": a, "finished": f, "correct": c, "tokens": k}
             for p in problems for i, (t, a, f, c, k) in enumerate(rows[key(p)])]
    return pd.DataFrame(table, columns=["question_id", "sample", "text", "answer", "finished", "correct", "tokens"])


def build_revision_data(problems: Sequence[Problem], answers: pd.DataFrame, *, max_context: int = MAX_CONTEXT,
                        seed: int = 0, plain_share: float = 0.0, keep_share: float = 0.0) -> list[RevisionExample]:
    """The paper's trajectories (module docstring) from a ``sample_answers`` table, plus, each
    from an RNG stream of its own (the paper's trajectories are the same whatever these are):
    - ``plain_share``: each correct answer is also, with that probability, a plain (k = 0)
      trajectory (rehearsal of answering from scratch);
    - ``keep_share``: each correct answer is also, with that probability, the target of a
      "keep" trajectory whose *last* attempt is another correct answer of the question (the
      others, k - 1 with k ~ U{1..max_context}, random incorrect ones): a right answer is kept."""
    if max_context < 0:
        raise ValueError(f"max_context must be >= 0, got {max_context}")
    for name, share in (("plain_share", plain_share), ("keep_share", keep_share)):
        if not 0 <= share <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {share}")
    missing = {"question_id", "sample", "text", "answer", "finished", "correct"} - set(answers.columns)
    if missing:
        raise ValueError(f"build_revision_data: answers lack columns {sorted(missing)} (make them with sample_answers)")
    by_question = {qid: part.sort_values("sample") for qid, part in answers.groupby("question_id", sort=False)}
    out = []
    for problem in problems:
        part = by_question.get(problem.id)
        if part is None:
            continue
        correct = [t for t, ok in zip(part.text, part.correct) if ok]
        wrong = [t for t, a, f, ok in zip(part.text, part.answer, part.finished, part.correct)
                 if f and not ok and isinstance(a, str) and a.strip()]
        rng = question_rng(seed, problem.id)
        for target in correct:
            k = min(int(rng.integers(0, max_context + 1)), len(wrong))  # U{0..max_context}, capped
            context: list[str] = []
            if k:
                last = closest(target, wrong)
                others = [i for i in range(len(wrong)) if i != last]
                context = [wrong[i] for i in rng.permutation(others)[:k - 1]] + [wrong[last]]
            out.append(RevisionExample(problem.id, problem.question, tuple(context), target, problem.level))
        if plain_share:
            plain_rng = question_rng(seed, problem.id, salt=1)
            out += [RevisionExample(problem.id, problem.question, (), target, problem.level)
                    for target in correct if plain_rng.random() < plain_share]
        if keep_share and max_context and len(correct) > 1:
            keep_rng = question_rng(seed, problem.id, salt=2)
            for i, target in enumerate(correct):
                if keep_rng.random() >= keep_share:
                    continue
                k = min(int(keep_rng.integers(1, max_context + 1)) - 1, len(wrong))
                other = correct[int(keep_rng.choice([j for j in range(len(correct)) if j != i]))]
                context = [wrong[j] for j in keep_rng.permutation(len(wrong))[:k]] + [other]
                out.append(RevisionExample(problem.id, problem.question, tuple(context), target, problem.level))
    return out


def to_problems(examples: Sequence[RevisionExample]) -> list[Problem]:
    """Problems for training.train_model: the question with its context, the target as solution."""
    return [Problem(id=f"{e.question_id}#rev{i}", question=revision_question(e.question, e.context),
                    answer=extract_answer(e.target) or "?", solution=e.target, level=e.level)
            for i, e in enumerate(examples)]


def split_examples(examples: Sequence[RevisionExample], val_fraction: float,
                   seed: int) -> tuple[list[RevisionExample], list[RevisionExample]]:
    """(train, validation) by question: a seeded ``val_fraction`` of the questions is held out."""
    qids = sorted({e.question_id for e in examples})
    if not 0 < val_fraction < 1 or len(qids) < 2:
        raise ValueError(f"split_examples needs 0 < val_fraction < 1 and >= 2 questions, "
                         f"got {val_fraction} and {len(qids)}")
    n_val = min(len(qids) - 1, max(1, round(val_fraction * len(qids))))
    held = {qids[i] for i in np.random.default_rng(seed).permutation(len(qids))[:n_val]}
    return [e for e in examples if e.question_id not in held], [e for e in examples if e.question_id in held]


def orm_examples(frame: pd.DataFrame, questions: dict[str, str], max_context: int = MAX_CONTEXT) -> list:
    """LabelledSolutions for a revision-aware ORM from a chains table (search.revisions.attempts_frame):
    every finished attempt, its context in the question, its correctness at the last step."""
    from ttc_lib.tasks.steps import split_steps
    from ttc_lib.verifiers.base import LabelledSolution

    out = []
    for row in frame.itertuples():
        n = len(split_steps(row.text))
        if not row.finished or n == 0:
            continue
        context = json.loads(row.context)[-max_context:] if max_context else []
        out.append(LabelledSolution(str(row.question_id), revision_question(questions[row.question_id], context),
                                    row.text, tuple([None] * (n - 1) + [float(row.correct)])))
    return out
