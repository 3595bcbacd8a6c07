"""From-scratch supervised training of the policy (and of stronger backbones) on step-by-step data.

One problem per row (packing several problems per row, each with its own loss, lets the model copy
operands from the wrong problem), loss only on the target (solution + EOS), length-bucketed batches so padding stays
small, AdamW with linear warmup and cosine decay. Each run is cached and resumable:
- the finished checkpoint lands in ``out_dir`` atomically, with its training record in
  ``ttc_config.json``; calling again with the same inputs returns that record without training;
- every ``checkpoint_every`` steps the full state (model, optimizer, step, RNG) is saved in the
  hidden sibling ``.<out_dir name>.resume/``, so a killed run continues where it stopped and ends
  with the same weights as an uninterrupted one. ``out_dir`` itself only ever appears complete.
``train_many`` (parallel_training.py) runs independent jobs in separate single-thread processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from ttc_lib.models.batches import IGNORE_INDEX, batch_schedule, collate, tokenize_problems
from ttc_lib.models.checkpoints import (
    ModelSpec,
    build_model,
    count_params,
    get_spec,
    load_checkpoint,
    read_ttc_config,
    save_checkpoint,
    spec_from_config,
)
from ttc_lib.models.cost import training_flops
from ttc_lib.models.train_config import NOT_FINGERPRINTED, TrainConfig, lr_at
from ttc_lib.tasks.problem import Problem

BF16_AUTO_ON_CPU = True  # bf16="auto" on CPU. Measured (AVX512-BF16 CPU, 1 thread): small 7.7k vs 6.9k
#                          tokens/s, medium 3.5k vs 2.4k; same loss curve. A CPU without native bf16
#                          may be slower with it: set bf16=False there.


def resume_dir(out_dir: str | Path) -> Path:
    """Where a run's resumable state lives while it trains (removed once the checkpoint exists)."""
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.resume"


