"""Reusing earlier calls' prompt keys/values: the next step-search round prefills only new tokens.

Beam search (and DVTS, lookahead rollouts) asks for next steps of (question, prefix) prompts whose
prefix is the previous round's prefix plus one step, so the previous round already computed the
keys/values of almost every token of the new prompt. Re-prefilling them cost as much as sampling
the step itself at 4 samples per prompt (docs/benchmarks.md). ``PrefixStore`` keeps the prefill
stores of recent calls (the per-prompt keys/values kv_cache.SharedPrefixCache reads, kept by
reference: no copy) and finds, for a new prompt, the longest earlier prompt that is a prefix of
its token ids. The new step itself is prefilled: keeping the keys/values decoding computed for it
saved no time beyond the noise in beam search (benchmarks/engine_pieces.py, docs/benchmarks.md).

Rules:
- Keys are token ids, never text: a hit means the model would read exactly those tokens at
  exactly those positions, so their keys/values are the same up to float rounding (the same
  rounding as a different batch composition; generation.py's determinism rule covers it).
- A hit leaves at least one token of the new prompt to run (its logits start the decode).
- Stores are kept least-recently-used first out within a byte budget; a store bigger than the
  budget is not kept.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (keys, values): (prompts, heads, width, dim)
Hit = tuple[int, int, int]  # (store id, row, first column) of a kept prompt


class PrefixStore:
    """Recent prompts' keys/values by token ids (see the module rules)."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget = int(budget_bytes)
        self._stores: OrderedDict[int, tuple[KV, list[tuple[int, ...]], int]] = OrderedDict()
        self._index: dict[tuple[int, ...], Hit] = {}  # ids -> where their keys/values are
        self._next = 0
        self.bytes = 0
        self.reused_tokens = 0  # running total of prompt tokens not prefilled again

    def clear(self) -> None:
        self._stores.clear()
        self._index.clear()
        self.bytes = 0

    def add(self, store: KV, prompts: list[list[int]]) -> None:
        """Keep ``store`` (row j holds prompt j right-aligned to the store's width)."""
        size = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in store)
        if size > self.budget:
            return
        sid, self._next = self._next, self._next + 1
        width = store[0][0].shape[2]
        keys = [tuple(p) for p in prompts]
        for j, key in enumerate(keys):
            self._index[key] = (sid, j, width - len(key))
        self._stores[sid] = (store, keys, size)
        self.bytes += size
        while self.bytes > self.budget:
            old, (_, old_keys, old_size) = self._stores.popitem(last=False)
            for key in old_keys:
                if self._index.get(key, (None,))[0] == old:  # not since re-added by a newer store
                    del self._index[key]
            self.bytes -= old_size

    def lookup(self, prompt: list[int]) -> tuple[int, Hit | None]:
        """(tokens reusable, where they are) for the longest kept prompt that is a proper prefix
        of ``prompt`` (or ``prompt`` itself, then all but its last token); (0, None) if none."""
        key = tuple(prompt)
        for n in range(len(key), 0, -1):  # dict lookups in C: cheap next to a forward
            hit = self._index.get(key[:n])
            if hit is not None:
                self._stores.move_to_end(hit[0])
                return min(n, len(key) - 1), hit
        return 0, None

    def layout(self, hit: Hit) -> KV:
        """The kept keys/values holding ``hit`` (every kept store has the same layers, heads, dtype)."""
        return self._stores[hit[0]][0]

    def gather(self, hits: list[tuple[int, Hit]], width: int) -> tuple[KV, torch.Tensor]:
        """Per layer (keys, values) of shape (len(hits), heads, width, dim) holding hit i's first
        ``n_i`` tokens right-aligned in row i (earlier columns: ``write``'s filler), and the
        (len(hits), width) mask of those columns (hits: lookup's answers, at least one)."""
        ref = self.layout(hits[0][1])
        out = [(k.new_zeros(len(hits), k.shape[1], width, k.shape[3]),
                v.new_zeros(len(hits), v.shape[1], width, v.shape[3])) for k, v in ref]
        self.write(hits, out, list(range(len(hits))), width)
        lengths = torch.tensor([n for n, _ in hits], device=ref[0][0].device)
        return out, (torch.arange(width, device=lengths.device) >= width - lengths[:, None]).long()

    def write(self, hits: list[tuple[int, Hit]], out: KV, rows: list[int], width: int) -> None:
        """Write hit i's first ``n_i`` tokens into row ``rows[i]`` of ``out`` (per layer (keys,
        values), (rows, heads, >= width, dim)), right-aligned to end at column ``width``: straight
        into the caller's buffer, no second copy. The columns before them get finite filler the
        caller masks: the kept row's earlier columns, or zeros where it has none (a pad column must
        hold no inf or NaN: its attention weight is exactly 0, and 0 * NaN is NaN). One slice per
        hit and layer, filler included, so no separate zero fill of the batch."""
        stores = [self._stores[sid][0] for _, (sid, _, _) in hits]
        for i, (n, (_, row, col)), kept in zip(rows, hits, stores):
            end = col + n
            start = max(0, end - width)  # the window ends at the hit's last token
            for (dk, dv), (sk, sv) in zip(out, kept):
                dk[i, :, width - end + start:width] = sk[row, :, start:end]
                dv[i, :, width - end + start:width] = sv[row, :, start:end]
                if end < width:  # a kept row narrower than the window: zeros before it
                    dk[i, :, :width - end].zero_()
                    dv[i, :, :width - end].zero_()
        self.reused_tokens += sum(n for n, _ in hits)
