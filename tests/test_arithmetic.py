"""The synthetic world: generator invariants, splits, and the step oracle (table-driven)."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from ttc_lib.tasks import ArithmeticWorld, Problem, first_wrong_step, make_splits, step_labels
from ttc_lib.tasks.grading import extract_answer, grade_answer
from ttc_lib.tasks.steps import join_steps, split_steps

STEP = re.compile(r"(\d+)([-+*])(\d+)=(\d+)")

# ---- world config -------------------------------------------------------------------------


@pytest.mark.parametrize("field,value", [
    ("max_value", 0), ("addsub_max", 0), ("mul_max", 0), ("min_ops", 0),
    ("max_value", 9.5), ("max_ops", True), ("min_ops", "1"),
])
def test_world_rejects_bad_knob_naming_field(field, value):
    with pytest.raises(ValueError, match=field):
        ArithmeticWorld(**{field: value})


def test_world_rejects_max_below_min_ops():
    with pytest.raises(ValueError, match="max_ops"):
        ArithmeticWorld(min_ops=4, max_ops=3)


# ---- splits -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def splits():
    return make_splits(ArithmeticWorld(), n_train=2000, n_test=83, seed=7)


def test_splits_deterministic_and_seed_dependent(splits):
    again = make_splits(ArithmeticWorld(), n_train=2000, n_test=83, seed=7)
    assert again == splits
    other = make_splits(ArithmeticWorld(), n_train=2000, n_test=83, seed=8)
    assert [p.question for p in other[1]] != [p.question for p in splits[1]]


def test_splits_disjoint_unique_ids(splits):
    train, test = splits
    assert len(train) == 2000 and len(test) == 83
    tq, sq = [p.question for p in train], [p.question for p in test]
    assert len(set(tq)) == len(tq) and len(set(sq)) == len(sq)
    assert not set(tq) & set(sq)
    ids = [p.id for p in train + test]
    assert len(set(ids)) == len(ids)
    assert test[12].id == "arith-test-00012" and train[0].id == "arith-train-00000"


def test_test_split_balanced_and_independent_of_train(splits):
    counts = Counter(p.level for p in splits[1])
    assert sorted(counts) == list(range(1, 9))
    assert max(counts.values()) - min(counts.values()) <= 1  # 83 = 8*10 + 3
    alone = make_splits(ArithmeticWorld(), n_train=0, n_test=83, seed=7)[1]
    assert alone == splits[1]


def test_train_uniform_over_levels(splits):
    counts = Counter(p.level for p in splits[0])
    assert set(counts.values()) == {250}


def test_train_level_power_skews_train_only(splits):
    train, test = make_splits(ArithmeticWorld(), n_train=2000, n_test=83, seed=7, train_level_power=1.0)
    assert test == splits[1]  # the test split never depends on the training mix
    counts = Counter(p.level for p in train)
    assert len(train) == 2000 and sum(counts.values()) == 2000
    # quota 2000 * (1/level) / H(8) = 735.9, 92.0: largest remainders round the first up
    assert counts[1] == 736 and counts[8] == 92
    assert all(counts[lv] > counts[lv + 1] for lv in range(1, 8))
    assert not {p.question for p in train} & {p.question for p in test}


@pytest.mark.parametrize("power", [-1, 5, "1", True])
def test_train_level_power_rejects_bad_values(power):
    with pytest.raises(ValueError, match="train_level_power"):
        make_splits(ArithmeticWorld(), n_train=10, n_test=5, seed=0, train_level_power=power)


def test_reference_solutions_obey_the_world(splits):
    world = ArithmeticWorld()
    for p in splits[0][:500] + splits[1]:
        assert p.question.isascii() and p.solution.isascii()
        steps = split_steps(p.solution)
        assert len(steps) == p.level + 1 and steps[-1] == f"\\boxed{{{p.answer}}}"
        for step in steps[:-1]:
            a, op, b, c = STEP.fullmatch(step).groups()
            a, b, c = int(a), int(b), int(c)
            assert 0 <= a <= world.max_value and 0 <= c <= world.max_value
            assert c == {"+": a + b, "-": a - b, "*": a * b}[op]
            assert (2 <= b <= world.mul_max) if op == "*" else (1 <= b <= world.addsub_max)
        assert first_wrong_step(p, p.solution) is None
        assert grade_answer(extract_answer(p.solution), p.answer)


def test_knobs_change_the_world():
    world = ArithmeticWorld(max_value=20, addsub_max=3, mul_max=1, min_ops=2, max_ops=3)
    train, test = make_splits(world, n_train=200, n_test=20, seed=0)
    for p in train + test:
        assert p.level in (2, 3) and "*" not in p.solution and "multiply" not in p.question
        assert all(0 <= int(v) <= 20 for v in re.findall(r"\d+", p.solution))


def test_too_small_world_is_a_clear_error():
    with pytest.raises(ValueError, match="too few distinct problems"):
        make_splits(ArithmeticWorld(max_value=5, addsub_max=2, max_ops=1), 500, 10, seed=0)


def test_bad_split_sizes():
    with pytest.raises(ValueError, match="n_test"):
        make_splits(ArithmeticWorld(), n_train=10, n_test=-1, seed=0)


def test_make_splits_at_profile_scale():
    # no wall-time bound here (speed targets live in benchmarks/): ~1 s alone, but a timed unit
    # test failed at 23 s on the shared 2-core machine under load
    train, test = make_splits(ArithmeticWorld(), n_train=20000, n_test=500, seed=1)
    assert len(train) == 20000 and len(test) == 500
    assert len({p.question for p in train + test}) == 20500


# ---- the oracle ---------------------------------------------------------------------------

Q = "Start with 23. Add 7, multiply by 3, subtract 15. What is the result?"
P = Problem(id="t-1", question=Q, answer="75", solution="23+7=30\n30*3=90\n90-15=75\n\\boxed{75}",
            level=3)
REF = P.solution

ORACLE_CASES = [
    # (solution, first wrong step index or None)
    (REF, None),
    ("", None),
    ("  \n\n ", None),
    ("23+7=30", None),  # correct unfinished prefix
    ("23+7=30\n30*3=90\n", None),
    ("23+7=30\n30*3=90\n90-15=75", None),
    ("23 + 7 = 30\n30 × 3 = 90\n90 - 15 = 75\n\\boxed{ 75 }", None),
    ("23+7=30\n30x3=90\n90−15=75\n\\boxed{75}", None),  # x for times, unicode minus
    ("23+7=30\n\n30X3=90\r\n90-15=75\n\\boxed{75}\n", None),  # blank line, CR, trailing newline
    ("23+7=31", 0),  # wrong result
    ("23+8=31", 0),  # wrong operand
    ("23-7=16", 0),  # wrong operator
    ("23*7=161", 0),
    ("24+7=31", 0),  # wrong left operand
    ("7+23=30", 0),  # operands swapped: not the derivation format
    ("23+7=30 so far", 0),  # extra text: does not parse
    ("23+7=", 0),
    ("=30", 0),
    ("30", 0),
    ("hello", 0),
    ("\U0001F642\U0001F642", 0),
    ("٢٣+7=30", 0),  # non-ASCII digits are not read as numbers
    ("23+7=" + "3" * 5000, 0),  # huge number: no int() blow-up
    ("\\boxed{75}", 0),  # right value, boxed before any operation is done
    ("23+7=30\n\\boxed{30}", 1),  # boxed too early
    ("23+7=30\n30*3=91", 1),
    ("23+7=30\n30+3=33", 1),
    ("23+7=30\n30*3=90\n91-15=76", 2),
    ("23+7=30\n30*3=90\n90-15=74\n\\boxed{74}", 2),
    ("23+7=30\n30*3=90\n90-15=75\n\\boxed{76}", 3),  # wrong boxed value
    ("23+7=30\n30*3=90\n90-15=75\n\\boxed{-75}", 3),
    ("23+7=30\n30*3=90\n90-15=75\n75", 3),  # answer not boxed
    ("23+7=30\n30*3=90\n90-15=75\n\\boxed{seventy-five}", 3),
    ("23+7=30\n30*3=90\n90-15=75\nThe answer is \\boxed{75}", 3),  # strict final format
    ("23+7=30\n30*3=90\n90-15=75\n\\boxed{75", 3),  # truncated answer
    ("23+7=30\n30*3=90\n90-15=75\n90-15=75", 3),  # repeated step instead of the answer
    (REF + "\n75", 4),  # extra step after the answer
    (REF + "\n\\boxed{75}", 4),
]


@pytest.mark.parametrize("solution,expected", ORACLE_CASES)
def test_first_wrong_step_table(solution, expected):
    assert first_wrong_step(P, solution) == expected
    labels = step_labels(P, solution)
    n = len(split_steps(solution))
    cut = n if expected is None else expected
    assert labels == [i < cut for i in range(n)]


@pytest.mark.parametrize("solution", [None, 5, b"23+7=30", ["23+7=30"]])
def test_oracle_never_raises_on_non_text(solution):
    assert first_wrong_step(P, solution) == 0
    assert step_labels(P, solution) == []


def test_oracle_multiplying_zero():
    p = Problem(id="z", question="Start with 5. Subtract 5, multiply by 3. What is the result?",
                answer="0", solution="5-5=0\n0*3=0\n\\boxed{0}", level=2)
    assert first_wrong_step(p, p.solution) is None
    assert first_wrong_step(p, "5-5=0\n0*3=3") == 1


def test_oracle_rejects_foreign_problem():
    p = Problem(id="m", question="What is 2+2?", answer="4", solution="\\boxed{4}", level=1)
    with pytest.raises(ValueError, match="not an arithmetic-world question"):
        first_wrong_step(p, "4")
    bad = Problem(id="b", question=Q, answer="76", solution="", level=3)
    with pytest.raises(ValueError, match="answer"):
        first_wrong_step(bad, REF)


def test_oracle_finds_every_single_corruption(splits):
    """Corrupt one random step of many reference solutions: the oracle points at it."""
    rng = random.Random(0)
    for p in splits[1]:
        steps = split_steps(p.solution)
        k = rng.randrange(len(steps))
        bad = list(steps)
        if k == len(steps) - 1:
            bad[k] = f"\\boxed{{{int(p.answer) + rng.choice([-1, 1])}}}"
        else:
            a, op, b, c = STEP.fullmatch(steps[k]).groups()
            bad[k] = rng.choice([f"{a}{op}{b}={int(c) + 1}", f"{int(a) + 1}{op}{b}={c}",
                                 f"{a}{op}{int(b) + 1}={c}"])
        assert first_wrong_step(p, join_steps(bad)) == k
        assert first_wrong_step(p, join_steps(bad[:k])) is None


def test_oracle_fuzz_never_raises_and_agrees_with_grading(splits):
    """Random near-miss and junk text: labels always fit the steps; a complete solution the
    oracle passes also grades correct."""
    rng = random.Random(1)
    junk = list("0123456789+-*x= {}\\\n") + ["\\boxed{", "×", "−", "é", "\U0001F642"]
    for it in range(400):
        p = splits[1][it % len(splits[1])]
        steps = split_steps(p.solution)
        if it % 2:
            text = "".join(rng.choice(junk) for _ in range(rng.randint(0, 30)))
        else:  # the reference with one character changed, dropped or duplicated
            text = join_steps(steps)
            k = rng.randrange(len(text))
            text = rng.choice([text[:k] + rng.choice(junk) + text[k + 1:],
                               text[:k] + text[k + 1:], text[:k] + text[k] + text[k:]])
        bad = first_wrong_step(p, text)
        assert len(step_labels(p, text)) == len(split_steps(text))
        if bad is None and len(split_steps(text)) == len(steps):
            assert grade_answer(extract_answer(text), p.answer)


def test_operand_bound_grows_with_level():
    world = ArithmeticWorld(addsub_max=19, addsub_max_hardest=89, min_ops=1, max_ops=8)
    assert [world.addsub_bound(lv) for lv in (1, 8)] == [19, 89]
    assert world.addsub_bound(4) == 49  # linear in between
    assert ArithmeticWorld().addsub_bound(8) == 19  # 0 = no growth (the default)
    _, test = make_splits(world, 0, 400, seed=1)
    for p in test:
        operands = [int(b) for op, b in re.findall(r"(add|subtract) (\d+)", p.question)]
        assert all(1 <= b <= world.addsub_bound(p.level) for b in operands)
    hard = [int(b) for p in test if p.level == 8 for _, b in re.findall(r"(add|subtract) (\d+)", p.question)]
    assert max(hard) > 19, "the hardest level must use operands beyond the easy bound"
    with pytest.raises(ValueError, match="addsub_max_hardest"):
        ArithmeticWorld(addsub_max_hardest=-1)


def test_value_bound_grows_with_level_and_every_value_respects_it():
    world = ArithmeticWorld(max_value=99, max_value_hardest=999, addsub_max_hardest=99, min_ops=1, max_ops=8)
    assert [world.value_bound(lv) for lv in (1, 8)] == [99, 999]
    assert world.value_bound(4) == 485  # 99 + 3/7 * 900, rounded
    assert ArithmeticWorld().value_bound(8) == 99  # 0 = no growth (the default)
    _, test = make_splits(world, 0, 400, seed=2)
    for p in test:
        values = [int(v) for v in re.findall(r"\d+", p.solution)]
        assert max(values) <= world.value_bound(p.level)
        assert first_wrong_step(p, p.solution) is None
    top = max(int(p.answer) for p in test if p.level == 8)
    assert top > 99, "the hardest level must reach 3-digit values"
    with pytest.raises(ValueError, match="max_value_hardest"):
        ArithmeticWorld(max_value_hardest=-5)


def test_first_per_level_keeps_a_fixed_number_per_level_in_order():
    from ttc_lib.tasks.problem import Problem, first_per_level

    problems = [Problem(id=f"q{i}", question="q", answer="1", solution="", level=i % 3 + 1) for i in range(10)]
    kept = first_per_level(problems, 2)
    assert [p.id for p in kept] == ["q0", "q1", "q2", "q3", "q4", "q5"]
    assert first_per_level(problems, 0) == problems
    with pytest.raises(ValueError, match="per_level must be an integer >= 0"):
        first_per_level(problems, -1)
