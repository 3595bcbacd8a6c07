"""Answer selection: how N scored candidate solutions become one final answer.

Rules (the paper's "Answer selection"; one tie-break rule everywhere)
--------------------------------------------------------------------
* A candidate with no parsable answer (``None`` or blank) never wins and casts no vote.
* Equivalent answers (``grading.answers_match``) form one group. Candidates are bucketed by
  ``grading.normalize_answer`` first (equal keys are equivalent by grading's contract), so
  the pairwise check runs once per pair of *distinct keys*; equivalence is closed
  transitively (union-find), as math-verify's judgement need not be.
* ``majority``: the group with the most candidates.
* ``best_of_n`` (naive): the single candidate with the highest score.
* ``weighted`` (best-of-N weighted, the paper's choice): the group with the largest sum of
  candidate scores.
* Ties go to the **earliest candidate**: the group whose first member comes first (for
  ``best_of_n``: the first candidate with the top score). A group's answer is the text of its
  earliest member.
* ``aggregate`` turns a solution's per-step verifier scores into one score: ``last``
  (the paper's best), ``min`` or ``prod``.
* ``accuracy_vs_n`` evaluates all methods at every budget N by sub-sampling ``n_subsets``
  random N-subsets per question from one pool (sound for best-of-N only: independent samples),
  vectorised in numpy over questions and subsets; it applies exactly the rules above, so at
  N = pool size it equals selecting over the whole pool. Each question has its own RNG
  stream (seed, question index), and subsets are nested across N (common random numbers).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from ttc_lib.tasks.grading import answers_match, grade_answer, normalize_answer

_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")  # normalize_answer's canonical number form


def aggregate(step_scores: Sequence[float], how: Literal["last", "min", "prod"] = "last") -> float:
    """One solution score from its per-step scores: last step, minimum, or product."""
    scores = [float(s) for s in step_scores]
    if not scores:
        raise ValueError("aggregate: step_scores is empty (a solution with no steps has no score)")
    if how == "last":
        return scores[-1]
    if how == "min":
        return min(scores)
    if how == "prod":
        return math.prod(scores)
    raise ValueError(f"aggregate: unknown how={how!r}; use 'last', 'min' or 'prod'")


def _has_answer(a: str | None) -> bool:
    return isinstance(a, str) and bool(a.strip())


def group_answers(answers: Sequence[str | None]) -> list[int | None]:
    """Group id per candidate (equivalent answers share one; None for no answer).

    Ids are numbered 0, 1, ... in order of each group's first member.
    """
    key_of: list[str | None] = [normalize_answer(a) if _has_answer(a) else None for a in answers]
    reps: dict[str, str] = {}  # key -> first answer text with that key
    for a, k in zip(answers, key_of):
        if k is not None and k not in reps:
            reps[k] = a  # type: ignore[assignment]
    keys = list(reps)
    parent = list(range(len(keys)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    numeric = [bool(_PLAIN_NUMBER.fullmatch(k)) for k in keys]
    for i in range(len(keys)):
        for j in range(i + 1, len(keys)):
            # Two distinct canonical numbers never match (grading's plain-number fast path):
            # skipping them keeps thousands of numeric candidates free of pairwise checks.
            if numeric[i] and numeric[j]:
                continue
            if find(i) != find(j) and answers_match(reps[keys[i]], reps[keys[j]]):
                parent[find(j)] = find(i)
    root_of_key = {k: find(i) for i, k in enumerate(keys)}
    ids: dict[int, int] = {}
    out: list[int | None] = []
    for k in key_of:
        if k is None:
            out.append(None)
            continue
        out.append(ids.setdefault(root_of_key[k], len(ids)))
    return out


def _check_scores(answers: Sequence, scores: Sequence[float]) -> np.ndarray:
    s = np.asarray(scores, dtype=float)
    if s.shape != (len(answers),):
        raise ValueError(f"got {len(answers)} answers but scores of shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite (no NaN/inf)")
    return s


def _pick_group(answers: Sequence[str | None], weights: np.ndarray) -> str | None:
    groups = group_answers(answers)
    totals: dict[int, float] = {}
    first: dict[int, int] = {}
    for i, g in enumerate(groups):
        if g is not None:
            totals[g] = totals.get(g, 0.0) + float(weights[i])
            first.setdefault(g, i)
    if not totals:
        return None
    best = max(totals, key=lambda g: (totals[g], -first[g]))  # largest total, then earliest
    return answers[first[best]]


def majority(answers: Sequence[str | None]) -> str | None:
    """The most common answer (equivalence groups); None if no candidate has an answer."""
    return _pick_group(answers, np.ones(len(answers)))


def weighted(answers: Sequence[str | None], scores: Sequence[float]) -> str | None:
    """Best-of-N weighted: the answer whose candidates' scores sum highest."""
    return _pick_group(answers, _check_scores(answers, scores))


