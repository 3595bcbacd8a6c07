"""Reusing earlier prompts' keys/values (prefix_reuse.py): same logits and samples as a fresh prefill."""

from __future__ import annotations

import pytest
import torch

from ttc_lib.generation.generator import Generator
from ttc_lib.generation.kv_cache import KVPool
from ttc_lib.generation.prefill import shared_prefill
from ttc_lib.generation.prefix_reuse import PrefixStore
from ttc_lib.tasks.prompts import format_prompt

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("error::FutureWarning")]

# the tiny corpus's three questions (conftest.TINY_CORPUS): the tiny model has seen their tokens
QA, QB, QC = ("Start with 23. Add 7, multiply by 3, subtract 15. What is the result?",
              "Start with 4. Multiply by 5. What is the result?",
              "Start with 61. Subtract 19, add 3. What is the result?")


@pytest.fixture(scope="module")
def gen(tiny_generator) -> Generator:
    return tiny_generator


def _ids(gen: Generator, question: str, prefix: str) -> list[int]:
    return gen.tokenizer(format_prompt(question, gen.prompt_style) + prefix)["input_ids"]


def _prefill(gen: Generator, prompts: list[list[int]], stems: list[int], reuse: PrefixStore | None, budget=1024):
    rows = [slice(j, j + 1) for j in range(len(prompts))]
    with torch.inference_mode():
        cache, logits = shared_prefill(gen.model, KVPool(), prompts, stems, rows, len(prompts), 4,
                                       gen.pad_id, budget, reuse)
    return cache, logits


@pytest.mark.parametrize("budget", [1024, 8])  # 8: one prompt per prefill sub-batch
def test_reused_prefill_matches_fresh_prefill(gen, budget):
    old = [_ids(gen, QA, "23+7=30\n"), _ids(gen, QB, "")]
    # QA extends an old prompt, QB is an old prompt itself (all but its last token reused), the
    # two QC prompts are new and share their question as a stem computed in this call
    new = [_ids(gen, QA, "23+7=30\n30*3=90\n"), _ids(gen, QB, ""), _ids(gen, QC, "61-19=42\n"),
           _ids(gen, QC, "61-19=40\n")]
    stems = [0, 0, len(_ids(gen, QC, "")), len(_ids(gen, QC, ""))]
    store = PrefixStore(1 << 30)
    first, _ = _prefill(gen, old, [0, 0], None)
    store.add(first.prefix, old)
    fresh, fresh_logits = _prefill(gen, new, stems, None, budget)
    reused, reused_logits = _prefill(gen, new, stems, store, budget)
    assert store.reused_tokens == len(old[0]) + len(old[1]) - 1
    torch.testing.assert_close(reused_logits, fresh_logits, atol=1e-5, rtol=1e-5)
    assert torch.equal(reused.prefix_mask, fresh.prefix_mask)
    for (rk, rv), (fk, fv) in zip(reused.prefix, fresh.prefix):  # what decoding reads afterwards
        torch.testing.assert_close(rk * reused.prefix_mask[:, None, :, None], fk * fresh.prefix_mask[:, None, :, None],
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(rv * reused.prefix_mask[:, None, :, None], fv * fresh.prefix_mask[:, None, :, None],
                                   atol=1e-5, rtol=1e-5)


def test_step_rounds_same_samples_with_and_without_reuse(gen):
    plain = Generator(gen.model, gen.tokenizer, device="cpu", reuse_prefixes=False)
    reusing = Generator(gen.model, gen.tokenizer, device="cpu")
    assert plain.prefixes is None
    rounds = [([QA, QB], ["", ""]),
              ([QA, QA, QB, QC], ["23+7=30\n", "23+7=31\n", "4*5=20\n", ""]),
              ([QA, QA, QC, QC], ["23+7=30\n30*3=90\n", "23+7=31\n31*3=93\n", "61-19=42\n", "61-19=41\n"])]
    for r, (questions, prefixes) in enumerate(rounds):
        args = dict(max_new_tokens=10, seed=r, progress=False)
        assert reusing.sample_steps(questions, prefixes, 4, **args) == plain.sample_steps(questions, prefixes, 4, **args)
        assert reusing.sample(questions, 3, prefixes=prefixes, **args) == plain.sample(questions, 3, prefixes=prefixes, **args)
    assert reusing.prefixes.reused_tokens > 0


def _kv(prompts: int, width: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.randn(prompts, 2, width, 4), torch.randn(prompts, 2, width, 4))]


