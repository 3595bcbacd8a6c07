"""The three models of the study, trained on the same training rows: the policy, the verifier
backbone (the policy trained further: a verifier that knows more than the policy), and a larger
model for the test-time-vs-pretraining exchange (notebook 07).

The policy's rows give a share of the questions attempts at themselves before the solution
(``context_rows``), so the revision model can later read its attempts. The larger model trains on
exactly the policy's recipe: the same rows in the same batches (same seed), the same number of
steps and the same schedule shape (warmup, cosine, clipping); only its width and its peak
learning rate differ (peak lr falls with width). ``recipe_differences`` checks that from the two
training records; notebook 07 reports the exchange as a finding only when it finds none. The
policy and its continuation run in one process, the larger model beside it
(``parallel_training.train_many``).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ttc_lib.models.checkpoints import get_spec
from ttc_lib.models.context_rows import with_context_rows
from ttc_lib.models.parallel_training import train_many
from ttc_lib.models.train_config import TrainConfig
from ttc_lib.tasks.problem import Problem

ROLES = ("policy", "verifier_backbone", "large")  # what each checkpoint is for, in later stages
FREE_IN_RECIPE = ("lr",)  # TrainConfig fields the larger model may set apart from the policy (peak lr falls with width)


def training_jobs(train: Sequence[Problem], tokenizer: Any, out_dirs: dict[str, Path], *, policy_model: str,
                  policy_steps: int, verifier_extra_steps: int, large_model: str, batch_size: int, lr: float,
                  large_lr: float, context_share: float, seed: int,
                  context_min_level: int = 0) -> tuple[list[list[dict]], list[Problem]]:
    """(the jobs of ``parallel_training.train_many``: [[policy, its verifier continuation], [large]],
    the policy's training rows). The large job gets the policy's very rows and its config but the
    peak lr (module docstring)."""
    missing = [role for role in ROLES if role not in out_dirs]
    if missing:
        raise ValueError(f"train_study_models: out_dirs lacks {missing} (roles: {list(ROLES)})")
    position_limit = min(get_spec(spec).max_position_embeddings for spec in (policy_model, large_model))
    rows = with_context_rows(list(train), context_share, seed, tokenizer=tokenizer, max_tokens=position_limit,
                             min_level=context_min_level)
    policy = TrainConfig(steps=policy_steps, batch_size=batch_size, lr=lr, seed=seed)
    verifier = TrainConfig(steps=verifier_extra_steps, batch_size=batch_size, lr=lr, seed=seed + 1)
    jobs = [
        [dict(problems=rows, tokenizer=tokenizer, spec_or_model=policy_model, config=policy, out_dir=out_dirs["policy"]),
         dict(problems=rows, tokenizer=tokenizer, spec_or_model=None, config=verifier,
              out_dir=out_dirs["verifier_backbone"], init_from=out_dirs["policy"])],
        [dict(problems=rows, tokenizer=tokenizer, spec_or_model=large_model, config=TrainConfig(**{
            **asdict(policy), "lr": large_lr}), out_dir=out_dirs["large"])],
    ]
    return jobs, rows


def train_study_models(train: Sequence[Problem], tokenizer: Any, out_dirs: dict[str, Path], *, policy_model: str,
                       policy_steps: int, verifier_extra_steps: int, large_model: str, batch_size: int, lr: float,
                       large_lr: float, context_share: float, seed: int, context_min_level: int = 0,
                       parallel: bool = True) -> tuple[dict[str, dict], list[Problem]]:
    """Train the policy, its verifier-backbone continuation and the larger model into ``out_dirs``
    (role -> folder); returns (role -> training record, the policy's training rows)."""
    jobs, rows = training_jobs(train, tokenizer, out_dirs, policy_model=policy_model, policy_steps=policy_steps,
                               verifier_extra_steps=verifier_extra_steps, large_model=large_model,
                               batch_size=batch_size, lr=lr, large_lr=large_lr, context_share=context_share, seed=seed,
                               context_min_level=context_min_level)
    records = train_many(jobs, parallel=parallel)
    return dict(zip(ROLES, records)), rows


def recipe_differences(policy: dict, large: dict) -> list[str]:
    """What sets the larger model's training apart from the policy's, from their training records
    (``train_model``'s): rows seen (problems, tokens), and every TrainConfig field but
    ``FREE_IN_RECIPE`` and the run-time ones (threads, checkpointing, logging, device). Empty: the
    same recipe. A record without a config (your own models) is a difference, named."""
    if not policy.get("config") or not large.get("config"):
        return ["no training config recorded (a model not trained by ttc)"]
    out = [f"{key}: policy {policy.get(key)} vs large {large.get(key)}"
           for key in ("problems", "tokens", "steps", "batch_size") if policy.get(key) != large.get(key)]
    runtime = {"num_threads", "checkpoint_every", "log_every", "device"}
    for key in sorted(set(policy["config"]) | set(large["config"])):
        if key in FREE_IN_RECIPE or key in runtime or key in ("steps", "batch_size"):
            continue
        if policy["config"].get(key) != large["config"].get(key):
            out.append(f"{key}: policy {policy['config'].get(key)} vs large {large['config'].get(key)}")
    return out


def training_table(records: dict[str, dict]) -> pd.DataFrame:
    """One row per model: params, tokens, training FLOPs, wall seconds, final loss."""
    return pd.DataFrame({name: {"params": r["params"], "tokens": r["tokens"], "training_flops": r["training_flops"],
                                "wall_seconds": r["wall_seconds"], "final_loss": r["final_loss"]}
                         for name, r in records.items()}).T


def loss_curves(records: dict[str, dict], policy_steps: int) -> pd.DataFrame:
    """Long table (step, loss, model) of every record's loss curve; the verifier backbone's steps
    continue the policy's. Records without a curve (your own models) add nothing."""
    curves = pd.concat([pd.DataFrame(r["loss_curve"], columns=["step", "loss"]).assign(model=name)
                        for name, r in records.items() if r.get("loss_curve")]
                       + [pd.DataFrame(columns=["step", "loss", "model"])])
    curves.loc[curves.model == "verifier_backbone", "step"] += policy_steps
    return curves
