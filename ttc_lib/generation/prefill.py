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
from transformers.cache_utils import Cache, DynamicCache

from ttc_lib.generation.kv_cache import GrowingLayer, KVPool, SharedPrefixCache, cache_arg
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
        rests = [len(prompts[j]) - stems[j] for j in js]
        cache, mask_s, stem_end = _stage_two_cache(
            model, reuse, [prompts[j][:stems[j]] for j in js], [stems[j] > 0 and not reused[j] for j in js],
            [(k, hits[j]) for k, j in enumerate(js) if reused[j]], max(rests), pad_id, device)
        # stage 2: the rest of every prompt, reading its stem from the cache
        ids, mask_r, pos = left_pad([prompts[j][stems[j]:] for j in js], pad_id, device, [stems[j] for j in js])
        out = model(input_ids=ids, attention_mask=torch.cat([mask_s, mask_r], dim=1), position_ids=pos,
                    **cache_arg(model, cache), use_cache=True, logits_to_keep=1)
        if store is None:
            # every column of every row is written below (pads copy a finite column): no zero fill
            store = [(k.new_empty(len(prompts), k.shape[1], width, k.shape[3]),
                      v.new_empty(len(prompts), v.shape[1], width, v.shape[3])) for k, v in
                     ((layer.keys, layer.values) for layer in cache.layers)]
            last = out.logits.new_empty(len(prompts), out.logits.shape[-1])
        _store_rows(store, js, [(layer.keys, layer.values) for layer in cache.layers], rests, stem_end)
        last[torch.tensor(js, device=device)] = out.logits[:, -1]
    lens = torch.tensor([len(p) for p in prompts], device=device)
    prefix_mask = torch.arange(width, device=device) >= width - lens[:, None]
    row_prompt = torch.empty(n_rows, dtype=torch.long, device=device)
    for j, r in enumerate(rows):
        row_prompt[r] = j
    cache = SharedPrefixCache(store, prefix_mask, row_prompt, pool.layers(store, n_rows, max(1, room)))
    return cache, last.index_select(0, row_prompt)


def _stage_two_cache(model, reuse: PrefixStore | None, stems: list[list[int]], run: list[bool],
                     kept: list[tuple[int, tuple[int, tuple[int, int, int]]]], rest_width: int, pad_id: int,
                     device: torch.device):
    """The cache stage 2 reads and writes, its stem mask and stem width ``w``: each row's stem
    right-aligned in columns [0, w): run now (stage 1: each distinct stem of a row with ``run``
    once) or read from ``reuse`` (``kept``: (row, lookup answer)). The cache's layers are buffers
    of w + ``rest_width`` columns with the stems written in place: stage 2's forward writes its
    keys/values after them, the same tensor DynamicCache's concatenations built (two copies of
    the batch fewer). Rows with neither (or with a shorter stem) hold zeros there, masked."""
    keys = list(dict.fromkeys(tuple(s) for s, r in zip(stems, run) if r))
    stage1 = mask_1 = None
    if keys:  # stage 1: each distinct stem once
        ids, mask_1, pos = left_pad([list(k) for k in keys], pad_id, device)
        stage1 = DynamicCache(config=model.config)
        model(input_ids=ids, attention_mask=mask_1, position_ids=pos, **cache_arg(model, stage1),
              use_cache=True, logits_to_keep=1)
    stem_end = 0 if stage1 is None else mask_1.shape[1]
    width = max([stem_end] + [n for _, (n, _) in kept])
    if width == 0:  # no stems: stage 2 starts from an empty cache
        return DynamicCache(config=model.config), torch.zeros((len(stems), 0), dtype=torch.long, device=device), 0
    like = [(x.keys, x.values) for x in stage1.layers] if stage1 is not None else reuse.layout(kept[0][1][1])
    bufs = [(k.new_empty(len(stems), k.shape[1], width + rest_width, k.shape[3]),
             v.new_empty(len(stems), v.shape[1], width + rest_width, v.shape[3])) for k, v in like]
    mask = torch.zeros((len(stems), width), dtype=torch.long, device=device)
    at = [k for k, _ in kept]
    others = sorted(set(range(len(stems))) - set(at))
    if others:  # rows that ran a stem, or have none: stage 1's columns (or zeros), right-aligned
        rows = slice(None) if len(others) == len(stems) else torch.tensor(others, device=device)
        which = torch.tensor([keys.index(tuple(stems[k])) if run[k] else 0 for k in others], device=device)
        for (bk, bv), layer in zip(bufs, stage1.layers if stage1 is not None else []):
            bk[rows, :, width - stem_end:width] = layer.keys.index_select(0, which)
            bv[rows, :, width - stem_end:width] = layer.values.index_select(0, which)
        if stage1 is not None:
            mask[rows, width - stem_end:] = mask_1[which] * torch.tensor([run[k] for k in others], device=device)[:, None]
        if stem_end < width:
            for bk, bv in bufs:
                bk[rows, :, :width - stem_end] = 0
                bv[rows, :, :width - stem_end] = 0
    if kept:  # kept prefixes join the stems, right-aligned like them
        reuse.write([hit for _, hit in kept], bufs, at, width)
        lengths = torch.tensor([n for _, (n, _) in kept], device=device)
        mask[at] = (torch.arange(width, device=device) >= width - lengths[:, None]).long()
    return Cache(layers=[GrowingLayer(k, v, width) for k, v in bufs]), mask, width


def _store_rows(store: list[tuple[torch.Tensor, torch.Tensor]], js: list[int],
                done: list[tuple[torch.Tensor, torch.Tensor]], rests: list[int], stem_end: int) -> None:
    """Write rows ``js`` of ``store`` (width w) from stage 2's keys/values ``done`` (batch row k:
    its stem right-aligned in columns [0, stem_end), then its rest right-aligned in the
    ``rests[k]`` last columns): stem then rest, right-aligned in w columns, no gap. Rows of one
    rest length r are one group: its rests are one slice, its stems (with the pad columns
    before them, a finite filler that decoding masks) the w - r columns ending at stem_end, so
    each group is two row copies per layer straight from views of ``done`` (rows reusing kept
    prefixes arrive sorted by rest length: a group is a slice of the batch, not a row gather)."""
    width, total = store[0][0].shape[2], done[0][0].shape[2]
    device = done[0][0].device
    groups: dict[int, list[int]] = {}
    for k, r in enumerate(rests):
        groups.setdefault(r, []).append(k)
    for r, ks in groups.items():
        at = torch.tensor([js[k] for k in ks], device=device)
        contiguous = ks[-1] - ks[0] + 1 == len(ks)
        pick = None if contiguous else torch.tensor(ks, device=device)
        head = width - r  # store columns before the rest: pads, then the stem
        start = max(0, stem_end - head)  # where the stem window starts in ``done``
        short = head - (stem_end - start)  # store columns left of the window: zeros
        for (sk, sv), (dk, dv) in zip(store, done):
            for dst, x in ((sk, dk), (sv, dv)):
                rows = x[ks[0]:ks[-1] + 1] if contiguous else x.index_select(0, pick)
                dst[:, :, head:].index_copy_(0, at, rows[:, :, total - r:])
                dst[:, :, short:head].index_copy_(0, at, rows[:, :, start:stem_end])
                if short:
                    dst[:, :, :short].index_fill_(0, at, 0.0)


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
