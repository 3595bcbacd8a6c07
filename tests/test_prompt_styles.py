"""Prompt styles for users' Hugging Face models: the chat style (the tokenizer's own chat template),
stop strings (fewshot stops where the model invents a next problem), clear errors for a style a
tokenizer cannot build or that does not exist. Nothing is downloaded: the chat template is the
Qwen2.5 instruct models' ``chat_template`` (their tokenizer_config.json), copied here as text."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from ttc_lib.generation.decoding import stop_cut
from ttc_lib.generation.generator import Generator
from ttc_lib.tasks.grading import extract_answer
from ttc_lib.tasks.prompts import CHAT_SYSTEM, PROMPT_STYLES, format_prompt, stop_strings

pytestmark = pytest.mark.usefixtures("one_thread")

QWEN25_CHAT_TEMPLATE = r'''{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
'''
QUESTION = "What is $2+5$?"
INVENTED = "Problem: What is $4+5$?\nSolution:\n4+5=9\nThe answer is \\boxed{9}.\n"  # a next problem, made up


@pytest.fixture(scope="module")
def model(tiny_tokenizer):
    """A random 1-layer Llama with room for the few-shot prompt; the tests script what it writes."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = tiny_tokenizer
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=1024, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))


@pytest.fixture()
def script():
    """Force a generator's model to write ``text`` after ``prompt`` (a hook adds a huge logit to the
    scripted token at each position; as in test_generation). Returns the scripted token ids. One
    script at a time: installing one removes the one before."""
    handles = []

    def install(gen: Generator, prompt: str, text: str) -> list[int]:
        while handles:
            handles.pop().remove()
        start = len(gen.tokenizer(prompt)["input_ids"])
        target = gen.tokenizer(text, add_special_tokens=False)["input_ids"]

        def hook(module, args, kwargs, output):
            idx = (kwargs["position_ids"][:, -1] - (start - 1)).clamp(0, len(target) - 1)
            output.logits[:, -1] += 1e4 * torch.nn.functional.one_hot(torch.tensor(target)[idx],
                                                                      output.logits.shape[-1])
            return output

        handles.append(gen.model.register_forward_hook(hook, with_kwargs=True))
        return target

    yield install
    while handles:
        handles.pop().remove()


def _with_template(tokenizer, template: str = QWEN25_CHAT_TEMPLATE):
    tok = copy.deepcopy(tokenizer)  # the session's tokenizer stays without a template
    tok.chat_template = template
    return tok


def _tokens_until(tokenizer, target: list[int], text: str) -> int:
    """How many scripted tokens it takes until their text holds ``text``."""
    return next(k + 1 for k in range(len(target)) if text in tokenizer.decode(target[:k + 1]))


def test_chat_prompt_is_the_tokenizers_template_with_the_system_line(tiny_tokenizer):
    assert CHAT_SYSTEM == "Please reason step by step, and put your final answer within \\boxed{}."
    text = format_prompt(QUESTION, "chat", _with_template(tiny_tokenizer))
    assert text == (f"<|im_start|>system\n{CHAT_SYSTEM}<|im_end|>\n<|im_start|>user\n{QUESTION}<|im_end|>\n"
                    "<|im_start|>assistant\n")  # the template's default system line is replaced
    assert "You are Qwen" not in text and text.endswith("<|im_start|>assistant\n")


