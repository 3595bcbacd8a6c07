"""The engine's GPU-shaped pieces, checked on CPU: host reads per decode step, incremental text
checks equal to whole-row ones, Gumbel noise in blocks, memory-sized chunks and logits budgets."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from ttc_lib.generation import decoding, memory, sampling
from ttc_lib.generation.decoding import (
    EOS,
    STOP_END,
    RowText,
    StopStrings,
    splits_at_newlines,
    stop_cut,
)
from ttc_lib.generation.generator import Generator
from ttc_lib.generation.kv_cache import SharedPrefixCache
from ttc_lib.generation.teacher_forcing import teacher_forced_logprobs
from ttc_lib.tasks.steps import BLANK_LINES, LINES, is_final_step

pytestmark = pytest.mark.usefixtures("one_thread")

QUESTIONS = ["Start with 23. Add 7, multiply by 3. What is the result?",
             "Start with 4. Multiply by 5. What is the result?"]
# Tensor methods that make the host wait for the device (on CUDA), counted by patching them; reads
# the library does inside C++ (e.g. boolean-mask indexing) are not seen, and the decode loop uses none.
HOST_READS = ["tolist", "item", "__bool__", "__int__", "__float__", "__index__", "nonzero", "cpu", "numpy"]


def _count_host_reads(monkeypatch, gen: Generator, run) -> Counter:
    """Run ``run()`` counting, inside decoding.decode only: host reads, decode steps (tokens
    sampled per row batch) and compactions (rows leaving the batch)."""
    seen, inside = Counter(), [False]

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            if inside[0]:
                seen[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    for name in HOST_READS:
        monkeypatch.setattr(torch.Tensor, name, counted("read", getattr(torch.Tensor, name)))
    monkeypatch.setattr(torch, "unique", counted("read", torch.unique))
    monkeypatch.setattr(decoding, "choose_tokens", counted("step", decoding.choose_tokens))
    monkeypatch.setattr(SharedPrefixCache, "batch_select_indices",
                        counted("compaction", SharedPrefixCache.batch_select_indices))
    real = decoding.decode

    def decode(*args, **kwargs):
        inside[0] = True
        try:
            return real(*args, **kwargs)
        finally:
            inside[0] = False

    monkeypatch.setattr(decoding, "decode", decode)
    monkeypatch.setattr("ttc_lib.generation.generator.decode", decode)
    run()
    return seen


@pytest.mark.parametrize("step_mode", [False, True])
def test_host_reads_per_decode_step_do_not_grow_with_rows(tiny_generator, monkeypatch, step_mode):
    """One host read per step (the sampled tokens) plus the cache's two per compaction, at 8 and at
    128 rows: the loop no longer reads a row's tokens, flags or text state one row at a time."""
    gen = tiny_generator
    newline = [i for i in range(len(gen.tokenizer)) if "\n" in gen.tokenizer.decode([i])]
    bias = torch.zeros(gen.model.config.vocab_size)
    bias[newline] = 3.0  # many rows hit a newline every step: the old loop read each of them
    handle = gen.model.lm_head.register_forward_hook(lambda m, a, out: out + bias)
    try:
        for n in (4, 64):
            def run():
                if step_mode:
                    gen.sample_steps(QUESTIONS, ["", ""], n, max_new_tokens=24, seed=1, progress=False)
                else:
                    gen.sample(QUESTIONS, n, max_new_tokens=24, seed=1, progress=False)
            seen = _count_host_reads(monkeypatch, gen, run)
            monkeypatch.undo()
            assert seen["step"] >= 8, seen
            assert seen["read"] <= seen["step"] + 2 * seen["compaction"], (n, seen)
    finally:
        handle.remove()


def _reference(tokenizer, ids, flags, step_mode, stops, lead, contract):
    """The stop rules as the loop applied them before RowText: the whole row decoded at each check."""
    for t, x in enumerate(ids):
        f = flags[x]
        if not f:
            continue
        if f & EOS:
            return "end", t + 1, None
        text = tokenizer.decode(ids[:t + 1], skip_special_tokens=True)
        if f & STOP_END and stops:
            cut = stop_cut(text, stops, lead)
            if cut is not None:
                return "stop", t + 1, cut
        if step_mode:
            step, closed = contract.first_step(text)
            stop = ("end" if is_final_step(step) else "step") if closed else None
        else:
            stop = "end" if contract.answer_cut(text) is not None else None
        if stop:
            return stop, t + 1, None
    return "length", len(ids), None


