"""External process reward models (PRMs), scored through the same interface as ours.

``prm.score(questions, solutions) -> list[list[float]]``: one score in [0, 1] per step of the
solution under the PRM's step contract (``step_delimiter=``: steps.StepContract), all steps read
from ONE forward pass, solutions batched (sorted by length: little padding); ``prm.name``,
``num_params`` and ``tokens_scored`` (for compute.py) describe the cost. The input
(``input_text``) is the model card's format around the raw steps: each the text the model wrote
between two boundaries (``StepContract.spans``: display math stays in its paragraph).

Formats
-------
* ``math_shepherd`` (peiyi9979/math-shepherd-mistral-7b-prm): a causal LM. Input text is
  ``question + " " + "\\n".join(step + " ки")`` (" ки" after every step, a line break between
  steps). At every tag token the logits of the "+" and "-" tokens are read; score = softmax over
  the two -> P(+). The ids are looked up as the tokens that end ``"x " + symbol`` (so "▁+" in a
  SentencePiece vocabulary, as in the model card), or passed explicitly.
* ``qwen_prm`` (Qwen/Qwen2.5-Math-PRM-7B): chat input (system prompt, user = question, assistant =
  ``"<extra_0>".join(steps) + "<extra_0>"``, steps cut at blank lines as its card asks:
  ``step_delimiter="blank_line"``), a two-class head read at every "<extra_0>"; score =
  softmax(head)[1]. The checkpoint's architecture (``Qwen2ForProcessRewardModel``) ships as remote
  code, which we never run: a checkpoint is data. The backbone loads as transformers' native
  ``Qwen2Model`` (keys ``model.*``) and the head from the safetensors keys ``score.0``
  Linear(hidden, hidden) -> ReLU -> ``score.2`` Linear(hidden, 2) (the layout in the remote code
  and in vLLM/SGLang); other keys or shapes are a clear error.

Rules: the step-tag text is removed from questions and steps (it would add tags); every
solution must yield exactly one tag token per step, else ValueError. Position ids are computed
from the attention mask, so left and right padding give the same scores. ``trust_remote_code``
is off unless the caller passes it by name; only safetensors weights load unless
``allow_bin=True``. Missing or corrupt checkpoints raise errors naming the path.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Literal, Sequence

import torch

from ttc_lib.models.identity import model_identity, weights_identity
from ttc_lib.storage import key_digest
from ttc_lib.tasks.steps import StepContract, identity_suffix, step_contract
from ttc_lib.verifiers.base import read_verifier_config

EXTERNAL_KIND = "external_prm"  # kind of a saved folder that points at your PRM (kinds.load_verifier)

QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
QWEN_STEP_TAG = "<extra_0>"
SHEPHERD_STEP_TAG, SHEPHERD_GOOD, SHEPHERD_BAD = "ки", "+", "-"
# Math-Shepherd's input format (trained on one step per line), not our step contract (steps.py)
SHEPHERD_LINE_BREAK = "\n"
Kind = Literal["math_shepherd", "qwen_prm"]


class ExternalPRM:
    """Shared tokenise-batch-score loop; subclasses format the text and read tag positions."""

    def __init__(self, tokenizer, step_tag: str, step_tag_id: int, *, name: str, num_params: int,
                 device: str | torch.device = "cpu", batch_size: int = 8, padding_side: str | None = None,
                 identity: str | None = None, step_delimiter: str | StepContract = "newline"):
        self._identity = identity  # load_prm: the kind and model_identity of the source; None: the weights
        self.step_contract = step_contract(step_delimiter)  # where our solutions' steps end
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tokenizer, self.step_tag, self.step_tag_id = tokenizer, step_tag, int(step_tag_id)
        self.name, self.num_params, self.device = name, int(num_params), torch.device(device)
        self.batch_size = batch_size
        self.padding_side = padding_side or getattr(tokenizer, "padding_side", "right")
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {self.padding_side!r}")
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)  # pads are masked: any id will do
        self.tokens_scored = 0

    @property
    def identity(self) -> str:
        """What decides its scores (weights hashed once when built without one; step contract): cache keys."""
        if self._identity is None:
            modules = [v for v in vars(self).values() if isinstance(v, torch.nn.Module)]
            self._identity = f"{type(self).__name__}:{weights_identity(*modules)}"
        return self._identity + identity_suffix(self.step_contract)

    def _text(self, question: str, steps: list[str]) -> str:
        raise NotImplementedError

    def _tag_probs(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor,
                   tags: torch.Tensor) -> torch.Tensor:
        """P(step correct) at every True of ``tags`` (B, L), flattened row by row."""
        raise NotImplementedError

    def encode(self, question: str, solution: str) -> list[int]:
        """Token ids of the exact text scored for one solution (``input_text``)."""
        return list(self.tokenizer(self.input_text(question, solution))["input_ids"])

    def input_text(self, question: str, solution: str) -> str:
        """The text the PRM reads for one solution: its format around the raw steps (module rules)."""
        steps = [solution[a:b].replace(self.step_tag, "") for a, b in self.step_contract.spans(solution)]
        return self._text(question.replace(self.step_tag, ""), steps)

    @torch.inference_mode()
    def score(self, questions: Sequence[str], solutions: Sequence[str], progress: bool = False) -> list[list[float]]:
        """One score in [0, 1] per step of each solution (an empty solution gives [])."""
        from tqdm.auto import tqdm

        if len(questions) != len(solutions):
            raise ValueError(f"got {len(questions)} questions but {len(solutions)} solutions")
        n_steps = [len(self.step_contract.spans(s)) for s in solutions]
        encoded = {i: self.encode(q, s) for i, (q, s) in enumerate(zip(questions, solutions)) if n_steps[i]}
        for i, ids in encoded.items():
            found = sum(t == self.step_tag_id for t in ids)
            if found != n_steps[i]:
                raise ValueError(f"{self.name}: solution {i} has {n_steps[i]} steps but {found} step-tag "
                                 f"tokens (id {self.step_tag_id} for {self.step_tag!r}); the tag must "
                                 "tokenize to that single id in context")
        out: list[list[float]] = [[] for _ in solutions]
        order = sorted(encoded, key=lambda i: -len(encoded[i]))
        for start in tqdm(range(0, len(order), self.batch_size), desc=self.name, disable=not progress):
            rows = order[start:start + self.batch_size]
            ids, mask = self._pad([encoded[i] for i in rows])
            pos = (mask.cumsum(-1) - 1).clamp(min=0)  # true positions under either padding side
            tags = (ids == self.step_tag_id) & mask.bool()
            probs = self._tag_probs(ids, mask, pos, tags).float().cpu()
            if not torch.isfinite(probs).all():
                raise FloatingPointError(f"{self.name}: non-finite step scores")
            self.tokens_scored += int(mask.sum())
            for i, chunk in zip(rows, probs.split(tags.sum(-1).tolist())):
                out[i] = chunk.tolist()
        return out

    def _pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            cols = slice(width - len(s), width) if self.padding_side == "left" else slice(0, len(s))
            ids[r, cols] = torch.tensor(s, dtype=torch.long)
            mask[r, cols] = 1
        return ids.to(self.device), mask.to(self.device)


class MathShepherdPRM(ExternalPRM):
    """Causal LM read at step tags: P("+") against "-" (Math-Shepherd's format)."""

    def __init__(self, model, tokenizer, *, step_tag: str = SHEPHERD_STEP_TAG, good_token: str = SHEPHERD_GOOD,
                 bad_token: str = SHEPHERD_BAD, step_tag_id: int | None = None, good_token_id: int | None = None,
                 bad_token_id: int | None = None, step_template: str = "{step}", name: str = "math_shepherd",
                 **kw):
        tag_id = _symbol_id(tokenizer, step_tag) if step_tag_id is None else step_tag_id
        super().__init__(tokenizer, step_tag, tag_id, name=name, num_params=_count(model), **kw)
        self.model = model.to(self.device).eval()
        self.good_id = _symbol_id(tokenizer, good_token) if good_token_id is None else int(good_token_id)
        self.bad_id = _symbol_id(tokenizer, bad_token) if bad_token_id is None else int(bad_token_id)
        self.step_template = step_template  # "Step {i}: {step}" matches Math-Shepherd's training data

    def _text(self, question: str, steps: list[str]) -> str:
        body = SHEPHERD_LINE_BREAK.join(self.step_template.format(i=k + 1, step=s) + f" {self.step_tag}"
                                        for k, s in enumerate(steps))
        return f"{question} {body}"

    def _tag_probs(self, ids, mask, pos, tags):
        cols = tags.any(0).nonzero().squeeze(-1)
        kw = dict(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
        try:  # only project the tag positions onto the vocabulary
            logits = self.model(**kw, logits_to_keep=cols).logits
        except TypeError:  # an architecture without logits_to_keep
            logits = self.model(**kw).logits
        if logits.shape[1] != len(cols):
            logits = logits[:, cols]
        pair = logits[..., [self.good_id, self.bad_id]].float().softmax(-1)[..., 0]  # (B, K)
        return pair[tags[:, cols]]


class QwenPRM(ExternalPRM):
    """Qwen2.5-Math-PRM: a Qwen2 backbone and a two-class head read at every "<extra_0>"."""

    def __init__(self, backbone, head: torch.nn.Module, tokenizer, *, system: str = QWEN_SYSTEM,
                 step_tag: str = QWEN_STEP_TAG, name: str = "qwen_prm", **kw):
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"{name}: the tokenizer has no chat template, which the Qwen PRM format needs")
        super().__init__(tokenizer, step_tag, _symbol_id(tokenizer, step_tag), name=name,
                         num_params=_count(backbone) + _count(head), **kw)
        self.backbone = backbone.to(self.device).eval()
        self.head = head.to(self.device).eval()
        self.system = system

    def _text(self, question: str, steps: list[str]) -> str:
        messages = [{"role": "system", "content": self.system}, {"role": "user", "content": question},
                    {"role": "assistant", "content": "".join(s + self.step_tag for s in steps)}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)

    def _tag_probs(self, ids, mask, pos, tags):
        hidden = self.backbone(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
        h = hidden.last_hidden_state[tags]
        head_dtype = next(self.head.parameters()).dtype
        return self.head(h.to(head_dtype)).float().softmax(-1)[:, 1]


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())  # parameters() counts tied weights once


def _symbol_id(tokenizer, symbol: str) -> int:
    """Id of the token that ends ``"x " + symbol`` in context; it must decode to the symbol."""
    tid = tokenizer.convert_tokens_to_ids(symbol)
    if tid is not None and tid != tokenizer.unk_token_id and symbol in tokenizer.get_added_vocab():
        return int(tid)  # an added/special token such as "<extra_0>"
    tid = tokenizer(f"x {symbol}", add_special_tokens=False)["input_ids"][-1]
    if tokenizer.decode([tid]).strip() != symbol:
        raise ValueError(f"{symbol!r} is not a single token of this tokenizer; pass its id explicitly")
    return int(tid)


# ---- loading ----------------------------------------------------------------------------------

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def _resolve(path_or_id: str | os.PathLike) -> Path:
    """A local checkpoint directory: the path itself, or the snapshot of a hub id already in the local
    Hugging Face cache. Nothing is ever downloaded at run time: a hub id not in the cache is an error
    naming the command that downloads it beforehand."""
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise NotADirectoryError(f"PRM checkpoint {str(path)!r} is a file; expected a checkpoint directory")
    if not _HUB_ID.match(str(path_or_id)):
        raise FileNotFoundError(f"PRM checkpoint {str(path_or_id)!r} does not exist")
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(str(path_or_id), "config.json")  # reads the cache only, never the network
    if isinstance(config, str):
        return Path(config).parent
    raise FileNotFoundError(f"PRM checkpoint {str(path_or_id)!r} is not a local directory and not in the local "
                            f"Hugging Face cache; ttc never downloads at run time: download it beforehand "
                            f"(`huggingface-cli download {path_or_id}`) or pass the checkpoint's folder")


def _read_config(path: Path) -> dict:
    cfg = path / "config.json"
    if not cfg.is_file():
        raise FileNotFoundError(f"PRM checkpoint {str(path)!r} has no config.json")
    try:
        return json.loads(cfg.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"PRM checkpoint {str(path)!r}: config.json is unreadable: {e}") from e


def _detect_kind(config: dict, path: Path) -> Kind:
    archs = config.get("architectures") or []
    if "Qwen2ForProcessRewardModel" in archs:
        return "qwen_prm"
    if any(a.endswith("ForCausalLM") for a in archs):
        return "math_shepherd"
    raise ValueError(f"cannot tell the PRM format of {str(path)!r} from architectures={archs}; "
                     "pass kind='math_shepherd' or kind='qwen_prm'")


def _dtype_kw(dtype, device: torch.device) -> dict:
    import transformers

    if dtype is None:  # the checkpoint's dtype on an accelerator; float32 on CPU (bf16 is slow there)
        dtype = torch.float32 if device.type == "cpu" else "auto"
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": dtype}


def _load_head(path: Path, prefix: str, hidden: int) -> torch.nn.Sequential:
    """``{prefix}.0`` Linear(hidden, hidden) -> ReLU -> ``{prefix}.2`` Linear(hidden, 2), from safetensors."""
    from safetensors import safe_open

    index = path / "model.safetensors.index.json"
    try:
        files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() \
            else [p.name for p in path.glob("*.safetensors")]
        tensors = {}
        for name in files:
            with safe_open(str(path / name), framework="pt") as f:
                tensors.update({k: f.get_tensor(k) for k in f.keys() if k.startswith(prefix + ".")})
    except Exception as e:
        raise ValueError(f"PRM checkpoint {str(path)!r}: cannot read safetensors weights: {e}") from e
    head = torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2))
    expected = {f"{prefix}.{k}": tuple(v.shape) for k, v in head.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if found != expected:
        raise ValueError(f"PRM checkpoint {str(path)!r}: head weights do not match the Qwen PRM layout; "
                         f"expected {expected}, found {found or 'none'}")
    head.load_state_dict({k[len(prefix) + 1:]: v.float() for k, v in tensors.items()})
    return head


def load_prm(path_or_id: str | os.PathLike, kind: Kind | None = None, *, device: str | torch.device = "cpu",
             dtype: torch.dtype | str | None = None, trust_remote_code: bool = False, allow_bin: bool = False,
             **kw) -> ExternalPRM:
    """Load an external PRM from a local directory or a hub id in the local Hugging Face cache
    (never downloaded, ``_resolve``); ``kind`` None: from config.json.

    Extra keyword arguments go to the PRM class (batch_size, padding_side, name, token ids...).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Model
    from transformers.utils import logging as hf_logging

    head_prefix = kw.pop("head_prefix", "score")
    path = _resolve(path_or_id)
    config = _read_config(path)  # present and valid JSON, whatever the kind
    kind = kind or _detect_kind(config, path)
    if kind not in ("math_shepherd", "qwen_prm"):
        raise ValueError(f"unknown PRM kind {kind!r}; use 'math_shepherd' or 'qwen_prm'")
    device = torch.device(device)
    kw.setdefault("name", Path(str(path_or_id)).name)  # the directory's or the hub repo's name
    # scores depend on these (the step contract enters ExternalPRM.identity by itself)
    scoring = {k: v for k, v in kw.items() if k not in ("name", "batch_size", "padding_side", "step_delimiter")}
    kw.setdefault("identity", f"{kind}:{model_identity(path_or_id)}" + (f":{key_digest(scoring)}" if scoring else ""))
    load_kw = dict(_dtype_kw(dtype, device), use_safetensors=None if allow_bin else True,
                   output_loading_info=True)
    level = hf_logging.get_verbosity()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
        if kind == "math_shepherd":
            model, info = AutoModelForCausalLM.from_pretrained(str(path), trust_remote_code=trust_remote_code,
                                                               **load_kw)
        else:
            # The native backbone class ignores auto_map: no remote code runs. Its load report
            # would flag the "score.*" keys (read separately below) as unexpected, so it is
            # silenced; missing keys are checked here instead.
            hf_logging.set_verbosity_error()
            model, info = Qwen2Model.from_pretrained(str(path), **load_kw)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
        raise ValueError(f"cannot load the {kind} PRM from {str(path)!r}: {e}") from e
    finally:
        hf_logging.set_verbosity(level)
    if info.get("missing_keys"):
        raise ValueError(f"PRM checkpoint {str(path)!r}: weights missing for {sorted(info['missing_keys'])[:8]} "
                         f"(is kind={kind!r} right?)")
    if kind == "math_shepherd":
        return MathShepherdPRM(model, tokenizer, device=device, **kw)
    head = _load_head(path, head_prefix, model.config.hidden_size)
    return QwenPRM(model, head, tokenizer, device=device, **kw)


def load_external_verifier(path: Path, device: str = "cpu"):
    """A saved folder of kind ``external_prm`` (kinds.load_verifier): the PRM it points at, cutting steps as saved."""
    cfg = read_verifier_config(path)
    source = cfg["source"]
    if not Path(source).expanduser().exists() and os.sep in source and Path(source).is_absolute():
        raise FileNotFoundError(f"{Path(path) / 'verifier_config.json'}: PRM {source} no longer exists")
    return load_prm(source, device=device, step_delimiter=cfg.get("step_delimiter", "newline"))
