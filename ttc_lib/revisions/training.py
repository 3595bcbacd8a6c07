"""Fine-tuning the revision model, and the longer position limit it and its ORM need.

``train_revision_model`` continues the policy with ``training.train_model``,
computing the validation loss every ``eval_every`` steps on held-out questions and keeping a
snapshot at each; training stops ``patience`` evaluations after the best one, and the
checkpoint kept is the one *right after* the minimum ("a little after eval loss turns up").
The choice and the validation curve are recorded in ``ttc_config.json``. The revision model's
position limit is raised (``max_positions``): four attempts in context exceed the policy's 512.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from ttc_lib.revisions.data import MAX_CONTEXT, RevisionExample, to_problems
from ttc_lib.storage import read_json, write_json
from ttc_lib.tasks.problem import Problem

MAX_POSITIONS = 1024  # position limit of the revision model and its ORM backbone (RoPE: a limit only)


def target_loss(model, tokenizer, problems: Sequence[Problem], batch_size: int = 32) -> float:
    """Mean next-token loss on the target tokens only (the training loss, without updates)."""
    import torch
    import torch.nn.functional as F

    from ttc_lib.models.batches import IGNORE_INDEX, collate, tokenize_problems

    data = sorted(tokenize_problems(list(problems), tokenizer), key=lambda r: len(r[0]))
    was_training, total, count = model.training, 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(data), batch_size):
            ids, labels = collate(data[i:i + batch_size], tokenizer.pad_token_id)
            logits = model(input_ids=ids.to(model.device)).logits[:, :-1].float()
            target = labels[:, 1:].to(model.device)
            n = int((target != IGNORE_INDEX).sum())
            total += float(F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=IGNORE_INDEX,
                                           reduction="sum"))
            count += n
    model.train(was_training)
    return total / max(count, 1)


@contextmanager
def _quiet_saves():
    """No "Writing model shards" bar for the many small snapshots saved here."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


class _Stop(Exception):
    """Raised from the training callback once validation loss has turned up for good."""


