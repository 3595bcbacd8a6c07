"""Revisions: training data pairing, context window, budget grid, hierarchical selection, masking."""

from __future__ import annotations

import zlib
from collections import Counter

import pandas as pd
import pytest

from ttc_lib.analysis.results_table import attach_bins
from ttc_lib.generation.generator import Sample
from ttc_lib.revisions.analysis import (
    accuracy_by_ratio,
    best_ratios,
    nested_accuracy,
    pass1_by_step,
    ratio_label,
    transitions,
)
from ttc_lib.revisions.data import (
    RevisionExample,
    build_revision_data,
    closest,
    edit_distance,
    to_problems,
    training_splits,
)
from ttc_lib.revisions.training import train_revision_model
from ttc_lib.search import revision_chains as rv
from ttc_lib.tasks.problem import Problem
from ttc_lib.tasks.prompts import EOS_TEXT, format_prompt, revision_question

PROBLEMS = [Problem("q0", "Start with 4. Multiply by 5. What is the result?", "20", "4*5=20\n\\boxed{20}", 1),
            Problem("q1", "Start with 61. Subtract 19. What is the result?", "42", "61-19=42\n\\boxed{42}", 1)]


class StubGenerator:
    """Deterministic fake: a sample's text is a function of (seed, prompt, index); records every call."""

    def __init__(self, tokenizer):
        self.tokenizer, self.prompt_style, self.num_params, self.identity = tokenizer, "plain", 1000, "stub-reviser"
        self.calls: list[tuple[list[str], int, int]] = []

    def sample(self, questions, n, *, temperature=1.0, max_new_tokens=256, seed=0, progress=True):
        self.calls.append((list(questions), n, seed))
        out = []
        for q in questions:
            value = zlib.crc32(f"{seed}|{q}".encode()) % 7
            out.append([Sample(f"{value}+{i}={value + i}\n\\boxed{{{(value + i) % 3 + 19}}}", 5, "end")
                        for i in range(n)])
        return out


class StubVerifier:
    name, num_params, tokens_scored, identity = "stub", 10, 0, "stub-verifier"

    def score(self, questions, solutions):
        return [[0.5] * (s.count("\n") + 1) for s in solutions]


def test_edit_distance():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert edit_distance("abc", "abc") == 0
    assert closest("12+3=15", ["99*9=891", "12+3=16", "12+4=16"]) == 1


def answers_table(rows):
    return pd.DataFrame([{"question_id": q, "sample": i, "text": t, "answer": a, "finished": f, "correct": c}
                         for i, (q, t, a, f, c) in enumerate(rows)])


WRONG = ["9*9=81\n\\boxed{81}", "4*5=21\n\\boxed{21}", "4*4=16\n\\boxed{16}", "1+1=2\n\\boxed{2}",
         "7-3=4\n\\boxed{4}", "4*6=24\n\\boxed{24}"]
RIGHT = "4*5=20\n\\boxed{20}"


def revision_answers():
    rows = [("q0", w, w.split("{")[1][:-1], True, False) for w in WRONG]
    rows += [("q0", RIGHT, "20", True, True)] * 12
    rows += [("q0", "4*5=20\n4*5=", None, False, False)]  # truncated: never a context attempt
    rows += [("q1", "61-19=42\n\\boxed{42}", "42", True, True)] * 3  # no wrong answers: empty contexts
    return answers_table(rows)


def test_pairing_puts_the_closest_incorrect_answer_last():
    data = build_revision_data(PROBLEMS, revision_answers(), seed=0)
    q0 = [e for e in data if e.question_id == "q0"]
    assert len(q0) == 12 and all(e.target == RIGHT for e in q0)
    with_context = [e for e in q0 if e.context]
    assert with_context, "k ~ U{0..4} drew no context in 12 draws"
    for e in with_context:
        assert e.context[-1] == "4*5=21\n\\boxed{21}"  # distance 2, every other wrong answer >= 3
        assert len(e.context) <= 4 and len(set(e.context)) == len(e.context)
        assert set(e.context) <= set(WRONG)
    assert {len(e.context) for e in q0} - {0} and max(len(e.context) for e in q0) <= 4
    assert len({e.context[:-1] for e in with_context if len(e.context) > 2}) >= 1
    assert all(e.context == () for e in data if e.question_id == "q1")