def train_model(problems: list[Problem], tokenizer: Any, spec_or_model: ModelSpec | str | Any,
                config: TrainConfig, out_dir: str | Path, init_from: str | Path | None = None,
                progress: bool = True, callback: Callable[[dict], None] | None = None) -> dict:
    """Train (or continue training) a causal LM on ``problems``; return its training record.

    ``spec_or_model``: a ModelSpec or preset name (built fresh, seeded by ``config.seed``), or a
    model instance. With ``init_from`` (a ttc checkpoint dir) training continues from those
    weights: pass the same spec or None; the record's ``training_flops`` adds the parent's.
    ``callback(info)`` is called after every step with step/loss/lr/tokens (progress bars of
    train_many; raising from it interrupts the run, which then resumes on the next call).
    """
    import torch

    config = config if isinstance(config, TrainConfig) else TrainConfig(**config)
    out_dir = Path(out_dir)
    parent = None  # provenance of a continued run
    if init_from is not None:
        model, parent_tok, parent_cfg = load_checkpoint(init_from, dtype=torch.float32)
        if tokenizer is None:
            tokenizer = parent_tok
        elif tokenizer.get_vocab() != parent_tok.get_vocab():
            raise ValueError(f"tokenizer differs from the one saved with init_from={init_from}")
        spec = ModelSpec.from_dict(parent_cfg["spec"]) if "spec" in parent_cfg \
            else spec_from_config(model.config)
        if isinstance(spec_or_model, (ModelSpec, str)) and _shape(get_spec(spec_or_model)) != _shape(spec):
            raise ValueError(f"spec {spec_or_model!r} does not match init_from={init_from} ({spec})")
        parent = {"path": str(init_from), "training": parent_cfg.get("training")}
        init_key = (parent_cfg.get("training") or {}).get("fingerprint") or weights_hash(model)
    elif isinstance(spec_or_model, (ModelSpec, str)):
        spec, model, init_key = get_spec(spec_or_model), None, "fresh"
    elif spec_or_model is None:
        raise ValueError("train_model needs spec_or_model (a ModelSpec, preset name or model) or init_from")
    else:
        model, spec = spec_or_model, spec_from_config(spec_or_model.config)
        init_key = weights_hash(model)
    if tokenizer is None:
        raise ValueError("train_model needs a tokenizer (or init_from, whose tokenizer is then used)")

    data = tokenize_problems(problems, tokenizer)
    fingerprint = _fingerprint(config, spec, data, tokenizer, init_key)
    cached = _cached_record(out_dir, fingerprint)
    if cached is not None:
        return cached
    if model is None:
        model = build_model(spec, tokenizer, seed=config.seed)
    limit = getattr(model.config, "max_position_embeddings", None)
    longest = max(range(len(data)), key=lambda i: len(data[i][0]))
    if limit and len(data[longest][0]) > limit:
        raise ValueError(f"problem {problems[longest].id} is {len(data[longest][0])} tokens, more than the "
                         f"model's max_position_embeddings={limit}; drop it or use a spec with a larger limit")

    device = ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device
    old_threads = torch.get_num_threads()
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    try:
        schedule = batch_schedule([len(ids) for ids, _ in data], config)
        state = _run_loop(model, data, tokenizer.pad_token_id, config, schedule, device, resume_dir(out_dir),
                          fingerprint, progress, callback, desc=f"train {spec.name} -> {out_dir.name}")
    finally:
        torch.set_num_threads(old_threads)

    params = count_params(model)
    own = training_flops(params, state["tokens"])
    parent_flops = ((parent or {}).get("training") or {}).get("training_flops", 0.0)
    record = {
        "steps": config.steps, "batch_size": config.batch_size, "problems": len(problems),
        "params": params, "tokens": state["tokens"],
        "training_flops": own + parent_flops,  # cumulative: what this checkpoint cost from scratch
        "own_training_flops": own, "wall_seconds": round(state["wall_seconds"], 2),
        "tokens_per_second": round(state["tokens"] / max(state["wall_seconds"], 1e-9), 1),
        "final_loss": state["final_loss"], "loss_curve": state["loss_curve"],
        "device": device, "bf16": state["bf16"],
        "num_threads": config.num_threads or torch.get_num_threads(),
        "config": asdict(config), "fingerprint": fingerprint, "parent": parent,
    }
    from ttc_lib import __version__

    model.to("cpu")
    save_checkpoint(model, tokenizer, out_dir, {"name": spec.name, "spec": spec.to_dict(),
                                                "prompt_style": "plain", "training": record,
                                                "ttc_version": __version__})
    shutil.rmtree(resume_dir(out_dir), ignore_errors=True)
    return record


