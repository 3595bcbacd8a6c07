"""Generator: determinism, batch independence, greedy, finish rules, logprobs, sampler statistics."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from ttc_lib.generation import generator as generation
from ttc_lib.generation.generator import Generator, Sample
from ttc_lib.tasks.prompts import format_prompt
from ttc_lib.tasks.steps import STEP_DELIMITER, join_steps, split_steps

pytestmark = [pytest.mark.usefixtures("one_thread"),  # every test here: one torch thread
              pytest.mark.filterwarnings("error::FutureWarning")]  # no deprecated transformers calls

QA = "Start with 23. Add 7, multiply by 3. What is the result?"
QB = "Start with 4. Multiply by 5. What is the result?"
QC = "Start with 61. Subtract 19, add 3, multiply by 2, add 11. What is the result?"


@pytest.fixture(scope="module")
def gen(tiny_generator) -> Generator:
    return tiny_generator


def _manual_logits(gen: Generator, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return gen.model(input_ids=torch.tensor([ids])).logits[0].float()


@pytest.fixture()
def script(gen):
    """Force the model to emit a given text after the prompt: a forward hook adds a huge logit to
    the scripted token at each position (the hook reads position_ids, so every cache path works)."""
    handles = []

    def install(prompt: str, text: str) -> list[int]:
        start = len(gen.tokenizer(prompt)["input_ids"])  # prompt length incl. BOS
        target = gen.tokenizer(text, add_special_tokens=False)["input_ids"]

        def hook(module, args, kwargs, output):
            pos = kwargs["position_ids"][:, -1]
            idx = (pos - (start - 1)).clamp(0, len(target) - 1)
            output.logits[:, -1] += 1e4 * torch.nn.functional.one_hot(
                torch.tensor(target)[idx], output.logits.shape[-1])
            return output

        handles.append(gen.model.register_forward_hook(hook, with_kwargs=True))
        return target

    yield install
    for h in handles:
        h.remove()


def test_same_seed_same_samples_and_seed_matters(gen):
    a = gen.sample([QA, QB], 4, max_new_tokens=12, seed=1)
    assert a == gen.sample([QA, QB], 4, max_new_tokens=12, seed=1)
    assert a != gen.sample([QA, QB], 4, max_new_tokens=12, seed=2)
    assert len({s.text for s in a[0]}) > 1  # samples of one prompt differ from each other


def test_batch_composition_and_chunking_do_not_change_samples(gen, monkeypatch):
    alone = gen.sample([QA], 6, max_new_tokens=15, seed=5)[0]
    for batch in ([QA, QB, QC], [QC, QB, QA]):
        assert gen.sample(batch, 6, max_new_tokens=15, seed=5)[batch.index(QA)] == alone
    small_chunks = Generator(gen.model, gen.tokenizer, device="cpu", max_batch_rows=4)
    assert small_chunks.sample([QB, QA, QC], 6, max_new_tokens=15, seed=5)[1] == alone
    steps_alone = gen.sample_steps([QA], ["23+7=30\n"], 5, max_new_tokens=10, seed=5)[0]
    # QA's two prompts share their question as a prefilled stem; tiny prefill sub-batches too
    mixed = gen.sample_steps([QB, QA, QA], ["", "23+7=30\n", ""], 5, max_new_tokens=10, seed=5)
    assert mixed[1] == steps_alone
    monkeypatch.setattr(generation, "PREFILL_TOKENS", 8)
    assert small_chunks.sample_steps([QA, QB, QA], ["", "", "23+7=30\n"], 5, max_new_tokens=10,
                                     seed=5)[2] == steps_alone


def test_sample_i_does_not_depend_on_n(gen):
    four = gen.sample([QA, QB], 4, max_new_tokens=10, seed=9, top_p=0.9, temperature=0.7)
    eight = gen.sample([QA, QB], 8, max_new_tokens=10, seed=9, top_p=0.9, temperature=0.7)
    assert [row[:4] for row in eight] == four


def test_dynamic_and_shared_prefix_cache_agree(gen):
    dynamic = Generator(gen.model, gen.tokenizer, device="cpu", kv_cache="dynamic")
    assert gen.kv_cache == "shared"
    args = dict(max_new_tokens=14, seed=3)
    assert dynamic.sample([QA, QB, QC], 3, **args) == gen.sample([QA, QB, QC], 3, **args)


def test_greedy_equals_manual_argmax(gen):
    steps = 12
    got = gen.sample([QC, QB], 3, temperature=0, max_new_tokens=steps)  # QB is left-padded here
    for question, row in zip([QC, QB], got):
        ids = gen.tokenizer(format_prompt(question))["input_ids"]
        new = []
        for _ in range(steps):
            new.append(int(_manual_logits(gen, ids + new)[-1].argmax()))
            if new[-1] in gen.eos_ids:
                break
        assert row[0] == row[1] == row[2]
        assert row[0].num_tokens == len(new)
        text = gen.tokenizer.decode([t for t in new if t not in gen.eos_ids], skip_special_tokens=True)
        assert row[0].text == STEP_DELIMITER.join(s.strip() for s in text.split(STEP_DELIMITER) if s.strip())


def test_tiny_top_p_is_greedy(gen):
    greedy = gen.sample([QA, QB], 1, temperature=0, max_new_tokens=10)
    assert gen.sample([QA, QB], 1, temperature=1.0, top_p=1e-6, max_new_tokens=10, seed=4) == greedy


def test_length_finish_and_token_counts(gen):
    before = gen.generated_tokens
    out = gen.sample([QA, QB], 5, max_new_tokens=3, seed=0)
    for s in (s for row in out for s in row):
        assert isinstance(s, Sample)
        assert (s.finish_reason, s.num_tokens) == ("length", 3) or s.finish_reason == "end"
    assert gen.generated_tokens - before == sum(s.num_tokens for row in out for s in row)


def test_full_solution_stops_at_eos(gen, script):
    target = script(format_prompt(QA), "23+7=30\n30*3=90<|eos|>junk")
    (s,), = gen.sample([QA], 1, max_new_tokens=40)
    assert s == Sample("23+7=30\n30*3=90", target.index(gen.tokenizer.eos_token_id) + 1, "end")


def test_full_solution_stops_after_answer_step(gen, script):
    target = script(format_prompt(QA), "23+7=30\n\n\\boxed{30}\nmore text\n")
    out = gen.sample([QA], 2, max_new_tokens=40)[0]
    newline_after_answer = [i for i, t in enumerate(target) if "\n" in gen.tokenizer.decode([t])][2]
    assert out[0] == Sample("23+7=30\n\\boxed{30}", newline_after_answer + 1, "end")


def test_step_mode_stops_at_delimiter(gen, script):
    prefix = "23+7=30\n"
    target = script(format_prompt(QA) + prefix, "\n30*3=90\n\\boxed{90}")
    (s,), = gen.sample_steps([QA], [prefix], 1, max_new_tokens=40)
    newlines = [i for i, t in enumerate(target) if "\n" in gen.tokenizer.decode([t])]
    # the leading "\n" does not close an empty step; the second one closes "30*3=90"
    assert s == Sample("30*3=90", newlines[1] + 1, "step")


def test_step_mode_final_step_and_length(gen, script):
    script(format_prompt(QA), "\\boxed{90}\nnext")
    (s,), = gen.sample_steps([QA], [""], 1, max_new_tokens=40)
    assert (s.text, s.finish_reason) == ("\\boxed{90}", "end")
    (cut,), = gen.sample_steps([QA], [""], 1, max_new_tokens=3)
    assert cut.finish_reason == "length" and cut.num_tokens == 3 and STEP_DELIMITER not in cut.text


def test_random_steps_have_no_delimiter_and_match_full_samples(gen):
    newline = [i for i in range(len(gen.tokenizer)) if "\n" in gen.tokenizer.decode([i])]
    bias = torch.zeros(gen.model.config.vocab_size)
    bias[newline] = 4.0  # make steps short so that many close within the budget
    handle = gen.model.lm_head.register_forward_hook(lambda m, a, out: out + bias)
    dynamic = Generator(gen.model, gen.tokenizer, device="cpu", kv_cache="dynamic")
    try:
        steps = gen.sample_steps([QA, QB, QC], ["", "", "61-19=42\n"], 16, max_new_tokens=20, seed=11)
        full = gen.sample([QA, QB, QC], 16, max_new_tokens=20, seed=11, prefixes=["", "", "61-19=42\n"])
        # rows finish at different steps here: compaction of rows and of the prompt store runs
        assert dynamic.sample_steps([QA, QB, QC], ["", "", "61-19=42\n"], 16, max_new_tokens=20, seed=11) == steps
    finally:
        handle.remove()
    reasons = [s.finish_reason for row in steps for s in row]
    assert reasons.count("step") >= 8
    for row_steps, row_full in zip(steps, full):
        for st, fu in zip(row_steps, row_full):
            assert STEP_DELIMITER not in st.text and st.num_tokens <= 20
            if st.finish_reason == "step":  # same key -> the step is the start of the full sample
                assert st.text and fu.text.startswith(st.text)


def test_token_logprobs_match_full_forward(gen):
    solutions = ["23+7=30\n30*3=90\n\\boxed{90}", "4*5=20", ""]
    questions = [QA, QB, QC]
    got = gen.token_logprobs(questions, solutions)
    for question, solution, tl in zip(questions, solutions, got):
        prompt = gen.tokenizer(format_prompt(question))["input_ids"]
        sol = gen.tokenizer(solution, add_special_tokens=False)["input_ids"]
        assert list(tl.token_ids) == sol and len(tl.logprobs) == len(tl.end_offsets) == len(sol)
        if not sol:
            continue
        lp = _manual_logits(gen, prompt + sol).log_softmax(-1)[len(prompt) - 1:-1]
        expected = lp.gather(-1, torch.tensor(sol)[:, None])[:, 0]
        assert torch.allclose(torch.tensor(tl.logprobs), expected, atol=1e-4)
        assert [len(gen.tokenizer.decode(sol[:j + 1])) for j in range(len(sol))] == list(tl.end_offsets)



def test_token_logprobs_do_not_depend_on_batching(gen):
    """teacher_forcing's plan (shared stems, pieces, batches) changes the batches, not the values."""
    questions = [QA, QA, QA, QB, QC]
    solutions = ["23+7=30\n30*3=90", "23+7=30\n30*3=91", "23+7=31", "4*5=20\n\\boxed{20}", "61-19=42"]
    one_row = Generator(gen.model, gen.tokenizer, device="cpu", max_batch_rows=1)
    for a, b in zip(gen.token_logprobs(questions, solutions), one_row.token_logprobs(questions, solutions)):
        assert a.token_ids == b.token_ids and a.end_offsets == b.end_offsets
        torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-5, rtol=1e-5)

