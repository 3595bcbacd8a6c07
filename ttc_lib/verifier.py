"""The verifier interface every scorer shares, and the registry that reloads one by path.

A verifier has ONE scoring method: ``score(questions, solutions)`` returns, per solution, one
score in [0, 1] per step of ``steps.split_steps(solution)`` (the probability that the solution
is still on a correct path after that step), computed for all steps of a solution in one
forward pass. Aggregation to a solution score (``last``/``min``/``prod``) and answer selection
live in selection.py. Kinds (trained-head PRM/ORM, likelihood PRM, external PRMs) register a
loader here; each saves a folder with ``verifier_config.json`` naming its kind, so
``load_verifier(path)`` restores any of them with its own config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

from .runs import read_json, write_json

VERIFIER_CONFIG = "verifier_config.json"


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

    def score(self, questions: list[str], solutions: list[str]) -> list[list[float]]:
        """Per solution, one score in [0, 1] per step (steps.split_steps)."""
        ...


LOADERS: dict[str, Callable[[Path, str], Verifier]] = {}  # kind -> loader(path, device)


def register(kind: str) -> Callable:
    """Decorator: ``@register("likelihood_prm")`` on a loader ``fn(path, device) -> Verifier``."""
    def wrap(fn: Callable[[Path, str], Verifier]) -> Callable[[Path, str], Verifier]:
        LOADERS[kind] = fn
        return fn
    return wrap


def save_verifier_config(path: str | Path, kind: str, **config) -> None:
    write_json(Path(path) / VERIFIER_CONFIG, {"kind": kind, **config})


def read_verifier_config(path: str | Path) -> dict:
    file = Path(path) / VERIFIER_CONFIG
    if not file.exists():
        raise FileNotFoundError(f"{path} is not a saved verifier: no {VERIFIER_CONFIG}")
    return read_json(file)


def load_verifier(path: str | Path, device: str = "cpu") -> Verifier:
    """Reload a saved verifier (any registered kind) from its folder."""
    _import_kinds()
    config = read_verifier_config(path)
    kind = config.get("kind")
    if kind not in LOADERS:
        raise ValueError(f"{Path(path) / VERIFIER_CONFIG}: unknown verifier kind {kind!r}; known: {sorted(LOADERS)}")
    return LOADERS[kind](Path(path), device)


def _import_kinds() -> None:
    # importing the modules runs their @register decorators
    import importlib

    for module in ("ttc_lib.prm_head", "ttc_lib.likelihood_prm", "ttc_lib.own_model"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
