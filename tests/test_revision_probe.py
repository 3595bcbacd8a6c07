"""The context probe: which attempt each condition reads, pass@1 per condition, paired effects, guards."""

from __future__ import annotations

import pandas as pd
import pytest

from ttc_lib.generation.generator import Sample
from ttc_lib.revisions.probe import CONDITIONS, paired_effects, probe_contexts
from ttc_lib.tasks.problem import Problem
from ttc_lib.tasks.prompts import REVISION_ATTEMPT

PROBLEMS = [Problem("q0", "Start with 4. Multiply by 5. What is the result?", "20", "4*5=20\n\\boxed{20}", 1),
            Problem("q1", "Start with 61. Subtract 19. What is the result?", "42", "61-19=42\n\\boxed{42}", 1)]
ANSWERS = {p.question: p.answer for p in PROBLEMS}


class ContextShy:
    """Right with a bare question, wrong after any attempt: the probe must see exactly that."""

    def __init__(self):
        self.prompts: list[str] = []

    def sample(self, questions, n, *, temperature=1.0, max_new_tokens=256, seed=0, progress=True):
        self.prompts += list(questions)
        out = []
        for q in questions:
            answer = next(a for text, a in ANSWERS.items() if q.startswith(text))
            right = REVISION_ATTEMPT not in q
            out.append([Sample(f"x\n\\boxed{{{answer if right else 999}}}", 4, "end") for _ in range(n)])
        return out


def attempts():
    rows = [("q0", "4*5=20\n\\boxed{20}", "20", True, True), ("q0", "4*5=21\n\\boxed{21}", "21", True, False),
            ("q1", "61-19=41\n\\boxed{41}", "41", True, False),
            ("q1", "61-19=4", None, False, False)]  # truncated: never read
    return pd.DataFrame(rows, columns=["question_id", "text", "answer", "finished", "correct"])


def test_conditions_read_the_right_attempts_and_score_them():
    table = probe_contexts(ContextShy(), PROBLEMS, attempts(), 3)
    by = {(r.question_id, r.condition): r for r in table.itertuples()}
    assert set(by) == {("q0", c) for c in CONDITIONS} | {("q1", "none"), ("q1", "other_question"), ("q1", "own_wrong")}
    assert by[("q0", "own_correct")].context == "4*5=20\n\\boxed{20}"
    assert by[("q0", "own_wrong")].context == "4*5=21\n\\boxed{21}"
    assert by[("q0", "other_question")].context == "61-19=41\n\\boxed{41}"  # the truncated one is never drawn
    assert by[("q1", "other_question")].context in {"4*5=20\n\\boxed{20}", "4*5=21\n\\boxed{21}"}
    assert by[("q0", "none")].context == "" and by[("q0", "none")].pass1 == 1.0
    assert all(r.pass1 == 0.0 for r in table.itertuples() if r.condition != "none")
    assert set(table.samples) == {3}


def test_choice_is_seeded_per_question_not_by_order():
    forward = probe_contexts(ContextShy(), PROBLEMS, attempts(), 1, seed=5)
    backward = probe_contexts(ContextShy(), PROBLEMS[::-1], attempts(), 1, seed=5)
    key = ["question_id", "condition"]
    pd.testing.assert_frame_equal(forward.sort_values(key).reset_index(drop=True),
                                  backward.sort_values(key).reset_index(drop=True))


def test_paired_effects_on_the_questions_that_have_the_condition():
    effects = paired_effects(probe_contexts(ContextShy(), PROBLEMS, attempts(), 2)).set_index("condition")
    assert effects.loc["own_correct", "questions"] == 1 and effects.loc["own_wrong", "questions"] == 2
    assert effects.loc["own_wrong", "none"] == 1.0 and effects.loc["own_wrong", "own"] == 0.0
    assert effects.loc["own_wrong", "own_minus_none"] == -1.0


def test_guards_name_the_problem():
    with pytest.raises(ValueError, match="n must be >= 1"):
        probe_contexts(ContextShy(), PROBLEMS, attempts(), 0)
    with pytest.raises(ValueError, match="correct"):
        probe_contexts(ContextShy(), PROBLEMS, attempts().drop(columns=["correct"]), 2)
