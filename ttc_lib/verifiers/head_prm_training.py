"""Head PRM training: the config, the loss, and the AdamW loop with early stopping.

``HeadTrainConfig`` holds (and validates) every knob; ``step_bce`` is the masked per-step
binary cross-entropy; ``fit_head`` runs the epochs (warmup then cosine, gradient clipping, bf16
autocast when fine-tuning on CUDA) and restores the best validation epoch; ``_features`` is the
single frozen-backbone feature pass; ``head_fingerprint`` is the cache key. ``train_head_prm`` (below)
wires these to a backbone, the cache and the saved folder; see ``head_prm`` for the rules.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch

from ttc_lib.models.checkpoints import count_params, read_ttc_config
from ttc_lib.models.cost import forward_flops, training_flops
from ttc_lib.models.training import tqdm_disabled, weights_hash
from ttc_lib.verifiers.base import VERIFIER_CONFIG, LabelledSolution, read_verifier_config
from ttc_lib.verifiers.head_prm import KIND, HeadPRM, load_head_prm, save_head_prm
from ttc_lib.verifiers.head_prm_data import check_items, epoch_batches, length_batches, split_by_question, step_targets


@dataclass(frozen=True)
class HeadTrainConfig:
    lr: float = 3e-4  # AdamW peak; paper 3e-5 for PaLM. Our from-scratch 1M backbones: see notes
    batch_size: int = 128  # solutions per optimizer step (paper 128)
    dropout: float = 0.05  # on the hidden state before the head (paper)
    max_epochs: int = 10  # upper bound; early stopping usually ends sooner
    patience: int = 2  # stop after this many epochs without a better validation loss
    val_fraction: float = 0.1  # share of QUESTIONS held out for early stopping (0: none, no stopping)
    freeze_backbone: bool = False  # False: fine-tune all (paper); True: head only on fixed features
    weight_decay: float = 0.01  # AdamW decay on matrices only
    warmup_fraction: float = 0.05  # linear warmup over this share of max_epochs' steps, then cosine
    grad_clip: float = 1.0  # global gradient-norm clip; 0 disables
    bf16: bool | str = "auto"  # autocast when fine-tuning; "auto" = CUDA only (on CPU fp32 measured faster here)
    seed: int = 0  # head init, split, batch order, dropout
    device: str = "auto"  # "auto" = cuda when available, else cpu
    num_threads: int | None = None  # torch threads while training; None keeps the process setting

    def __post_init__(self) -> None:
        ints = lambda x, low: isinstance(x, int) and not isinstance(x, bool) and x >= low  # noqa: E731
        num = lambda x, low, high: (isinstance(x, (int, float)) and not isinstance(x, bool)  # noqa: E731
                                    and low <= x < high)
        checks = {"lr": (num(self.lr, 1e-12, 1), "a float in (0, 1)"),
                  "freeze_backbone": (isinstance(self.freeze_backbone, bool), "True or False"),
                  "bf16": (self.bf16 in (True, False, "auto"), 'True, False or "auto"'),
                  "device": (isinstance(self.device, str) and (self.device in ("auto", "cpu")
                                                               or self.device.startswith("cuda")),
                             '"auto", "cpu" or "cuda[:N]"'),
                  "num_threads": (self.num_threads is None or ints(self.num_threads, 1), "None or a positive int"),
                  "seed": (ints(self.seed, 0), "a non-negative int")}
        checks.update({f: (ints(getattr(self, f), 1), "a positive int")
                       for f in ("batch_size", "max_epochs", "patience")})
        checks.update({f: (num(getattr(self, f), 0, 1), "a float in [0, 1)")
                       for f in ("dropout", "val_fraction", "warmup_fraction")})
        checks.update({f: (num(getattr(self, f), 0, math.inf), ">= 0") for f in ("weight_decay", "grad_clip")})
        for field, (ok, want) in checks.items():
            if not ok:
                raise ValueError(f"HeadTrainConfig.{field}={getattr(self, field)!r}: must be {want}")


def step_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the steps whose target is not NaN (NaN = None = unsupervised)."""
    keep = ~torch.isnan(targets)
    if not keep.any():
        return logits.sum() * 0.0
    return torch.nn.functional.binary_cross_entropy_with_logits(logits[keep].float(), targets[keep].float())