def train_revision_model(policy_path: str | Path, train: Sequence[RevisionExample], val: Sequence[RevisionExample],
                         config, out_dir: str | Path, *, eval_every: int = 25, patience: int = 2,
                         max_positions: int = MAX_POSITIONS, progress: bool = True) -> dict:
    """Fine-tune the policy on revision trajectories; save the chosen checkpoint at ``out_dir``.

    Validation loss every ``eval_every`` steps (and at step 0); stop after ``patience`` evaluations
    without a new minimum; keep the snapshot one evaluation after the minimum (the last one if the
    loss never turned up). Returns the record (also in ``out_dir/ttc_config.json`` under
    "training"). Cached: an ``out_dir`` trained on the same inputs is returned as is; an
    interrupted run resumes (train_model's resume state, snapshots on disk).
    """
    import torch

    from ttc_lib import __version__
    from ttc_lib.models.checkpoints import count_params, load_checkpoint, read_ttc_config, save_checkpoint
    from ttc_lib.models.train_config import TrainConfig
    from ttc_lib.models.training import train_model, weights_hash

    if eval_every < 1 or patience < 1:
        raise ValueError(f"eval_every and patience must be >= 1, got {eval_every}, {patience}")
    config = config if isinstance(config, TrainConfig) else TrainConfig(**config)
    config = replace(config, checkpoint_every=eval_every)  # resume state where snapshots are (not fingerprinted)
    out_dir = Path(out_dir)
    parent = read_ttc_config(policy_path)
    fit_problems, val_problems = to_problems(train), to_problems(val)
    model, tokenizer, _ = load_checkpoint(policy_path, dtype=torch.float32)
    parent_key = (parent.get("training") or {}).get("fingerprint") or weights_hash(model)
    model.config.max_position_embeddings = max_positions
    h = hashlib.sha256(json.dumps([parent_key, config.steps, config.batch_size, config.lr, config.warmup_steps,
                                   config.min_lr_ratio, config.seed, eval_every, patience, max_positions]).encode())
    for p in fit_problems + [None] + val_problems:
        h.update(b"|" if p is None else json.dumps([p.question, p.solution]).encode())
    fingerprint = h.hexdigest()[:16]
    if (out_dir / "ttc_config.json").exists():
        saved = read_ttc_config(out_dir).get("training") or {}
        if saved.get("revision_fingerprint") == fingerprint:
            return saved

    work = out_dir.parent / f".{out_dir.name}.work"
    work.mkdir(parents=True, exist_ok=True)
    curve_file = work / "val_curve.json"
    curve = read_json(curve_file) if curve_file.exists() else {"fingerprint": fingerprint, "points": []}
    if curve.get("fingerprint") != fingerprint:
        shutil.rmtree(work)
        work.mkdir(parents=True)
        curve = {"fingerprint": fingerprint, "points": []}

    def evaluate(step: int, tokens: int) -> None:
        loss = target_loss(model, tokenizer, val_problems)
        points = [pt for pt in curve["points"] if pt[0] < step] + [[step, round(loss, 5), tokens]]
        with _quiet_saves():
            save_checkpoint(model, tokenizer, work / f"step_{step:05d}", {"name": "revision"})
        curve["points"] = points
        write_json(curve_file, curve)
        best = min(range(len(points)), key=lambda i: points[i][1])
        if len(points) - 1 - best >= patience:
            raise _Stop

    def callback(info: dict) -> None:
        if info["step"] % eval_every == 0 or info["step"] == config.steps:
            evaluate(info["step"], info["tokens"])

    if not curve["points"]:
        evaluate(0, 0)
    stopped = False
    try:
        record = train_model(fit_problems, tokenizer, model, config, work / "final", progress=progress,
                             callback=callback)
    except _Stop:
        stopped, record = True, {}
    points = curve["points"]
    best = min(range(len(points)), key=lambda i: points[i][1])
    chosen = min(best + 1, len(points) - 1)
    step, _, tokens = points[chosen]
    chosen_model, _, _ = load_checkpoint(work / f"step_{step:05d}", dtype=torch.float32)
    params = count_params(chosen_model)
    own_flops = 6.0 * params * tokens
    result = {
        "revision_fingerprint": fingerprint, "fingerprint": fingerprint, "parent_fingerprint": parent_key,
        "val_curve": [[s, loss] for s, loss, _ in points], "best_step": points[best][0], "chosen_step": step,
        "turned_up": chosen > best, "stopped_early": stopped, "params": params, "tokens": tokens,
        "train_examples": len(train), "val_examples": len(val), "max_positions": max_positions,
        "own_training_flops": own_flops,
        "training_flops": own_flops + float((parent.get("training") or {}).get("training_flops", 0.0)),
        "loss_curve": record.get("loss_curve"), "config": {k: getattr(config, k) for k in
                                                           ("steps", "batch_size", "lr", "warmup_steps", "seed")},
        "eval_every": eval_every, "patience": patience, "parent": {"path": str(policy_path)},
    }
    with _quiet_saves():
        save_checkpoint(chosen_model, tokenizer, out_dir, {"name": "revision", "prompt_style": "plain",
                                                           "training": result, "ttc_version": __version__,
                                                           "revision": {"max_context": MAX_CONTEXT}})
    shutil.rmtree(work, ignore_errors=True)
    return result


def extend_positions(src: str | Path, dst: str | Path, max_positions: int = MAX_POSITIONS) -> Path:
    """A copy of checkpoint ``src`` with its position limit raised (RoPE: the weights are unchanged),
    so a verifier on it can read four attempts of context. Reused when already there."""
    from ttc_lib.models.checkpoints import load_checkpoint, read_ttc_config, save_checkpoint

    dst = Path(dst)
    if (dst / "config.json").exists() and read_ttc_config(dst).get("extended_from") == str(src) \
            and json.loads((dst / "config.json").read_text()).get("max_position_embeddings") == max_positions:
        return dst
    model, tokenizer, ttc_config = load_checkpoint(src)
    model.config.max_position_embeddings = max_positions
    config = {**ttc_config, "extended_from": str(src)}
    if "spec" in config:
        config["spec"] = {**config["spec"], "max_position_embeddings": max_positions}
    with _quiet_saves():
        return save_checkpoint(model, tokenizer, dst, config)
