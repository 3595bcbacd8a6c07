"""The one record every problem source produces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ttc_lib.storage import key_digest


@dataclass(frozen=True)
class Problem:
    """A question with its reference answer and a reference solution (one step per line).

    ``level`` is the source's own difficulty label (number of operations in the synthetic
    world, 1-5 in MATH); it is *not* the model-relative difficulty bin of notebook 03.
    """

    id: str  # stable unique id: seeds and caches are keyed by it
    question: str
    answer: str  # reference final answer, as it would appear inside \boxed{}
    solution: str  # reference solution, steps joined by steps.STEP_DELIMITER
    level: int

    def __post_init__(self) -> None:
        for name in ("id", "question", "answer"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"Problem.{name} must be a non-empty string, got {getattr(self, name)!r}")
        if not isinstance(self.level, int):
            raise ValueError(f"Problem.level must be an int, got {self.level!r} (problem {self.id})")

    def to_dict(self) -> dict:
        return {"id": self.id, "question": self.question, "answer": self.answer,
                "solution": self.solution, "level": self.level}

    @classmethod
    def from_dict(cls, row: dict) -> "Problem":
        return cls(id=str(row["id"]), question=row["question"], answer=str(row["answer"]),
                   solution=row.get("solution", ""), level=int(row["level"]))


def content_id(problem: Any) -> str:
    """A short hash of what a problem asks and expects: its question text and reference answer.
    Cache keys carry it beside the id, so an edited question or answer under the same id is new
    work (fresh samples, fresh grades), never served the old results."""
    return key_digest("problem", problem.question, problem.answer)[:16]
