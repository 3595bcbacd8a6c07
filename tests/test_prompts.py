"""Prompt styles: the few-shot style teaches the step contract and ends where the solution starts."""

import pytest

from ttc_lib.tasks.prompts import PROMPT_STYLES, format_prompt, training_text
from ttc_lib.tasks.steps import STEP_DELIMITER, is_final_step, split_steps


def test_fewshot_examples_follow_the_step_contract_and_prompt_ends_at_solution():
    text = format_prompt("What is $1+1$?", "fewshot")
    assert text.endswith("Problem: What is $1+1$?" + STEP_DELIMITER + "Solution:" + STEP_DELIMITER)
    examples = text.split(STEP_DELIMITER * 2)[:-1]
    assert len(examples) >= 2
    for block in examples:
        steps = split_steps(block.split("Solution:" + STEP_DELIMITER, 1)[1])
        assert steps and all(not is_final_step(s) for s in steps[:-1]) and is_final_step(steps[-1])


def test_unknown_style_is_named():
    with pytest.raises(ValueError, match="nope"):
        format_prompt("q", "nope")
    assert {"plain", "fewshot"} <= set(PROMPT_STYLES)


def test_training_text_puts_the_solution_in_the_target_only():
    prompt, target = training_text("Start with 3. Add 4.", "3+4=7\n\\boxed{7}", "plain")
    assert "3+4=7" not in prompt and target.startswith("3+4=7")
