"""Head PRM data and batching: labelled solutions in, question-level splits and row batches out.

Pure bookkeeping, no model: the checks on ``LabelledSolution`` inputs, the per-step targets
(None -> NaN, masked out of the loss), the validation split by QUESTION, and the two batchers:
``length_batches`` (scoring: longest first within a rows x width budget, so padding stays
small) and ``epoch_batches`` (training: seeded shuffle, length-sorted within chunks).
Used by ``prm_head`` (the model) and ``prm_head_training`` (the loop); see ``prm_head`` for the rules.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from ttc_lib.tasks.steps import step_end_offsets
from ttc_lib.verifiers.base import LabelledSolution

SCORE_BATCH_TOKENS = 32768  # rows x width of one scoring forward (CPU memory and speed)
SCORE_BATCH_ROWS = 256  # most solutions in one scoring forward
BUCKET_BATCHES = 8  # training: sort by length within chunks of this many batches (less padding)


def length_batches(todo: list[int], lengths: list[int]) -> list[list[int]]:
    """Longest first; a batch grows while rows x width stays within the scoring budget."""
    order, batches = sorted(todo, key=lambda i: -lengths[i]), []
    for i in order:
        if batches and len(batches[-1]) < SCORE_BATCH_ROWS and \
                (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= SCORE_BATCH_TOKENS:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def epoch_batches(lengths: Any, bs: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch's batches: seeded shuffle, length-sorted within chunks (less padding), batch order shuffled."""
    import numpy as np

    rng = np.random.default_rng([seed, epoch])
    perm, batches = rng.permutation(len(lengths)), []
    for start in range(0, len(perm), bs * BUCKET_BATCHES):
        part = perm[start:start + bs * BUCKET_BATCHES]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i:i + bs].tolist() for i in range(0, len(part), bs)]
    return [batches[b] for b in rng.permutation(len(batches))]


def split_by_question(items: Sequence[LabelledSolution], val_fraction: float,
                      seed: int) -> tuple[list[LabelledSolution], list[LabelledSolution]]:
    """(train, validation): a seeded ``val_fraction`` of the distinct question ids goes to validation."""
    import numpy as np

    qids = sorted({it.question_id for it in items})
    if val_fraction <= 0:
        return list(items), []
    if len(qids) < 2:
        raise ValueError(f"val_fraction={val_fraction} needs at least 2 distinct questions, got {len(qids)}")
    n_val = min(len(qids) - 1, max(1, round(val_fraction * len(qids))))
    held = {qids[i] for i in np.random.default_rng(seed).permutation(len(qids))[:n_val]}
    return [it for it in items if it.question_id not in held], [it for it in items if it.question_id in held]


def step_targets(items: Sequence[LabelledSolution]) -> torch.Tensor:
    return torch.tensor([math.nan if y is None else float(y) for it in items for y in it.labels], dtype=torch.float32)


def check_items(items: list[LabelledSolution]) -> None:
    if not items:
        raise ValueError("train_head_prm needs at least one LabelledSolution")
    for k, it in enumerate(items):
        if not isinstance(it, LabelledSolution):
            raise ValueError(f"train[{k}] must be a LabelledSolution, got {type(it).__name__}")
        n = len(step_end_offsets(it.solution))
        if len(it.labels) != n:
            raise ValueError(f"train[{k}] (question {it.question_id}): {len(it.labels)} labels for {n} steps")
        for y in it.labels:
            if y is not None and not (isinstance(y, (int, float)) and 0 <= y <= 1):
                raise ValueError(f"train[{k}] (question {it.question_id}): label {y!r} is not None or in [0, 1]")
    if all(y is None for it in items for y in it.labels):
        raise ValueError("train_head_prm: every label is None; nothing to train on")
