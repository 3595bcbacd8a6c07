"""Context rows: other problems before the question, loss still on the row's own solution only."""

import pytest

from ttc_lib.models.batches import tokenize_problems
from ttc_lib.models.context_rows import context_share, with_context_rows
from ttc_lib.tasks.problem import Problem
from ttc_lib.tasks.prompts import REVISION_ATTEMPT, REVISION_MARK, context_question, revision_question


def _problems(n: int = 40) -> list[Problem]:
    return [Problem(id=f"p{i}", question=f"Start with {i}. Add {i + 1}.", answer=str(2 * i + 1),
                    solution=f"{i}+{i + 1}={2 * i + 1}\n\\boxed{{{2 * i + 1}}}", level=1 + i % 3) for i in range(n)]


def test_share_zero_is_the_identity_and_share_one_gives_every_row_a_context():
    problems = _problems()
    assert with_context_rows(problems, 0.0) == problems
    rows = with_context_rows(problems, 1.0, seed=3)
    assert context_share(rows, problems) == 1.0
    for row, p in zip(rows, problems):
        # same record but the question: ids, answers, solutions, levels and order are kept
        assert (row.id, row.answer, row.solution, row.level) == (p.id, p.answer, p.solution, p.level)
        assert row.question.endswith(p.question) and row.question != p.question
        # the context never contains the row's own solution (nothing about its answer leaks)
        assert p.solution not in row.question


def test_share_is_respected_seeded_and_both_modes_occur():
    problems = _problems(400)
    rows = with_context_rows(problems, 0.25, seed=0)
    assert 0.18 < context_share(rows, problems) < 0.32
    assert rows == with_context_rows(problems, 0.25, seed=0)
    assert rows != with_context_rows(problems, 0.25, seed=1)
    with_attempts = [r for r in rows if r.question.startswith(REVISION_ATTEMPT)]
    solved = [r for r, p in zip(rows, problems) if r.question != p.question and not r.question.startswith(REVISION_ATTEMPT)]
    assert with_attempts and solved
    counts = {r.question.count(REVISION_ATTEMPT) for r in with_attempts}
    assert counts <= {1, 2, 3} and len(counts) > 1


def test_attempts_mode_is_exactly_the_revision_format():
    others = [("Start with 1. Add 2.", "1+2=3\n\\boxed{3}"), ("Start with 5. Add 1.", "5+1=6\n\\boxed{6}")]
    text = context_question("Start with 9. Add 9.", others, "attempts")
    assert text == revision_question("Start with 9. Add 9.", [s for _, s in others])
    assert text.index(REVISION_MARK) < text.index("Start with 9.")
    solved = context_question("Start with 9. Add 9.", others, "solved")
    assert solved.startswith("Start with 1. Add 2.\n1+2=3") and solved.endswith("\nStart with 9. Add 9.")
    with pytest.raises(ValueError, match="nope"):
        context_question("q", others, "nope")


def test_loss_stays_on_the_solution_with_a_context(tiny_tokenizer):
    problems = _problems(10)
    rows = with_context_rows(problems, 1.0, seed=0)
    plain, ctx = tokenize_problems(problems, tiny_tokenizer), tokenize_problems(rows, tiny_tokenizer)
    for (ids_p, n_p), (ids_c, n_c) in zip(plain, ctx):
        assert n_c > n_p  # the context is prompt: no loss on it
        assert ids_c[n_c:] == ids_p[n_p:]  # the target (solution + EOS) is the same tokens


def test_length_guard_keeps_plain_rows_and_bad_inputs_are_named(tiny_tokenizer):
    problems = _problems(20)
    longest_plain = max(len(ids) for ids, _ in tokenize_problems(problems, tiny_tokenizer))
    rows = with_context_rows(problems, 1.0, seed=0, tokenizer=tiny_tokenizer, max_tokens=longest_plain + 1)
    assert context_share(rows, problems) == 0.0
    for bad in (-0.1, 1.5, "0.2", True):
        with pytest.raises(ValueError, match="context share"):
            with_context_rows(problems, bad)
    with pytest.raises(ValueError, match="tokenizer and max_tokens"):
        with_context_rows(problems, 0.5, tokenizer=tiny_tokenizer)