def best_of_n(answers: Sequence[str | None], scores: Sequence[float]) -> str | None:
    """Naive best-of-N: the answer of the single highest-scoring candidate that has one."""
    s = _check_scores(answers, scores)
    valid = [i for i, a in enumerate(answers) if _has_answer(a)]
    if not valid:
        return None
    return answers[max(valid, key=lambda i: (s[i], -i))]


def pass_at_k(n_total: int, n_correct: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): P(at least one correct in k of n drawn without replacement).

    ``1 - C(n-c, k) / C(n, k)``, computed as a stable product.
    """
    if not 0 <= n_correct <= n_total or not 1 <= k <= n_total:
        raise ValueError(f"pass_at_k needs 0 <= n_correct <= n_total and 1 <= k <= n_total, "
                         f"got n_total={n_total}, n_correct={n_correct}, k={k}")
    if n_total - n_correct < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n_total - n_correct + 1, n_total + 1)))


# ---- fast evaluation of accuracy vs N ---------------------------------------------------------

@dataclass(frozen=True)
class CandidatePool:
    """Q questions x C candidates, graded and grouped once.

    ``groups``: (Q, C) int group id per candidate, -1 = no answer. ``correct``: (Q, C) bool,
    the candidate's own answer graded against the reference. ``scores``: name -> (Q, C) float
    solution scores (e.g. {"last": ..., "min": ...}).
    """

    groups: np.ndarray
    correct: np.ndarray
    scores: Mapping[str, np.ndarray] = field(default_factory=dict)
    question_ids: Sequence = ()

    def __post_init__(self) -> None:
        shape = np.shape(self.groups)
        if len(shape) != 2 or np.shape(self.correct) != shape:
            raise ValueError(f"groups {shape} and correct {np.shape(self.correct)} must both be (Q, C)")
        for name, s in self.scores.items():
            if np.shape(s) != shape:
                raise ValueError(f"scores[{name!r}] has shape {np.shape(s)}, expected {shape}")
            if not np.all(np.isfinite(s)):
                raise ValueError(f"scores[{name!r}] must be finite (no NaN/inf)")
        if self.question_ids and len(self.question_ids) != shape[0]:
            raise ValueError(f"{len(self.question_ids)} question_ids for {shape[0]} questions")


def build_pool(answers: Sequence[Sequence[str | None]], references: Sequence[str],
               scores: Mapping[str, Sequence[Sequence[float]]] | None = None,
               question_ids: Sequence = ()) -> CandidatePool:
    """Grade and group every question's candidates once (the slow, grading part)."""
    if len(answers) != len(references):
        raise ValueError(f"{len(answers)} answer lists but {len(references)} references")
    sizes = {len(a) for a in answers}
    if len(sizes) > 1:
        raise ValueError(f"every question needs the same number of candidates, got sizes {sorted(sizes)}")
    groups = np.array([[-1 if g is None else g for g in group_answers(a)] for a in answers],
                      dtype=np.int64).reshape(len(answers), -1)
    correct = np.array([[grade_answer(x, ref) for x in a] for a, ref in zip(answers, references)],
                       dtype=bool).reshape(groups.shape)
    arrays = {k: np.asarray(v, dtype=float).reshape(groups.shape) for k, v in (scores or {}).items()}
    return CandidatePool(groups, correct, arrays, list(question_ids))


@dataclass(frozen=True)
class AccuracyCurve:
    """``summary``: n, method, accuracy (mean over questions and subsets), std (over subsets of
    the question-mean). ``per_question``: question, n, method, accuracy (mean over subsets)."""

    summary: pd.DataFrame
    per_question: pd.DataFrame


def _select_groups(totals: np.ndarray, first: np.ndarray, c: int) -> np.ndarray:
    """(Q,S) winning group per subset: largest weight total, ties to the earliest first member."""
    present = first < c
    totals = np.where(present, totals, -np.inf)
    top = totals.max(axis=-1, keepdims=True)
    tied_first = np.where((totals == top) & present, first, np.iinfo(np.int64).max)
    return tied_first.argmin(axis=-1)


