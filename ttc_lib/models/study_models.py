"""The three models of the study, trained on the same training rows: the policy, the verifier
backbone (the policy trained further: a verifier that knows more than the policy), and a larger
model for the test-time-vs-pretraining exchange (notebook 07).

The policy's rows put other problems (or attempts at them) before a share of the questions
(``context_rows``), so the revision model can later read attempts; the larger model trains on the
same rows when ``large_context`` (the same recipe), else on plain rows. The policy and its
continuation run in one process, the larger model beside it (``parallel_training.train_many``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ttc_lib.models.checkpoints import get_spec
from ttc_lib.models.context_rows import with_context_rows
from ttc_lib.models.parallel_training import train_many
from ttc_lib.models.train_config import TrainConfig
from ttc_lib.tasks.problem import Problem

ROLES = ("policy", "verifier_backbone", "large")  # what each checkpoint is for, in later stages


def train_study_models(train: Sequence[Problem], tokenizer: Any, out_dirs: dict[str, Path], *, policy_model: str,
                       policy_steps: int, verifier_extra_steps: int, large_model: str, large_steps: int,
                       batch_size: int, lr: float, large_lr: float, context_share: float, large_context: bool,
                       seed: int, parallel: bool = True) -> tuple[dict[str, dict], list[Problem]]:
    """Train the policy, its verifier-backbone continuation and the larger model into ``out_dirs``
    (role -> folder); returns (role -> training record, the policy's training rows)."""
    missing = [role for role in ROLES if role not in out_dirs]
    if missing:
        raise ValueError(f"train_study_models: out_dirs lacks {missing} (roles: {list(ROLES)})")
    position_limit = min(get_spec(spec).max_position_embeddings for spec in (policy_model, large_model))
    rows = with_context_rows(list(train), context_share, seed, tokenizer=tokenizer, max_tokens=position_limit)
    policy = TrainConfig(steps=policy_steps, batch_size=batch_size, lr=lr, seed=seed)
    verifier = TrainConfig(steps=verifier_extra_steps, batch_size=batch_size, lr=lr, seed=seed + 1)
    large = TrainConfig(steps=large_steps, batch_size=batch_size, lr=large_lr, seed=seed)
    records = train_many([
        [dict(problems=rows, tokenizer=tokenizer, spec_or_model=policy_model, config=policy, out_dir=out_dirs["policy"]),
         dict(problems=rows, tokenizer=tokenizer, spec_or_model=None, config=verifier,
              out_dir=out_dirs["verifier_backbone"], init_from=out_dirs["policy"])],
        [dict(problems=rows if large_context else list(train), tokenizer=tokenizer, spec_or_model=large_model,
              config=large, out_dir=out_dirs["large"])],
    ], parallel=parallel)
    return dict(zip(ROLES, records)), rows


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
