"""How good is a verifier? Score a pool of sampled solutions, judge its steps against the
oracle, and measure what it buys in answer selection.

Rules: a sample that did not finish (``finish_reason == "length"``) has no answer and a score
of 0; a solution with no steps scores 0. Step quality is reported as global AUROC, as
*within-question* AUROC (a verifier that only learned question difficulty has a high global
AUROC and 0.5 within questions, as tests/test_metrics.py shows on synthetic labels) and as
*same-step* AUROC (groups = question x step index). Oracle step labels are monotone - after the
first wrong step every step is wrong - so within a question the score -(step index), which knows
nothing, already ranks well; the same-step AUROC removes difficulty and position, and gives that
score 0.5 (``position_baseline``, a row of every quality table so a reader sees what position
alone earns). ``choose_verifier`` chooses by the same-step AUROC.
``prm_vs_baselines``: the weighted best-of-N of a verifier minus majority voting and minus
ORM-weighted best-of-N, paired over the same questions (each question's accuracy is already the
mean over its random N-subsets: subsets nested inside a question), a question bootstrap.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ttc_lib.analysis.auroc import (
    auroc,
    same_step_auroc,
    same_step_auroc_ci,
    within_question_auroc,
    within_question_auroc_ci,
)
from ttc_lib.analysis.uncertainty import bootstrap_difference, interval
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
    rollouts): the verifier scores them, ``oracle`` labels each step (columns question_id, step, score,
    oracle)."""
    scores = verifier.score(solutions.question.tolist(), solutions.solution.tolist())
    rows = [(qid, step, float(s), bool(label)) for qid, sol, sc in zip(solutions.question_id, solutions.solution, scores)
            for step, (s, label) in enumerate(zip(sc, oracle(problems[qid], sol)))]
    return pd.DataFrame(rows, columns=["question_id", "step", "score", "oracle"])


POSITION_ONLY = "position_only"  # the row of -(step index): what position alone earns


def position_baseline(table: pd.DataFrame) -> pd.DataFrame:
    """The same steps scored -(step index): no model, only position."""
    return table.assign(score=-table.step.astype(float))


def step_quality(table: pd.DataFrame) -> dict[str, float]:
    """Global, within-question and same-step AUROC of step scores against oracle step labels
    (columns question_id, step, score, oracle); NaN where undefined (one class only)."""
    if table.empty or table.oracle.nunique() < 2:
        return {"step_auroc": float("nan"), "within_question_auroc": float("nan"), "same_step_auroc": float("nan"),
                "steps": len(table)}
    return {"step_auroc": round(auroc(table.score, table.oracle), 4),
            "within_question_auroc": round(within_question_auroc(table.score, table.oracle, table.question_id), 4),
            "same_step_auroc": round(same_step_auroc(table.score, table.oracle, table.question_id, table.step), 4),
            "steps": len(table)}


def quality_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """``step_quality`` of every verifier's step table, plus the ``position_only`` row (-(step index)
    on the first table's steps; every verifier scores the same steps)."""
    if not tables:
        raise ValueError("quality_table: no step tables")
    tables = {**tables, POSITION_ONLY: position_baseline(next(iter(tables.values())))}
    return pd.DataFrame({name: step_quality(t) for name, t in tables.items()}).T


def quality_intervals(tables: dict[str, pd.DataFrame], *, n_boot: int = 2000, seed: int = 0) -> dict[str, dict]:
    """{"same_step_auroc": {name: interval}, "within_question_auroc_ci": {name: interval}} for every
    verifier's step table and the ``position_only`` row; question-bootstrap intervals (auroc rules)."""
    if not tables:
        raise ValueError("quality_intervals: no step tables")
    tables = {**tables, POSITION_ONLY: position_baseline(next(iter(tables.values())))}
    return {"same_step_auroc": {n: same_step_auroc_ci(t.score, t.oracle, t.question_id, t.step, n_boot=n_boot,
                                                      seed=seed) for n, t in tables.items()},
            "within_question_auroc_ci": {n: within_question_auroc_ci(t.score, t.oracle, t.question_id,
                                                                     n_boot=n_boot, seed=seed)
                                         for n, t in tables.items()}}


def interval_table(columns: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """Rows = verifiers, one text column per interval dict (e.g. same-step and within-question AUROC)."""
    return pd.DataFrame({col: {name: interval(v, 3) for name, v in values.items()} for col, values in columns.items()})


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


CHOICE_COLUMNS = ("same_step_auroc", "within_question_auroc", "step_auroc")  # first defined one decides


def choice_column(quality: pd.DataFrame, exclude: Sequence[str] = ()) -> str:
    """The column ``choose_verifier`` decides by: the first of ``CHOICE_COLUMNS`` that some candidate
    has (not NaN), "first_candidate" when none has any."""
    candidates = quality.drop(index=[n for n in (*exclude, POSITION_ONLY) if n in quality.index])
    if candidates.empty:
        raise ValueError("choose_verifier: no candidate verifiers")
    for column in CHOICE_COLUMNS:
        if column in candidates and pd.to_numeric(candidates[column], errors="coerce").notna().any():
            return column
    return "first_candidate"


def choose_verifier(quality: pd.DataFrame, exclude: Sequence[str] = ()) -> str:
    """The row of ``quality`` (verifier -> step_quality columns; the ``position_only`` row is never a
    candidate) with the best same-step AUROC; where no candidate has one (no held-out (question, step)
    group with both right and wrong steps, e.g. a barely trained policy), the best within-question
    AUROC, then the best global step AUROC; else the first candidate (``choice_column`` says which)."""
    column = choice_column(quality, exclude)
    candidates = quality.drop(index=[n for n in (*exclude, POSITION_ONLY) if n in quality.index])
    if column == "first_candidate":
        return str(candidates.index[0])
    return str(pd.to_numeric(candidates[column], errors="coerce").idxmax())


def prm_vs_baselines(per_question: pd.DataFrame, aggregations: dict[str, str], *, orm: str = "orm",
                     n_boot: int = 2000, seed: int = 0) -> dict[str, dict[str, dict]]:
    """{verifier: {N: {"vs_majority": diff, "vs_orm": diff}}}: weighted best-of-N of each verifier
    (with the aggregation ``aggregations`` gives it) minus majority, and minus ORM-weighted best-of-N
    (``weighted[<orm>:last]``), paired over the same questions, at every N of ``per_question``
    (``accuracy_vs_n(...).per_question``: question, n, method, accuracy). A missing method gives the
    undefined form with the reason."""
    table = per_question.rename(columns={"question": "question_id"})
    methods = {m: part for m, part in table.groupby("method")}

    def diff(a: str, b: str, n: int) -> dict:
        if a not in methods or b not in methods:
            missing = [m for m in (a, b) if m not in methods]
            return {"estimate": None, "ci_low": None, "ci_high": None, "reason": f"no accuracy for {missing}"}
        pick = lambda m: methods[m][methods[m].n == n]  # noqa: E731
        return bootstrap_difference(pick(a), pick(b), "accuracy", n_boot=n_boot, seed=seed)

    return {name: {str(int(n)): {"vs_majority": diff(f"weighted[{name}:{how}]", "majority", n),
                                 "vs_orm": diff(f"weighted[{name}:{how}]", f"weighted[{orm}:last]", n)}
                   for n in sorted(table.n.unique())}
            for name, how in aggregations.items()}
