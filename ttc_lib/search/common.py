"""What every search strategy shares: its result type and the results-table schema.

Every strategy (best_of_n, beam with lookahead, dvts, revisions) returns one ``SearchResult``
per question, carrying the ``compute.Cost`` it spent. ``results_table`` flattens them into the
long table notebooks 04/05 save and notebook 06 fits policies from, one row per
(strategy, config, budget, seed, question). The shared expand-and-score step lives here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd

from ..compute import Cost
from ..grading import grade_answer

# Columns of the results tables (04_search/results.parquet, 05_revisions/results.parquet).
RESULT_COLUMNS = ["strategy", "config", "budget", "seed", "question_id", "answer", "correct",
                  "generations", "generated_tokens", "prompt_tokens", "verifier_tokens",
                  "generator_flops", "verifier_flops", "total_flops"]


@dataclass(frozen=True)
class Candidate:
    """A finished (or abandoned) solution a strategy ends with."""

    text: str
    answer: str | None  # grading.extract_answer(text)
    score: float  # the verifier's solution score (aggregate of its step scores); 0 if unscored


@dataclass
class SearchResult:
    question_id: str
    strategy: str  # registry name, e.g. "best_of_n", "beam", "dvts", "revisions"
    config: dict  # hyper-parameters that distinguish runs of one strategy, e.g. {"width": 4}
    budget: int  # the N (generations) the strategy was given; cost.generations <= budget
    seed: int
    answer: str | None  # the selected final answer
    candidates: list[Candidate] = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)


def config_key(config: dict) -> str:
    """Canonical text of a config ("lookahead=1,width=4"): one column value per configuration."""
    return ",".join(f"{k}={config[k]}" for k in sorted(config)) or "-"


def results_table(results: Sequence[SearchResult], references: dict[str, str]) -> pd.DataFrame:
    """One row per result with RESULT_COLUMNS; ``correct`` graded against ``references``
    (question_id -> reference answer)."""
    rows = []
    for r in results:
        if r.question_id not in references:
            raise KeyError(f"results_table: no reference answer for question {r.question_id!r}")
        correct = r.answer is not None and grade_answer(r.answer, references[r.question_id])
        rows.append({"strategy": r.strategy, "config": config_key(r.config), "budget": r.budget, "seed": r.seed,
                     "question_id": r.question_id, "answer": r.answer, "correct": bool(correct), **r.cost.to_row()})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)
