"""Which aggregation of a verifier's per-step scores the later stages use, chosen on validation.

The paper found ``last`` best for its PRM; with another verifier another rule can win (our
likelihood PRM judges each step *locally*, so the last step's score is blind to an earlier wrong
step and ``prod`` / ``min`` see it). So notebook 02 chooses, for the chosen verifier, among
``last``, ``min`` and ``prod`` on questions disjoint from the test questions it reports on.

Rules
-----
* Validation questions: the labelled training questions held out from every verifier's training
  (notebook 02's ``val_ids``), in their order, the first ``limit`` of them (0: all). They must
  share no id and no question text with the test questions (``check_disjoint`` raises).
* On them the policy samples N_max solutions per question; the verifier scores them once;
  ``selection.accuracy_vs_n`` gives best-of-N weighted accuracy of each aggregation at every N of
  the grid (random N-subsets of the one pool, as for the test curves).
* ``choose_aggregation``: the aggregation with the best *mean* weighted accuracy over the N grid
  (one number per rule; N = 1 is the same for all and shifts nothing). Ties (within 1e-9) go to
  the earlier of ``AGGREGATIONS`` = ("last", "min", "prod"): the paper's rule first.
* ``recorded_aggregation``: what a stage's summary recorded, ``"last"`` where it recorded none
  (summaries written before this choice existed), so older runs keep their behaviour.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from ttc_lib.analysis.verifier_quality import aggregate_scores
from ttc_lib.search.selection import accuracy_vs_n, build_pool
from ttc_lib.tasks.problem import Problem

AGGREGATIONS = ("last", "min", "prod")
DEFAULT_AGGREGATION = "last"  # the paper's choice; what summaries without a recorded choice mean


def validation_set(labelled: Sequence[Problem], held_out_ids: set[str] | Sequence[str], limit: int = 0) -> list[Problem]:
    """The held-out labelled questions, in ``labelled`` order, the first ``limit`` (0: all)."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    held = set(held_out_ids)
    chosen = [p for p in labelled if p.id in held]
    return chosen[:limit] if limit else chosen


def check_disjoint(validation: Sequence[Problem], test: Sequence[Problem]) -> None:
    """Raise if a validation question is also a test question (same id or same question text)."""
    ids = {p.id for p in validation} & {p.id for p in test}
    texts = {p.question for p in validation} & {p.question for p in test}
    if ids or texts:
        raise ValueError(f"validation and test questions overlap: {len(ids)} shared ids {sorted(ids)[:3]}, "
                         f"{len(texts)} shared question texts")


def aggregation_table(answers: Sequence[Sequence[str | None]], references: Sequence[str],
                      step_scores: Sequence[Sequence[Sequence[float]]], n_values: Sequence[int], *,
                      n_subsets: int = 4, seed: int = 0) -> pd.DataFrame:
    """Index N; columns ``majority`` and ``weighted_<how>`` for each of AGGREGATIONS: accuracy
    of best-of-N weighted with that aggregation (module rules). ``step_scores``: per question,
    per sample, the verifier's step scores ([] for an unfinished sample, which scores 0)."""
    scores = {how: aggregate_scores(step_scores, how) for how in AGGREGATIONS}
    pool = build_pool(answers, references, scores)
    curve = accuracy_vs_n(pool, n_values, n_subsets=n_subsets, seed=seed, methods=("majority", "weighted"))
    names = {"majority": "majority", **{f"weighted[{how}]": f"weighted_{how}" for how in AGGREGATIONS}}
    wide = curve.summary[curve.summary.method.isin(names)].pivot(index="n", columns="method", values="accuracy")
    return wide.rename(columns=names)[list(names.values())].rename_axis(index="n", columns=None)


def choose_aggregation(table: pd.DataFrame) -> str:
    """The aggregation whose ``weighted_<how>`` column has the best mean over the rows (the N
    grid); ties to the earlier of AGGREGATIONS. Columns of other rules are ignored."""
    means = {how: float(table[f"weighted_{how}"].mean()) for how in AGGREGATIONS if f"weighted_{how}" in table}
    means = {how: m for how, m in means.items() if m == m}  # NaN (an empty table) never wins
    if not means:
        raise ValueError(f"choose_aggregation: no weighted_<how> column with values in {list(table.columns)}")
    best = max(means.values())
    return next(how for how in AGGREGATIONS if how in means and means[how] >= best - 1e-9)


def recorded_aggregation(summary: Mapping, key: str = "chosen_aggregation") -> str:
    """``summary[key]`` validated, or ``"last"`` when the summary has no such key."""
    how = summary.get(key, DEFAULT_AGGREGATION)
    if how not in AGGREGATIONS:
        raise ValueError(f"summary {key}={how!r} is not one of {AGGREGATIONS}")
    return str(how)
