"""Context rows: attempts at the row's own question before its solution, loss on the solution only;
the revision format they share with the revision model; one recipe for the policy and the larger model."""

import pytest

from ttc_lib.models.batches import tokenize_problems
from ttc_lib.models.context_rows import context_share, with_context_rows
from ttc_lib.models.study_models import recipe_differences, training_jobs
from ttc_lib.tasks import ArithmeticWorld, first_wrong_step, make_splits
from ttc_lib.tasks.problem import Problem
from ttc_lib.tasks.prompts import MAX_ATTEMPTS, REVISION_ATTEMPT, REVISION_MARK, revision_question


def _problems(n: int = 40) -> list[Problem]:
    return make_splits(ArithmeticWorld(min_ops=1, max_ops=5), n_train=n, n_test=0, seed=0)[0]


def _attempts(row: Problem, problem: Problem) -> list[str]:
    # the attempts of a context row, read back from the revision format
    question = problem.question.strip()
    assert row.question.startswith(question + "\n") and row.question.endswith("\n" + REVISION_MARK + "\n" + question)
    body = row.question[len(question):-len(question)].strip("\n").split("\n")
    assert body[0] == REVISION_ATTEMPT and body[-1] == REVISION_MARK
    text = "\n".join(body[1:-1])
    return [part.strip("\n") for part in text.split(REVISION_ATTEMPT)]


def test_the_format_puts_the_question_first_and_keeps_the_last_four_attempts():
    attempts = [f"{i}+1={i + 1}\n\\boxed{{{i + 1}}}" for i in range(6)]
    text = revision_question("Start with 1. Add 1.", attempts)
    assert text.startswith("Start with 1. Add 1.\n" + REVISION_ATTEMPT)
    assert text.endswith("\n" + REVISION_MARK + "\nStart with 1. Add 1.")  # and again before the revision
    assert text.count(REVISION_ATTEMPT) == MAX_ATTEMPTS == 4
    kept = [a for a in attempts if a in text]
    assert kept == attempts[-4:]  # the last four, oldest first
    assert text.index(attempts[2]) < text.index(attempts[5])
    assert revision_question("Start with 1. Add 1.", ()) == "Start with 1. Add 1."


def test_share_zero_is_the_identity_and_share_one_gives_every_row_its_own_attempts():
    problems = _problems()
    assert with_context_rows(problems, 0.0) == problems
    rows = with_context_rows(problems, 1.0, seed=3)
    assert context_share(rows, problems) == 1.0
    for row, p in zip(rows, problems):
        # same record but the question: ids, answers, solutions, levels and order are kept
        assert (row.id, row.answer, row.solution, row.level) == (p.id, p.answer, p.solution, p.level)
        assert row.question.startswith(p.question)
        attempts = _attempts(row, p)
        assert 1 <= len(attempts) <= MAX_ATTEMPTS
        for attempt in attempts:  # each the reference, or a slip whose first wrong step the oracle finds
            assert attempt == p.solution or first_wrong_step(p, attempt) is not None


def test_share_is_respected_seeded_and_attempts_mix_slips_and_correct_ones():
    problems = _problems(400)
    rows = with_context_rows(problems, 0.25, seed=0)
    assert 0.18 < context_share(rows, problems) < 0.32
    assert rows == with_context_rows(problems, 0.25, seed=0)
    assert rows != with_context_rows(problems, 0.25, seed=1)
    counts, correct, wrong = set(), 0, 0
    for row, p in zip(rows, problems):
        if row.question != p.question:
            attempts = _attempts(row, p)
            counts.add(len(attempts))
            correct += sum(a == p.solution for a in attempts)
            wrong += sum(a != p.solution for a in attempts)
    assert counts == {1, 2, 3, 4}
    assert 0.1 < correct / (correct + wrong) < 0.4  # CORRECT_SHARE = .25


def test_loss_stays_on_the_solution_with_a_context(tiny_tokenizer):
    problems = _problems(10)
    rows = with_context_rows(problems, 1.0, seed=0)
    plain, ctx = tokenize_problems(problems, tiny_tokenizer), tokenize_problems(rows, tiny_tokenizer)
    for (ids_p, n_p), (ids_c, n_c) in zip(plain, ctx):
        assert n_c > n_p  # the attempts are prompt: no loss on them
        assert ids_c[n_c:] == ids_p[n_p:]  # the target (solution + EOS) is the same tokens


