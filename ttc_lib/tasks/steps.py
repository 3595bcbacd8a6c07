"""The one contract for what a reasoning step is.

Generation stops at a step end, the verifier labeller cuts solutions into step prefixes and the
scorer reads one score per step: all of them call this module, and no other module hard-codes
the delimiter. A solution is a sequence of steps joined by STEP_DELIMITER; the final step holds
the answer as ``\\boxed{...}``.
"""

from __future__ import annotations

STEP_DELIMITER = "\n"  # one reasoning step per line, as in the paper's prompt format
ANSWER_MARKER = "\\boxed{"  # a step holding this is the final (answer) step


def split_steps(solution: str) -> list[str]:
    """Split a solution into its non-empty steps (surrounding whitespace stripped)."""
    return [s.strip() for s in solution.split(STEP_DELIMITER) if s.strip()]


def join_steps(steps: list[str]) -> str:
    """Inverse of split_steps for clean steps: steps joined by the delimiter, no trailing one."""
    return STEP_DELIMITER.join(s.strip() for s in steps)


def prefix_text(steps: list[str]) -> str:
    """The text a continuation is generated from: the first steps, each closed by a delimiter.

    An empty list gives "" (continue from the bare prompt).
    """
    return "".join(s.strip() + STEP_DELIMITER for s in steps)


def step_end_offsets(solution: str) -> list[int]:
    """Character offset just past each non-empty step of ``solution`` (before its delimiter).

    The scorer reads one score per step at these positions, in one pass over the whole text.
    """
    offsets, pos = [], 0
    for piece in solution.split(STEP_DELIMITER):
        end = pos + len(piece)
        if piece.strip():
            offsets.append(pos + len(piece.rstrip()))
        pos = end + len(STEP_DELIMITER)
    return offsets


def is_final_step(step: str) -> bool:
    """True when the step states the final answer."""
    return ANSWER_MARKER in step
