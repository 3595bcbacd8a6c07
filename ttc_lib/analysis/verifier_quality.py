"""How good is a verifier? Score a pool of sampled solutions, judge its steps against the
oracle, and measure what it buys in answer selection.

Rules: a sample that did not finish (``finish_reason == "length"``) has no answer and a score
of 0; a solution with no steps scores 0. Step quality is reported as global AUROC and as
*within-question* AUROC (a verifier that only learned question difficulty has a high global
AUROC and 0.5 within questions, as tests/test_metrics.py shows on synthetic labels — only the latter tells whether it ranks the
candidates of one question, which is what selection and search need).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ttc_lib.analysis.auroc import auroc, within_question_auroc
from ttc_lib.search.selection import aggregate
from ttc_lib.tasks.grading import extract_answer
from ttc_lib.tasks.problem import Problem
from ttc_lib.verifiers.base import Verifier


def extract_answers(samples: Sequence[Sequence]) -> list[list[str | None]]:
    """The final answer of every finished sample (``grading.extract_answer`` of its text), None
    for truncated or answerless ones; samples nothing (``revisions.data.sample_answers`` samples)."""
    return [[extract_answer(s.text) if s.finish_reason != "length" else None for s in group] for group in samples]


def score_samples(verifier, problems: Sequence[Problem], samples: Sequence[Sequence],
                  progress: bool = False) -> list[list[list[float]]]:
    """Per question, per sample, the verifier's per-step scores ([] for unfinished samples)."""
    flat = [(qi, si) for qi, group in enumerate(samples) for si, s in enumerate(group) if s.finish_reason != "length"]
    scores = verifier.score([problems[qi].question for qi, _ in flat], [samples[qi][si].text for qi, si in flat],
                            **({"progress": progress} if progress else {}))
    out: list[list[list[float]]] = [[[] for _ in group] for group in samples]
    for (qi, si), step_scores in zip(flat, scores):
        out[qi][si] = list(step_scores)
    return out


def aggregate_scores(step_scores: Sequence[Sequence[Sequence[float]]], how: str) -> np.ndarray:
    """(questions, samples) solution scores: ``aggregate(steps, how)``, 0 where there are no steps."""
    return np.array([[aggregate(s, how) if len(s) else 0.0 for s in group] for group in step_scores], dtype=float)


def step_table(problems: Sequence[Problem], samples: Sequence[Sequence], step_scores: Sequence[Sequence[Sequence[float]]],
               oracle: Callable[[Problem, str], list[bool]]) -> pd.DataFrame:
    """One row per scored step: question_id, level, sample, step, score, oracle (True = correct step)."""
    rows = []
    for problem, group, scored in zip(problems, samples, step_scores):
        for si, (sample, scores) in enumerate(zip(group, scored)):
            if not len(scores):
                continue
            labels = oracle(problem, sample.text)
            for step, (score, label) in enumerate(zip(scores, labels)):
                rows.append((problem.id, problem.level, si, step, float(score), bool(label)))
    return pd.DataFrame(rows, columns=["question_id", "level", "sample", "step", "score", "oracle"])


def solution_step_table(verifier: Verifier, solutions: pd.DataFrame, problems: dict[str, Problem],
                        oracle: Callable[[Problem, str], list[bool]]) -> pd.DataFrame:
    """``step_table`` for solutions given as a table (question_id, question, solution; e.g. labelled
    rollouts): the verifier scores them, ``oracle`` labels each step (columns question_id, score, oracle)."""
    scores = verifier.score(solutions.question.tolist(), solutions.solution.tolist())
    rows = [(qid, float(s), bool(label)) for qid, sol, sc in zip(solutions.question_id, solutions.solution, scores)
            for s, label in zip(sc, oracle(problems[qid], sol))]
    return pd.DataFrame(rows, columns=["question_id", "score", "oracle"])


def step_quality(table: pd.DataFrame) -> dict[str, float]:
    """Global and within-question AUROC of step scores against oracle step labels."""
    if table.empty or table.oracle.nunique() < 2:
        return {"step_auroc": float("nan"), "within_question_auroc": float("nan"), "steps": len(table)}
    return {"step_auroc": round(auroc(table.score, table.oracle), 4),
            "within_question_auroc": round(within_question_auroc(table.score, table.oracle, table.question_id), 4),
            "steps": len(table)}


def method_columns(verifier: str) -> dict[str, str]:
    """accuracy_vs_n method -> summary column for one verifier: majority, pass@n, best-of-N (last) and
    weighted best-of-N under each aggregation (last / min / prod)."""
    return {"majority": "majority", "pass@n": "pass_at_n", f"best_of_n[{verifier}:last]": "prm_best_of_n_last",
            **{f"weighted[{verifier}:{how}]": f"prm_weighted_{how}" for how in ("last", "min", "prod")}}


def accuracy_table(summary: pd.DataFrame, names: dict[str, str]) -> dict[int, dict[str, float]]:
    """``accuracy_vs_n`` summary -> {N: {name: accuracy}} for the method columns named in ``names``
    (selection's method label -> the name to report, e.g. "weighted[prm:last]" -> "prm_weighted_last")."""
    out: dict[int, dict[str, float]] = {}
    for row in summary.itertuples():
        if row.method in names:
            out.setdefault(int(row.n), {})[names[row.method]] = round(float(row.accuracy), 4)
    return out


def choose_verifier(quality: pd.DataFrame, exclude: Sequence[str] = ()) -> str:
    """The row of ``quality`` (verifier -> step_quality columns) with the best within-question
    AUROC; where no candidate has one (no held-out question with both right and wrong steps,
    e.g. a barely trained policy), the best global step AUROC; else the first candidate."""
    candidates = quality.drop(index=[n for n in exclude if n in quality.index])
    if candidates.empty:
        raise ValueError("choose_verifier: no candidate verifiers")
    for column in ("within_question_auroc", "step_auroc"):
        values = pd.to_numeric(candidates[column], errors="coerce")
        if values.notna().any():
            return str(values.idxmax())
    return str(candidates.index[0])