def _run_loop(model: Any, data: list, pad_id: int, config: TrainConfig, schedule: list[list[int]], device: str,
              rdir: Path, fingerprint: str, progress: bool, callback: Callable[[dict], None] | None,
              desc: str) -> dict:
    """The optimisation loop, resuming from ``rdir`` when it holds state for this fingerprint."""
    import torch
    from tqdm.auto import tqdm

    model.to(device).train()
    use_bf16 = _resolve_bf16(config.bf16, device)
    params = list(model.parameters())  # shared (tied) tensors appear once
    opt = build_optimizer(params, config)
    torch.manual_seed(config.seed)
    step, tokens, wall, curve, recent = 0, 0, 0.0, [], []
    state_file = rdir / "state.pt"
    if state_file.exists():
        try:
            st = torch.load(state_file, map_location="cpu", weights_only=True)
        except Exception as err:  # a torn file cannot happen (atomic rename), but a full disk can
            print(f"ignoring unreadable resume state {state_file}: {err}")
            st = None
        if st is not None and st.get("fingerprint") == fingerprint:
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["optimizer"])
            torch.set_rng_state(st["rng"])
            step, tokens, wall, curve, recent = st["step"], st["tokens"], st["wall"], st["curve"], st["recent"]

    bar = tqdm(total=config.steps, initial=step, desc=desc, disable=not progress or tqdm_disabled())
    t0 = time.perf_counter() - wall
    window = max(1, config.log_every or 50)
    while step < config.steps:
        rows = [data[i] for i in schedule[step]]
        loss = train_step(model, opt, params, rows, pad_id, lr_at(step, config), config.grad_clip, device, use_bf16)
        step += 1
        tokens += sum(len(ids) for ids, _ in rows)  # non-pad tokens: the D of 6·N·D
        recent = (recent + [loss.item()])[-window:]
        if config.log_every and (step % config.log_every == 0 or step == config.steps):
            curve.append([step, round(sum(recent) / len(recent), 5)])
            bar.set_postfix(loss=f"{curve[-1][1]:.3f}")
        bar.update(1)
        if config.checkpoint_every and step % config.checkpoint_every == 0 and step < config.steps:
            rdir.mkdir(parents=True, exist_ok=True)
            tmp = rdir / "state.pt.tmp"
            torch.save({"fingerprint": fingerprint, "model": model.state_dict(), "optimizer": opt.state_dict(),
                        "rng": torch.get_rng_state(), "step": step, "tokens": tokens,
                        "wall": time.perf_counter() - t0, "curve": curve, "recent": recent}, tmp)
            os.replace(tmp, state_file)
        if callback is not None:
            callback({"step": step, "loss": recent[-1], "lr": lr_at(step - 1, config), "tokens": tokens})
    bar.close()
    model.eval()
    return {"tokens": tokens, "wall_seconds": time.perf_counter() - t0, "bf16": use_bf16,
            "final_loss": round(sum(recent) / len(recent), 5), "loss_curve": curve}


def build_optimizer(params: list, config: TrainConfig) -> Any:
    """AdamW over ``params`` (a model's parameters, each once) with weight decay on matrices only."""
    import torch

    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, config.beta2))


def train_step(model: Any, opt: Any, params: list, rows: list[tuple[list[int], int]], pad_id: int, lr: float,
               grad_clip: float, device: str, bf16: bool) -> Any:
    """One optimizer step on ``rows`` ((token ids, prompt length), one problem per row) at learning
    rate ``lr``, gradients clipped to ``grad_clip`` over ``params`` (0: no clipping), the forward
    pass under bf16 autocast when ``bf16``; returns the loss tensor: next-token cross-entropy
    averaged over the target tokens of the whole batch. The loop's step, also timed alone by
    benchmarks/training.py."""
    import torch
    import torch.nn.functional as F

    input_ids, labels = collate(rows, pad_id)
    for g in opt.param_groups:
        g["lr"] = lr
    with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
        logits = model(input_ids=input_ids.to(device)).logits
    loss = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels[:, 1:].flatten().to(device),
                           ignore_index=IGNORE_INDEX)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def _resolve_bf16(flag: bool | str, device: str) -> bool:
    import torch

    if flag != "auto":
        return bool(flag)
    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    return BF16_AUTO_ON_CPU


def _cached_record(out_dir: Path, fingerprint: str) -> dict | None:
    if not (out_dir / "ttc_config.json").exists():
        return None
    record = read_ttc_config(out_dir).get("training") or {}
    if record.get("fingerprint") == fingerprint:
        return record
    print(f"{out_dir} holds a checkpoint trained with other inputs; retraining (it will be replaced)")
    return None


def _shape(spec: ModelSpec) -> tuple:
    return (spec.hidden_size, spec.num_layers, spec.num_heads, spec.intermediate_size)


def _fingerprint(config: TrainConfig, spec: ModelSpec, data: list, tokenizer: Any, init_key: str) -> str:
    """Hash of everything that decides the trained weights (cache and resume key)."""
    h = hashlib.sha256()
    cfg = {k: v for k, v in asdict(config).items() if k not in NOT_FINGERPRINTED}
    h.update(json.dumps([cfg, _shape(spec), init_key], sort_keys=True).encode())
    h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    for ids, n_prompt in data:
        h.update(f"{n_prompt}:{','.join(map(str, ids))};".encode())
    return h.hexdigest()[:16]


def weights_hash(model: Any) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:16]


def tqdm_disabled() -> bool:
    return os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