def accuracy_vs_n(pool: CandidatePool, n_values: Sequence[int], n_subsets: int = 10,
                  seed: int = 0, methods: Sequence[str] = ("majority", "best_of_n", "weighted"),
                  ) -> AccuracyCurve:
    """Accuracy of each selection method at each budget N, from random N-subsets of the pool.

    Method names in the output: ``majority``; ``best_of_n[<score>]`` and ``weighted[<score>]``
    per score array in the pool; ``pass@n`` (oracle: any of N correct, exact unbiased
    estimator, no sub-sampling) and ``pass@1`` (mean correctness) are always added.
    """
    groups, correct = np.asarray(pool.groups), np.asarray(pool.correct, dtype=bool)
    q, c = groups.shape
    bad = [n for n in n_values if not 1 <= n <= c]
    if bad or n_subsets < 1:
        raise ValueError(f"n_values must lie in 1..{c} (the pool size) and n_subsets >= 1; "
                         f"got n_values={list(n_values)}, n_subsets={n_subsets}")
    unknown = set(methods) - {"majority", "best_of_n", "weighted"}
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; known: majority, best_of_n, weighted")
    n_groups = int(groups.max(initial=-1)) + 1
    valid = groups >= 0
    # Per-question streams: question i's subsets do not depend on which other questions run.
    ranks = np.stack([np.argsort(np.argsort(np.random.default_rng([seed, i]).random((n_subsets, c)), -1), -1)
                      for i in range(q)])  # (Q,S,C): rank < n selects a uniform N-subset
    qi, si = np.arange(q)[:, None], np.arange(n_subsets)[None, :]
    n_correct = correct.sum(axis=1)
    hits: dict[tuple[int, str], np.ndarray] = {}  # (n, method) -> (Q,S) bool
    for n in n_values:
        chosen = ranks < n
        member = chosen & valid[:, None, :]
        # Flat (question, subset, group) index of every chosen member, in candidate order so
        # float sums add up in the same order as the one-question functions above.
        qq, ss, cc = np.nonzero(member)
        g = max(n_groups, 1)
        flat = (qq * n_subsets + ss) * g + groups[qq, cc]

        def per_group(weights: np.ndarray | None) -> np.ndarray:
            return np.bincount(flat, weights, minlength=q * n_subsets * g).reshape(q, n_subsets, g)

        # First (lowest-index) chosen member of each group, C where the group is absent.
        first = np.full(q * n_subsets * g, c, dtype=np.int64)
        np.minimum.at(first, flat, cc)
        first = first.reshape(q, n_subsets, g)

        def group_hit(win: np.ndarray) -> np.ndarray:
            at = first[qi, si, win]  # the winning group's earliest chosen member answers
            return np.where(at < c, correct[qi, np.minimum(at, c - 1)], False)

        if "majority" in methods:
            hits[n, "majority"] = group_hit(_select_groups(per_group(None), first, c))
        for name, s in pool.scores.items():
            s = np.asarray(s, dtype=float)
            if "best_of_n" in methods:
                masked = np.where(member, s[:, None, :], -np.inf)
                best = masked.argmax(axis=-1)  # argmax takes the first (earliest) of ties
                ok = member.any(axis=-1)
                hits[n, f"best_of_n[{name}]"] = ok & correct[qi, best]
            if "weighted" in methods:
                hits[n, f"weighted[{name}]"] = group_hit(_select_groups(per_group(s[qq, cc]), first, c))
        hits[n, "pass@1"] = np.repeat((n_correct / c)[:, None], n_subsets, axis=1)
        hits[n, "pass@n"] = np.repeat(np.array([[pass_at_k(c, int(k), n)] for k in n_correct]),
                                      n_subsets, axis=1)
    ids = list(pool.question_ids) or list(range(q))
    rows, per_q = [], []
    for (n, method), h in hits.items():
        h = h.astype(float)
        by_subset = h.mean(axis=0)
        rows.append({"n": n, "method": method, "accuracy": float(by_subset.mean()),
                     "std": float(by_subset.std())})
        per_q.append(pd.DataFrame({"question": ids, "n": n, "method": method, "accuracy": h.mean(axis=1)}))
    return AccuracyCurve(pd.DataFrame(rows), pd.concat(per_q, ignore_index=True))
