"""The one contract for what a reasoning step is: ``StepContract``, one per run.

Generation stops at a step end, the verifier labeller cuts solutions into step prefixes, the
scorers read one score per step and beam search expands one step per round: all of them ask a
``StepContract``, and no other module hard-codes the delimiter. A solution is a sequence of
steps separated by the contract's delimiter; the final step holds the answer as ``\\boxed{...}``.

Contracts (``STEP_CONTRACTS``, chosen by name with the run setting ``step_delimiter``):

* ``newline`` (``LINES``): one step per line, the synthetic world's format (the paper's prompt
  format). A sampled solution is re-joined to exactly one newline per step (blank lines and the
  whitespace around lines dropped): the world's models are trained on that form, and its stored
  samples, caches and recorded outputs are in it.
* ``blank_line`` (``BLANK_LINES``): steps separated by a blank line ("\\n\\n"), as MATH-style
  solutions (Qwen2.5-Math) are written and as the Qwen PRMs were trained (their model card; the
  search-and-learn recipe stops steps at "\\n\\n"). A step may span lines (display math
  ``\\[ ... \\]``). A sampled solution keeps the model's own text (only its ends stripped), so a
  scorer reads what the model wrote.

Rules every contract keeps:

* ``split(text)``: the non-blank pieces between delimiters, each stripped of surrounding
  whitespace; ``spans(text)`` gives where each lies in ``text`` (``text[a:b]`` is the step), so a
  scorer reads each step as the model wrote it and places its own separator at the boundaries.
* ``join(steps)`` is the inverse of ``split`` for clean steps; ``prefix_text(steps)`` closes every
  step with the delimiter (the text a continuation is generated after).
* Why a module-level default (``LINES`` and the functions below) besides the explicit object: the
  world's own modules (arithmetic tasks, slips, revisions) only ever use lines; everything that may
  run on a user's model (generation, search, labelling, scoring) takes the run's contract from the
  Generator or verifier that carries it (``contract_of``), never from a global set at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ANSWER_MARKER = "\\boxed{"  # a step holding this is the final (answer) step


@dataclass(frozen=True)
class StepContract:
    """What a step is (module rules): ``name`` (the ``step_delimiter`` setting), ``delimiter`` (the
    text between steps), ``raw_text`` (samples keep the model's text, else steps are re-joined)."""

    name: str
    delimiter: str
    raw_text: bool

    def split(self, text: str) -> list[str]:
        """The non-empty steps of ``text``, surrounding whitespace stripped."""
        return [s.strip() for s in text.split(self.delimiter) if s.strip()]

    def spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of each non-empty step of ``text``: ``text[start:end]`` is the step as split()
        gives it (surrounding whitespace excluded)."""
        out, pos = [], 0
        for piece in text.split(self.delimiter):
            if piece.strip():
                start = pos + len(piece) - len(piece.lstrip())
                out.append((start, pos + len(piece.rstrip())))
            pos += len(piece) + len(self.delimiter)
        return out

    def join(self, steps: list[str]) -> str:
        """Inverse of split for clean steps: steps joined by the delimiter, no trailing one."""
        return self.delimiter.join(s.strip() for s in steps)

    def prefix_text(self, steps: list[str]) -> str:
        """The text a continuation is generated from: the first steps, each closed by a delimiter
        ("" for none: continue from the bare prompt)."""
        return "".join(s.strip() + self.delimiter for s in steps)

    def step_end_offsets(self, text: str) -> list[int]:
        """Character offset just past each non-empty step of ``text`` (before its delimiter): the
        scorers read one score per step at these positions, in one pass over the whole text."""
        return [end for _, end in self.spans(text)]

    def first_step(self, text: str) -> tuple[str, bool]:
        """(the first step of ``text``, whether a delimiter closed it); leading whitespace and
        delimiters skipped (the second "\\n" of a "\\n\\n" habit does not close an empty step)."""
        body = text.lstrip()
        while body.startswith(self.delimiter):
            body = body[len(self.delimiter):].lstrip()
        step, closed, _ = body.partition(self.delimiter)
        return step.strip(), bool(closed)

    def answer_cut(self, text: str) -> str | None:
        """``text`` up to the end of its first completed step holding the answer marker, else None."""
        pieces = text.split(self.delimiter)
        for k, piece in enumerate(pieces[:-1]):
            if is_final_step(piece):
                return self.delimiter.join(pieces[:k + 1])
        return None

    def sample_text(self, raw: str) -> str:
        """A generated solution as samples hold it: the model's text with its ends stripped
        (``raw_text``), else its steps re-joined by one delimiter each (the world's form)."""
        return raw.strip() if self.raw_text else self.join(self.split(raw))


LINES = StepContract("newline", "\n", raw_text=False)
BLANK_LINES = StepContract("blank_line", "\n\n", raw_text=True)
STEP_CONTRACTS = {c.name: c for c in (LINES, BLANK_LINES)}  # the run setting step_delimiter names one
STEP_DELIMITER = LINES.delimiter  # the world's delimiter (its tasks and prompt formats)


def step_contract(value: str | StepContract) -> StepContract:
    """The contract a ``step_delimiter`` setting names (a StepContract passes through); a ValueError
    naming the setting and the known names otherwise."""
    if isinstance(value, StepContract):
        return value
    if value not in STEP_CONTRACTS:
        raise ValueError(f"unknown step_delimiter {value!r}; known: {sorted(STEP_CONTRACTS)} "
                         "(newline: one step per line; blank_line: steps separated by a blank line)")
    return STEP_CONTRACTS[value]


def contract_of(model: Any) -> StepContract:
    """The step contract a Generator or verifier carries (``step_contract``); an object without one
    (a stand-in that predates contracts) follows the world's, LINES."""
    return getattr(model, "step_contract", None) or LINES


def identity_suffix(contract: StepContract) -> str:
    """What a contract adds to a model's identity (cache keys): nothing for the world's LINES, so
    its caches stay valid; ``|steps=<name>`` for any other (samples and scores differ)."""
    return "" if contract == LINES else f"|steps={contract.name}"


def split_steps(solution: str, contract: StepContract = LINES) -> list[str]:
    """``contract.split(solution)``: the non-empty steps, surrounding whitespace stripped."""
    return contract.split(solution)


def join_steps(steps: list[str], contract: StepContract = LINES) -> str:
    """``contract.join(steps)``: steps joined by the delimiter, no trailing one."""
    return contract.join(steps)


def prefix_text(steps: list[str], contract: StepContract = LINES) -> str:
    """``contract.prefix_text(steps)``: each step closed by the delimiter ("" for none)."""
    return contract.prefix_text(steps)


def step_end_offsets(solution: str, contract: StepContract = LINES) -> list[int]:
    """``contract.step_end_offsets(solution)``: the offset just past each non-empty step."""
    return contract.step_end_offsets(solution)


def is_final_step(step: str) -> bool:
    """True when the step states the final answer."""
    return ANSWER_MARKER in step