def test_same_seed_same_data_other_seed_other_data():
    a = build_revision_data(PROBLEMS, revision_answers(), seed=3)
    b = build_revision_data(PROBLEMS, revision_answers(), seed=3)
    c = build_revision_data(PROBLEMS, revision_answers(), seed=4)
    assert a == b
    assert a != c
    # per-question streams: the data of q0 does not depend on the other questions
    alone = build_revision_data(PROBLEMS[:1], revision_answers(), seed=3)
    assert alone == [e for e in a if e.question_id == "q0"]


def test_plain_share_adds_plain_trajectories_and_keeps_the_papers():
    paper = build_revision_data(PROBLEMS, revision_answers(), seed=3)
    mixed = build_revision_data(PROBLEMS, revision_answers(), seed=3, plain_share=0.5)
    everything = build_revision_data(PROBLEMS, revision_answers(), seed=3, plain_share=1.0)
    extra = Counter(mixed) - Counter(paper)
    assert not Counter(paper) - Counter(mixed)  # the paper's trajectories are all still there
    assert extra and all(e.context == () and e.target in (RIGHT, "61-19=42\n\\boxed{42}") for e in extra)
    n_correct = 12 + 3
    assert len(everything) == len(paper) + n_correct  # plain_share=1: every correct answer once more, plain
    assert len(paper) < len(mixed) < len(everything)
    assert build_revision_data(PROBLEMS, revision_answers(), seed=3, plain_share=0.5) == mixed
    with pytest.raises(ValueError, match="plain_share"):
        build_revision_data(PROBLEMS, revision_answers(), plain_share=1.5)


def test_keep_share_adds_trajectories_whose_last_attempt_is_correct():
    paper = build_revision_data(PROBLEMS, revision_answers(), seed=3)
    kept = build_revision_data(PROBLEMS, revision_answers(), seed=3, keep_share=1.0)
    extra = Counter(kept) - Counter(paper)
    assert not Counter(paper) - Counter(kept)  # the paper's trajectories are all still there
    assert sum(extra.values()) == 12 + 3  # keep_share=1: one "keep" trajectory per correct answer
    q1_right = "61-19=42\n\\boxed{42}"
    for e in extra.elements():
        assert e.target == e.context[-1] == {"q0": RIGHT, "q1": q1_right}[e.question_id]  # the last attempt is right
        assert 1 <= len(e.context) <= 4 and set(e.context[:-1]) <= set(WRONG)  # the others wrong, random
    assert len({e.context for e in extra.elements() if e.question_id == "q0"}) > 1
    some = build_revision_data(PROBLEMS, revision_answers(), seed=3, keep_share=0.5)
    assert len(paper) < len(some) < len(kept)


def test_training_loss_is_on_the_target_only(tiny_tokenizer):
    from ttc_lib.models.batches import IGNORE_INDEX, collate, tokenize_problems

    example = RevisionExample("q0", PROBLEMS[0].question, (WRONG[0], WRONG[1]), RIGHT)
    (ids, n_prompt), = tokenize_problems(to_problems([example]), tiny_tokenizer)
    prompt = tiny_tokenizer.decode(ids[:n_prompt], skip_special_tokens=True)
    assert WRONG[0] in prompt and WRONG[1] in prompt  # the context is all in the masked prompt
    _, labels = collate([(ids, n_prompt)], tiny_tokenizer.pad_token_id)
    trained = [t for t in labels[0].tolist() if t != IGNORE_INDEX]
    assert tiny_tokenizer.decode(trained) == RIGHT + EOS_TEXT
    assert all(t == IGNORE_INDEX for t in labels[0, :n_prompt].tolist())


def test_revision_format_puts_the_question_first_then_the_attempts():
    question = PROBLEMS[0].question
    text = format_prompt(revision_question(question, (WRONG[0], WRONG[1])))
    # the question; the attempts, oldest first, each after an "Attempt:" line; the mark; the question again
    assert text.startswith(question) and text.index(WRONG[0]) < text.index(WRONG[1]) < text.index("Revision:")
    assert text.endswith("Revision:\n" + question + "\n") and text.count("Attempt:") == 2
    assert revision_question(question, ()) == question  # no attempts: the bare question


