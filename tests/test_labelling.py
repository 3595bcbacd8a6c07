"""Monte-Carlo step labels on a scripted fake generator: every fraction is checkable by hand."""

from __future__ import annotations

import math
import random

import pandas as pd
import pytest

from ttc_lib.generation.generator import Sample
from ttc_lib.tasks import ArithmeticWorld, Problem, make_splits
from ttc_lib.tasks.steps import split_steps
from ttc_lib.verifiers.labelling import LabelConfig, label_agreement, label_solutions, to_labelled

Q1 = Problem("q1", "Start with 2. Add 3, multiply by 2. What is the result?", "10",
             "2+3=5\n5*2=10\n\\boxed{10}", 2)
Q2 = Problem("q2", "Start with 4. Multiply by 5. What is the result?", "20", "4*5=20\n\\boxed{20}", 1)

SAMPLES = {
    Q1.question: [Sample("2+3=5\n5*2=10\n\\boxed{10}", 9, "end"),  # right: no rollouts
                  Sample("2+3=6\n6*2=12\n\\boxed{12}", 9, "end"),  # wrong
                  Sample("2+3=6\n6*2=11\n\\boxed{11}", 9, "end"),  # wrong, shares prefix "2+3=6\n"
                  Sample("2+3=5\n5*2=10\n\\boxed{1", 8, "length"),  # cut off: dropped
                  Sample("2+3=5\n5*2=10", 6, "end")],  # EOS without an answer: dropped
    Q2.question: [Sample("4*5=21\n\\boxed{20}", 5, "end"),  # right answer, wrong step
                  Sample("4*5=20\n\\boxed{21}", 5, "end"),  # wrong
                  Sample("4*5=20\n\\boxed{2", 5, "length"),
                  Sample("\\boxed{}", 3, "end"),  # empty box: no answer
                  Sample("4*5=21\n\\boxed{20}", 5, "end")],  # same text as sample 0
}
END = lambda t: Sample(t, 3, "end")  # noqa: E731
ROLLOUTS = {  # (question, prefix) -> 8 scripted continuations
    (Q1.question, "2+3=6\n"): [END("6*2=10\n\\boxed{10}"), END("\\boxed{10}"), Sample("\\boxed{10}", 3, "length")]
                              + [END("\\boxed{12}")] * 5,  # 2 right of 8 (the cut-off one is not)
    (Q1.question, "2+3=6\n6*2=12\n"): [END("\\boxed{12}")] * 8,
    (Q1.question, "2+3=5\n"): [END("\\boxed{10}")] * 4 + [END("\\boxed{9}")] * 4,
    (Q1.question, "2+3=5\n5*2=10\n"): [END("\\boxed{10}")] * 8,
    (Q2.question, "4*5=20\n"): [END("\\boxed{20}")] * 8,
}


class ScriptedGenerator:
    """Same .sample signature as generation.Generator; records every call."""

    identity = "scripted"

    def __init__(self):
        self.calls: list[dict] = []

    def sample(self, questions, n, *, temperature=1.0, top_p=1.0, max_new_tokens=256, seed=0, progress=True,
               prefixes=None):
        self.calls.append({"questions": list(questions), "prefixes": prefixes, "n": n, "seed": seed})
        if prefixes is None:
            return [SAMPLES[q][:n] for q in questions]
        return [ROLLOUTS.get((q, p), [END("\\boxed{0}")] * 8)[:n] for q, p in zip(questions, prefixes)]


def _rows(frame, qid, sample):
    return frame[(frame.question_id == qid) & (frame["sample"] == sample)].sort_values("step")


def test_config_validation_names_the_field():
    for bad in (dict(samples_per_question=0), dict(rollouts_per_step=1.5), dict(temperature=0),
                dict(top_p=0), dict(skip_correct=1), dict(seed=-1), dict(max_new_tokens=0)):
        field = next(iter(bad))
        with pytest.raises(ValueError, match=f"LabelConfig.{field}"):
            LabelConfig(**bad)


