"""Does the reviser use what it reads? pass@1 of one attempt under controlled contexts.

A revision chain's later attempts differ from its first in two ways at once: they read more
text (the prompt grows by an attempt per step) and that text is about their own question.
``probe_contexts`` separates the two. For each question it samples n answers after
- "none": the bare question (what a chain's first attempt reads),
- "other_question": one finished attempt at *another* question (the cost of reading anything),
- "own_correct": one of the question's own correct attempts (a good reviser keeps it),
- "own_wrong": one of its own wrong attempts (a good reviser fixes it: pass@1 above "none"),
each in the revision format (``prompts.revision_question``), one attempt of context. The attempts
come from a chains table (``search.revisions.attempts_frame``): finished ones with a parsable
answer, as the revision data uses. The choice is seeded per question (``revisions.question_rng``),
so it does not depend on question order. ``paired_effects`` compares each own condition with
"none" and "other_question" on the questions that have such an attempt (the same questions).

What a run measured is notebook 05's section 5b (its paired intervals: ``context_probe_ci`` of the
summary, and the claims table's "reviser reads its attempts"). A reviser that reads its attempts
does better after its own wrong attempt than with none, and no worse after its own correct one.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ttc_lib.generation.pass_at_1 import grade_samples
from ttc_lib.revisions.data import question_rng
from ttc_lib.tasks.problem import Problem
from ttc_lib.tasks.prompts import revision_question

CONDITIONS = ("none", "other_question", "own_correct", "own_wrong")
_NEEDED = {"question_id", "text", "answer", "finished", "correct"}


def probe_contexts(generator, problems: Sequence[Problem], attempts: pd.DataFrame, n: int, *,
                   temperature: float = 1.0, max_new_tokens: int = 256, seed: int = 0) -> pd.DataFrame:
    """n samples per (question, condition) of CONDITIONS (module rules); one row each:
    question_id, condition, context (the attempt read, "" for none), pass1, samples.
    A question lacking a condition's attempt (no correct one, say) has no row for it."""
    if n < 1:
        raise ValueError(f"probe_contexts: n must be >= 1, got {n}")
    missing = _NEEDED - set(attempts.columns)
    if missing:
        raise ValueError(f"probe_contexts: attempts lack columns {sorted(missing)} (make them with "
                         "search.revisions.attempts_frame)")
    usable = attempts[attempts.finished & attempts.answer.notna()].reset_index(drop=True)
    own_rows = {qid: part for qid, part in usable.groupby("question_id", sort=False)}
    items: list[tuple[Problem, str, str]] = []
    for problem in problems:
        rng = question_rng(seed, problem.id, salt=3)
        others = usable[usable.question_id != problem.id]
        own = own_rows.get(problem.id, usable.iloc[:0])
        pools = {"other_question": others, "own_correct": own[own.correct.astype(bool)],
                 "own_wrong": own[~own.correct.astype(bool)]}
        items.append((problem, "none", ""))
        for condition, pool in pools.items():
            if len(pool):
                items.append((problem, condition, str(pool.text.iloc[int(rng.integers(len(pool)))])))
    prompts = [revision_question(p.question, (ctx,) if ctx else ()) for p, _, ctx in items]
    samples = generator.sample(prompts, n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed,
                               progress=False)
    graded = grade_samples([p for p, _, _ in items], samples)  # a truncated answer is never graded
    graded["item"] = np.repeat(np.arange(len(items)), [len(group) for group in samples])
    per_item = graded.groupby("item").correct.agg(["mean", "size"])
    rows = [{"question_id": problem.id, "condition": condition, "context": context,
             "pass1": float(per_item.loc[i, "mean"]), "samples": int(per_item.loc[i, "size"])}
            for i, (problem, condition, context) in enumerate(items)]
    return pd.DataFrame(rows, columns=["question_id", "condition", "context", "pass1", "samples"])


def paired_effects(table: pd.DataFrame) -> pd.DataFrame:
    """Per own condition: on the questions that have it, mean pass@1 with no context, with another
    question's attempt, and with the own attempt; ``own_minus_none`` > 0 means reading helps."""
    wide = table.pivot_table(index="question_id", columns="condition", values="pass1")
    rows = []
    for condition in ("own_correct", "own_wrong"):
        if condition not in wide or "none" not in wide:
            continue
        have = wide[wide[condition].notna()]
        rows.append({"condition": condition, "questions": len(have), "none": have["none"].mean(),
                     "other_question": have["other_question"].mean() if "other_question" in have else float("nan"),
                     "own": have[condition].mean(), "own_minus_none": (have[condition] - have["none"]).mean()})
    return pd.DataFrame(rows, columns=["condition", "questions", "none", "other_question", "own", "own_minus_none"])
