"""From-scratch training: loss mask, bucketing, records, determinism, resume, continuation, cache."""

from __future__ import annotations

import json
import os
import random

import pytest
import torch

from ttc_lib.models.batches import IGNORE_INDEX, batch_schedule, collate, tokenize_problems
from ttc_lib.models.checkpoints import ModelSpec, load_checkpoint
from ttc_lib.models.cost import training_flops
from ttc_lib.models.parallel_training import train_many
from ttc_lib.models.train_config import TrainConfig, lr_at
from ttc_lib.models.training import resume_dir, train_model
from ttc_lib.tasks.problem import Problem
from ttc_lib.tasks.prompts import EOS_TEXT, training_text

TINY = ModelSpec("tiny-test", hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)
FAST = dict(steps=24, batch_size=8, warmup_steps=4, lr=3e-3, log_every=4, checkpoint_every=5, num_threads=1)


def _problems(n: int = 50, seed: int = 0) -> list[Problem]:
    """A tiny chain-arithmetic set (self-contained: no dependency on the task module)."""
    rng, out = random.Random(seed), []
    for i in range(n):
        v = rng.randint(1, 20)
        q, lines = f"Start with {v}.", []
        for _ in range(rng.randint(1, 3)):
            x = rng.randint(1, 9)
            lines.append(f"{v}+{x}={v + x}")
            q, v = q + f" Add {x}.", v + x
        out.append(Problem(id=f"t{i}", question=q + " What is the result?", answer=str(v),
                           solution="\n".join(lines + [f"\\boxed{{{v}}}"]), level=len(lines)))
    return out


def _weights(path):
    model, _, _ = load_checkpoint(path)
    return model.state_dict()


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("field, value", [("steps", 0), ("batch_size", -2), ("lr", 0.0), ("lr", 5),
                                          ("bf16", "yes"), ("num_threads", 0), ("grad_clip", -1.0),
                                          ("device", "tpu"), ("min_lr_ratio", 2.0)])
def test_bad_config_field_is_named(field, value):
    with pytest.raises(ValueError, match=f"TrainConfig.{field}"):
        TrainConfig(**{field: value})


def test_labels_cover_only_the_target(tiny_tokenizer):
    problems = _problems(4)
    data = tokenize_problems(problems, tiny_tokenizer)
    input_ids, labels = collate(data, tiny_tokenizer.pad_token_id)
    for row, (p, (ids, n_prompt)) in enumerate(zip(problems, data)):
        prompt, target = training_text(p.question, p.solution)
        assert ids[0] == tiny_tokenizer.bos_token_id and ids[-1] == tiny_tokenizer.eos_token_id
        assert n_prompt == len(tiny_tokenizer(prompt).input_ids)
        assert (labels[row, :n_prompt] == IGNORE_INDEX).all()  # no loss on the question
        assert (labels[row, len(ids):] == IGNORE_INDEX).all()  # none on padding
        assert labels[row, n_prompt:len(ids)].tolist() == ids[n_prompt:]
        assert tiny_tokenizer.decode(labels[row, n_prompt:len(ids)]) == target
        assert target.endswith(EOS_TEXT)
        assert (input_ids[row, len(ids):] == tiny_tokenizer.pad_token_id).all()  # right padding


def test_batches_are_length_bucketed_and_deterministic():
    lengths = [random.Random(i).randint(10, 100) for i in range(256)]
    config = TrainConfig(steps=40, batch_size=8, bucket_batches=8)
    schedule = batch_schedule(lengths, config)
    assert schedule == batch_schedule(lengths, config) and len(schedule) == 40
    assert all(len(b) == 8 for b in schedule)
    first_epoch = [i for b in schedule[:32] for i in b]
    assert sorted(first_epoch) == list(range(256))  # every problem once per epoch
    pad = sum(max(lengths[i] for i in b) * 8 - sum(lengths[i] for i in b) for b in schedule)
    unsorted = TrainConfig(steps=40, batch_size=8, bucket_batches=1)
    pad_unsorted = sum(max(lengths[i] for i in b) * 8 - sum(lengths[i] for i in b)
                       for b in batch_schedule(lengths, unsorted))
    assert pad < pad_unsorted / 3


def test_lr_warms_up_then_decays():
    config = TrainConfig(steps=100, warmup_steps=10, lr=1e-3, min_lr_ratio=0.1)
    lrs = [lr_at(s, config) for s in range(100)]
    assert lrs[0] < lrs[5] < lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] == pytest.approx(1e-4, rel=0.05)


def test_training_record_loss_and_cache(tmp_path, tiny_tokenizer, monkeypatch):
    problems = _problems()
    config = TrainConfig(**FAST)
    record = train_model(problems, tiny_tokenizer, TINY, config, tmp_path / "run")
    data = tokenize_problems(problems, tiny_tokenizer)
    expected_tokens = sum(len(data[i][0]) for b in batch_schedule([len(d) for d, _ in data], config) for i in b)
    assert record["tokens"] == expected_tokens and record["steps"] == 24
    assert record["training_flops"] == training_flops(record["params"], record["tokens"])
    assert record["loss_curve"][-1][1] < record["loss_curve"][0][1] - 0.5  # it learns
    saved = json.loads((tmp_path / "run" / "ttc_config.json").read_text())
    assert saved["training"]["params"] == record["params"] and saved["spec"]["hidden_size"] == 32
    assert saved["prompt_style"] == "plain" and saved["training"]["parent"] is None
    assert not resume_dir(tmp_path / "run").exists()

    monkeypatch.setattr("ttc_lib.models.training._run_loop", lambda *a, **k: pytest.fail("cache missed"))
    assert train_model(problems, tiny_tokenizer, TINY, config, tmp_path / "run") == record


