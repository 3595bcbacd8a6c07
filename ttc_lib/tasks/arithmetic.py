"""The synthetic step-by-step math world: chain arithmetic with an exact step oracle.

A problem starts from a number and applies 1-8 operations ("Start with 23. Add 7, multiply by
3, subtract 15. What is the result?"). The reference solution writes one operation per step
("23+7=30", "30*3=90", "90-15=75") and ends with "\\boxed{75}". Difficulty grows smoothly
with the number of operations, which is the Problem's ``level``.

Because the world is fully known, ``first_wrong_step`` says exactly which step of ANY text
first leaves a correct derivation: the ground truth against which verifiers are measured.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass, fields

from ttc_lib.tasks.problem import Problem
from ttc_lib.tasks.steps import join_steps, split_steps

_OP_WORDS = {"+": "add", "-": "subtract", "*": "multiply by"}
_WORD_OPS = {w: op for op, w in _OP_WORDS.items()}


@dataclass(frozen=True)
class ArithmeticWorld:
    """Knobs of the world; the defaults are learnable by a ~1M-parameter model in minutes."""

    max_value: int = 99  # every value, start and intermediates included, lies in [0, max_value]
    addsub_max: int = 19  # add/subtract operands are drawn from 1..addsub_max
    mul_max: int = 5  # multiply operands are drawn from 2..mul_max (1 = no multiplication)
    min_ops: int = 1  # fewest operations in a problem (easiest level)
    max_ops: int = 8  # most operations in a problem (hardest level)
    # Operand size grows with the level: the add/subtract bound rises linearly from addsub_max
    # at min_ops to addsub_max_hardest at max_ops (0 = no growth). Longer chains alone make a
    # well-trained model only slowly worse (per-step errors compound); larger operands make the
    # hardest levels hard per step too, as MATH's level 5 is for a small model.
    addsub_max_hardest: int = 0
    # Likewise the value range: every value stays in [0, value_bound(level)], rising linearly from
    # max_value at min_ops to max_value_hardest at max_ops (0 = no growth). 3-digit values are what
    # a ~1M model learns slowly, so the top levels stay hard however well it trains.
    max_value_hardest: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"ArithmeticWorld.{f.name} must be an int, got {value!r}")
        lower = {"max_value": 1, "addsub_max": 1, "mul_max": 1, "min_ops": 1, "addsub_max_hardest": 0,
                 "max_value_hardest": 0}
        for name, low in lower.items():
            if getattr(self, name) < low:
                raise ValueError(f"ArithmeticWorld.{name} must be >= {low}, got {getattr(self, name)}")
        if self.max_ops < self.min_ops:
            raise ValueError(f"ArithmeticWorld.max_ops ({self.max_ops}) must be >= "
                             f"min_ops ({self.min_ops})")

    @property
    def levels(self) -> list[int]:
        return list(range(self.min_ops, self.max_ops + 1))

    def addsub_bound(self, level: int) -> int:
        """Largest add/subtract operand at ``level`` (see addsub_max_hardest)."""
        return self._grow(self.addsub_max, self.addsub_max_hardest, level)

    def value_bound(self, level: int) -> int:
        """Largest value (start, intermediate or answer) at ``level`` (see max_value_hardest)."""
        return self._grow(self.max_value, self.max_value_hardest, level)

    def _grow(self, easiest: int, hardest: int, level: int) -> int:
        if not hardest or self.max_ops == self.min_ops:
            return easiest
        share = (level - self.min_ops) / (self.max_ops - self.min_ops)
        return round(easiest + share * (hardest - easiest))


def _apply(value: int, op: str, operand: int) -> int:
    if op == "+":
        return value + operand
    if op == "-":
        return value - operand
    return value * operand


def _sample_ops(world: ArithmeticWorld, rng: random.Random, n_ops: int) -> tuple[int, list]:
    """A start value and n_ops (op, operand) pairs keeping every intermediate in range."""
    top, rand = world.value_bound(n_ops), rng.random  # rand() arithmetic: ~3x faster than randint
    addsub = world.addsub_bound(n_ops)
    value = start = 1 + int(rand() * top)
    ops = []
    for _ in range(n_ops):
        # Choose among the operations feasible here, so no sample is ever rejected.
        kinds = []
        if value < top:
            kinds.append("+")
        if value > 0:
            kinds.append("-")
        if world.mul_max >= 2 and value * 2 <= top:
            kinds.append("*")
        op = kinds[int(rand() * len(kinds))]
        if op == "+":
            operand = 1 + int(rand() * min(addsub, top - value))
        elif op == "-":
            operand = 1 + int(rand() * min(addsub, value))
        else:
            high = min(world.mul_max, top // value) if value else world.mul_max
            operand = 2 + int(rand() * (high - 1))
        ops.append((op, operand))
        value = _apply(value, op, operand)
    return start, ops


def _question(start: int, ops: list) -> str:
    phrases = [f"{_OP_WORDS[op]} {operand}" for op, operand in ops]
    body = ", ".join(phrases)
    return f"Start with {start}. {body[0].upper()}{body[1:]}. What is the result?"


def _problem(pid: str, start: int, ops: list, question: str) -> Problem:
    steps, value = [], start
    for op, operand in ops:
        new = _apply(value, op, operand)
        steps.append(f"{value}{op}{operand}={new}")
        value = new
    steps.append(f"\\boxed{{{value}}}")
    return Problem(id=pid, question=question, answer=str(value),
                   solution=join_steps(steps), level=len(ops))


def _quota(total: int, levels: list[int], power: float = 0.0) -> dict[int, int]:
    """Counts per level proportional to ``level ** -power`` (0: equal counts).

    Largest-remainder rounding; ties go to the lowest levels, so ``power=0`` gives equal counts
    with the remainder one each on the lowest levels.
    """
    weights = [lv ** -power for lv in levels]
    exact = [total * w / sum(weights) for w in weights]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(levels)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[:total - sum(counts)]:
        counts[i] += 1
    return dict(zip(levels, counts))


def _draw(world: ArithmeticWorld, rng: random.Random, level: int, want: int,
          taken: set[str]) -> list[tuple[int, list, str]]:
    """Up to ``want`` new distinct problems of one level (fewer if the level runs dry)."""
    out, misses = [], 0
    max_misses = 200 + 5 * want  # a small level (few distinct questions) stops early
    while len(out) < want and misses < max_misses:
        start, ops = _sample_ops(world, rng, level)
        q = _question(start, ops)
        if q in taken:
            misses += 1
            continue
        taken.add(q)
        out.append((start, ops, q))
    return out


def _draw_split(world: ArithmeticWorld, seed: int, split: str, total: int,
                taken: set[str], power: float = 0.0) -> list[tuple[int, list, str]]:
    levels = world.levels
    quota = _quota(total, levels, power)
    # One RNG stream per (split, level): a level's problems do not depend on other levels.
    rngs = {lv: random.Random(f"ttc-arith/{seed}/{split}/{lv}") for lv in levels}
    drawn = {lv: _draw(world, rngs[lv], lv, quota[lv], taken) for lv in levels}
    # Levels that ran dry (few distinct questions: 1 op has ~3.6k) share their shortfall out
    # over the levels that still have room, in the same proportions (level ** -power).
    active = [lv for lv in levels if len(drawn[lv]) == quota[lv]]
    short = total - sum(len(v) for v in drawn.values())
    while short > 0 and active:
        share = _quota(short, active, power)
        for lv in list(active):
            more = _draw(world, rngs[lv], lv, share[lv], taken)
            drawn[lv] += more
            if len(more) < share[lv]:
                active.remove(lv)
        short = total - sum(len(v) for v in drawn.values())
    if short > 0:
        raise ValueError(f"the world has too few distinct problems for {total} {split} problems "
                         f"(short by {short}); raise max_ops or max_value")
    items = [item for lv in levels for item in drawn[lv]]
    random.Random(f"ttc-arith/{seed}/{split}/order").shuffle(items)  # mix levels in any prefix
    return items


def make_splits(world: ArithmeticWorld, n_train: int, n_test: int, seed: int,
                train_level_power: float = 0.0) -> tuple[list[Problem], list[Problem]]:
    """Deterministic (train, test) problems, disjoint by question text, no duplicates.

    Test is balanced across levels (equal counts; the remainder on the lowest levels) and does
    not depend on ``n_train`` or ``train_level_power``; train is drawn from what test left, with
    counts per level proportional to ``level ** -train_level_power`` (0: uniform; 1: half as many
    2-operation problems as 1-operation ones, ... — a curriculum skewed to easy problems, as
    real training sets are; levels that run out of distinct problems pass their shortfall to
    the others in the same proportions). Ids are ``arith-train-00000`` / ``arith-test-00000`` in list order.
    """
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"make_splits: {name} must be an int >= 0, got {n!r}")
    if (not isinstance(train_level_power, (int, float)) or isinstance(train_level_power, bool)
            or not 0 <= train_level_power <= 4):
        raise ValueError(f"make_splits: train_level_power must be a number in [0, 4], "
                         f"got {train_level_power!r}")
    if not isinstance(world, ArithmeticWorld):
        raise ValueError(f"make_splits: world must be an ArithmeticWorld, got {type(world).__name__}")
    taken: set[str] = set()
    test = _draw_split(world, seed, "test", n_test, taken)
    train = _draw_split(world, seed, "train", n_train, taken, float(train_level_power))
    width = max(5, len(str(max(n_train, n_test))))
    return ([_problem(f"arith-train-{i:0{width}d}", *item) for i, item in enumerate(train)],
            [_problem(f"arith-test-{i:0{width}d}", *item) for i, item in enumerate(test)])


# ---- the oracle ------------------------------------------------------------------------------

_QUESTION_RE = re.compile(r"Start with (\d+)\. (.+)\. What is the result\?", re.ASCII)
_PHRASE_RE = re.compile(r"(add|subtract|multiply by) (\d+)", re.ASCII)
# A step "a op b = c": spaces anywhere, * x X × · for times, - or the unicode minus. ASCII
# digits only (int() would read other scripts' digits), at most 18 so int() stays cheap.
_NUM = r"\s*(-?[0-9]{1,18})\s*"
_STEP_RE = re.compile(_NUM + r"([-+*xX×·−])" + _NUM + "=" + _NUM)
_FINAL_RE = re.compile(r"\s*\\boxed\{" + _NUM + r"\}\s*")
_OP_ALIASES = {"+": "+", "-": "-", "−": "-", "*": "*", "x": "*", "X": "*", "×": "*", "·": "*"}


@functools.lru_cache(maxsize=1 << 16)
def _reference(question: str) -> tuple[tuple[int, str, int, int], ...]:
    """The correct steps (left, op, operand, result) parsed from the question text."""
    m = _QUESTION_RE.fullmatch(question.strip())
    if not m:
        raise ValueError(f"not an arithmetic-world question: {question[:80]!r}")
    value = int(m.group(1))
    phrases = m.group(2).lower().split(", ")
    steps = []
    for phrase in phrases:
        pm = _PHRASE_RE.fullmatch(phrase)
        if not pm:
            raise ValueError(f"cannot read operation {phrase!r} in {question[:80]!r}")
        op, operand = _WORD_OPS[pm.group(1)], int(pm.group(2))
        new = _apply(value, op, operand)
        steps.append((value, op, operand, new))
        value = new
    return tuple(steps)


def reference_steps(question: str) -> tuple[tuple[int, str, int, int], ...]:
    """The correct steps of an arithmetic-world question: (left, op, operand, result) each, op in
    "+", "-", "*". Raises ValueError for a question not from this world."""
    return _reference(question)


def first_wrong_step(problem: Problem, solution: str) -> int | None:
    """Index into ``split_steps(solution)`` of the first step off a correct derivation.

    Step i < n_ops must read "left op operand = result" with the running correct value as
    left operand and the question's i-th operation; step n_ops must be exactly
    "\\boxed{answer}". Wrong: unparsable text, another operand/operator/order, a wrong result,
    a box before all operations are done, a wrong boxed value, any step after the box. None
    when every step present is correct (a correct unfinished prefix included).
    Raises ValueError only if ``problem`` is not from this world; never on ``solution``.
    """
    ref = _reference(problem.question)
    if str(ref[-1][3] if ref else "") != problem.answer.strip():
        raise ValueError(f"problem {problem.id}: answer {problem.answer!r} does not follow "
                         "from its question")
    if not isinstance(solution, str):
        return 0
    steps = split_steps(solution)
    for i, step in enumerate(steps):
        if i < len(ref):
            m = _STEP_RE.fullmatch(step)
            if not m or _OP_ALIASES[m.group(2)] != ref[i][1]:
                return i
            if (int(m.group(1)), int(m.group(3)), int(m.group(4))) != (ref[i][0], ref[i][2], ref[i][3]):
                return i
        elif i == len(ref):
            m = _FINAL_RE.fullmatch(step)
            if not m or int(m.group(1)) != ref[-1][3]:
                return i
        else:
            return i  # anything after the answer is an extra step
    return None


def step_labels(problem: Problem, solution: str) -> list[bool]:
    """One label per step of ``split_steps(solution)``: True before the first wrong step.

    Every step from the first wrong one on is False: a derivation built on an error is wrong
    (the prefix-correctness semantics of PRM800K and of Monte-Carlo labels).
    """
    n = len(split_steps(solution)) if isinstance(solution, str) else 0
    bad = first_wrong_step(problem, solution)
    cut = n if bad is None else bad
    return [i < cut for i in range(n)]