@torch.inference_mode()
def validation_loss(prm: HeadPRM, items: Sequence[LabelledSolution]) -> float:
    """Mean BCE over all labelled steps of ``items`` (eval mode, fp32); what early stopping watches."""
    enc = prm.encode([it.question for it in items], [it.solution for it in items])
    total, count = 0.0, 0
    for rows in length_batches([i for i, (_, pos) in enumerate(enc) if pos], [len(e[0]) for e in enc]):
        targets = step_targets([items[i] for i in rows]).to(prm.device)
        keep = int((~torch.isnan(targets)).sum())
        if keep:
            total += float(step_bce(prm.logits([enc[i] for i in rows]), targets)) * keep
            count += keep
    return total / count if count else float("nan")


def fit_head(prm: HeadPRM, fit: list[LabelledSolution], val: list[LabelledSolution], config: HeadTrainConfig,
         progress: bool, desc: str) -> dict:
    """AdamW epochs with early stopping on ``val``; leaves the best epoch's weights in ``prm``."""
    import numpy as np
    from tqdm.auto import tqdm

    t0, frozen = time.perf_counter(), config.freeze_backbone
    enc = prm.encode([it.question for it in fit], [it.solution for it in fit])
    targets, lengths = [step_targets([it]) for it in fit], np.asarray([len(e[0]) for e in enc])
    val_tokens = sum(len(e[0]) for e in prm.encode([it.question for it in val], [it.solution for it in val]))
    feats = _features(prm, enc) if frozen else []  # one feature pass; each epoch trains the head on it
    tokens, visits, step = int(lengths.sum()) if frozen else 0, 0, 0
    modules = [prm.head] if frozen else [prm.head, prm.body]
    trainable = [p for m in modules for p in m.parameters()]
    opt = torch.optim.AdamW([{"params": [p for p in trainable if p.dim() >= 2], "weight_decay": config.weight_decay},
                             {"params": [p for p in trainable if p.dim() < 2], "weight_decay": 0.0}], lr=config.lr)
    use_bf16 = not frozen and (config.bf16 is True or (config.bf16 == "auto" and prm.device.type == "cuda"
                                                         and torch.cuda.is_bf16_supported()))
    bs = min(config.batch_size, len(fit))
    total = math.ceil(len(fit) / bs) * config.max_epochs
    warmup = max(1, round(config.warmup_fraction * total))
    best: tuple[float, int, list[dict]] = (math.inf, 0, [])
    train_curve, val_curve = [], []
    torch.manual_seed(config.seed)
    bar = tqdm(total=total, desc=desc, disable=not progress or tqdm_disabled())
    for epoch in range(1, config.max_epochs + 1):
        for m in modules:
            m.train()
        losses = []
        for rows in epoch_batches(lengths, bs, config.seed, epoch):
            for g in opt.param_groups:  # linear warmup, then cosine to 0 at max_epochs
                g["lr"] = config.lr * ((step + 1) / warmup if step < warmup else
                                       0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))
            y = torch.cat([targets[i] for i in rows]).to(prm.device)
            with torch.autocast(device_type=prm.device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = prm.head(torch.cat([feats[i] for i in rows])).squeeze(-1) if frozen \
                    else prm.logits([enc[i] for i in rows])
            loss = step_bce(logits.float(), y)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step, visits = step + 1, visits + int((~torch.isnan(y)).sum())
            tokens += 0 if frozen else int(lengths[rows].sum())
            losses.append(loss.item())
            bar.update(1)
        for m in modules:
            m.eval()
        train_curve.append(round(float(np.mean(losses)), 5))
        val_curve += [round(validation_loss(prm, val), 6)] if val else []
        bar.set_postfix(loss=train_curve[-1], val=val_curve[-1] if val else None)
        current = val_curve[-1] if val else -epoch  # no validation: keep the last epoch
        if current < best[0]:
            best = (current, epoch, [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in modules])
        elif val and epoch - best[1] >= config.patience:
            break
    bar.close()
    for m, sd in zip(modules, best[2]):
        m.load_state_dict(sd)
    return {"epochs_run": len(train_curve), "best_epoch": best[1], "best_val_loss": best[0] if val else None,
            "train_loss_curve": train_curve, "val_loss_curve": val_curve, "optimizer_steps": step,
            "labelled_steps": sum(int((~torch.isnan(t)).sum()) for t in targets), "tokens": tokens,
            "validation_tokens": val_tokens * len(val_curve), "step_visits": visits, "bf16": use_bf16,
            "wall_seconds": round(time.perf_counter() - t0, 2)}


def _features(prm: HeadPRM, enc: list[tuple[list[int], list[int]]]) -> list[torch.Tensor]:
    """Per solution, the frozen body's hidden states at its step ends (fp32)."""
    feats: list[torch.Tensor] = [torch.empty(0)] * len(enc)
    with torch.no_grad():
        for rows in length_batches(list(range(len(enc))), [len(e[0]) for e in enc]):
            for i, f in zip(rows, prm.hidden([enc[i] for i in rows]).float().split([len(enc[i][1]) for i in rows])):
                feats[i] = f
    return feats


def head_fingerprint(config: HeadTrainConfig, backbone_key: str, style: str, name: str,
                 items: list[LabelledSolution]) -> str:
    """Hash of everything that decides the trained verifier (cache key); device/threads excluded."""
    h = hashlib.sha256()
    cfg = {k: v for k, v in asdict(config).items() if k not in ("device", "num_threads")}
    h.update(json.dumps([cfg, backbone_key, style, name], sort_keys=True).encode())
    for it in items:
        h.update(json.dumps([it.question_id, it.question, it.solution, list(it.labels)]).encode())
    return h.hexdigest()[:16]


def train_head_prm(backbone_path: str | Path, train: Sequence[LabelledSolution], config: HeadTrainConfig,
                   out_dir: str | Path, name: str = KIND, progress: bool = True) -> tuple[HeadPRM, dict]:
    """Train a head PRM (or ORM) on ``train``; save it to ``out_dir``; return (verifier on CPU, record).

    ``record``: loss curves (train per epoch, validation per epoch), best epoch, optimizer steps,
    tokens, training FLOPs, wall seconds, the held-out question ids. Cached by fingerprint."""
    config = config if isinstance(config, HeadTrainConfig) else HeadTrainConfig(**config)
    out_dir, train = Path(out_dir), list(train)
    check_items(train)
    prm = HeadPRM.from_backbone(backbone_path, name=name, dropout=config.dropout, seed=config.seed)
    ttc_config = read_ttc_config(backbone_path) if Path(backbone_path).expanduser().is_dir() else {}
    backbone_key = (ttc_config.get("training") or {}).get("fingerprint") or weights_hash(prm.body)
    fingerprint = head_fingerprint(config, backbone_key, prm.prompt_style, name, train)
    if (out_dir / VERIFIER_CONFIG).exists():
        if (saved := read_verifier_config(out_dir)).get("fingerprint") == fingerprint:
            return load_head_prm(out_dir), saved["training"]
        print(f"{out_dir} holds a verifier trained on other inputs; retraining (it will be replaced)")
    fit, val = split_by_question(train, config.val_fraction, config.seed)
    # solutions without a single label teach nothing (and would give an empty validation loss)
    fit, val = ([it for it in part if any(y is not None for y in it.labels)] for part in (fit, val))
    if not fit:
        raise ValueError("train_head_prm: no labelled step left to train on after the validation split")
    mean = float(torch.nanmean(step_targets(fit)).clamp(1e-3, 1 - 1e-3))
    with torch.no_grad():  # start the head at the base rate, so training learns signal, not the mean
        prm.head[-1].bias.fill_(math.log(mean / (1 - mean)))
    device = ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device
    old_threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads or old_threads)
    try:
        state = fit_head(prm.to(device), fit, val, config, progress, f"{name} -> {out_dir.name}")
    finally:
        torch.set_num_threads(old_threads)
    n_head, n_body = count_params(prm.head), count_params(prm.body)
    visits = state.pop("step_visits")  # labelled steps seen in training (the head's D when frozen)
    flops = (forward_flops(n_body, state["tokens"]) + training_flops(n_head, visits) if config.freeze_backbone
             else training_flops(n_body + n_head, state["tokens"]))
    record = {
        "name": name, "backbone": str(backbone_path), "backbone_key": backbone_key, "frozen": config.freeze_backbone,
        "solutions": len(fit), "questions": len({it.question_id for it in fit}), "val_solutions": len(val),
        "val_question_ids": sorted({it.question_id for it in val}), "params": n_body + n_head,
        "trainable_params": n_head if config.freeze_backbone else n_body + n_head, **state,
        "training_flops": flops, "validation_flops": forward_flops(n_body + n_head, state["validation_tokens"]),
        "tokens_per_second": round(state["tokens"] / max(state["wall_seconds"], 1e-9), 1), "device": device,
        "num_threads": config.num_threads or old_threads, "config": asdict(config), "fingerprint": fingerprint}
    save_head_prm(prm.to("cpu"), out_dir, record, backbone_path, ttc_config)
    prm.identity = fingerprint  # as load_head_prm(out_dir) names it: one verifier, one cache key
    return prm, record