def test_length_guard_drops_the_oldest_attempts_and_bad_inputs_are_named(tiny_tokenizer):
    problems = _problems(20)
    shortest_plain = min(len(ids) for ids, _ in tokenize_problems(problems, tiny_tokenizer))
    rows = with_context_rows(problems, 1.0, seed=0, tokenizer=tiny_tokenizer, max_tokens=shortest_plain)
    assert context_share(rows, problems) == 0.0
    free = with_context_rows(problems, 1.0, seed=0)
    limit = max(len(ids) for ids, _ in tokenize_problems(free, tiny_tokenizer)) - 1
    cut = with_context_rows(problems, 1.0, seed=0, tokenizer=tiny_tokenizer, max_tokens=limit)
    assert all(len(ids) <= limit for ids, _ in tokenize_problems(cut, tiny_tokenizer))
    dropped = 0
    for a, b, p in zip(cut, free, problems):
        if a.question != p.question:  # what is kept is the newest attempts, in order
            kept, full = _attempts(a, p), _attempts(b, p)
            assert full[-len(kept):] == kept
            dropped += len(full) - len(kept)
    assert dropped > 0
    for bad in (-0.1, 1.5, "0.2", True):
        with pytest.raises(ValueError, match="context share"):
            with_context_rows(problems, bad)
    with pytest.raises(ValueError, match="tokenizer and max_tokens"):
        with_context_rows(problems, 0.5, tokenizer=tiny_tokenizer)
    with pytest.raises(ValueError, match="max_attempts"):
        with_context_rows(problems, 0.5, max_attempts=5)
    other = [Problem(id="m1", question="What is $1+1$?", answer="2", solution="1+1=2\n\\boxed{2}", level=1)]
    with pytest.raises(ValueError, match="m1.*context_share: 0"):
        with_context_rows(other, 1.0)


def test_the_larger_model_trains_on_exactly_the_policys_rows_and_schedule(tiny_tokenizer, tmp_path):
    dirs = {role: tmp_path / role for role in ("policy", "verifier_backbone", "large")}
    jobs, rows = training_jobs(_problems(50), tiny_tokenizer, dirs, policy_model="tiny", policy_steps=7,
                               verifier_extra_steps=3, large_model="small", batch_size=4, lr=2e-3, large_lr=1e-3,
                               context_share=0.5, seed=2)
    (policy, verifier), (large,) = jobs
    assert large["problems"] == policy["problems"] == rows and context_share(rows, _problems(50)) > 0
    differing = {k for k, v in vars(policy["config"]).items() if vars(large["config"])[k] != v}
    assert differing == {"lr"}  # steps, batch size, seed (hence batches), warmup, decay: the policy's
    assert verifier["init_from"] == dirs["policy"]


def test_recipe_differences_name_what_differs():
    config = {"lr": 2e-3, "warmup_steps": 100, "seed": 0, "num_threads": 1}
    policy = {"problems": 10, "tokens": 500, "steps": 20, "batch_size": 4, "config": config}
    assert recipe_differences(policy, {**policy, "config": {**config, "lr": 1e-3, "num_threads": 2}}) == []
    plain_rows = recipe_differences(policy, {**policy, "tokens": 300})
    assert plain_rows == ["tokens: policy 500 vs large 300"]
    assert recipe_differences(policy, {**policy, "config": {**config, "warmup_steps": 10}}) == \
        ["warmup_steps: policy 100 vs large 10"]
    assert "no training config" in recipe_differences(policy, {"params": 5})[0]


def test_a_level_floor_keeps_the_rows_below_it_plain():
    problems = _problems(80)
    rows = with_context_rows(problems, 1.0, seed=0, min_level=3)
    assert all((row != p) == (p.level >= 3) for row, p in zip(rows, problems))
    assert 0 < context_share(rows, problems) < 1
    with pytest.raises(ValueError, match="min_level"):
        with_context_rows(problems, 1.0, min_level=-1)
