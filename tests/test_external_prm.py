"""External PRM loaders: tiny random models of each format, built and saved here, never downloaded."""

from __future__ import annotations

import json

import pytest
import torch

from ttc_lib.models.identity import model_identity
from ttc_lib.tasks.steps import join_steps, split_steps
from ttc_lib.verifiers.external_prm import MathShepherdPRM, QwenPRM, load_prm

CORPUS = ["Start with 23. Add 7, multiply by 3. What is the result?\n23+7=30\n30*3=90\n\\boxed{90}",
          "Start with 4. Multiply by 5. What is the result?\n4*5=20\n\\boxed{20}"] * 10
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
QUESTIONS = ["Start with 23. Add 7, multiply by 3. What is the result?",
             "Start with 4. Multiply by 5. What is the result?",
             "Start with 61. Subtract 19, add 3. What is the result?"]
SOLUTIONS = [join_steps(["23+7=30", "30*3=90", "\\boxed{90}"]),
             join_steps(["4*5=21", "\\boxed{21}"]),
             join_steps(["61-19=42", "42+3=45", "45+0=45", "\\boxed{45}"])]


def _tokenizer(extra: list[str], special: bool):
    from ttc_lib.models.tokenizer import build_tokenizer

    tok = build_tokenizer(CORPUS, vocab_size=300)
    tok.add_tokens(extra, special_tokens=special)
    return tok


@pytest.fixture(scope="module")
def shepherd_dir(tmp_path_factory):
    from transformers import MistralConfig, MistralForCausalLM

    tok = _tokenizer(["ки"], special=False)
    torch.manual_seed(0)
    cfg = MistralConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    path = tmp_path_factory.mktemp("shepherd")
    MistralForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _save_qwen(path, head_out: int = 2):
    """Qwen2 backbone (keys model.*) + score head, sharded like the real checkpoint, with an
    auto_map to remote code that would fail loudly if anything executed it."""
    from safetensors.torch import save_file
    from transformers import Qwen2Config, Qwen2Model

    tok = _tokenizer(["<extra_0>", "<|im_start|>", "<|im_end|>"], special=True)
    tok.chat_template = CHATML
    torch.manual_seed(1)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    backbone = Qwen2Model(cfg)
    head = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, head_out))
    shards = {"model-00001-of-00002.safetensors": {f"model.{k}": v.contiguous() for k, v in backbone.state_dict().items()},
              "model-00002-of-00002.safetensors": {f"score.{k}": v * 4 for k, v in head.state_dict().items()}}
    weight_map = {}
    for name, tensors in shards.items():
        save_file(tensors, str(path / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in tensors})
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    config = cfg.to_dict() | {"architectures": ["Qwen2ForProcessRewardModel"],
                              "auto_map": {"AutoModel": "modeling_qwen2_rm.Qwen2ForProcessRewardModel"}}
    (path / "config.json").write_text(json.dumps(config))
    (path / "modeling_qwen2_rm.py").write_text("raise RuntimeError('remote code was executed')\n")
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    return _save_qwen(tmp_path_factory.mktemp("qwen_prm"))


def _manual_shepherd(path, question, solution):
    """Math-Shepherd scoring written out by hand on the exact string (as in its model card)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    text = question + " " + "\n".join(f"{s} ки" for s in split_steps(solution))
    ids = torch.tensor([tok(text)["input_ids"]])
    plus, minus = tok.convert_tokens_to_ids("+"), tok.convert_tokens_to_ids("-")
    with torch.no_grad():
        logits = model(ids).logits[0]
    at = ids[0] == tok.convert_tokens_to_ids("ки")
    return logits[at][:, [plus, minus]].softmax(-1)[:, 0].tolist()


def _manual_qwen(path, question, solution):
    from safetensors import safe_open
    from transformers import AutoTokenizer, Qwen2Model

    tok = AutoTokenizer.from_pretrained(path)
    backbone = Qwen2Model.from_pretrained(path, dtype=torch.float32).eval()
    with safe_open(str(path / "model-00002-of-00002.safetensors"), "pt") as f:
        w = {k: f.get_tensor(k) for k in f.keys()}
    messages = [{"role": "system", "content": "Please reason step by step, and put your final answer within \\boxed{}."},
                {"role": "user", "content": question},
                {"role": "assistant", "content": "<extra_0>".join(split_steps(solution)) + "<extra_0>"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        h = backbone(input_ids=ids).last_hidden_state[0][ids[0] == tok.convert_tokens_to_ids("<extra_0>")]
        h = torch.relu(h @ w["score.0.weight"].T + w["score.0.bias"])
        logits = h @ w["score.2.weight"].T + w["score.2.bias"]
    return logits.softmax(-1)[:, 1].tolist()


@pytest.mark.parametrize("kind", ["math_shepherd", "qwen_prm"])
def test_scores_match_manual_computation(kind, shepherd_dir, qwen_dir):
    path, manual = (shepherd_dir, _manual_shepherd) if kind == "math_shepherd" else (qwen_dir, _manual_qwen)
    prm = load_prm(path)  # kind auto-detected from config.json
    assert isinstance(prm, MathShepherdPRM if kind == "math_shepherd" else QwenPRM)
    scores = prm.score(QUESTIONS, SOLUTIONS)
    for q, sol, got in zip(QUESTIONS, SOLUTIONS, scores):
        assert len(got) == len(split_steps(sol))
        assert all(0.0 <= x <= 1.0 for x in got)
        assert got == pytest.approx(manual(path, q, sol), abs=1e-5)
    assert len({round(x, 6) for row in scores for x in row}) > 3  # a real signal, not a constant
    assert prm.tokens_scored > 0 and prm.num_params > 0
    assert prm.identity == f"{kind}:{model_identity(path)}"  # what cache keys of its scores name


@pytest.mark.parametrize("kind", ["math_shepherd", "qwen_prm"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_batching_and_padding_do_not_change_scores(kind, side, shepherd_dir, qwen_dir):
    path = shepherd_dir if kind == "math_shepherd" else qwen_dir
    one = load_prm(path, kind, batch_size=1).score(QUESTIONS, SOLUTIONS)
    batched = load_prm(path, kind, batch_size=3, padding_side=side).score(QUESTIONS, SOLUTIONS)
    for a, b in zip(one, batched):
        assert b == pytest.approx(a, abs=1e-5)


def test_empty_solution_and_tag_text_in_steps(shepherd_dir):
    prm = load_prm(shepherd_dir)
    scores = prm.score(["q ки", "q"], ["", "a ки b\n\\boxed{1}"])
    assert scores[0] == [] and len(scores[1]) == 2


def test_missing_or_corrupt_checkpoints_name_the_path(tmp_path, qwen_dir):
    with pytest.raises(FileNotFoundError, match="no_such_prm"):
        load_prm(tmp_path / "no_such_prm")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        load_prm(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="empty"):
        load_prm(tmp_path / "empty")


def test_qwen_head_with_wrong_layout_is_rejected(tmp_path):
    bad = _save_qwen(tmp_path, head_out=3)
    with pytest.raises(ValueError, match="head weights do not match"):
        load_prm(bad)