def _incremental(tokenizer, ids, flags, step_mode, stops, lead, contract):
    row = RowText(lead)
    strings = StopStrings(tuple(stops), [lead]) if stops else None
    for t, x in enumerate(ids):
        f = flags[x]
        if not f:
            continue
        if f & EOS:
            return "end", t + 1, None
        stop, cut = row.check(tokenizer, ids[:t + 1], halt=bool(f & STOP_END), step_mode=step_mode,
                              stops=strings, movable=True, contract=contract)
        if stop:
            return stop, t + 1, cut
    return "length", len(ids), None


@pytest.mark.parametrize("stops,lead,contract", [((), "", LINES), (("\nProblem:",), "", LINES),
                                                 (("\nProblem:",), "x\nProble", LINES),
                                                 (("\nProblem:", "m:\n", "Q:"), "\n", LINES),
                                                 (("\nProblem:",), "", BLANK_LINES), ((), "", BLANK_LINES)])
def test_incremental_text_checks_equal_whole_row_checks(tiny_tokenizer, stops, lead, contract):
    """RowText (anchored at newlines) gives the same finish reason, token count and cut as decoding
    the whole row at every check, on random rows full of newlines, answers, stop strings and split
    multi-byte characters; under the blank_line contract (steps end at a blank line) an anchor can
    fall inside an open step or between a delimiter's two newlines."""
    tok = tiny_tokenizer
    assert splits_at_newlines(tok)
    vocab = len(tok)
    texts = tok.batch_decode([[i] for i in range(vocab)])
    enc = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    chunks = [enc(t) for t in ["\n", "\n\n", ".\n", "\nProblem:", "Problem", "m:\n", "Q:", ":", "\\boxed{7}",
                               "\\boxed{", "}", "7", " ", "x=1"]]
    high = [i for i in range(vocab) if texts[i] == "\ufffd"][:12]  # single bytes of multi-byte characters
    assert high, "the byte-level vocabulary has lone high bytes"
    chunks += [enc("é€"), [high[0]], [high[1], high[2]]]  # whole and split multi-byte characters
    step_end = decoding.char_table(texts, {contract.delimiter[-1]}, vocab)
    stop_end = decoding.char_table(texts, {s[-1] for s in stops}, vocab) if stops else None
    flags = decoding.token_flags([tok.eos_token_id], step_end, stop_end)
    rng = random.Random(len(stops) * 31 + len(lead) + len(contract.delimiter))
    outcomes = Counter()
    for _ in range(600):
        ids = [i for _ in range(rng.randrange(1, 25))
               for i in (rng.choice(chunks) if rng.random() < 0.8 else [rng.randrange(vocab)])]
        for step_mode in (False, True):
            want = _reference(tok, ids, flags, step_mode, stops, lead, contract)
            assert _incremental(tok, ids, flags, step_mode, stops, lead, contract) == want, (ids, step_mode)
            outcomes[want[0]] += 1
    assert outcomes["end"] and outcomes["length"] and (outcomes["stop"] or not stops), outcomes


