"""The one record every problem source produces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ttc_lib.storage import key_digest


@dataclass(frozen=True)
class Problem:
    """A question with its reference answer and a reference solution.

    ``level`` is the source's own difficulty label (number of operations in the synthetic
    world, 1-5 in MATH); it is *not* the model-relative difficulty bin of notebook 03.
    """

    id: str  # stable unique id: seeds and caches are keyed by it
    question: str
    answer: str  # reference final answer, as it would appear inside \boxed{}
    solution: str  # reference solution (the world's: steps joined by steps.STEP_DELIMITER; MATH data: as written)
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


def first_per_level(problems: Sequence[Any], per_level: int) -> list[Any]:
    """The first ``per_level`` problems of each level, in their order; ``per_level`` 0 keeps them all.
    Why: pass@1 by level needs a fixed number per level, not the whole test split (notebook 01)."""
    if isinstance(per_level, bool) or not isinstance(per_level, int) or per_level < 0:
        raise ValueError(f"per_level must be an integer >= 0 (0 keeps every problem), got {per_level!r}")
    if per_level == 0:
        return list(problems)
    seen: dict[Any, int] = {}
    kept = []
    for p in problems:
        if seen.get(p.level, 0) < per_level:
            seen[p.level] = seen.get(p.level, 0) + 1
            kept.append(p)
    return kept
