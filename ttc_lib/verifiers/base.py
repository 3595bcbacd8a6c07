"""The verifier interface every scorer shares, and the config file every saved verifier carries.

A verifier has ONE scoring method: ``score(questions, solutions)`` returns, per solution, one
score in [0, 1] per step of ``steps.split_steps(solution)`` (the probability that the solution
is still on a correct path after that step), computed for all steps of a solution in one
forward pass. Aggregation to a solution score (``last``/``min``/``prod``) and answer selection
live in search/selection.py. Each kind (trained-head PRM/ORM, likelihood PRM, external PRMs)
saves a folder with ``verifier_config.json`` naming its kind; ``kinds.load_verifier(path)``
restores any of them from the table of kinds in kinds.py. ``identity`` names what decides a
verifier's scores (its fingerprint, its backbone and coefficients, its source model): caches of
scores are keyed by it (storage.ResultCache), so a retrained verifier at the same path scores again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from ttc_lib.models.identity import VERIFIER_CONFIG
from ttc_lib.storage import read_json, write_json


@dataclass(frozen=True)
class LabelledSolution:
    """A training example for a verifier: one target per step (None = not supervised).

    PRMs get a label at every step (Monte-Carlo soft/hard, or the oracle's); an ORM gets the
    outcome at the last step only. ``steps.split_steps(solution)`` defines the steps.
    """

    question_id: str  # train/validation splits are made by question, never by solution
    question: str
    solution: str
    labels: tuple[float | None, ...]


@runtime_checkable
class Verifier(Protocol):
    name: str  # what it is, for tables and plots
    num_params: int  # parameters of the model doing the scoring (FLOPs ledger)
    tokens_scored: int  # running total of tokens read by score() (FLOPs ledger)
    identity: str  # what decides its scores (models.identity), computed once at load: cache keys of its scores

    def score(self, questions: list[str], solutions: list[str]) -> list[list[float]]:
        """Per solution, one score in [0, 1] per step (steps.split_steps)."""
        ...


def save_verifier_config(path: str | Path, kind: str, **config) -> None:
    write_json(Path(path) / VERIFIER_CONFIG, {"kind": kind, **config})


def read_verifier_config(path: str | Path) -> dict:
    file = Path(path) / VERIFIER_CONFIG
    if not file.exists():
        raise FileNotFoundError(f"{path} is not a saved verifier: no {VERIFIER_CONFIG}")
    return read_json(file)
