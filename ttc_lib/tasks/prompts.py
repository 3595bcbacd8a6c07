"""The one place that owns prompt formats: how a question (and a partial solution) becomes text.

Generation, training, verifier scoring and revision prompts all build their text here, so a
model always sees the format it was trained on. Styles live in a name -> PromptStyle registry; a
checkpoint trained by ttc records its style in ``ttc_config.json`` (see models.py); a user's
model is given one with ``prompt_style``. Rules:
- plain: the synthetic world's format. fewshot: two worked Problem/Solution examples for a base
  model, their steps separated by the run's step delimiter (``contract``, steps.StepContract: one
  a line, or a blank line between steps), so the model writes steps the way they are cut. chat:
  the tokenizer's own chat template (an instruct model), a system line asking for a boxed answer,
  the question as the user turn, the assistant turn opened; it needs the tokenizer
  (``format_prompt(..., tokenizer=)``) and refuses one without a chat template.
- A style's stop strings end a sample where one appears in its text (generation cuts the text
  there): fewshot stops at the start of an invented next problem; plain and chat have none (EOS).
- A prompt text is tokenised with the tokenizer's special tokens everywhere, so a chat text leaves
  out a leading BOS that the tokenizer adds by itself (no doubled BOS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ttc_lib.tasks.steps import LINES, StepContract, contract_of

EOS_TEXT = "<|eos|>"  # end-of-solution marker appended to training targets (tokenizer special)
NEWLINE = "\n"  # the line break of the formats' own lines (not the step delimiter: the contract's)


def _plain(question: str) -> str:
    # The synthetic world's format: the question on one line, then the solution, one step a line.
    return question.strip() + NEWLINE


# Few-shot header for a user's pretrained model on MATH-style data: two worked examples that show
# the step contract (steps separated by its delimiter, none inside a step) and the final \boxed{}.
_FEWSHOT_EXAMPLES = (
    ("What is the value of $3 \\cdot 4 + 5$?",
     ["First multiply: $3 \\cdot 4 = 12$.", "Then add: $12 + 5 = 17$.", "The answer is $\\boxed{17}$."]),
    ("Solve for $x$: $2x - 6 = 10$.",
     ["Add 6 to both sides: $2x = 16$.", "Divide by 2: $x = 8$.", "The answer is $\\boxed{8}$."]),
)


def _fewshot(question: str, contract: StepContract) -> str:
    # Problem/Solution blocks, a blank line between them; the model continues after "Solution:" with
    # steps separated as in the examples (the contract's delimiter).
    blocks = [f"Problem: {q}{NEWLINE}Solution:{NEWLINE}{contract.join(steps)}" for q, steps in _FEWSHOT_EXAMPLES]
    blocks.append(f"Problem: {question.strip()}{NEWLINE}Solution:{NEWLINE}")
    return (NEWLINE * 2).join(blocks)


CHAT_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."  # Qwen2.5-Math's


def _chat(question: str, tokenizer: Any) -> str:
    # The instruct model's own template: system line, the question as the user turn, assistant opened.
    messages = [{"role": "system", "content": CHAT_SYSTEM}, {"role": "user", "content": question.strip()}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    bos = getattr(tokenizer, "bos_token", None)
    if bos and text.startswith(bos) and tokenizer("")["input_ids"][:1] == [tokenizer.bos_token_id]:
        text = text[len(bos):]  # the tokenizer adds it when the text is tokenised
    return text


@dataclass(frozen=True)
class PromptStyle:
    """How a style builds a prompt (``build(question, tokenizer, contract)``; the tokenizer is None
    unless ``needs_tokenizer``) and the strings that end a sample of it (module rules)."""

    build: Callable[[str, Any, StepContract], str]
    stop_strings: tuple[str, ...] = ()
    needs_tokenizer: bool = False


PROMPT_STYLES: dict[str, PromptStyle] = {
    "plain": PromptStyle(lambda q, _tok, _steps: _plain(q)),
    "fewshot": PromptStyle(lambda q, _tok, steps: _fewshot(q, steps), stop_strings=(NEWLINE + "Problem:",)),
    "chat": PromptStyle(lambda q, tok, _steps: _chat(q, tok), needs_tokenizer=True),
}


def registered_style(style: str) -> PromptStyle:
    """The registered style ``style``; a ValueError naming ``prompt_style`` and the known ones otherwise."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt_style {style!r}; known: {sorted(PROMPT_STYLES)}")
    return PROMPT_STYLES[style]


def check_prompt_style(style: str, tokenizer: Any) -> PromptStyle:
    """``registered_style(style)``, and a ValueError when ``tokenizer`` cannot build it (chat: none given,
    or one without a chat template), naming ``prompt_style`` and what to use instead. A Generator
    checks its style when it is made, so a wrong one fails before any work."""
    found = registered_style(style)
    if found.needs_tokenizer and tokenizer is None:
        raise ValueError(f"prompt_style={style!r} formats prompts with the model's tokenizer: pass tokenizer=")
    if found.needs_tokenizer and not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"prompt_style={style!r} needs a tokenizer with a chat template (an instruct model's), "
                         "and this one has none: use prompt_style='fewshot' for a base model (or 'plain' for a "
                         "model trained by ttc), or set tokenizer.chat_template")
    return found


def format_prompt(question: str, style: str = "plain", tokenizer: Any = None, contract: StepContract = LINES) -> str:
    """The text a model is given before its solution; a prefix of steps is appended verbatim.
    ``tokenizer``: the model's, needed by the chat style (module rules); the others ignore it.
    ``contract``: the run's step contract (the few-shot examples' step layout)."""
    found = check_prompt_style(style, tokenizer)
    return found.build(question, tokenizer if found.needs_tokenizer else None, contract)


def model_prompt(model: Any, question: str) -> str:
    """``format_prompt`` as ``model`` (a Generator, or a stand-in with ``prompt_style`` and
    ``tokenizer``) reads it: its style, tokenizer and step contract (steps.contract_of)."""
    return format_prompt(question, model.prompt_style, model.tokenizer, contract_of(model))


def stop_strings(style: str) -> tuple[str, ...]:
    """The strings that end a sample of ``style`` (generation cuts the text where one starts)."""
    return registered_style(style).stop_strings


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
    attempts add comes on top. Measured (``experiments/revision_format.py --profile cpu --steps 700
    --max-level 6``: a small policy trained 700 steps on levels 1-6, half its rows with attempts;
    teacher-forced loss per target token on 150 test questions, bare question / one correct attempt
    / one slip / three slips): without the restatement .296 / .420 / .430 / .454 (any attempt hurts);
    with it .249 / .188 / .236 / .233 (attempts help). An attempt with more than
    ``MAX_ATTEMPTS`` predecessors never sees the oldest: the paper keeps the last four."""
    if not attempts:
        return question
    parts = [question.strip()]
    for attempt in list(attempts)[-MAX_ATTEMPTS:]:
        parts += [REVISION_ATTEMPT, attempt.strip()]
    return NEWLINE.join(parts + [REVISION_MARK, question.strip()])


def training_text(question: str, solution: str, style: str = "plain") -> tuple[str, str]:
    """(prompt, target) for supervised training: loss is taken on the target only."""
    return format_prompt(question, style), solution.strip() + EOS_TEXT
