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


def revision_question(question: str, attempts: Sequence[str]) -> str:
    """The question a revision model reads: each previous attempt (oldest first) after an
    "Attempt:" line, then a "Revision:" line, then the question itself. It is given to
    format_prompt like any question, so generation, training (loss on the target only) and
    verifier scoring all see this one format. No attempts: the question itself (a revision
    model answers from scratch).

    Why attempts first: the solution then follows its question as in the policy's training
    rows, at the same distance. Measured on the cpu policy (a trial, script not kept):
    at fine-tuning step 0 this barely matters (3.66 vs 3.69 nats/token with the question first:
    the policy fails with *any* text before its question), after 150 steps it is a little
    better (validation loss .305 vs .339, same data)."""
    if not attempts:
        return question
    parts: list[str] = []
    for attempt in attempts:
        parts += [REVISION_ATTEMPT, attempt.strip()]
    return STEP_DELIMITER.join(parts + [REVISION_MARK, question.strip()])


REVISION_ATTEMPT, REVISION_MARK = "Attempt:", "Revision:"
CONTEXT_MODES = ("solved", "attempts")  # what a context row puts before its question (context_question)


def context_question(question: str, others: Sequence[tuple[str, str]], mode: str) -> str:
    """A question preceded by other problems, for training a policy that still answers its own
    question when text comes before it (ttc_lib/context_rows.py). ``others`` are (question,
    solution) pairs. "solved": each other question with its solution, one after another (the
    look of a few-shot prompt); "attempts": their solutions as previous attempts, in exactly the
    revision format of ``revision_question``. Nothing in the context is about ``question``: the
    model learns to read past it."""
    if mode not in CONTEXT_MODES:
        raise ValueError(f"unknown context mode {mode!r}; known: {list(CONTEXT_MODES)}")
    if not others:
        return question
    if mode == "attempts":
        return revision_question(question, [solution for _, solution in others])
    blocks = [q.strip() + STEP_DELIMITER + s.strip() for q, s in others]
    return STEP_DELIMITER.join(blocks + [question.strip()])


def training_text(question: str, solution: str, style: str = "plain") -> tuple[str, str]:
    """(prompt, target) for supervised training: loss is taken on the target only."""
    return format_prompt(question, style), solution.strip() + EOS_TEXT