def test_context_window_keeps_the_last_four_attempts(tiny_tokenizer):
    gen = StubGenerator(tiny_tokenizer)
    chains = rv.run_chains(gen, PROBLEMS, [7, 3], seed=1)
    for p, problem in enumerate(PROBLEMS):
        for c, chain in enumerate(chains[p]):
            assert len(chain) == (7, 3)[c]
            for t, attempt in enumerate(chain):
                assert attempt.context == tuple(a.text for a in chain[max(0, t - 4):t])
                prompt = revision_question(problem.question, attempt.context)
                assert any(prompt in qs for qs, _, s in gen.calls if s == rv.step_seed(1, t))
                assert attempt.prompt_tokens == len(tiny_tokenizer(format_prompt(prompt))["input_ids"])
    assert len(chains[0][0][6].context) == 4 and chains[0][0][6].context[0] == chains[0][0][2].text
    # step 0: both chains share the bare question and take distinct samples of it
    assert chains[0][0][0].text != chains[0][1][0].text


def test_ratio_grid_spends_exactly_n_generations(tiny_tokenizer):
    grid = rv.ratio_grid(16)
    assert grid == [(16, 1), (8, 2), (4, 4), (2, 8), (1, 16)]
    assert rv.staircase(grid) == [16, 8, 4, 4] + [2] * 4 + [1] * 8
    for chains, length in grid:
        gen = StubGenerator(tiny_tokenizer)
        results = rv.revisions(gen, StubVerifier(), PROBLEMS, 16, chains=chains, selection="hierarchical")
        made = sum(len(qs) * n for qs, n, _ in gen.calls)
        assert made == 16 * len(PROBLEMS)
        for r in results:
            assert r.cost.generations == 16 and len(r.candidates) == 16
            assert r.config == {"chains": chains, "length": length, "selection": "hierarchical"}
            assert r.cost.prompt_tokens > 0 and r.cost.verifier_tokens > 0 and r.cost.generated_tokens == 16 * 5
    with pytest.raises(ValueError, match="does not divide"):
        rv.revisions(StubGenerator(tiny_tokenizer), None, PROBLEMS, 16, chains=3, selection="majority")


def test_sweep_slices_equal_separate_runs(tiny_checkpoint, tmp_path):
    from ttc_lib.generation.generator import Generator

    gen = Generator.from_pretrained(tiny_checkpoint, device="cpu")
    frame = rv.sweep(gen, PROBLEMS, [4], seeds=[0], verifiers={}, max_new_tokens=6, cache_path=tmp_path / "c.jsonl",
                     progress=False)
    again = rv.sweep(gen, PROBLEMS, [4], seeds=[0], verifiers={}, max_new_tokens=6, cache_path=tmp_path / "c.jsonl",
                     progress=False)
    pd.testing.assert_frame_equal(frame, again)  # the cached sweep reads back the same
    swept = rv.sweep_results(frame, PROBLEMS, [4], [{"selection": "majority"}], generator_params=gen.num_params)
    assert len(swept) == 3 * len(PROBLEMS)
    for chains, length in rv.ratio_grid(4):
        alone = rv.revisions(gen, None, PROBLEMS, 4, chains=chains, selection="majority", max_new_tokens=6,
                             progress=False)
        mine = [r for r in swept if r.config["chains"] == chains]
        assert [r.candidates for r in mine] == [r.candidates for r in alone]
        assert [r.cost for r in mine] == [r.cost for r in alone]


def test_hierarchical_selection_hand_worked():
    # chain A: "1" x3 at .5 -> winner "1", weight .5 (its best score; the sum 1.5 would win overall)
    # chain B: "3" at .7 vs "2" twice at .2 (.4) -> winner "3", weight .7
    # across winners: "3" (.7) beats "1" (.5); majority over all six answers: "1" (3 votes)
    answers = [["1", "1", "1"], ["3", "2", "2"]]
    scores = [[.5, .5, .5], [.7, .2, .2]]
    assert rv.hierarchical(answers, scores) == "3"
    assert rv.hierarchical([["7", None]], [[.1, .9]]) == "7"  # no answer never wins
    assert rv.hierarchical([[None]], [[.9]]) is None
    rows = [{"question_id": "q0", "seed": 0, "chain": c, "step": t, "text": f"\\boxed{{{a}}}", "answer": a,
             "finished": True, "correct": a == "20", "generated_tokens": 3, "prompt_tokens": 10, "context": "[]",
             "score[v]": s, "verifier_tokens[v]": 12}
            for c, (chain, chain_scores) in enumerate(zip(answers, scores)) for t, (a, s) in
            enumerate(zip(chain, chain_scores))]
    frame = pd.DataFrame(rows)
    (h,) = rv.results_from_frame(frame, PROBLEMS[:1], 2, 3, selection="hierarchical", verifier="v")
    (m,) = rv.results_from_frame(frame, PROBLEMS[:1], 2, 3, selection="majority")
    assert (h.answer, m.answer) == ("3", "1")
    assert h.cost.verifier_tokens == 72 and m.cost.verifier_tokens == 0 and h.cost.generations == 6
    (short,) = rv.results_from_frame(frame, PROBLEMS[:1], 2, 1, selection="majority")
    assert [c.answer for c in short.candidates] == ["1", "3"]


