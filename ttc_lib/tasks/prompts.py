"""The one place that owns prompt formats: how a question (and a partial solution) becomes text.

Generation, training, verifier scoring and revision prompts all build their text here, so a
model always sees the format it was trained on. Styles live in a name -> function registry; a
checkpoint trained by ttc records its style in ``ttc_config.json`` (see models.py).
"""

from __future__ import annotations

from typing import Callable, Sequence

from ttc_lib.tasks.steps import STEP_DELIMITER

EOS_TEXT = "<|eos|>"  # end-of-solution marker appended to training targets (tokenizer special)


def _plain(question: str) -> str:
    # The synthetic world's format: the question on one line, then the solution, one step a line.
    return question.strip() + STEP_DELIMITER


# Few-shot header for a user's pretrained model on MATH-style data: two worked examples that show
# the step contract (one step per line, no blank lines inside a solution) and the final \boxed{}.
_FEWSHOT_EXAMPLES = (
    ("What is the value of $3 \\cdot 4 + 5$?",
     ["First multiply: $3 \\cdot 4 = 12$.", "Then add: $12 + 5 = 17$.", "The answer is $\\boxed{17}$."]),
    ("Solve for $x$: $2x - 6 = 10$.",
     ["Add 6 to both sides: $2x = 16$.", "Divide by 2: $x = 8$.", "The answer is $\\boxed{8}$."]),
)


def _fewshot(question: str) -> str:
    # Problem/Solution blocks; the model continues after "Solution:" with one step per line.
    blocks = [f"Problem: {q}{STEP_DELIMITER}Solution:{STEP_DELIMITER}{STEP_DELIMITER.join(steps)}"
              for q, steps in _FEWSHOT_EXAMPLES]
    blocks.append(f"Problem: {question.strip()}{STEP_DELIMITER}Solution:{STEP_DELIMITER}")
    return (STEP_DELIMITER * 2).join(blocks)


PROMPT_STYLES: dict[str, Callable[[str], str]] = {"plain": _plain, "fewshot": _fewshot}


def format_prompt(question: str, style: str = "plain") -> str:
    """The text a model is given before its solution; a prefix of steps is appended verbatim."""
    try:
        fn = PROMPT_STYLES[style]
    except KeyError:
        raise ValueError(f"unknown prompt style {style!r}; known: {sorted(PROMPT_STYLES)}") from None
    return fn(question)


MAX_ATTEMPTS = 4  # previous attempts a revision reads (the paper's 4); older ones are dropped
REVISION_ATTEMPT, REVISION_MARK = "Attempt:", "Revision:"


def revision_question(question: str, attempts: Sequence[str]) -> str:
    """The one revision format: the question, then its last ``MAX_ATTEMPTS`` previous attempts
    (oldest first), each after an "Attempt:" line, then a "Revision:" line and the question again.
    It is given to format_prompt like any question, so generation, the policy's context rows,
    revision fine-tuning (loss on the target only) and verifier scoring all see this one format.
    No attempts: the bare question (a revision model answers from scratch).

    Why the question first: every attempt token is then read with its question in view, so a
    reviser can check an attempt's steps against the question's operations as it reads them. Why
    again before the revision: the revision then follows its question exactly as a plain solution
    does, so the operand look-ups the policy learnt on plain rows still work, and what the
    attempts add comes on top. Measured (``experiments/revision_format.py``: a small policy trained
    700 steps on levels 1-6 with half its rows in each format, teacher-forced loss per target token
    on 150 test questions): without the restatement any attempt *raised* the loss above the bare
    question's; with it, a correct attempt and wrong ones lowered it. An attempt with more than
    ``MAX_ATTEMPTS`` predecessors never sees the oldest: the paper keeps the last four."""
    if not attempts:
        return question
    parts = [question.strip()]
    for attempt in list(attempts)[-MAX_ATTEMPTS:]:
        parts += [REVISION_ATTEMPT, attempt.strip()]
    return STEP_DELIMITER.join(parts + [REVISION_MARK, question.strip()])


def training_text(question: str, solution: str, style: str = "plain") -> tuple[str, str]:
    """(prompt, target) for supervised training: loss is taken on the target only."""
    return format_prompt(question, style), solution.strip() + EOS_TEXT
