"""Teacher forcing with shared stems: log p of every token of many solutions (Generator.token_logprobs).

Rules:
- Solutions sharing leading tokens (samples of one question, beam-search children of one parent)
  run those tokens once (``share_groups``, ``stem_logprobs``): beam search re-scores whole
  prefixes every round, which dominated its time before. The model reads the same tokens at the
  same positions as one forward per solution, so the values agree up to float rounding.
- Forwards are bounded in rows, tokens and floats of logits (a vocabulary can hold 150k entries);
  the logits budget comes from the caller (memory.logits_budget: fixed on CPU, from free memory on CUDA).
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache

from ttc_lib.generation.kv_cache import cache_arg
from ttc_lib.generation.prefill import left_pad

TOKENS_BUDGET = 65536  # token positions (rows x width) per forward


def teacher_forced_logprobs(model, seqs: list[list[int]], starts: list[int], scored: list[int], pad_id: int,
                            max_rows: int, logits_budget: int) -> dict[int, list[float]]:
    """log p(seqs[k][t] | seqs[k][:t]) for t >= starts[k], for each k in ``scored`` (each with a
    token at or after its start), in batches of at most ``max_rows`` rows and ``logits_budget``
    floats of logits."""
    vocab = model.get_output_embeddings().weight.shape[0]
    pieces = []  # big groups cut into pieces that fit one batch on their own
    for stem, members in share_groups([seqs[k] for k in scored]):
        members = [scored[j] for j in members]
        own = max(len(seqs[k]) - stem for k in members)
        size = max(1, min(max_rows, TOKENS_BUDGET // (stem + own), logits_budget // ((own + 1) * vocab)))
        pieces += [(stem, members[i:i + size]) for i in range(0, len(members), size)]
    # batches pad every member to the longest own part (the members are most of the rows): by
    # own length, longest first, then by stem
    groups = sorted(pieces, key=lambda g: (-max(len(seqs[k]) - g[0] for k in g[1]), -g[0]))
    values: dict[int, list[float]] = {}
    while groups:
        # grow while rows, tokens and logits stay within the budgets and the own parts are at
        # least half the batch's longest (padding the rest to it would waste more than a forward)
        batch = [groups.pop(0)]
        while groups:
            cand = batch + [groups[0]]
            rows = sum(len(m) for _, m in cand)
            stem_w = max(stem for stem, _ in cand)
            own_w = max(len(seqs[k]) - stem for stem, m in cand for k in m)
            if rows > max_rows or rows * (own_w + 1) * vocab > logits_budget \
                    or 2 * max(len(seqs[k]) - groups[0][0] for k in groups[0][1]) < own_w \
                    or rows * (stem_w + own_w) > TOKENS_BUDGET or len(cand) * stem_w * vocab > logits_budget:
                break
            batch.append(groups.pop(0))
        values.update(stem_logprobs(model, seqs, starts, batch, pad_id))
    return values


def share_groups(seqs: list[list[int]]) -> list[tuple[int, list[int]]]:
    """(stem length, member indices) groups of ``seqs`` (non-empty token lists): members share
    their first ``stem`` tokens, and each keeps at least one own token.

    Lexicographic order puts sequences with a common prefix side by side (beam-search children
    of one parent, samples of one question); a sequence joins the previous group when the tokens
    the group stops sharing, (old stem - new stem) x members, are fewer than the stem it keeps.
    """
    groups: list[tuple[int, list[int]]] = []
    for k in sorted(range(len(seqs)), key=lambda k: seqs[k]):
        s = seqs[k]
        if groups:
            stem, members = groups[-1]
            first = seqs[members[0]]
            lcp = next((i for i, (a, b) in enumerate(zip(first[:stem], s)) if a != b), min(stem, len(s)))
            new = min(stem, lcp, len(s) - 1)
            if new >= 1 and (stem - new) * len(members) < new:
                groups[-1] = (new, members + [k])
                continue
        groups.append((len(s) - 1, [k]))
    return groups


def stem_logprobs(model, seqs: list[list[int]], starts: list[int], groups: list[tuple[int, list[int]]],
                  pad_id: int) -> dict[int, list[float]]:
    """log p(seqs[k][t] | seqs[k][:t]) for t >= starts[k] (starts[k] >= 1), for every member of
    ``groups``: each stem is run once, its keys/values copied to its members, and only the members'
    own tokens are run on top (same tokens at the same positions as one full forward)."""
    device = next(model.parameters()).device
    stems = [seqs[g[1][0]][:g[0]] for g in groups]
    keep_s = max(1, max(stem - min(starts[k] for k in members) + 1 for stem, members in groups))
    ids, mask_s, pos = left_pad(stems, pad_id, device)
    cache = DynamicCache(config=model.config)
    keep_s = min(keep_s, ids.shape[1])
    stem_lp = model(input_ids=ids, attention_mask=mask_s, position_ids=pos, **cache_arg(model, cache), use_cache=True,
                    logits_to_keep=keep_s).logits.float().log_softmax(-1)
    rows = [(g, k) for g, (_, members) in enumerate(groups) for k in members]
    rep = torch.tensor([g for g, _ in rows], device=device)
    cache.batch_select_indices(rep)
    suffixes = [seqs[k][groups[g][0]:] for g, k in rows]
    ids, mask_r, pos = left_pad(suffixes, pad_id, device, [groups[g][0] for g, _ in rows])
    width = ids.shape[1]
    suf_lp = model(input_ids=ids, attention_mask=torch.cat([mask_s.index_select(0, rep), mask_r], dim=1),
                   position_ids=pos, **cache_arg(model, cache), use_cache=True).logits.float().log_softmax(-1)
    # gather every needed log-prob with one index per source (the logit at position t-1 predicts
    # token t): inside the stem from the stem logits, else from the member's own (suffix) logits
    src = {True: ([], [], []), False: ([], [], [])}  # in stem? -> (row, column, token)
    spans = []
    for r, (g, k) in enumerate(rows):
        stem, seq, n_in = groups[g][0], seqs[k], 0
        for t in range(starts[k], len(seq)):
            inside = t - 1 < stem
            row, col, tok = src[inside]
            row.append(g if inside else r)
            col.append(keep_s - stem + t - 1 if inside else width - len(suffixes[r]) + t - 1 - stem)
            tok.append(seq[t])
            n_in += inside
        spans.append((k, n_in, len(seq) - starts[k] - n_in))
    got = {inside: (lp[tuple(torch.tensor(x, device=lp.device) for x in src[inside])].tolist()
                    if src[inside][0] else []) for inside, lp in ((True, stem_lp), (False, suf_lp))}
    out: dict[int, list[float]] = {}
    a = b = 0
    for k, n_in, n_own in spans:  # a member's stem tokens come before its own tokens
        out[k] = got[True][a:a + n_in] + got[False][b:b + n_own]
        a, b = a + n_in, b + n_own
    return out