def test_scripted_labels_exact(tmp_path):
    gen = ScriptedGenerator()
    frame = label_solutions(gen, [Q1, Q2], LabelConfig(samples_per_question=5, rollouts_per_step=8), tmp_path,
                            progress=False)
    assert frame.attrs["dropped"] == {"length": 2, "no_answer": 2, "kept": 6}
    assert sorted(set(zip(frame.question_id, frame["sample"]))) == [("q1", 0), ("q1", 1), ("q1", 2), ("q2", 0),
                                                                     ("q2", 1), ("q2", 4)]
    right = _rows(frame, "q1", 0)  # skip_correct: all 1, no rollouts
    assert list(right.soft) == [1, 1, 1] and right.hard.all() and (right.rollouts == 0).all()
    wrong = _rows(frame, "q1", 1)
    assert list(wrong.soft) == [0.25, 0.0, 0.0] and list(wrong.hard) == [True, False, False]
    assert list(wrong.rollouts) == [8, 8, 0] and list(wrong.oracle) == [0, 0, 0]
    assert list(_rows(frame, "q1", 2).soft) == [0.25, 0.0, 0.0]
    assert list(_rows(frame, "q2", 1).soft) == [1.0, 0.0] and list(_rows(frame, "q2", 1).oracle) == [1, 0]
    assert list(_rows(frame, "q2", 0).oracle) == [0, 0]  # right answer, wrong step: the oracle knows
    assert frame.finished.all() and (frame.n_steps == frame.solution.map(lambda s: len(split_steps(s)))).all()
    # one sampling call, one rollout call; shared prefixes rolled out once
    assert len(gen.calls) == 2 and gen.calls[0]["prefixes"] is None
    pairs = list(zip(gen.calls[1]["questions"], gen.calls[1]["prefixes"]))
    assert sorted(pairs) == sorted([(Q1.question, "2+3=6\n"), (Q1.question, "2+3=6\n6*2=12\n"),
                                    (Q1.question, "2+3=6\n6*2=11\n"), (Q2.question, "4*5=20\n")])
    tp = frame.attrs["throughput"]
    assert tp["rollouts_generated"] == 32 and tp["step_rollout_uses"] == 5 and tp["prefixes_needed"] == 4


def test_no_skip_rolls_out_correct_solutions(tmp_path):
    gen = ScriptedGenerator()
    frame = label_solutions(gen, [Q1], LabelConfig(samples_per_question=5, skip_correct=False), tmp_path,
                            progress=False)
    right = _rows(frame, "q1", 0)
    assert list(right.soft) == [0.5, 1.0, 1.0] and list(right.rollouts) == [8, 8, 0]


def test_to_labelled_kinds(tmp_path):
    frame = label_solutions(ScriptedGenerator(), [Q1, Q2], LabelConfig(samples_per_question=5), tmp_path,
                            progress=False)
    soft, hard, oracle, outcome = (to_labelled(frame, k) for k in ("soft", "hard", "oracle", "outcome"))
    assert len(soft) == 6 and soft[1].labels == (0.25, 0.0, 0.0) and soft[1].question == Q1.question
    assert hard[1].labels == (1.0, 0.0, 0.0) and oracle[3].labels == (0.0, 0.0)
    assert outcome[1].labels == (None, None, 0.0) and outcome[0].labels == (None, None, 1.0)
    with pytest.raises(ValueError, match="kind"):
        to_labelled(frame, "bogus")