def test_same_seed_same_weights(tmp_path, tiny_tokenizer):
    problems = _problems()
    config = TrainConfig(**{**FAST, "steps": 8})
    train_model(problems, tiny_tokenizer, TINY, config, tmp_path / "a")
    train_model(problems, tiny_tokenizer, TINY, config, tmp_path / "b")
    train_model(problems, tiny_tokenizer, TINY, TrainConfig(**{**FAST, "steps": 8, "seed": 1}), tmp_path / "c")
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    assert not _same(_weights(tmp_path / "a"), _weights(tmp_path / "c"))


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, tiny_tokenizer):
    problems = _problems()
    config = TrainConfig(**FAST)  # state saved every 5 steps
    full = train_model(problems, tiny_tokenizer, TINY, config, tmp_path / "full")

    class Killed(Exception):
        pass

    def kill_at_13(info):
        if info["step"] == 13:
            raise Killed

    with pytest.raises(Killed):
        train_model(problems, tiny_tokenizer, TINY, config, tmp_path / "cut", callback=kill_at_13)
    assert not (tmp_path / "cut").exists()  # no half checkpoint
    assert (resume_dir(tmp_path / "cut") / "state.pt").exists()
    steps_seen = []
    resumed = train_model(problems, tiny_tokenizer, TINY, config, tmp_path / "cut",
                          callback=lambda info: steps_seen.append(info["step"]))
    assert steps_seen[0] == 11  # continued after the state saved at step 10
    assert _same(_weights(tmp_path / "full"), _weights(tmp_path / "cut"))
    assert resumed["tokens"] == full["tokens"] and resumed["loss_curve"] == full["loss_curve"]
    assert not resume_dir(tmp_path / "cut").exists()


def test_continued_training_adds_parent_flops(tmp_path, tiny_tokenizer):
    problems = _problems()
    parent = train_model(problems, tiny_tokenizer, TINY, TrainConfig(**{**FAST, "steps": 8}), tmp_path / "policy")
    child = train_model(problems, tiny_tokenizer, TINY, TrainConfig(**{**FAST, "steps": 6}), tmp_path / "longer",
                        init_from=tmp_path / "policy")
    assert child["own_training_flops"] == training_flops(child["params"], child["tokens"])
    assert child["training_flops"] == pytest.approx(parent["training_flops"] + child["own_training_flops"])
    assert child["parent"]["path"] == str(tmp_path / "policy")
    assert child["parent"]["training"]["fingerprint"] == parent["fingerprint"]
    with pytest.raises(ValueError, match="does not match"):
        train_model(problems, tiny_tokenizer, "small", TrainConfig(**FAST), tmp_path / "x", init_from=tmp_path / "policy")


def test_train_many_runs_jobs_in_processes(tmp_path, tiny_tokenizer):
    problems = _problems()
    config = TrainConfig(**{**FAST, "steps": 6, "num_threads": None})
    call = dict(problems=problems, tokenizer=tiny_tokenizer, spec_or_model=TINY, config=config)
    jobs = [[{**call, "out_dir": str(tmp_path / "a")},
             {**call, "out_dir": str(tmp_path / "a2"), "init_from": str(tmp_path / "a")}],
            {**call, "out_dir": str(tmp_path / "b"), "config": TrainConfig(**{**FAST, "steps": 6, "seed": 3})}]
    records = train_many(jobs, parallel=True)
    assert [r["steps"] for r in records] == [6, 6, 6]
    assert records[1]["parent"]["path"] == str(tmp_path / "a")
    assert records[0]["num_threads"] == 1  # each worker single-threaded
    serial = train_model(problems, tiny_tokenizer, TINY, TrainConfig(**{**FAST, "steps": 6}), tmp_path / "serial")
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "serial"))  # same result in a worker
    assert serial["tokens"] == records[0]["tokens"]


def test_too_long_problem_is_named(tmp_path, tiny_tokenizer):
    short_context = ModelSpec("short", hidden_size=32, num_layers=1, num_heads=4, intermediate_size=64,
                              max_position_embeddings=16)
    with pytest.raises(ValueError, match="problem t.* max_position_embeddings=16"):
        train_model(_problems(), tiny_tokenizer, short_context, TrainConfig(**FAST), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_a_training_worker_stops_when_its_parent_dies():
    """A kernel killed mid-training must not leave workers training on (they would write checkpoints
    into the folder a rerun writes): parent starts a worker that watches it, then dies at once."""
    import subprocess
    import sys
    import time

    worker = ("import os, time\nfrom ttc_lib.models.parallel_training import exit_with_parent\n"
              "exit_with_parent(os.getppid(), poll=0.05)\nprint(os.getpid(), flush=True)\ntime.sleep(60)\n")
    parent = ("import subprocess, sys\n"
              f"child = subprocess.Popen([sys.executable, '-c', {worker!r}], stdout=sys.stdout)\n"
              "import time; time.sleep(1.5)\n")  # the worker is started; then the parent exits
    out = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, timeout=60).stdout
    pid = int(out.split()[0])
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return  # gone: it stopped with its parent
        time.sleep(0.1)
    os.kill(pid, 9)
    pytest.fail("the worker outlived its parent by 10 s")