def _chi2_upper(dof: int, z: float = 3.09) -> float:
    """Wilson-Hilferty: the chi-square quantile at normal quantile z (3.09 ~ p = 0.001)."""
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3


def _chi2(counts: torch.Tensor, probs: torch.Tensor, draws: int) -> tuple[float, int]:
    expected = probs * draws
    big = expected >= 5  # pool the rare tokens into one bin
    obs = torch.cat([counts[big], counts[~big].sum()[None]])
    exp = torch.cat([expected[big], expected[~big].sum()[None]])
    keep = exp > 0
    return float(((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum()), int(keep.sum()) - 1


@pytest.mark.parametrize("temperature,top_p", [(0.1, 1.0), (0.2, 1.0), (0.1, 0.9), (0.2, 0.7)])
def test_sampled_token_frequencies_match_softmax(gen, temperature, top_p):
    draws = 4000
    out = gen.sample([QA], draws, temperature=temperature, top_p=top_p, max_new_tokens=1, seed=123)[0]
    logits = _manual_logits(gen, gen.tokenizer(format_prompt(QA))["input_ids"])[-1]
    probs = (logits / temperature).softmax(-1)
    if top_p < 1:  # the renormalised nucleus
        order = probs.argsort(descending=True)
        nucleus = order[(probs[order].cumsum(0) - probs[order]) < top_p]
        assert 2 <= len(nucleus) < len(probs)  # the test must exercise a real cut
        probs = torch.zeros_like(probs).index_copy(0, nucleus, probs[nucleus])
        probs /= probs.sum()
    # A one-token sample is seen through its text; tokens with the same text share one bin.
    keys = ["" if i in gen.eos_ids else join_steps(split_steps(gen.tokenizer.decode([i], skip_special_tokens=True)))
            for i in range(len(probs))]
    bins = {k: j for j, k in enumerate(dict.fromkeys(keys))}
    group = torch.tensor([bins[k] for k in keys])
    counts = torch.zeros(len(bins))
    for s in out:
        counts[bins[s.text]] += 1
    stat, dof = _chi2(counts, torch.zeros(len(bins)).index_add_(0, group, probs), draws)
    assert dof >= 5 and stat < _chi2_upper(dof), (stat, dof)
    wrong = (logits / (temperature * 1.3)).softmax(-1)  # a sampler at the wrong temperature fails
    assert _chi2(counts, torch.zeros(len(bins)).index_add_(0, group, wrong), draws)[0] > _chi2_upper(dof)


def test_from_pretrained_errors(tiny_checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        Generator.from_pretrained(tmp_path / "missing")
    bare = tmp_path / "bare"
    shutil.copytree(tiny_checkpoint, bare)
    (bare / "ttc_config.json").unlink()
    with pytest.raises(ValueError, match="prompt_style"):
        Generator.from_pretrained(bare)
    assert Generator.from_pretrained(bare, prompt_style="plain").prompt_style == "plain"
    (bare / "ttc_config.json").write_text(json.dumps({"prompt_style": "plain"}))
    with pytest.raises(ValueError, match="conflicts"):
        Generator.from_pretrained(bare, prompt_style="other")
    (bare / "model.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        Generator.from_pretrained(bare)


def test_generator_basics(gen):
    assert gen.device == torch.device("cpu")
    assert gen.num_params == sum(p.numel() for p in gen.model.parameters()) > 0
    assert gen.sample([], 3) == []
    with pytest.raises(ValueError, match="prefixes"):
        gen.sample_steps([QA], [], 2)


def test_nucleus_is_the_smallest_set_reaching_top_p():
    from ttc_lib.generation.sampling import nucleus_mask

    scores = torch.tensor([[0.15, 0.5, 0.05, 0.3]]).log()
    kept = lambda p: (~nucleus_mask(scores, p)[0]).nonzero()[:, 0].tolist()  # noqa: E731
    assert kept(1e-6) == [1]
    assert kept(0.79) == [1, 3]  # 0.5 + 0.3 reaches 0.79
    assert kept(0.81) == [0, 1, 3]
    assert kept(1.0) == [0, 1, 2, 3]


@pytest.mark.parametrize("arch", ["llama-gqa", "qwen2"])
def test_shared_prefix_attention_matches_dynamic_cache(tiny_tokenizer, arch):
    """Cascade attention (grouped query heads, biased projections) equals transformers' own."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    config_cls, model_cls = (LlamaConfig, LlamaForCausalLM) if arch == "llama-gqa" else (Qwen2Config, Qwen2ForCausalLM)
    torch.manual_seed(1)
    model = model_cls(config_cls(vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                 max_position_embeddings=256, eos_token_id=tiny_tokenizer.eos_token_id))
    newline = [i for i in range(len(tiny_tokenizer)) if "\n" in tiny_tokenizer.decode([i])]
    bias = torch.zeros(len(tiny_tokenizer))
    bias[newline] = 3.0  # steps close at different times: rows and prompts leave the batch
    model.lm_head.register_forward_hook(lambda m, a, out: out + bias)
    shared = Generator(model, tiny_tokenizer, device="cpu", max_batch_rows=24)
    dynamic = Generator(model, tiny_tokenizer, device="cpu", max_batch_rows=24, kv_cache="dynamic")
    assert (shared.kv_cache, dynamic.kv_cache) == ("shared", "dynamic")
    args = ([QA, QB, QA, QC], ["", "", "23+7=30\n", "61-19=42\n"], 8)
    kw = dict(max_new_tokens=12, seed=2, temperature=0.8)
    got = shared.sample_steps(*args, **kw)
    assert got == dynamic.sample_steps(*args, **kw)
    assert {s.finish_reason for row in got for s in row} >= {"step", "length"}
    assert shared.sample(*args[::2], **kw) == dynamic.sample(*args[::2], **kw)


@pytest.mark.parametrize("m, n, d", [(1, 3, 8), (1, 12, 32), (4, 60, 32), (2, 5, 7)])
def test_small_attention_products_equal_matmul(m, n, d):
    """kv_cache._products: broadcast products below SMALL_PRODUCT, matmul above, same values."""
    from ttc_lib.generation.kv_cache import SMALL_PRODUCT, _products

    g = torch.Generator().manual_seed(m * 100 + n)
    q, k = torch.randn(5, 3, m, d, generator=g), torch.randn(5, 3, n, d, generator=g)
    e = torch.rand(5, 3, m, n, generator=g)
    torch.testing.assert_close(_products(q, k, True), q @ k.transpose(-1, -2), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(_products(e, k, False), e @ k, rtol=1e-5, atol=1e-5)
    assert _products(q, k, True).shape == (5, 3, m, n) and _products(e, k, False).shape == (5, 3, m, d)
    assert (m * n * d < SMALL_PRODUCT) == (m < 4)  # the cases cover both branches
