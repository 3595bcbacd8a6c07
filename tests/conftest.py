"""Shared fixtures: tiny models built inside the tests, never downloaded."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")

TINY_CORPUS = [
    "Start with 23. Add 7, multiply by 3, subtract 15. What is the result?\n"
    "23+7=30\n30*3=90\n90-15=75\n\\boxed{75}<|eos|>",
    "Start with 4. Multiply by 5. What is the result?\n4*5=20\n\\boxed{20}<|eos|>",
    "Start with 61. Subtract 19, add 3. What is the result?\n61-19=42\n42+3=45\n\\boxed{45}<|eos|>",
] * 20


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from ttc_lib.models.tokenizer import build_tokenizer

    return build_tokenizer(TINY_CORPUS, vocab_size=300)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_tokenizer):
    """A randomly initialised 2-layer Llama saved as a standard HF checkpoint dir with ttc_config.json."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=256, tie_word_embeddings=True,
                      bos_token_id=tiny_tokenizer.bos_token_id, eos_token_id=tiny_tokenizer.eos_token_id,
                      pad_token_id=tiny_tokenizer.pad_token_id)
    model = LlamaForCausalLM(cfg)
    path = tmp_path_factory.mktemp("tiny_ckpt")
    model.save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    (path / "ttc_config.json").write_text(json.dumps({"prompt_style": "plain", "name": "tiny"}))
    return path


@pytest.fixture(scope="module")
def one_thread():
    """Tiny matmuls on 2 threads of a shared 2-core machine measured 100x slower than on 1."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def tiny_generator(tiny_checkpoint, one_thread):
    """A Generator on the tiny checkpoint, one per test module (its prefix-reuse store included)."""
    from ttc_lib.generation.generator import Generator

    return Generator.from_pretrained(tiny_checkpoint, device="cpu")


@pytest.fixture(scope="session")
def trained_policy(tmp_path_factory):
    """(checkpoint dir, 3 test problems) of a tiny policy trained for a few seconds: it writes
    multi-step solutions ending in \\boxed{} (wrong arithmetic, varied answers), which is all the
    search logic and the step-round reuse need (a random model almost never closes a step)."""
    import torch

    from ttc_lib.models.tokenizer import build_tokenizer
    from ttc_lib.models.train_config import TrainConfig
    from ttc_lib.models.training import train_model
    from ttc_lib.tasks.arithmetic import ArithmeticWorld, make_splits
    from ttc_lib.tasks.prompts import training_text

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train, test = make_splits(ArithmeticWorld(min_ops=1, max_ops=3), n_train=400, n_test=3, seed=0)
        tok = build_tokenizer(["".join(training_text(p.question, p.solution)) for p in train], 300)
        path = tmp_path_factory.mktemp("trained_policy")
        train_model(train, tok, "tiny", TrainConfig(steps=120, batch_size=16, warmup_steps=10, lr=1e-2,
                                                    checkpoint_every=0, bf16=False), path, progress=False)
    finally:
        torch.set_num_threads(old)
    return path, test


def save_random_lm(path, model_class, config_class, tokenizer, **config):
    """Save a randomly initialised (seed 0) ``model_class`` with ``tokenizer`` as a standard HF
    checkpoint dir: tiny user models, PRM backbones. ``config``: sizes; token ids come from the
    tokenizer."""
    import torch

    torch.manual_seed(0)
    ids = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
               bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model_class(config_class(**ids, **config)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
