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
Layout: the model and save/load here; ``train_head_prm``, the config, loss and training loop in
``head_prm_training``; input checks, splits and batching in ``head_prm_data``.
On a ~1M backbone this head tends to learn question difficulty and step position, not step
correctness, which neither a global nor a within-question AUROC shows: judge it by the same-step
AUROC (analysis.auroc.same_step_auroc: groups = question x step index), as notebook 02 does; its
measured data curve against the likelihood PRM is in docs/verifiers.md.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from pathlib import Path
from typing import Any, Sequence

import torch

from ttc_lib.models.checkpoints import TTC_CONFIG_FILE, count_params, load_checkpoint, read_ttc_config
from ttc_lib.models.identity import weights_identity
from ttc_lib.models.training import tqdm_disabled
from ttc_lib.storage import atomic_dir
from ttc_lib.tasks.prompts import format_prompt
from ttc_lib.tasks.steps import step_end_offsets
from ttc_lib.verifiers.base import (
    read_verifier_config,
    save_verifier_config,
)
from ttc_lib.verifiers.head_prm_data import length_batches

KIND = "head_prm"
HEAD_FILE = "head.safetensors"
BACKBONE_DIR = "backbone"
PADDING_SIDE = "right"  # right: no attention mask needed (pads follow every real token); "left" also works


def make_head(hidden_size: int, dropout: float) -> torch.nn.Sequential:
    """The scalar head: Dropout then Linear(hidden, 1) (a logit; the sigmoid is applied by the caller)."""
    return torch.nn.Sequential(torch.nn.Dropout(dropout), torch.nn.Linear(hidden_size, 1))


class HeadPRM:
    """Verifier: ``score(questions, solutions)`` -> one probability per step (see module rules)."""

    def __init__(self, model: Any, tokenizer: Any, head: torch.nn.Module, *, prompt_style: str = "plain",
                 name: str = KIND, device: str | torch.device = "cpu", identity: str | None = None):
        self._identity = identity  # the saved fingerprint (backbone, data, config); None: the weights, hashed once
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

    @property
    def identity(self) -> str:
        """What decides its scores, for cache keys: its training fingerprint (load_head_prm,
        train_head_prm), else a hash of its weights and prompt style, computed on first use."""
        if self._identity is None:
            self._identity = f"{weights_identity(self.model, self.head)}|prompt={self.prompt_style}"
        return self._identity

    @identity.setter
    def identity(self, value: str) -> None:
        self._identity = value

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
        prompts = self.tokenizer([format_prompt(q, self.prompt_style, self.tokenizer) for q in questions])["input_ids"]
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
        batches = length_batches([i for i, (_, pos) in enumerate(enc) if pos], [len(e[0]) for e in enc])
        for rows in tqdm(batches, desc=self.name, disable=not progress or tqdm_disabled()):
            probs = torch.sigmoid(self.logits([enc[i] for i in rows]).float()).cpu()
            self.tokens_scored += sum(len(enc[i][0]) for i in rows)
            for i, chunk in zip(rows, probs.split([len(enc[i][1]) for i in rows])):
                out[i] = chunk.tolist()
        return out


def save_head_prm(prm: HeadPRM, out_dir: Path, record: dict, backbone_path: str | Path, ttc_config: dict) -> None:
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
                   device=device, identity=cfg.get("fingerprint"))
