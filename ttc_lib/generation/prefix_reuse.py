"""Reusing earlier calls' keys/values: the next step-search round prefills almost nothing.

Beam search (and DVTS, lookahead rollouts) asks for next steps of (question, prefix) prompts whose
prefix is the previous round's prefix plus one step, so the previous round already computed the
keys/values of almost every token of the new prompt: those of the old prompt in its prefill, and
those of the new step while it sampled that step. Re-prefilling them cost as much as sampling the
step itself at 4 samples per prompt (docs/benchmarks.md). ``PrefixStore`` keeps both: the prefill
stores of recent calls (the per-prompt keys/values kv_cache.SharedPrefixCache reads, kept by
reference: no copy) and the own-token keys/values of the steps they sampled (``add_steps``), and
finds, for a new prompt, the longest kept token sequence that is a prefix of its token ids.

Rules:
- Keys are token ids, never text: a hit means the model would read exactly those tokens at
  exactly those positions, so their keys/values are the same up to float rounding (the same
  rounding as a different batch composition; generation.py's determinism rule covers it). A step
  re-tokenised differently from how it was sampled simply finds the shorter, old prompt.
- A hit leaves at least one token of the new prompt to run (its logits start the decode).
- Stores are kept least-recently-used first out within a byte budget; a store bigger than the
  budget is not kept; a step store leaves with the prompt store it extends.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (keys, values): (prompts, heads, width, dim)
Segment = tuple[KV, int, int, int]  # (keys/values, row, first column, tokens) of one kept piece
Hit = tuple[int, tuple[Segment, ...]]  # (store id, the pieces of a kept sequence, in order)


def _nbytes(kv: KV) -> int:
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)


class PrefixStore:
    """Recent prompts' and sampled steps' keys/values by token ids (see the module rules)."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget = int(budget_bytes)
        self._stores: OrderedDict[int, tuple[list[tuple[int, ...]], int, int | None]] = OrderedDict()
        self._index: dict[tuple[int, ...], Hit] = {}  # ids -> where their keys/values are
        self._children: dict[int, list[int]] = {}  # prompt store -> the step stores extending it
        self._next = 0
        self.bytes = 0
        self.reused_tokens = 0  # running total of prompt tokens not prefilled again

    def clear(self) -> None:
        self._stores.clear()
        self._index.clear()
        self._children.clear()
        self.bytes = 0

    def add(self, store: KV, prompts: list[list[int]]) -> int | None:
        """Keep ``store`` (row j holds prompt j right-aligned to the store's width); its id, or
        None when it alone exceeds the budget (not kept)."""
        width = store[0][0].shape[2]
        return self._keep({tuple(p): ((store, j, width - len(p), len(p)),) for j, p in enumerate(prompts)},
                          _nbytes(store), None)

    def add_steps(self, parent: int | None, steps: list[tuple[list[int], list[int], KV, int]]) -> None:
        """Keep sampled steps of prompts kept in store ``parent`` (add's id; None: nothing kept).
        ``steps``: (the prompt's token ids, the step's token ids, own keys/values, row in them)
        with the own keys/values of all but the step's last id (decoding never feeds the stop
        token back)."""
        if parent is None or parent not in self._stores:
            return
        entries, blocks = {}, {}
        for prompt, ids, own, row in steps:
            head = self._index.get(tuple(prompt))
            if len(ids) < 2 or head is None or head[0] != parent:
                continue
            entries[tuple(prompt) + tuple(ids[:-1])] = head[1] + ((own, row, 0, len(ids) - 1),)
            blocks[id(own)] = own
        self._keep(entries, sum(_nbytes(kv) for kv in blocks.values()), parent)

    def _keep(self, entries: dict[tuple[int, ...], tuple[Segment, ...]], size: int, parent: int | None) -> int | None:
        if size > self.budget or not entries:
            return None
        sid, self._next = self._next, self._next + 1
        for key, segments in entries.items():
            self._index[key] = (sid, segments)
        self._stores[sid] = (list(entries), size, parent)
        if parent is not None:
            self._children.setdefault(parent, []).append(sid)
        self.bytes += size
        while self.bytes > self.budget:
            self._evict(next(iter(self._stores)))
        return sid if sid in self._stores else None

    def _evict(self, sid: int) -> None:
        keys, size, _ = self._stores.pop(sid)
        for key in keys:
            if self._index.get(key, (None,))[0] == sid:  # not since re-added by a newer store
                del self._index[key]
        self.bytes -= size
        for child in self._children.pop(sid, []):  # steps read their prompt's keys/values
            if child in self._stores:
                self._evict(child)

    def lookup(self, prompt: list[int]) -> tuple[int, Hit | None]:
        """(tokens reusable, where they are) for the longest kept sequence that is a proper prefix
        of ``prompt`` (or ``prompt`` itself, then all but its last token); (0, None) if none."""
        key = tuple(prompt)
        for n in range(len(key), 0, -1):  # dict lookups in C: cheap next to a forward
            hit = self._index.get(key[:n])
            if hit is not None:
                parent = self._stores[hit[0]][2]
                for sid in (parent, hit[0]):
                    if sid is not None:
                        self._stores.move_to_end(sid)
                return min(n, len(key) - 1), hit
        return 0, None

    def gather(self, hits: list[tuple[int, Hit]], width: int, rows: list[int] | None = None,
               total: int | None = None) -> tuple[KV, torch.Tensor]:
        """Per layer (keys, values) of shape (total, heads, width, dim) (total: default len(hits))
        with hit i's first ``n_i`` tokens right-aligned in row ``rows[i]`` (default i), zeros
        elsewhere, and the (len(hits), width) mask of those columns (hits: lookup's answers, at
        least one). Writing straight into the caller's rows saves a second copy of the batch."""
        rows = list(range(len(hits))) if rows is None else rows
        ref = hits[0][1][1][0][0]  # any kept keys/values: they share layout, dtype, device
        total = len(hits) if total is None else total
        out = [(k.new_zeros(total, k.shape[1], width, k.shape[3]),
                v.new_zeros(total, v.shape[1], width, v.shape[3])) for k, v in ref]
        device = ref[0][0].device
        lengths = torch.tensor([n for n, _ in hits], device=device)
        mask = (torch.arange(width, device=device) >= width - lengths[:, None]).long()
        for i, (n, (_, segments)) in zip(rows, hits):  # slice copies: faster than one indexed copy
            at = width - n
            for kv, row, col, length in segments:  # the prompt, then its step (if any)
                take = min(length, width - at)
                if take <= 0:
                    break
                for (dk, dv), (sk, sv) in zip(out, kv):
                    dk[i, :, at:at + take] = sk[row, :, col:col + take]
                    dv[i, :, at:at + take] = sv[row, :, col:col + take]
                at += take
        self.reused_tokens += sum(n for n, _ in hits)
        return out, mask