def test_transitions_and_pass1_by_step():
    frame = pd.DataFrame({"seed": 0, "question_id": "q", "chain": [0, 0, 0, 0, 1, 1], "step": [0, 1, 2, 3, 0, 1],
                          "correct": [False, True, False, True, True, True]})
    t = transitions(frame)
    assert t["correct_pairs"] == 2 and t["correct_to_wrong"] == 0.5
    assert t["wrong_pairs"] == 2 and t["wrong_to_correct"] == 1.0
    table = pass1_by_step(frame)
    assert table.pass1.tolist() == [0.5, 1.0, 0.0, 1.0] and table.step.tolist() == [1, 2, 3, 4]


def test_revision_model_trains_and_keeps_the_checkpoint_after_the_minimum(tiny_checkpoint, tmp_path):
    from ttc_lib.generation.generator import Generator
    from ttc_lib.models.train_config import TrainConfig

    data = build_revision_data(PROBLEMS, revision_answers(), seed=0)
    config = TrainConfig(steps=6, batch_size=4, lr=1e-2, warmup_steps=1, bf16=False, seed=0)
    record = train_revision_model(tiny_checkpoint, data[:10], data[10:], config, tmp_path / "rev", eval_every=2,
                                  patience=2, progress=False)
    losses = [loss for _, loss in record["val_curve"]]
    best = losses.index(min(losses))
    assert record["chosen_step"] == record["val_curve"][min(best + 1, len(losses) - 1)][0]
    assert record["val_curve"][0][0] == 0
    gen = Generator.from_pretrained(tmp_path / "rev", device="cpu")
    assert gen.model.config.max_position_embeddings == 1024
    assert train_revision_model(tiny_checkpoint, data[:10], data[10:], config, tmp_path / "rev", eval_every=2,
                                patience=2, progress=False) == record
    assert not (tmp_path / ".rev.work").exists()


def test_accuracy_by_ratio_labels_splits_and_nests_by_bin():
    assert [ratio_label(c, n) for c, n in ((16, 1), (8, 2), (4, 4), (2, 8), (1, 16))] == \
        ["1:16", "1:4", "1:1", "4:1", "16:1"]
    rows = [("q1", "selection=majority,chains=4,length=1", 0, True), ("q2", "selection=majority,chains=4,length=1", 0, False),
            ("q1", "selection=majority,chains=1,length=4", 0, True), ("q2", "selection=majority,chains=1,length=4", 0, True),
            ("q1", "selection=majority,chains=1,length=4", 1, False), ("q2", "selection=majority,chains=1,length=4", 1, True),
            ("q1", "selection=hierarchical,chains=1,length=4,verifier=plain", 0, False),
            ("q2", "selection=hierarchical,chains=1,length=4,verifier=plain", 0, True)]
    table = pd.DataFrame(rows, columns=["question_id", "config", "seed", "correct"]).assign(budget=4)
    acc = accuracy_by_ratio(table)
    seq = acc[(acc.method == "majority") & (acc.chains == 1)]
    assert list(seq.accuracy) == [1.0, 0.5] and set(seq.ratio_label) == {"4:1"} and set(seq.ratio) == {4.0}
    assert set(acc.method) == {"majority", "hierarchical/plain"}
    nested = nested_accuracy(acc)
    assert nested["majority"]["4:1"][4] == {"mean": 0.75, "std": 0.25}
    assert nested["majority"]["1:4"][4] == {"mean": 0.5, "std": 0.0}
    bins = pd.DataFrame({"question_id": ["q1", "q2"], "oracle_bin": [1, 5]})
    by_bin = nested_accuracy(accuracy_by_ratio(attach_bins(table, bins, "oracle")))
    assert by_bin["majority"]["4:1"][4] == {1: 0.5, 5: 1.0}