def test_label_agreement_scripted(tmp_path):
    frame = label_solutions(ScriptedGenerator(), [Q1, Q2], LabelConfig(samples_per_question=2), tmp_path,
                            progress=False)  # q1: samples 0,1; q2: samples 0,1 -> 10 rows
    a = label_agreement(frame)
    # q1s0 right (3 agree both); q1s1 hard T,F,F vs 0,0,0 (2), soft (3); q2s0 labels 1,1 vs oracle 0,0 (0);
    # q2s1 hard/soft 1,0 vs 1,0 (2)
    assert a["steps"] == 10 and a["hard"] == pytest.approx(7 / 10) and a["soft"] == pytest.approx(8 / 10)
    assert a["hard_incorrect"] == pytest.approx(4 / 5) and a["soft_incorrect"] == 1.0
    assert a["hard_rolled"] == pytest.approx(2 / 3) and a["soft_rolled"] == 1.0
    assert a["hard_false_right"] == pytest.approx(3 / 6) and a["soft_false_right"] == pytest.approx(2 / 6)
    assert a["hard_false_wrong"] == 0.0
    assert math.isnan(label_agreement(frame.assign(oracle=float("nan")))["hard"])


# ---- resume -------------------------------------------------------------------------------------
class RandomGenerator:
    """Deterministic pseudo-policy on arithmetic problems: outputs depend on (seed, question, prefix, i)."""

    identity = "random"

    def __init__(self, problems, fail_after_calls=None):
        self.answers = {p.question: p for p in problems}
        self.calls, self.pairs = 0, []

    def sample(self, questions, n, *, temperature=1.0, top_p=1.0, max_new_tokens=256, seed=0, progress=True,
               prefixes=None):
        self.calls += 1
        prefixes = [""] * len(questions) if prefixes is None else prefixes
        self.pairs += list(zip(questions, prefixes))
        out = []
        for q, pre in zip(questions, prefixes):
            ref = split_steps(self.answers[q].solution)
            rows = []
            for i in range(n):
                rng = random.Random(f"{seed}/{q}/{pre}/{i}")
                done = len(split_steps(pre))
                steps = [s if rng.random() < 0.8 else s.replace("=", "=1") for s in ref[done:-1]]
                box = ref[-1] if rng.random() < 0.6 else "\\boxed{1}"
                reason = "length" if rng.random() < 0.1 else "end"
                rows.append(Sample("\n".join(steps + [box]), 10, reason))
            out.append(rows)
        return out


def test_resume_after_interruption(tmp_path):
    problems = make_splits(ArithmeticWorld(min_ops=2, max_ops=4), n_train=6, n_test=0, seed=3)[0]
    config = LabelConfig(samples_per_question=6, rollouts_per_step=4)
    full = label_solutions(RandomGenerator(problems), problems, config, tmp_path / "full", progress=False,
                           batch_prefixes=3)

    class Stop(Exception):
        pass

    def stop_after_two(info):
        if info["stage"] == "rollouts" and info["batch"] == 2:
            raise Stop

    first = RandomGenerator(problems)
    with pytest.raises(Stop):
        label_solutions(first, problems, config, tmp_path / "cut", progress=False, on_batch=stop_after_two,
                        batch_prefixes=3)
    done = set(first.pairs)  # 1 sampling call + 2 finished rollout batches
    assert first.calls == 3
    second = RandomGenerator(problems)
    again = label_solutions(second, problems, config, tmp_path / "cut", progress=False, batch_prefixes=3)
    assert second.pairs and not done & set(second.pairs)  # nothing finished is generated again
    assert all(pre for _, pre in second.pairs)  # the samples came from the cache
    pd.testing.assert_frame_equal(again, full)
    third = RandomGenerator(problems)
    label_solutions(third, problems, config, tmp_path / "cut", progress=False)
    assert third.calls == 0


def test_labels_do_not_depend_on_the_number_of_workers(tmp_path):
    problems = make_splits(ArithmeticWorld(min_ops=2, max_ops=4), n_train=6, n_test=0, seed=3)[0]
    config = LabelConfig(samples_per_question=6, rollouts_per_step=4)
    one, two = (label_solutions(RandomGenerator(problems), problems, config, tmp_path / f"w{w}", progress=False,
                                batch_prefixes=3, workers=w) for w in (1, 2))  # 2: batches in two processes
    pd.testing.assert_frame_equal(one, two)
    assert two.attrs["throughput"]["rollouts_generated"] == one.attrs["throughput"]["rollouts_generated"] > 0
