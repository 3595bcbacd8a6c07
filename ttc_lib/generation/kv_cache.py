"""Decoding many samples from few prompts: a shared-prefix KV cache and its attention.

Rows that sample from the same prompt share its keys/values: the prompt part is stored once per
distinct prompt (``prefix``), and each row's cache holds only the tokens it generated, in
preallocated buffers written in place (transformers' DynamicCache copies the whole cache with
``torch.cat`` at every token, and generate() copies every prompt n times). Attention for a decode
step is computed in two parts merged exactly by their log-sum-exp (cascade attention): the rows of
one prompt read its keys once, as one small matrix product, then each row reads its own tokens.
Decode attention was the largest cost of a small model on CPU (memory reads of the KV cache), and
the prompt is most of the context, so this removes most of it; on GPU it removes the same reads.

Only plain full attention is reproduced (no sliding window, logit soft-capping or attention
sinks), so ``supports_shared_prefix`` whitelists architectures; others keep DynamicCache.
"""

from __future__ import annotations

import functools
import inspect
from contextlib import contextmanager

import torch
from transformers import AttentionInterface
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

ATTENTION = "ttc_shared_prefix"  # registered in transformers' AttentionInterface below
SAFE_MODEL_TYPES = {"llama", "qwen2", "qwen3", "mistral"}  # attention = softmax(qk^T * scale) v


@functools.cache
def _cache_kwarg(model_class: type) -> str:
    params = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_arg(model, cache: Cache) -> dict[str, Cache]:
    """The keyword that hands ``cache`` to ``model``'s forward: ``cache`` where the forward has it
    (transformers >= 5.24, where ``past_key_values`` warns and is to be removed in 5.40), else
    ``past_key_values``. Read from the forward signature once per model class."""
    return {_cache_kwarg(type(model)): cache}


