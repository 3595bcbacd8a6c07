"""Training rows and batches: problems as (token ids, prompt length), the seeded length-bucketed
batch schedule, and right-padded (input_ids, labels) with the loss on the target only.
"""

from __future__ import annotations

from typing import Any

from ttc_lib.models.train_config import TrainConfig
from ttc_lib.tasks.problem import Problem
from ttc_lib.tasks.prompts import training_text

IGNORE_INDEX = -100  # label of positions that carry no loss (prompt, padding)
PAD_MULTIPLE = 8  # batch width rounded up to this: every new width makes oneDNN JIT and cache a new
#                   bf16 kernel (measured: memory grew 1.0 -> 1.45 GB in 100 steps without rounding)


def tokenize_problems(problems: list[Problem], tokenizer: Any,
                      style: str = "plain") -> list[tuple[list[int], int]]:
    """(token ids, prompt length) per problem. Prompt and target are encoded separately, exactly
    as at generation time (the prompt is encoded alone, then the model continues it)."""
    if not problems:
        raise ValueError("train_model needs at least one problem")
    pairs = [training_text(p.question, p.solution, style) for p in problems]
    for p, (_, target) in zip(problems, pairs):
        if not p.solution.strip():
            raise ValueError(f"problem {p.id} has no reference solution to train on")
    prompts = tokenizer([a for a, _ in pairs], add_special_tokens=True)["input_ids"]
    targets = tokenizer([b for _, b in pairs], add_special_tokens=False)["input_ids"]
    return [(list(a) + list(b), len(a)) for a, b in zip(prompts, targets)]


def batch_schedule(lengths: list[int], config: TrainConfig) -> list[list[int]]:
    """Row indices of every step's batch: per epoch, a seeded shuffle, length-sorted within
    chunks of ``bucket_batches`` batches, batch order shuffled. A pure function of its inputs,
    so a resumed run sees exactly the batches an uninterrupted one would."""
    import numpy as np

    n, bs = len(lengths), min(config.batch_size, len(lengths))
    order_len = np.asarray(lengths)
    schedule: list[list[int]] = []
    epoch = 0
    while len(schedule) < config.steps:
        rng = np.random.default_rng([config.seed, epoch])
        perm = rng.permutation(n)
        batches = []
        chunk = bs * config.bucket_batches
        for start in range(0, n - bs + 1, chunk):
            part = perm[start:start + chunk]
            part = part[np.argsort(order_len[part], kind="stable")]
            batches += [part[i:i + bs].tolist() for i in range(0, len(part) - bs + 1, bs)]
        schedule += [batches[i] for i in rng.permutation(len(batches))]
        epoch += 1
    return schedule[:config.steps]


def collate(rows: list[tuple[list[int], int]], pad_id: int):
    """(input_ids, labels) right-padded. Labels copy the target tokens and are IGNORE_INDEX on
    the prompt and the padding. No attention mask is needed: padding sits after every real token
    of its row and attention is causal, so the fast causal kernel can be used."""
    import torch

    width = -(-max(len(ids) for ids, _ in rows) // PAD_MULTIPLE) * PAD_MULTIPLE
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for r, (ids, n_prompt) in enumerate(rows):
        input_ids[r, :len(ids)] = torch.tensor(ids)
        labels[r, n_prompt:len(ids)] = torch.tensor(ids[n_prompt:])
    return input_ids, labels
