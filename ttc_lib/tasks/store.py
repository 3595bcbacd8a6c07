"""Write problem splits in the MATH JSONL schema, so one reader (math_dataset.load_jsonl) serves
the synthetic world, MATH-500 and a user's own file alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ttc_lib.storage import atomic_write_text
from ttc_lib.tasks.problem import Problem


def save_jsonl(path: str | Path, problems: Sequence[Problem]) -> None:
    """Rows with fields problem, solution, answer, level, unique_id; written atomically."""
    lines = [json.dumps({"problem": p.question, "solution": p.solution, "answer": p.answer,
                         "level": p.level, "unique_id": p.id}) for p in problems]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
