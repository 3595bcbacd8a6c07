"""The step contract (tasks/steps.py): a MATH-style solution with display math splits into its
paragraphs under ``blank_line``; the world's ``newline`` contract cuts exactly as the code before
contracts did; the setting is validated where a run reads it. No model: text only."""

from __future__ import annotations

import pytest

from ttc_lib.tasks.prompts import format_prompt
from ttc_lib.tasks.steps import (
    BLANK_LINES,
    LINES,
    STEP_DELIMITER,
    contract_of,
    identity_suffix,
    split_steps,
    step_contract,
    step_end_offsets,
)

# A Qwen2.5-Math-style solution: three paragraphs, two of them with display math, nine lines.
PARAGRAPHS = ["To solve $2x + 6 = 14$, we first subtract 6 from both sides:\n\\[\n2x = 8\n\\]",
              "Next, we divide both sides by 2:\n\\[\nx = \\frac{8}{2} = 4\n\\]",
              "Therefore, the solution is $\\boxed{4}$."]
SOLUTION = "\n\n".join(PARAGRAPHS)


def _legacy_split(text: str) -> list[str]:  # the code before step contracts (STEP_DELIMITER = "\n")
    return [s.strip() for s in text.split("\n") if s.strip()]


def _legacy_offsets(text: str) -> list[int]:
    offsets, pos = [], 0
    for piece in text.split("\n"):
        if piece.strip():
            offsets.append(pos + len(piece.rstrip()))
        pos += len(piece) + 1
    return offsets


def test_a_math_solution_with_display_math_splits_into_its_three_paragraphs():
    assert BLANK_LINES.split(SOLUTION) == PARAGRAPHS
    assert [SOLUTION[a:b] for a, b in BLANK_LINES.spans(SOLUTION)] == PARAGRAPHS  # raw text, line breaks kept
    assert BLANK_LINES.step_end_offsets(SOLUTION) == [SOLUTION.index(p) + len(p) for p in PARAGRAPHS]
    assert BLANK_LINES.join(PARAGRAPHS) == SOLUTION
    assert BLANK_LINES.prefix_text(PARAGRAPHS[:1]) == PARAGRAPHS[0] + "\n\n"
    # the world's contract makes every line a step: the nine steps, "\[" and "\]" among them
    assert LINES.split(SOLUTION) == [line for line in SOLUTION.split("\n") if line]
    assert len(LINES.split(SOLUTION)) == 9 and "\\[" in LINES.split(SOLUTION)


def test_step_ends_under_the_blank_line_contract():
    first, closed = BLANK_LINES.first_step("\n\n" + PARAGRAPHS[0] + "\n\nNext")  # a leading blank line skipped
    assert (first, closed) == (PARAGRAPHS[0], True)
    assert BLANK_LINES.first_step(PARAGRAPHS[0] + "\n")[1] is False  # a line break inside a step closes nothing
    assert BLANK_LINES.answer_cut(SOLUTION) is None  # the answer step is not closed yet
    assert BLANK_LINES.answer_cut(SOLUTION + "\n\nProblem: next") == SOLUTION
    assert LINES.answer_cut(SOLUTION + "\n") == SOLUTION  # lines: the answer line closes at its newline


def test_samples_keep_the_models_text_under_blank_line_and_the_worlds_form_under_newline():
    raw = "  " + PARAGRAPHS[0] + "\n\n\n   " + PARAGRAPHS[1].replace("x = ", "  x = ") + "\n\n" + PARAGRAPHS[2] + "\n"
    assert BLANK_LINES.sample_text(raw) == raw.strip()  # indentation and the extra blank line as written
    assert LINES.sample_text(raw) == "\n".join(_legacy_split(raw))  # the world: re-joined lines, as before
    # the steps a scorer reads are the model's own text between the boundaries
    assert [raw[a:b] for a, b in BLANK_LINES.spans(raw)] == [s.strip() for s in raw.split("\n\n") if s.strip()]


@pytest.mark.parametrize("text", ["23+7=30\n30*3=90\n\\boxed{90}", "\n\n a=1 \n\n\n b = 2\t\n\\boxed{2}\n", "", "  \n ",
                                  SOLUTION])
def test_the_worlds_contract_cuts_exactly_as_before(text):
    assert STEP_DELIMITER == LINES.delimiter == "\n"
    assert split_steps(text) == LINES.split(text) == _legacy_split(text)
    assert step_end_offsets(text) == LINES.step_end_offsets(text) == _legacy_offsets(text)
    assert identity_suffix(LINES) == "" and identity_suffix(BLANK_LINES) == "|steps=blank_line"
    assert contract_of(object()) is LINES  # a stand-in without a contract follows the world's


def test_fewshot_examples_show_the_runs_step_contract():
    lines, paragraphs = format_prompt("What is $1+1$?", "fewshot"), format_prompt("What is $1+1$?", "fewshot",
                                                                                  contract=BLANK_LINES)
    assert "$3 \\cdot 4 = 12$.\nThen add" in lines and "$3 \\cdot 4 = 12$.\n\nThen add" in paragraphs
    assert lines.endswith("Problem: What is $1+1$?\nSolution:\n")
    assert paragraphs.endswith("Problem: What is $1+1$?\nSolution:\n")
    assert format_prompt("q", "plain", contract=BLANK_LINES) == format_prompt("q") == "q\n"  # the world's own format


def test_an_unknown_step_delimiter_is_refused_by_name():
    assert step_contract("blank_line") is BLANK_LINES and step_contract(LINES) is LINES
    with pytest.raises(ValueError, match=r"unknown step_delimiter 'tab'; known: \['blank_line', 'newline'\]"):
        step_contract("tab")


def test_the_profiles_set_the_contract_and_a_bad_value_is_refused_before_a_run():
    from ttc_lib.pipeline.runner import apply_overrides, load_profile

    assert load_profile("math500")["01_train_generator"]["step_delimiter"] == "blank_line"
    for world in ("ci", "cpu", "gpu"):  # the world keeps its default: one step per line
        assert "step_delimiter" not in load_profile(world)["01_train_generator"]
    resolved = load_profile("ci")
    with pytest.raises(ValueError, match=r"step_delimiter.*'tab'.*must be one of \['newline', 'blank_line'\]"):
        apply_overrides(resolved, ["step_delimiter=tab"])