def test_best_ratios_lists_ties_instead_of_breaking_them_by_order():
    acc = pd.DataFrame({"method": "m", "budget": 16, "bin": [1, 1, 1, 2, 2, 2],
                        "ratio_label": ["16:1", "1:1", "1:16"] * 2, "ratio": [16.0, 1.0, 1 / 16] * 2,
                        "seed": 0, "accuracy": [1.0, 1.0, 1.0, 0.5, 0.75, 0.25]})
    best = best_ratios(acc).set_index("bin")
    assert best.loc[1, "ratio_label"] == "1:16 = 1:1 = 16:1" and best.loc[1, "tied"] == 3
    assert best.loc[2, "ratio_label"] == "1:1" and best.loc[2, "accuracy"] == 0.75 and best.loc[2, "tied"] == 1
    overall = best_ratios(acc.drop(columns="bin").assign(accuracy=[1.0, 0.5, 0.5, 1.0, 0.5, 0.5]))
    assert list(overall.ratio_label) == ["16:1"] and "bin" not in overall


# ------------------------------------------------------------ caches are keyed by the models' identities
def test_sweep_cache_is_keyed_by_the_models_identities(tiny_tokenizer, tmp_path):
    gen, cache, verifier = StubGenerator(tiny_tokenizer), tmp_path / "sweep.jsonl", StubVerifier()
    run = lambda: rv.sweep(gen, PROBLEMS, [2], seeds=[0], verifiers={"v": (verifier, False)},  # noqa: E731
                           max_new_tokens=6, cache_path=cache, progress=False)
    first = run()
    calls = len(gen.calls)
    assert calls > 0
    pd.testing.assert_frame_equal(run(), first)
    assert len(gen.calls) == calls  # same models: read back from the cache
    gen.identity = "retrained-reviser"
    run()
    assert len(gen.calls) > calls  # another reviser at the same path: its chains are generated again
    calls = len(gen.calls)
    verifier.identity = "retrained-verifier"
    run()
    assert len(gen.calls) > calls  # another verifier: chains and scores again


def test_sample_answers_of_a_policy_retrained_in_place_are_not_the_old_ones(tmp_path, tiny_tokenizer, one_thread):
    from ttc_lib.generation.generator import Generator
    from ttc_lib.models.checkpoints import ModelSpec, build_model, save_checkpoint
    from ttc_lib.revisions.data import sample_answers

    spec = ModelSpec("tiny-test", hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)
    path, cache = tmp_path / "policy", tmp_path / "samples.jsonl"

    def answers(seed):  # notebook 01 (re)training the policy at the same path, then notebook 05 sampling it
        save_checkpoint(build_model(spec, tiny_tokenizer, seed=seed), tiny_tokenizer, path,
                        {"training": {"fingerprint": f"run{seed}"}})
        gen = Generator.from_pretrained(path, device="cpu")
        fresh = sample_answers(gen, PROBLEMS, 2, temperature=1.0, max_new_tokens=8, seed=0, progress=False)
        cached = sample_answers(gen, PROBLEMS, 2, temperature=1.0, max_new_tokens=8, seed=0, progress=False,
                                cache_path=cache)
        return fresh, cached

    fresh1, cached1 = answers(1)
    pd.testing.assert_frame_equal(cached1, fresh1)
    fresh2, cached2 = answers(2)
    assert fresh2.text.tolist() != fresh1.text.tolist()  # the two policies do answer differently
    pd.testing.assert_frame_equal(cached2, fresh2)  # the retrained policy's own samples, not the cached ones


def test_training_splits_take_the_last_questions_and_a_level_floor_picks_hard_ones():
    train = [Problem(id=f"q{i}", question=f"Q{i}", answer="1", solution="\\boxed{1}", level=1 + i % 4)
             for i in range(40)]
    revision, orm = training_splits(train, 6, 4)
    assert [p.id for p in revision] == [f"q{i}" for i in range(34, 40)]
    assert [p.id for p in orm] == [f"q{i}" for i in range(30, 34)]
    revision, orm = training_splits(train, 6, 4, min_level=3)
    assert all(p.level >= 3 for p in revision) and len(revision) == 6
    assert revision[-1].id == "q39" and not {p.id for p in revision} & {p.id for p in orm}
    assert [p.id for p in orm] == ["q32", "q33", "q36", "q37"]  # the last of the questions left
    with pytest.raises(ValueError, match="level >= 5"):
        training_splits(train, 6, 4, min_level=5)