class GrowingLayer(DynamicLayer):
    """One layer's own-token cache: buffers (rows, heads, capacity, dim), ``length`` filled (the
    first ``length`` columns may come filled: prefill.py writes the prompts' stems there first)."""

    def __init__(self, key_buf: torch.Tensor, value_buf: torch.Tensor, length: int = 0) -> None:
        super().__init__()
        self.key_buf, self.value_buf, self.length = key_buf, value_buf, length
        self.dtype, self.device, self.is_initialized = key_buf.dtype, key_buf.device, True
        self._expose()

    def _expose(self) -> None:
        # Views, not copies: what attention reads and what generic Cache code inspects.
        self.keys = self.key_buf[:, :, :self.length]
        self.values = self.value_buf[:, :, :self.length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        end = self.length + key_states.shape[-2]
        if end > self.key_buf.shape[2]:
            raise RuntimeError(f"GrowingLayer full: capacity {self.key_buf.shape[2]}, need {end}")
        self.key_buf[:, :, self.length:end] = key_states
        self.value_buf[:, :, self.length:end] = value_states
        self.length = end
        self._expose()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_max_length(self) -> int:
        return self.key_buf.shape[2]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep rows ``indices`` (fewer, any order), moved to the front of the same buffers."""
        for name in ("key_buf", "value_buf"):
            buf = getattr(self, name)
            kept = buf[:, :, :self.length].index_select(0, indices)  # gathered first: order-safe
            buf = buf[:len(indices)]
            buf[:, :, :self.length] = kept
            setattr(self, name, buf)
        self._expose()


class KVPool:
    """Own-token buffers reused by every cache a Generator makes (one cache at a time): on CPU,
    fresh large allocations cost page faults that measured slower than the copies themselves."""

    def __init__(self) -> None:
        self._bufs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def layers(self, like: list[tuple[torch.Tensor, torch.Tensor]], rows: int, capacity: int) -> list[GrowingLayer]:
        """Empty GrowingLayers of ``rows`` x ``capacity`` shaped like the (keys, values) in ``like``."""
        shape = [(k.shape[1], k.shape[3], v.shape[1], v.shape[3], k.dtype, k.device) for k, v in like]
        have = [(k.shape[1], k.shape[3], v.shape[1], v.shape[3], k.dtype, k.device) for k, v in self._bufs]
        if have != shape or rows > self._bufs[0][0].shape[0] or capacity > self._bufs[0][0].shape[2]:
            old = self._bufs[0][0].shape if self._bufs else (0, 0, 0, 0)
            n, cap = max(rows, old[0]), -(-max(capacity, old[2]) // 64) * 64
            self._bufs = []  # free the old buffers first
            self._bufs = [(torch.zeros(n, hk, cap, dk, dtype=dt, device=dev),
                           torch.zeros(n, hv, cap, dv, dtype=dt, device=dev)) for hk, dk, hv, dv, dt, dev in shape]
        return [GrowingLayer(k[:rows, :, :capacity], v[:rows, :, :capacity]) for k, v in self._bufs]

    def nbytes(self) -> int:
        """Bytes the kept buffers hold (reused by the next cache: free for its planning)."""
        return sum(k.nbytes + v.nbytes for k, v in self._bufs)


class SharedPrefixCache(Cache):
    """Prompt keys/values once per distinct prompt + each row's own generated tokens.

    ``prefix[l]`` = (keys, values) of layer l, (prompts, heads, width, dim), prompts right-aligned
    with ``prefix_mask`` (prompts, width) True on real tokens; ``row_prompt`` (rows,) says which
    prompt each row continues; rows of one prompt are contiguous and stay in order.
    """

    def __init__(self, prefix, prefix_mask: torch.Tensor, row_prompt: torch.Tensor, layers: list[GrowingLayer]):
        super().__init__(layers=layers)
        self.prefix, self.prefix_mask, self.row_prompt = prefix, prefix_mask, row_prompt
        self.prepare()

    def prepare(self) -> None:
        """Each row's (prompt, rank within prompt) cell of the grid the prefix attention uses, and
        the prompts' pad columns: fixed until rows leave, so not recomputed per layer and token."""
        counts = torch.bincount(self.row_prompt, minlength=self.prefix_mask.shape[0])
        starts = counts.cumsum(0) - counts
        self.group = int(counts.max())
        self.rank = torch.arange(len(self.row_prompt), device=counts.device) - starts[self.row_prompt]
        self.pad = ~self.prefix_mask[:, None, None, :]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        super().batch_select_indices(indices)
        prompts = self.row_prompt.index_select(0, indices)
        live = torch.unique(prompts)  # sorted; finished prompts leave the prefix store
        if len(live) < self.prefix_mask.shape[0]:
            self.prefix = [(k.index_select(0, live), v.index_select(0, live)) for k, v in self.prefix]
            self.prefix_mask = self.prefix_mask.index_select(0, live)
            prompts = torch.searchsorted(live, prompts)
        self.row_prompt = prompts
        self.prepare()


SMALL_PRODUCT = 400  # multiply-adds per matrix below which CPU bmm runs a slow plain loop


def _products(a: torch.Tensor, b: torch.Tensor, transpose_b: bool) -> torch.Tensor:
    """``a @ b`` (``a @ b^T`` if ``transpose_b``) over the leading batch dims. A decode row's first
    own tokens make a tiny product per (row, head) (1 x 8 x 32 at head_dim 32) that CPU bmm runs
    as a plain loop, 3-5x slower than the same products as one broadcast multiply and sum
    (docs/benchmarks.md); bigger products keep the matmul. SMALL_PRODUCT is read at each call:
    benchmarks/engine_pieces.py sets it to 0 (every product through matmul) to measure the gain."""
    inner, n = a.shape[-1], (b.shape[-2] if transpose_b else b.shape[-1])
    if a.device.type != "cpu" or a.shape[-2] * inner * n >= SMALL_PRODUCT:
        return torch.matmul(a, b.transpose(-1, -2) if transpose_b else b)
    if transpose_b:  # (..., m, 1, d) * (..., 1, n, d) summed over d
        return (a.unsqueeze(-2) * b.unsqueeze(-3)).sum(-1)
    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(-2)  # (..., m, k, 1) * (..., 1, k, d) over k


def _softmax_parts(q, k, v, scale, pad=None):
    """(row max, sum of exp, unnormalised output) of softmax(q k^T * scale) v, in float32; keys
    where ``pad`` is True are ignored. In place on fresh tensors: fewer allocations per token."""
    s = _products(q, k, True).float().mul_(scale)
    if pad is not None:
        s.masked_fill_(pad, float("-inf"))
    m = s.amax(-1, keepdim=True)
    e = s.sub_(m).exp_()
    return m, e.sum(-1, keepdim=True), _products(e.to(v.dtype), v, False).float()


def shared_prefix_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                            shared_prefix: SharedPrefixCache | None = None, **kwargs):
    """Decode-step attention (one query per row) over prompt keys + the row's own keys."""
    c = shared_prefix
    rows, heads, _, dim = query.shape
    kp, vp = c.prefix[module.layer_idx]
    prompts, kv_heads, _, _ = kp.shape
    per_kv, g = heads // kv_heads, c.group
    scale = scaling if scaling is not None else dim ** -0.5
    q = query.reshape(rows, kv_heads, per_kv, dim)  # query heads grouped by their key head (GQA)
    # the rows of one prompt side by side: its keys are read once for all of them
    grid = q.new_zeros(prompts, kv_heads, g, per_kv, dim)
    grid[c.row_prompt, :, c.rank] = q
    parts = _softmax_parts(grid.view(prompts, kv_heads, g * per_kv, dim), kp, vp, scale, c.pad)
    ma, la, oa = (x.view(prompts, kv_heads, g, per_kv, -1)[c.row_prompt, :, c.rank] for x in parts)
    mb, lb, ob = _softmax_parts(q, key, value, scale)  # own tokens: every row has the same count
    m = torch.maximum(ma, mb)
    wa, wb = ma.sub_(m).exp_(), mb.sub_(m).exp_()
    out = oa.mul_(wa).add_(ob.mul_(wb)).div_(la.mul_(wa).add_(lb.mul_(wb)))
    return out.to(query.dtype).reshape(rows, 1, heads, dim), None


AttentionInterface.register(ATTENTION, shared_prefix_attention)


@contextmanager
def attention_implementation(model, name: str):
    """Switch the model's attention function for the duration (prefill keeps the model's own)."""
    old = model.config._attn_implementation
    model.config._attn_implementation = name
    try:
        yield
    finally:
        model.config._attn_implementation = old


def supports_shared_prefix(config) -> bool:
    """True for whitelisted architectures whose every layer is plain full attention."""
    if getattr(config, "model_type", None) not in SAFE_MODEL_TYPES or getattr(config, "attn_logit_softcapping", None):
        return False
    try:
        probe = DynamicCache(config=config)
    except Exception:  # exotic configs: stay on the library's own cache
        return False
    return bool(probe.layers) and all(type(layer) is DynamicLayer for layer in probe.layers)
