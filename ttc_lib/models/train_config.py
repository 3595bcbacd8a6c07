"""The knobs of one from-scratch training run and its learning-rate schedule.

``TrainConfig`` validates itself and does no I/O; ``lr_at`` is the warmup + cosine schedule every
run follows; ``NOT_FINGERPRINTED`` names the knobs that change speed or logging, not the weights
(training.py leaves them out of a run's fingerprint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of one training run. Deterministic for a seed on CPU (bitwise, same thread count);
    on CUDA only up to kernel non-determinism."""

    steps: int = 1500  # optimizer steps (see models.MODEL_SPECS for what each preset reaches)
    batch_size: int = 32  # problems per step, one problem per row
    lr: float = 2e-3  # peak AdamW lr: 2e-3 for small, 1e-3 for medium and for continuing
    warmup_steps: int = 100  # linear warmup from 0, then cosine decay
    min_lr_ratio: float = 0.1  # cosine ends at lr * min_lr_ratio
    weight_decay: float = 0.1  # AdamW decay on matrices only (not norms)
    beta2: float = 0.95  # AdamW beta2; 0.95 is the usual choice for short from-scratch runs
    grad_clip: float = 1.0  # clip the global gradient norm; 0 disables
    bf16: bool | str = "auto"  # bf16 autocast: "auto" = on for CPU (BF16_AUTO_ON_CPU) and bf16-capable CUDA
    seed: int = 0  # initialisation, batch order and torch RNG
    num_threads: int | None = None  # torch threads for this run; None keeps the process setting
    checkpoint_every: int = 200  # save resumable state every this many steps (0: never)
    log_every: int = 50  # loss-curve point every this many steps
    bucket_batches: int = 16  # sort by length within chunks of this many batches (less padding)
    device: str = "auto"  # "auto" = cuda when available, else cpu

    def __post_init__(self) -> None:
        def bad(field: str, why: str) -> None:
            raise ValueError(f"TrainConfig.{field}={getattr(self, field)!r}: {why}")

        for f in ("steps", "batch_size", "bucket_batches"):
            if not _is_int(getattr(self, f)) or getattr(self, f) < 1:
                bad(f, "must be a positive int")
        for f in ("warmup_steps", "checkpoint_every", "log_every", "seed"):
            if not _is_int(getattr(self, f)) or getattr(self, f) < 0:
                bad(f, "must be a non-negative int")
        if not isinstance(self.lr, (int, float)) or not 0 < self.lr < 1:
            bad("lr", "must be a float in (0, 1)")
        for f in ("min_lr_ratio", "weight_decay", "beta2"):
            if not isinstance(getattr(self, f), (int, float)) or not 0 <= getattr(self, f) <= 1:
                bad(f, "must be a float in [0, 1]")
        if not isinstance(self.grad_clip, (int, float)) or self.grad_clip < 0:
            bad("grad_clip", "must be >= 0 (0 disables clipping)")
        if self.bf16 not in (True, False, "auto"):
            bad("bf16", 'must be True, False or "auto"')
        if self.num_threads is not None and (not _is_int(self.num_threads) or self.num_threads < 1):
            bad("num_threads", "must be None or a positive int")
        if not isinstance(self.device, str) or not (self.device in ("auto", "cpu")
                                                    or self.device.startswith("cuda")):
            bad("device", 'must be "auto", "cpu" or "cuda[:N]"')


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


# Fields that change how fast a run goes or what it prints, not the weights it ends with.
NOT_FINGERPRINTED = ("num_threads", "checkpoint_every", "log_every", "device")


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warmup, then cosine decay."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)
