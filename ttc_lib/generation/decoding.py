"""The decode loop: one seeded token per row per step until every row stops, and the stop rules.

Rules (generation.py states them for callers):
- A row stops at an EOS id ("end"); at a token that closes a step, i.e. whose decoded text holds
  the delimiter after some non-blank text: in step mode "step" (or "end" when that step is the
  final answer step), in full mode only when the closed step holds ANSWER_MARKER ("end"); else
  after ``max_new`` tokens ("length"). Only tokens whose text holds the delimiter's last
  character (a precomputed table) trigger the text check, so any tokenizer works (".\\n\\n").
- Finished rows leave the batch once COMPACT_FRACTION of it is done: the rest stop paying for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ttc_lib.generation.kv_cache import SharedPrefixCache, cache_arg
from ttc_lib.generation.sampling import choose_tokens
from ttc_lib.tasks.steps import STEP_DELIMITER, is_final_step, join_steps, split_steps

COMPACT_FRACTION = 0.25  # drop finished rows from the batch once this share of it is done


def first_step(text: str) -> tuple[str, bool]:
    """(the first step of ``text``, whether a delimiter closed it); leading delimiters skipped."""
    body = text.lstrip()
    while body.startswith(STEP_DELIMITER):
        body = body[len(STEP_DELIMITER):].lstrip()
    step, closed, _ = body.partition(STEP_DELIMITER)
    return step.strip(), bool(closed)


def answer_cut(text: str) -> str | None:
    """``text`` up to the end of its first completed step holding the answer marker, else None."""
    pieces = text.split(STEP_DELIMITER)
    for k, piece in enumerate(pieces[:-1]):
        if is_final_step(piece):
            return STEP_DELIMITER.join(pieces[:k + 1])
    return None


@dataclass(frozen=True)
class Decoded:
    """One row's outcome: generated ids (stop token included), finish reason, stopped by EOS."""

    ids: list[int]
    reason: str
    by_eos: bool


def final_text(tokenizer, row: Decoded, step_mode: bool) -> str:
    """The Sample text of a decoded row (no special tokens, no EOS, delimiter-normalised)."""
    raw = tokenizer.decode(row.ids[:len(row.ids) - row.by_eos], skip_special_tokens=True)
    if step_mode:
        return first_step(raw)[0]
    cut = answer_cut(raw) if row.reason == "end" and not row.by_eos else None
    return join_steps(split_steps(raw if cut is None else cut))


def decode(model, tokenizer, cache, logits: torch.Tensor, *, keys: torch.Tensor, next_pos: torch.Tensor,
           attn: torch.Tensor | None, tables: tuple[torch.Tensor, torch.Tensor], step_mode: bool,
           temperature: float, top_p: float, max_new: int) -> list[Decoded]:
    """Decode every row of ``cache`` from its first-token ``logits``. ``keys``: sampling keys;
    ``next_pos``: position of each row's first new token; ``attn``: the 2D mask (prompt columns
    then ``max_new``) for a DynamicCache, None for a SharedPrefixCache (which needs none)."""
    rows, device = len(keys), keys.device
    delim_table, eos_table = tables
    shared = isinstance(cache, SharedPrefixCache)
    width = None if shared else attn.shape[1] - max_new  # generated token t sits at column width + t
    tokens = torch.zeros((rows, max_new), dtype=torch.long, device=device)
    alive = torch.arange(rows, device=device)  # original row of each batch row
    finished = torch.zeros(rows, dtype=torch.bool, device=device)  # per batch row
    reason, count, by_eos = ["length"] * rows, [max_new] * rows, [False] * rows
    for t in range(max_new):
        tok = choose_tokens(logits, keys, t, temperature=temperature, top_p=top_p)
        tokens[alive, t] = tok
        eos, trig = eos_table[tok] & ~finished, delim_table[tok] & ~finished
        for j in (eos | trig).nonzero()[:, 0].tolist():  # an EOS, or a step may have closed
            r = int(alive[j])
            if bool(eos[j]):
                reason[r], count[r], by_eos[r], finished[j] = "end", t + 1, True, True
                continue
            text = tokenizer.decode(tokens[r, :t + 1].tolist(), skip_special_tokens=True)
            if step_mode:
                step, closed = first_step(text)
                stop = ("end" if is_final_step(step) else "step") if closed else None
            else:
                stop = "end" if answer_cut(text) is not None else None
            if stop:
                reason[r], count[r], finished[j] = stop, t + 1, True
        if t == max_new - 1 or bool(finished.all()):
            break
        if int(finished.sum()) >= COMPACT_FRACTION * len(finished):  # stop computing done rows
            keep = (~finished).nonzero()[:, 0]
            cache.batch_select_indices(keep)
            alive, finished, next_pos, keys, tok = (x.index_select(0, keep) for x in
                                                    (alive, finished, next_pos, keys, tok))
            attn = None if shared else attn.index_select(0, keep)
        extra = dict(shared_prefix=cache) if shared else dict(attention_mask=attn[:, :width + t + 1])
        out = model(input_ids=tok[:, None], position_ids=(next_pos + t)[:, None], **cache_arg(model, cache),
                    use_cache=True, **extra)
        logits = out.logits[:, -1]
    ids = tokens.cpu().tolist()
    return [Decoded(ids[r][:count[r]], reason[r], by_eos[r]) for r in range(rows)]