def test_chat_prompt_leaves_a_bos_the_tokenizer_adds_itself(tiny_tokenizer):
    tok = _with_template(tiny_tokenizer, "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n"
                                         "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}")
    ids = tok(format_prompt(QUESTION, "chat", tok))["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id  # one BOS, not two


def test_chat_without_a_template_or_tokenizer_and_unknown_styles_are_clear_errors(tiny_tokenizer, model):
    with pytest.raises(ValueError, match=r"prompt_style='chat' needs a tokenizer with a chat template.*'fewshot'"):
        format_prompt(QUESTION, "chat", tiny_tokenizer)
    with pytest.raises(ValueError, match="prompt_style='chat'.*pass tokenizer="):
        format_prompt(QUESTION, "chat")
    with pytest.raises(ValueError, match="prompt_style='chat' needs a tokenizer with a chat template"):
        Generator(model, tiny_tokenizer, prompt_style="chat", device="cpu")  # refused when made
    with pytest.raises(ValueError, match=r"unknown prompt_style 'nope'; known: \['chat', 'fewshot', 'plain'\]"):
        Generator(model, tiny_tokenizer, prompt_style="nope", device="cpu")


def test_chat_generator_samples_after_the_chat_prompt(tiny_tokenizer, model, script):
    tok = _with_template(tiny_tokenizer)
    gen = Generator(model, tok, prompt_style="chat", device="cpu")
    script(gen, format_prompt(QUESTION, "chat", tok), "2+5=7\n\\boxed{7}\n" + INVENTED)
    (s,), = gen.sample([QUESTION], 1, max_new_tokens=60)
    # the scripted tokens line up only if the generator read exactly the chat prompt
    assert (s.text, s.finish_reason, extract_answer(s.text)) == ("2+5=7\n\\boxed{7}", "end", "7")


def test_fewshot_sample_never_takes_the_answer_of_an_invented_problem(tiny_tokenizer, model, script):
    gen = Generator(model, tiny_tokenizer, prompt_style="fewshot", device="cpu")
    script(gen, format_prompt(QUESTION, "fewshot"), "2+5=7\nThe answer is \\boxed{7}.\n" + INVENTED)
    (s,), = gen.sample([QUESTION], 1, max_new_tokens=80)
    assert "Problem" not in s.text and extract_answer(s.text) == "7"  # its own answer step ended it


def test_fewshot_stops_at_the_next_problem_and_cuts_it(tiny_tokenizer, model, script):
    """A base model that does not box its answer runs on into a made-up problem and boxes *that*:
    the stop string ends the sample there, so the invented answer is never read (no answer: wrong)."""
    written = "2+5=7\nSo the sum is 7.\n" + INVENTED
    fewshot = Generator(model, tiny_tokenizer, prompt_style="fewshot", device="cpu")
    target = script(fewshot, format_prompt(QUESTION, "fewshot"), written)
    (s,), = fewshot.sample([QUESTION], 1, max_new_tokens=80)
    assert (s.text, s.finish_reason) == ("2+5=7\nSo the sum is 7.", "stop")
    assert s.num_tokens == _tokens_until(tiny_tokenizer, target, "\nProblem:") and extract_answer(s.text) is None
    plain = Generator(model, tiny_tokenizer, prompt_style="plain", device="cpu")  # no stop strings: what it was
    script(plain, format_prompt(QUESTION), written)
    (run_on,), = plain.sample([QUESTION], 1, max_new_tokens=80)
    assert run_on.finish_reason == "end" and extract_answer(run_on.text) == "9"


def test_fewshot_step_stops_when_the_stop_string_begins_in_the_prefix(tiny_tokenizer, model, script):
    gen = Generator(model, tiny_tokenizer, prompt_style="fewshot", device="cpu")
    prefix = "2+5=7\n"  # the step call continues after a delimiter: "\nProblem:" starts in the prompt
    target = script(gen, format_prompt(QUESTION, "fewshot") + prefix, INVENTED)
    (s,), = gen.sample_steps([QUESTION], [prefix], 1, max_new_tokens=40)
    assert (s.text, s.finish_reason, s.num_tokens) == ("", "stop", _tokens_until(tiny_tokenizer, target, ":"))
    target = script(gen, format_prompt(QUESTION, "fewshot") + "7+1=8\n", "8*2=16\n" + INVENTED)
    (step,), = gen.sample_steps([QUESTION], ["7+1=8\n"], 1, max_new_tokens=40)
    assert (step.text, step.finish_reason) == ("8*2=16", "step")  # an ordinary step is untouched


def test_stop_cut_finds_a_stop_ending_in_the_new_text_only():
    stops = ("\nProblem:",)
    assert stop_cut("so 7.\nProblem: x", stops) == 5
    assert stop_cut("Problem: x", stops, lead="n:\n") == 0  # began in the prompt's tail
    assert stop_cut("Problem: x", stops) is None
    assert stop_cut("more", stops, lead="a\nProblem:") is None  # wholly in the prompt: not this sample's


def test_styles_stop_strings_identity_and_notebook_choices(tiny_tokenizer, model):
    from ttc_lib.pipeline.parameter_ranges import notebook_ranges

    assert (stop_strings("plain"), stop_strings("chat"), stop_strings("fewshot")) == ((), (), ("\nProblem:",))
    plain = Generator(model, tiny_tokenizer, prompt_style="plain", device="cpu", identity="m")
    fewshot = Generator(model, tiny_tokenizer, prompt_style="fewshot", device="cpu", identity="m")
    assert plain.identity == "m|prompt=plain"  # unchanged: caches of plain samples stay valid
    assert fewshot.identity == "m|prompt=fewshot|stop=['\\nProblem:']"  # samples now end there
    nb = Path(__file__).resolve().parents[1] / "notebooks" / "01_train_generator.ipynb"
    assert set(notebook_ranges(nb)["prompt_style"].choices) == set(PROMPT_STYLES)  # the runner checks names
