"""Prefill: run each distinct prompt through the model once and hand its keys/values to every row
that samples from it.

Rules:
- A prompt is prefilled once per chunk however many rows sample from it (generate() would copy
  it n times before the prefill).
- Prompts of one group (the Generator groups the prefixes of one question) share their common
  token prefix, the *stem*: the stem is prefilled once, each prompt's remaining tokens on top of
  it. Sharing is exact: the model reads the same tokens at the same positions, only once.
- Each prompt's keys/values are stored once (kv_cache.SharedPrefixCache), its real tokens
  (stem and rest, no gap) right-aligned to the longest prompt, masked left padding before.
  Positions count real tokens only, so padding never changes what the model computes.
- A prompt that extends one prefilled by an earlier call (prefix_reuse.PrefixStore: the next
  step-search round) reads that part's keys/values instead of running it again, as a stem.
- Prefill forwards hold a bounded number of tokens (large CPU batches measured slower per token).
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache

from ttc_lib.generation.kv_cache import KVPool, SharedPrefixCache, cache_arg
from ttc_lib.generation.prefix_reuse import PrefixStore

PAD_TOKENS = 128  # padding a prefill sub-batch may gain before a separate forward is cheaper


def left_pad(seqs: list[list[int]], pad_id: int, device: torch.device, offsets: list[int] | None = None):
    """(ids, mask, positions) of ``seqs`` left-padded to one width; positions start at
    ``offsets[k]`` (default 0) and pads repeat a real position (they are masked anyway)."""
    width = max(1, max(len(s) for s in seqs))
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        if s:
            ids[r, width - len(s):], mask[r, width - len(s):] = torch.tensor(s), 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    if offsets is not None:
        pos += torch.tensor(offsets)[:, None]
    return ids.to(device), mask.to(device), pos.to(device)


def _plan(prompts: list[list[int]], stems: list[int], budget: int, reused: list[bool]) -> list[list[int]]:
    """Prompt indices cut into prefill sub-batches of about ``budget`` tokens, groups kept whole
    where they fit (``prompts`` arrive ordered so that a group's prompts are adjacent). A reused
    stem (``reused[j]``) is read, not run: it costs no tokens; reused prompts (which arrive
    last, by rest length) also start a new sub-batch where joining would pad the batch by more
    than PAD_TOKENS (a forward costs less)."""
    batches, cur, stem_w, rest_w, n_stems = [], [], 0, 0, 0
    for j, p in enumerate(prompts):
        run = stems[j] > 0 and not reused[j]
        new_stem = run and not (cur and prompts[cur[-1]][:stems[cur[-1]]] == p[:stems[j]])
        sw, rw = max(stem_w, stems[j] if run else 0), max(rest_w, len(p) - stems[j])
        if cur and ((len(cur) + 1) * rw + (n_stems + new_stem) * sw > budget
                    or reused[j] and len(cur) * (rw - rest_w) > PAD_TOKENS):
            batches.append(cur)
            cur, stem_w, rest_w, n_stems = [], 0, 0, 0
            new_stem, sw, rw = run, stems[j] if run else 0, len(p) - stems[j]
        cur.append(j)
        stem_w, rest_w, n_stems = sw, rw, n_stems + new_stem
    return batches + [cur]


def shared_prefill(model, pool: KVPool, prompts: list[list[int]], stems: list[int], rows: list[slice],
                   n_rows: int, room: int, pad_id: int, budget: int,
                   reuse: PrefixStore | None = None) -> tuple[SharedPrefixCache, torch.Tensor]:
    """Prefill distinct ``prompts`` (token ids) into a SharedPrefixCache for ``n_rows`` rows.

    ``stems[j]``: leading tokens prompt j shares with the adjacent prompts of its group (0: none;
    at least one token of each prompt must remain). ``rows[j]``: the rows sampling prompt j, in
    prompt order. ``room``: own tokens each row may add. ``reuse``: earlier prompts' keys/values;
    a prompt whose kept prefix is at least its stem reads that prefix instead of running it (the
    caller adds this call's store afterwards). Returns (cache, last logits per row).
    """
    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    hits = [reuse.lookup(p) if reuse is not None else (0, None) for p in prompts]
    reused = [n > 0 and n >= s for (n, _), s in zip(hits, stems)]
    stems = [n if r else s for (n, _), s, r in zip(hits, stems, reused)]
    # reused prompts last, by how many tokens they still run (their new step): one long rest would
    # pad a batch of short ones
    order = [j for j in range(len(prompts)) if not reused[j]]
    order += sorted((j for j in range(len(prompts)) if reused[j]), key=lambda j: len(prompts[j]) - stems[j])
    plan = _plan([prompts[j] for j in order], [stems[j] for j in order], budget, [reused[j] for j in order])
    store = last = None
    for js in ([order[i] for i in batch] for batch in plan):
        run = [stems[j] > 0 and not reused[j] for j in js]
        stem_keys = list(dict.fromkeys(tuple(prompts[j][:stems[j]]) for j, r in zip(js, run) if r))
        cache = DynamicCache(config=model.config)
        stem_end = 0
        if stem_keys:  # stage 1: each distinct stem once
            ids, mask_s, pos = left_pad([list(k) for k in stem_keys], pad_id, device)
            model(input_ids=ids, attention_mask=mask_s, position_ids=pos, **cache_arg(model, cache),
                  use_cache=True, logits_to_keep=1)
            which = [stem_keys.index(tuple(prompts[j][:stems[j]])) if r else 0 for j, r in zip(js, run)]
            cache.batch_select_indices(torch.tensor(which, device=device))
            mask_s, stem_end = mask_s[which] * torch.tensor(run, device=device)[:, None], ids.shape[1]
        else:
            mask_s = torch.zeros((len(js), 0), dtype=torch.long, device=device)
        if any(reused[j] for j in js):  # kept prefixes join the stems, right-aligned like them
            cache, mask_s, stem_end = _with_reused(model, reuse, cache, mask_s, stem_end,
                                                   [(k, hits[j]) for k, j in enumerate(js) if reused[j]])
        # stage 2: the rest of every prompt, reading its stem from the cache
        ids, mask_r, pos = left_pad([prompts[j][stems[j]:] for j in js], pad_id, device, [stems[j] for j in js])
        out = model(input_ids=ids, attention_mask=torch.cat([mask_s, mask_r], dim=1), position_ids=pos,
                    **cache_arg(model, cache), use_cache=True, logits_to_keep=1)
        if store is None:
            # every column of every row is written below (pads copy a real one): no zero fill
            store = [(k.new_empty(len(prompts), k.shape[1], width, k.shape[3]),
                      v.new_empty(len(prompts), v.shape[1], width, v.shape[3])) for k, v in
                     ((layer.keys, layer.values) for layer in cache.layers)]
            last = out.logits.new_empty(len(prompts), out.logits.shape[-1])
        # real columns only, stem then rest, right-aligned: one row gather per layer (per-prompt
        # slice copies measured 3x slower); pad columns copy some real column, masked anyway
        total = cache.layers[0].keys.shape[2]
        src = _store_columns([stems[j] for j in js], [len(prompts[j]) - stems[j] for j in js], width,
                             stem_end, total)
        src = (src + total * torch.arange(len(js))[:, None]).reshape(-1).to(device)
        at = torch.tensor(js, device=device)
        for (ks, vs), layer in zip(store, cache.layers):
            for dst, x in ((ks, layer.keys), (vs, layer.values)):
                flat = x.transpose(1, 2).reshape(len(js) * total, -1)  # (prompt, column) rows
                dst[at] = flat.index_select(0, src).view(len(js), width, *x.shape[1::2]).transpose(1, 2)
        last[at] = out.logits[:, -1]
    lens = torch.tensor([len(p) for p in prompts], device=device)
    prefix_mask = torch.arange(width, device=device) >= width - lens[:, None]
    row_prompt = torch.empty(n_rows, dtype=torch.long, device=device)
    for j, r in enumerate(rows):
        row_prompt[r] = j
    cache = SharedPrefixCache(store, prefix_mask, row_prompt, pool.layers(store, n_rows, max(1, room)))
    return cache, last.index_select(0, row_prompt)


def _store_columns(stems: list[int], rests: list[int], width: int, stem_end: int, total: int) -> torch.Tensor:
    """(batch, width) cache column of each store column: prompt k's stem (cache columns up to
    ``stem_end``) then its rest (the last of ``total``), right-aligned; pads read column 0."""
    col = torch.arange(width)[None, :]
    stem = torch.tensor(stems)[:, None]
    rest = torch.tensor(rests)[:, None]
    in_rest = col >= width - rest
    in_stem = ~in_rest & (col >= width - rest - stem)
    src = torch.where(in_rest, col - width + total, col - (width - rest) + stem_end)
    return torch.where(in_rest | in_stem, src, 0)


def _with_reused(model, reuse: PrefixStore, cache: DynamicCache, mask_s: torch.Tensor, stem_end: int,
                 hits: list[tuple[int, tuple[int, tuple[int, int, int]]]]):
    """A stage-1 cache (stems right-aligned in ``stem_end`` columns) with rows ``hits[i][0]``
    replaced by their kept prefixes: (cache, stem mask, new stem width)."""
    width = max(stem_end, max(n for _, (n, _) in hits))
    at = [k for k, _ in hits]
    kept, kept_mask = reuse.gather([hit for _, hit in hits], width, at, mask_s.shape[0])
    mask = mask_s.new_zeros(mask_s.shape[0], width)
    mask[:, width - stem_end:] = mask_s
    mask[at] = kept_mask
    others = torch.tensor(sorted(set(range(mask.shape[0])) - set(at)), dtype=torch.long, device=mask.device)
    merged = DynamicCache(config=model.config)
    for i, (keys, values) in enumerate(kept):
        if stem_end and len(others):  # the rows that ran a stem (or none) keep stage 1's columns
            keys[others, :, width - stem_end:] = cache.layers[i].keys.index_select(0, others)
            values[others, :, width - stem_end:] = cache.layers[i].values.index_select(0, others)
        merged.update(keys, values, i)
    return merged, mask, width


def plain_prefill(model, prompts: list[list[int]], rows: list[slice], n_rows: int, pad_id: int):
    """The fallback for models GrowingLayer cannot serve: one forward, DynamicCache rows repeated."""
    device = next(model.parameters()).device
    ids, mask, pos = left_pad(prompts, pad_id, device)
    cache = DynamicCache(config=model.config)  # filled in place by the forward
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                **cache_arg(model, cache), logits_to_keep=1)
    rep = torch.empty(n_rows, dtype=torch.long, device=device)
    for j, r in enumerate(rows):
        rep[r] = j
    cache.batch_select_indices(rep)
    return cache, out.logits[:, -1].index_select(0, rep), mask.index_select(0, rep)