def test_splits_at_newlines_only_for_byte_level_decoders(tiny_tokenizer):
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    rng = random.Random(0)
    tok = tiny_tokenizer
    for _ in range(300):
        ids = [rng.randrange(len(tok)) for _ in range(rng.randrange(2, 30))]
        for k in range(1, len(ids)):
            head = tok.decode(ids[:k], skip_special_tokens=True)
            if head.endswith("\n"):
                assert tok.decode(ids, skip_special_tokens=True) == head + tok.decode(ids[k:], skip_special_tokens=True)
    word = Tokenizer(models.WordLevel({"a": 0, "##b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    word.decoder = decoders.WordPiece()
    assert not splits_at_newlines(PreTrainedTokenizerFast(tokenizer_object=word))
    assert not splits_at_newlines(object())


@pytest.mark.parametrize("rows,vocab", [(7, 300), (40, 5000)])
def test_gumbel_noise_in_blocks_equals_one_pass(monkeypatch, rows, vocab):
    g = torch.Generator().manual_seed(rows)
    keys = torch.randint(0, 2 ** 32, (rows,), generator=g, dtype=torch.int64)
    logits = torch.randn(rows, vocab, generator=g)
    one_pass = logits + sampling.gumbel_noise(keys, 3, vocab)
    for budget in (1, 8 * vocab * 3, 1 << 40):  # one row a block, three rows, everything at once
        monkeypatch.setitem(sampling.NOISE_BYTES, "cpu", budget)
        assert torch.equal(sampling.add_gumbel_noise_(logits.clone(), keys, 3), one_pass)


def _fake_cuda(monkeypatch, free: int, reserved: int = 0, allocated: int = 0) -> torch.device:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 2 * free))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: reserved)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: allocated)
    return torch.device("cuda")


def test_decode_rows_cpu_keeps_its_budget_and_cuda_follows_free_memory(tiny_generator, monkeypatch):
    model = tiny_generator.model
    cfg = model.config
    per_row = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads) * 4
    cpu = torch.device("cpu")
    assert memory.decode_rows(model, cpu, 100) == min(512, memory.CPU_KV_BUDGET // (per_row * 100))
    monkeypatch.setattr(memory, "CPU_KV_BUDGET", per_row * 100 * 3)
    assert memory.decode_rows(model, cpu, 100) == 3
    cuda = _fake_cuda(monkeypatch, free=64 << 30)
    many = memory.decode_rows(model, cuda, 100)
    assert many == memory.CUDA_MAX_ROWS > 512  # a tiny model on a big GPU: no 512 cap
    _fake_cuda(monkeypatch, free=1 << 26, reserved=1 << 25, allocated=1 << 24)
    some = memory.decode_rows(model, cuda, 100)
    vocab_row = cfg.vocab_size * memory.VOCAB_BYTES_PER_ROW
    assert 1 < some < memory.CUDA_DECODE_SHARE * ((1 << 26) + (1 << 24)) / vocab_row  # the vocabulary counts
    assert memory.decode_rows(model, cuda, 100, reusable=1 << 26) > some  # kept buffers count as free


def test_logits_budget_cpu_fixed_cuda_from_free_memory(monkeypatch):
    assert memory.logits_budget(torch.device("cpu")) == memory.CPU_LOGITS_BUDGET
    cuda = _fake_cuda(monkeypatch, free=120 << 30)
    big = memory.logits_budget(cuda)
    assert big == int(memory.CUDA_LOGITS_SHARE * (120 << 30) // memory.LOGITS_BYTES_PER_FLOAT)
    # Qwen's 151,936-entry vocabulary: 883 positions per forward before (~2 solutions), 17,667 here
    assert big // 151936 > 10 * (memory.CPU_LOGITS_BUDGET // 151936)


def test_teacher_forcing_values_do_not_depend_on_the_logits_budget(tiny_generator):
    gen = tiny_generator
    tok = gen.tokenizer
    seqs = [tok(q + s)["input_ids"] for q, s in [(QUESTIONS[0], "23+7=30\n30*3=90"), (QUESTIONS[0], "23+7=31"),
                                                 (QUESTIONS[1], "4*5=20\n\\boxed{20}")]]
    starts = [5, 5, 5]
    vocab = gen.model.config.vocab_size
    with torch.inference_mode():
        wide = teacher_forced_logprobs(gen.model, seqs, starts, [0, 1, 2], gen.pad_id, 512, 1 << 27)
        narrow = teacher_forced_logprobs(gen.model, seqs, starts, [0, 1, 2], gen.pad_id, 512, 2 * vocab)
    for k in range(3):
        torch.testing.assert_close(torch.tensor(wide[k]), torch.tensor(narrow[k]), atol=1e-5, rtol=1e-5)