def test_prefix_store_lookup_and_budget():
    one = _kv(2, 5)  # 2 * 2 * 5 * 4 floats * 2 (keys, values) * 4 bytes = 640 bytes
    kept = PrefixStore(1000)
    kept.add(one, [[1, 2, 3], [7, 8, 9, 10, 11]])
    assert kept.lookup([1, 2, 3, 4, 5]) == (3, (0, 0, 2))  # store 0, row 0, right-aligned: first column 2
    assert kept.lookup([1, 2, 3])[0] == 2  # the same prompt: its last token must still run
    assert kept.lookup([1, 2]) == (0, None) and kept.lookup([5, 1, 2, 3]) == (0, None)
    kv, mask = kept.gather([kept.lookup([1, 2, 3, 4])], 6)
    assert mask.tolist() == [[0, 0, 0, 1, 1, 1]]
    assert torch.equal(kv[0][0][0, :, 3:], one[0][0][0, :, 2:5])
    kept.add(_kv(2, 5), [[1, 2, 3, 4], [20, 21]])  # over budget: the oldest store goes
    assert kept.bytes == 640 and kept.lookup([7, 8, 9, 10, 11, 12]) == (0, None)
    assert kept.lookup([1, 2, 3, 9])[0] == 0 and kept.lookup([1, 2, 3, 4, 9]) == (4, (1, 0, 1))
    kept.add(_kv(4, 5), [[1], [2], [3], [4]])  # alone bigger than the budget: not kept
    assert kept.bytes == 640 and kept.lookup([2, 9]) == (0, None)


def test_rounds_following_sampled_steps_reuse_the_prompts_and_keep_the_samples(trained_policy, one_thread):
    reusing = Generator.from_pretrained(trained_policy[0], device="cpu")
    plain = Generator(reusing.model, reusing.tokenizer, device="cpu", reuse_prefixes=False)
    gen, questions = reusing, [p.question for p in trained_policy[1]]
    prefixes = [""] * len(questions)
    parents: list[list[int]] = []  # each prompt's last-round prompt (token ids)
    for r in range(3):  # beam-search rounds: each prompt continued by one of its sampled steps
        args = dict(max_new_tokens=12, seed=r, progress=False)
        before = reusing.prefixes.reused_tokens
        got = reusing.sample_steps(questions, prefixes, 4, **args)
        assert got == plain.sample_steps(questions, prefixes, 4, **args)
        if r:  # the last round's prompt is read, only the new step runs
            assert reusing.prefixes.reused_tokens - before == sum(len(old) for old in parents)
        nxt = [(q, p + s.text + "\n", _ids(gen, q, p)) for q, p, row in zip(questions, prefixes, got)
               for s in row[:2] if s.finish_reason == "step"]
        # distinct prompts (the Generator runs each once) whose ids extend the old prompt's
        nxt = list({(q, p): (q, p, old) for q, p, old in nxt if _ids(gen, q, p)[:len(old)] == old}.values())
        assert nxt, "the tiny model closed no step"
        questions, prefixes, parents = ([x[k] for x in nxt] for k in range(3))


def test_store_rows_put_stem_then_rest_right_aligned_with_finite_pads():
    from ttc_lib.generation.prefill import _store_rows

    # stage 2's batch of 2: stems right-aligned in columns [0, 3), rests right-aligned in [3, 6);
    # batch row 0 is prompt 2 (stem 2, rest 1), batch row 1 is prompt 0 (no stem, rest 3)
    keys = torch.arange(12.0).view(2, 1, 6, 1)
    store = [(torch.full((3, 1, 4, 1), float("nan")), torch.full((3, 1, 4, 1), float("nan")))]
    _store_rows(store, [2, 0], [(keys, -keys)], rests=[1, 3], stem_end=3)
    got = store[0][0][:, 0, :, 0]
    assert got[2, 1:].tolist() == [1, 2, 5] and got[0, 1:].tolist() == [9, 10, 11]  # no gap, right-aligned
    assert torch.equal(store[0][1][[0, 2]], -store[0][0][[0, 2]])
    assert torch.isfinite(store[0][0][[0, 2]]).all()  # pads copy a finite column: masked, never NaN
    assert torch.isnan(got[1]).all()  # a prompt of another sub-batch is left alone
