"""Trained-head PRM/ORM: a causal-LM backbone plus a scalar head read at the end of every step.

Rules
- Text = ``prompts.format_prompt(question, style)`` tokenised with the tokenizer's special tokens,
  then the solution tokenised on its own (no special tokens): what generation sees. Step k is
  read at the token holding the last character of step k (``steps.step_end_offsets``):
  score = sigmoid(Linear(Dropout(h))), h the backbone body's last hidden state. All steps of a
  solution come from ONE forward pass; batches are padded on PADDING_SIDE with explicit
  positions, so a score does not depend on its batch, and (causal attention) text after step k
  never changes the score of step k. ``style`` is the backbone checkpoint's (ttc_config.json).
- ``train_head_prm``: binary cross-entropy on float (soft) targets at every labelled step; a
  None label is masked out, so an ORM is the same call with only the last step labelled. AdamW,
  linear warmup then cosine decay, early stopping on the validation loss with the best epoch's
  weights restored. Validation holds out ``val_fraction`` of the QUESTIONS, never part of one
  question's solutions. ``freeze_backbone=True`` trains the head alone on features computed
  once (a cheap probe); False fine-tunes backbone and head (the paper's recipe).
- Cost: num_params = backbone body + head (the unused LM head is not counted); tokens_scored
  counts the non-pad tokens read. Training FLOPs: 6·N·D fine-tuned; frozen: 2·N_body·D for the
  one feature pass + 6·N_head per labelled step per epoch.
- Saved folder: verifier_config.json (kind "head_prm", training record, fingerprint),
  head.safetensors, and backbone/ (the fine-tuned causal LM, a normal ttc checkpoint) or, when
  frozen, the path of the untouched backbone. Written to a temporary folder then renamed; a
  folder already holding the same fingerprint (backbone, data, config, name) is returned as is.
FINDINGS: on the policy's own 1M backbone this head learns question difficulty, not step
correctness: always report within-question AUROC (metrics.within_question_auroc).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from bisect import bisect_left
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from .compute import forward_flops, training_flops
from .models import TTC_CONFIG_FILE, count_params, load_checkpoint, read_ttc_config
from .prompts import format_prompt
from .runs import atomic_dir
from .steps import step_end_offsets
from .training import _tqdm_disabled, _weights_hash
from .verifier import VERIFIER_CONFIG, LabelledSolution, read_verifier_config, register, save_verifier_config

KIND = "head_prm"
HEAD_FILE = "head.safetensors"
BACKBONE_DIR = "backbone"
PADDING_SIDE = "right"  # right: no attention mask needed (pads follow every real token); "left" also works
SCORE_BATCH_TOKENS = 32768  # rows x width of one scoring forward (CPU memory and speed)
SCORE_BATCH_ROWS = 256  # most solutions in one scoring forward
BUCKET_BATCHES = 8  # training: sort by length within chunks of this many batches (less padding)


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


def make_head(hidden_size: int, dropout: float) -> torch.nn.Sequential:
    """The scalar head: Dropout then Linear(hidden, 1) (a logit; the sigmoid is applied by the caller)."""
    return torch.nn.Sequential(torch.nn.Dropout(dropout), torch.nn.Linear(hidden_size, 1))


class HeadPRM:
    """Verifier: ``score(questions, solutions)`` -> one probability per step (see module rules)."""

    def __init__(self, model: Any, tokenizer: Any, head: torch.nn.Module, *, prompt_style: str = "plain",
                 name: str = KIND, device: str | torch.device = "cpu"):
        self.model = model  # the causal LM as loaded (saved whole, so it stays a loadable checkpoint)
        self.body = model.base_model  # its transformer body (LlamaModel for Llama; itself for a bare body)
        self.tokenizer, self.head, self.prompt_style, self.name = tokenizer, head, prompt_style, name
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad or 0)  # pads are never read: any id will do
        self.max_len = getattr(model.config.get_text_config(), "max_position_embeddings", None)
        self.num_params = count_params(self.body) + count_params(self.head)
        self.tokens_scored = 0
        self.to(device)

    @classmethod
    def from_backbone(cls, path: str | Path, *, name: str = KIND, dropout: float = 0.05, seed: int = 0,
                      device: str = "cpu", dtype: Any = torch.float32) -> "HeadPRM":
        """A fresh (untrained, seeded head) PRM on the checkpoint at ``path``."""
        model, tokenizer, ttc_config = load_checkpoint(path, dtype=dtype)
        torch.manual_seed(seed)
        head = make_head(model.config.get_text_config().hidden_size, dropout)
        return cls(model, tokenizer, head, prompt_style=ttc_config.get("prompt_style", "plain"), name=name,
                   device=device)

    def to(self, device: str | torch.device) -> "HeadPRM":
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.head.to(self.device).eval()
        return self

    def encode(self, questions: Sequence[str], solutions: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        """Per solution: (token ids of prompt + solution, index of each step's last token)."""
        if len(questions) != len(solutions):
            raise ValueError(f"got {len(questions)} questions but {len(solutions)} solutions")
        if not solutions:
            return []
        prompts = self.tokenizer([format_prompt(q, self.prompt_style) for q in questions])["input_ids"]
        try:
            enc = self.tokenizer(list(solutions), add_special_tokens=False, return_offsets_mapping=True)
            ids, starts = enc["input_ids"], [[s for s, _ in offs] for offs in enc["offset_mapping"]]
        except NotImplementedError:  # slow tokenizers: starts from incremental decoding
            ids = self.tokenizer(list(solutions), add_special_tokens=False)["input_ids"]
            starts = [[len(self.tokenizer.decode(row[:j])) for j in range(len(row))] for row in ids]
        out = []
        for k, (p, s, st, text) in enumerate(zip(prompts, ids, starts, solutions)):
            # the step's last character lies in the last token starting before the step's end offset
            pos = [len(p) + bisect_left(st, end) - 1 for end in step_end_offsets(text)]
            if pos and (min(pos) < len(p) or max(pos) >= len(p) + len(s)):
                raise ValueError(f"{self.name}: solution {k}: step ends do not map onto its tokens")
            if self.max_len and pos and len(p) + len(s) > self.max_len:
                raise ValueError(f"{self.name}: solution {k} is {len(p) + len(s)} tokens, over the "
                                 f"backbone's max_position_embeddings={self.max_len}")
            out.append((list(p) + list(s), pos))
        return out

    def hidden(self, batch: list[tuple[list[int], list[int]]]) -> torch.Tensor:
        """(total steps, hidden): the body's last hidden state at every step end of ``batch``."""
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        rows, cols = [], []
        for r, (seq, pos) in enumerate(batch):
            shift = width - len(seq) if PADDING_SIDE == "left" else 0
            ids[r, shift:shift + len(seq)], mask[r, shift:shift + len(seq)] = torch.tensor(seq), 1
            rows += [r] * len(pos)
            cols += [shift + c for c in pos]
        kw: dict[str, Any] = {"input_ids": ids.to(self.device), "use_cache": False}
        if PADDING_SIDE == "left":  # right padding needs neither: causal attention never reaches the pads
            kw["attention_mask"] = mask.to(self.device)
            kw["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0).to(self.device)
        h = self.body(**kw).last_hidden_state
        return h[torch.tensor(rows, device=self.device), torch.tensor(cols, device=self.device)]

    def logits(self, batch: list[tuple[list[int], list[int]]]) -> torch.Tensor:
        """Head logits at every step end of ``batch``, flattened solution by solution."""
        h = self.hidden(batch)
        return self.head(h.to(self.head[-1].weight.dtype)).squeeze(-1)

    @torch.inference_mode()
    def score(self, questions: Sequence[str], solutions: Sequence[str], progress: bool = False) -> list[list[float]]:
        """One score in (0, 1) per step of each solution (an empty solution gives [])."""
        from tqdm.auto import tqdm

        enc = self.encode(questions, solutions)
        out: list[list[float]] = [[] for _ in solutions]
        batches = _length_batches([i for i, (_, pos) in enumerate(enc) if pos], [len(e[0]) for e in enc])
        for rows in tqdm(batches, desc=self.name, disable=not progress or _tqdm_disabled()):
            probs = torch.sigmoid(self.logits([enc[i] for i in rows]).float()).cpu()
            self.tokens_scored += sum(len(enc[i][0]) for i in rows)
            for i, chunk in zip(rows, probs.split([len(enc[i][1]) for i in rows])):
                out[i] = chunk.tolist()
        return out


def _length_batches(todo: list[int], lengths: list[int]) -> list[list[int]]:
    """Longest first; a batch grows while rows x width stays within the scoring budget."""
    order, batches = sorted(todo, key=lambda i: -lengths[i]), []
    for i in order:
        if batches and len(batches[-1]) < SCORE_BATCH_ROWS and \
                (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= SCORE_BATCH_TOKENS:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def step_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the steps whose target is not NaN (NaN = None = unsupervised)."""
    keep = ~torch.isnan(targets)
    if not keep.any():
        return logits.sum() * 0.0
    return torch.nn.functional.binary_cross_entropy_with_logits(logits[keep].float(), targets[keep].float())


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


@torch.inference_mode()
def validation_loss(prm: HeadPRM, items: Sequence[LabelledSolution]) -> float:
    """Mean BCE over all labelled steps of ``items`` (eval mode, fp32); what early stopping watches."""
    enc = prm.encode([it.question for it in items], [it.solution for it in items])
    total, count = 0.0, 0
    for rows in _length_batches([i for i, (_, pos) in enumerate(enc) if pos], [len(e[0]) for e in enc]):
        targets = _targets([items[i] for i in rows]).to(prm.device)
        keep = int((~torch.isnan(targets)).sum())
        if keep:
            total += float(step_bce(prm.logits([enc[i] for i in rows]), targets)) * keep
            count += keep
    return total / count if count else float("nan")


def _targets(items: Sequence[LabelledSolution]) -> torch.Tensor:
    return torch.tensor([math.nan if y is None else float(y) for it in items for y in it.labels], dtype=torch.float32)


def train_head_prm(backbone_path: str | Path, train: Sequence[LabelledSolution], config: HeadTrainConfig,
                   out_dir: str | Path, name: str = KIND, progress: bool = True) -> tuple[HeadPRM, dict]:
    """Train a head PRM (or ORM) on ``train``; save it to ``out_dir``; return (verifier on CPU, record).

    ``record``: loss curves (train per epoch, validation per epoch), best epoch, optimizer steps,
    tokens, training FLOPs, wall seconds, the held-out question ids. Cached by fingerprint."""
    config = config if isinstance(config, HeadTrainConfig) else HeadTrainConfig(**config)
    out_dir, train = Path(out_dir), list(train)
    _check_items(train)
    prm = HeadPRM.from_backbone(backbone_path, name=name, dropout=config.dropout, seed=config.seed)
    ttc_config = read_ttc_config(backbone_path) if Path(backbone_path).expanduser().is_dir() else {}
    backbone_key = (ttc_config.get("training") or {}).get("fingerprint") or _weights_hash(prm.body)
    fingerprint = _fingerprint(config, backbone_key, prm.prompt_style, name, train)
    if (out_dir / VERIFIER_CONFIG).exists():
        if (saved := read_verifier_config(out_dir)).get("fingerprint") == fingerprint:
            return load_head_prm(out_dir), saved["training"]
        print(f"{out_dir} holds a verifier trained on other inputs; retraining (it will be replaced)")
    fit, val = split_by_question(train, config.val_fraction, config.seed)
    # solutions without a single label teach nothing (and would give an empty validation loss)
    fit, val = ([it for it in part if any(y is not None for y in it.labels)] for part in (fit, val))
    if not fit:
        raise ValueError("train_head_prm: no labelled step left to train on after the validation split")
    mean = float(torch.nanmean(_targets(fit)).clamp(1e-3, 1 - 1e-3))
    with torch.no_grad():  # start the head at the base rate, so training learns signal, not the mean
        prm.head[-1].bias.fill_(math.log(mean / (1 - mean)))
    device = ("cuda" if torch.cuda.is_available() else "cpu") if config.device == "auto" else config.device
    old_threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads or old_threads)
    try:
        state = _fit(prm.to(device), fit, val, config, progress, f"{name} -> {out_dir.name}")
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
    _save(prm.to("cpu"), out_dir, record, backbone_path, ttc_config)
    return prm, record


def _fit(prm: HeadPRM, fit: list[LabelledSolution], val: list[LabelledSolution], config: HeadTrainConfig,
         progress: bool, desc: str) -> dict:
    """AdamW epochs with early stopping on ``val``; leaves the best epoch's weights in ``prm``."""
    import numpy as np
    from tqdm.auto import tqdm

    t0, frozen = time.perf_counter(), config.freeze_backbone
    enc = prm.encode([it.question for it in fit], [it.solution for it in fit])
    targets, lengths = [_targets([it]) for it in fit], np.asarray([len(e[0]) for e in enc])
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
    bar = tqdm(total=total, desc=desc, disable=not progress or _tqdm_disabled())
    for epoch in range(1, config.max_epochs + 1):
        for m in modules:
            m.train()
        losses = []
        for rows in _epoch_batches(lengths, bs, config.seed, epoch):
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
        for rows in _length_batches(list(range(len(enc))), [len(e[0]) for e in enc]):
            for i, f in zip(rows, prm.hidden([enc[i] for i in rows]).float().split([len(enc[i][1]) for i in rows])):
                feats[i] = f
    return feats


def _epoch_batches(lengths: Any, bs: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch's batches: seeded shuffle, length-sorted within chunks (less padding), batch order shuffled."""
    import numpy as np

    rng = np.random.default_rng([seed, epoch])
    perm, batches = rng.permutation(len(lengths)), []
    for start in range(0, len(perm), bs * BUCKET_BATCHES):
        part = perm[start:start + bs * BUCKET_BATCHES]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i:i + bs].tolist() for i in range(0, len(part), bs)]
    return [batches[b] for b in rng.permutation(len(batches))]


def _check_items(items: list[LabelledSolution]) -> None:
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


def _fingerprint(config: HeadTrainConfig, backbone_key: str, style: str, name: str,
                 items: list[LabelledSolution]) -> str:
    """Hash of everything that decides the trained verifier (cache key); device/threads excluded."""
    h = hashlib.sha256()
    cfg = {k: v for k, v in asdict(config).items() if k not in ("device", "num_threads")}
    h.update(json.dumps([cfg, backbone_key, style, name], sort_keys=True).encode())
    for it in items:
        h.update(json.dumps([it.question_id, it.question, it.solution, list(it.labels)]).encode())
    return h.hexdigest()[:16]


def _save(prm: HeadPRM, out_dir: Path, record: dict, backbone_path: str | Path, ttc_config: dict) -> None:
    from safetensors.torch import save_file

    with atomic_dir(out_dir) as tmp:
        if record["frozen"]:  # the backbone is untouched: refer to it
            backbone = str(Path(backbone_path).expanduser().resolve()) if Path(backbone_path).expanduser().exists() \
                else str(backbone_path)
        else:
            backbone = BACKBONE_DIR
            prm.model.save_pretrained(tmp / BACKBONE_DIR, safe_serialization=True)
            prm.tokenizer.save_pretrained(tmp / BACKBONE_DIR)
            (tmp / BACKBONE_DIR / TTC_CONFIG_FILE).write_text(json.dumps(
                {**ttc_config, "prompt_style": prm.prompt_style, "prm_fine_tuned_from": str(backbone_path)}, indent=2))
        save_file({k: v.detach().contiguous().cpu() for k, v in prm.head.state_dict().items()}, str(tmp / HEAD_FILE))
        save_verifier_config(tmp, KIND, name=prm.name, backbone=backbone, prompt_style=prm.prompt_style,
                             hidden_size=prm.head[-1].in_features, dropout=prm.head[0].p,
                             fingerprint=record["fingerprint"], training=record)


@register(KIND)
def load_head_prm(path: str | Path, device: str = "cpu") -> HeadPRM:
    """Reload a saved head PRM (``verifier.load_verifier`` calls this for kind "head_prm")."""
    from safetensors.torch import load_file

    path = Path(path)
    cfg = read_verifier_config(path)
    backbone = path / cfg["backbone"] if cfg["backbone"] == BACKBONE_DIR else Path(cfg["backbone"])
    if cfg["backbone"] != BACKBONE_DIR:  # frozen: the untouched backbone must still be the one trained on
        key = (read_ttc_config(backbone).get("training") or {}).get("fingerprint")
        if not backbone.exists() or (key and key != cfg["training"].get("backbone_key")):
            raise FileNotFoundError(f"verifier {path} was trained on the frozen backbone {backbone}, which is "
                                    "missing or has changed since; retrain it")
    model, tokenizer, _ = load_checkpoint(backbone)
    head = make_head(cfg["hidden_size"], cfg["dropout"])
    try:
        head.load_state_dict(load_file(str(path / HEAD_FILE)))
    except Exception as err:
        raise ValueError(f"verifier {path}: {HEAD_FILE} is missing or does not fit the head ({err})") from None
    return HeadPRM(model, tokenizer, head.to(model.dtype), prompt_style=cfg["prompt_style"], name=cfg["name"],
                   device=device)
