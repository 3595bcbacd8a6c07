"""The decode loop: one seeded token per row per step until every row stops, and the stop rules.

Rules (generation.py states them for callers):
- A row stops at an EOS id ("end"); at a token that closes a step, i.e. whose decoded text holds
  the step contract's delimiter (tasks.steps) after some non-blank text: in step mode "step" (or
  "end" when that step is the final answer step), in full mode only when the closed step holds
  ANSWER_MARKER ("end"); else after ``max_new`` tokens ("length"). Only tokens whose text holds
  the delimiter's last character (a precomputed table) trigger the text check, so any tokenizer
  works (".\\n\\n").
- A row whose text comes to hold one of the prompt style's stop strings stops there ("stop"),
  checked before the step rules; its text is cut where the stop string starts. A stop string may
  begin in the tail of the row's prompt (a step call continues after a delimiter), then the cut is
  at 0. Only tokens holding a stop string's last character trigger the check; a style without
  stop strings (plain) costs nothing.
- Finished rows leave the batch once COMPACT_FRACTION of it is done: the rest stop paying for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ttc_lib.generation.kv_cache import SharedPrefixCache, cache_arg
from ttc_lib.generation.sampling import choose_tokens
from ttc_lib.tasks.steps import LINES, StepContract, is_final_step

COMPACT_FRACTION = 0.25  # drop finished rows from the batch once this share of it is done


def stop_cut(text: str, stops: Sequence[str], lead: str = "") -> int | None:
    """Offset in ``text`` where the first stop string in ``lead + text`` that ends inside ``text``
    starts (0 when it starts in ``lead``, the prompt's tail), None when there is none."""
    whole, starts = lead + text, []
    for stop in stops:
        k = whole.find(stop, max(0, len(lead) - len(stop) + 1))
        if k >= 0:
            starts.append(k)
    return max(0, min(starts) - len(lead)) if starts else None


@dataclass(frozen=True)
class StopStrings:
    """A style's stop strings for one decode: ``table[id]`` may token id complete one (its text
    holds a stop string's last character); ``leads[r]`` the tail of row r's prompt."""

    strings: tuple[str, ...]
    table: torch.Tensor
    leads: list[str]


def char_table(texts: Sequence[str], chars: set[str], vocab: int) -> torch.Tensor:
    """Per token id (``texts``: each known id's decoded text): does its text hold one of ``chars``.
    Ids past the texts (a padded vocabulary) are False."""
    table = torch.zeros(vocab, dtype=torch.bool)
    table[:len(texts)] = torch.tensor([any(c in t for c in chars) for t in texts[:vocab]])
    return table


@dataclass(frozen=True)
class Decoded:
    """One row's outcome: generated ids (stop token included), finish reason, stopped by EOS,
    where a stop string starts in the decoded text (reason "stop")."""

    ids: list[int]
    reason: str
    by_eos: bool
    cut: int | None = None


def final_text(tokenizer, row: Decoded, step_mode: bool, contract: StepContract = LINES) -> str:
    """The Sample text of a decoded row (no special tokens, no EOS, no stop string; a step alone, or
    the solution as the step ``contract`` keeps samples: ``StepContract.sample_text``)."""
    raw = tokenizer.decode(row.ids[:len(row.ids) - row.by_eos], skip_special_tokens=True)
    raw = raw if row.cut is None else raw[:row.cut]
    if step_mode:
        return contract.first_step(raw)[0]
    cut = contract.answer_cut(raw) if row.reason == "end" and not row.by_eos else None
    return contract.sample_text(raw if cut is None else cut)


def decode(model, tokenizer, cache, logits: torch.Tensor, *, keys: torch.Tensor, next_pos: torch.Tensor,
           attn: torch.Tensor | None, tables: tuple[torch.Tensor, torch.Tensor], step_mode: bool,
           temperature: float, top_p: float, max_new: int, stops: StopStrings | None = None,
           contract: StepContract = LINES) -> list[Decoded]:
    """Decode every row of ``cache`` from its first-token ``logits``. ``keys``: sampling keys;
    ``next_pos``: position of each row's first new token; ``attn``: the 2D mask (prompt columns
    then ``max_new``) for a DynamicCache, None for a SharedPrefixCache (which needs none);
    ``stops``: the prompt style's stop strings, None when it has none; ``contract``: what closes
    a step (its delimiter; ``tables[0]`` must flag the tokens holding the delimiter's last character)."""
    rows, device = len(keys), keys.device
    delim_table, eos_table = tables
    shared = isinstance(cache, SharedPrefixCache)
    width = None if shared else attn.shape[1] - max_new  # generated token t sits at column width + t
    tokens = torch.zeros((rows, max_new), dtype=torch.long, device=device)
    alive = torch.arange(rows, device=device)  # original row of each batch row
    finished = torch.zeros(rows, dtype=torch.bool, device=device)  # per batch row
    reason, count, by_eos, cut = ["length"] * rows, [max_new] * rows, [False] * rows, [None] * rows
    for t in range(max_new):
        tok = choose_tokens(logits, keys, t, temperature=temperature, top_p=top_p)
        tokens[alive, t] = tok
        eos, trig = eos_table[tok] & ~finished, delim_table[tok] & ~finished
        halt = stops.table[tok] & ~finished if stops is not None else None
        for j in (eos | trig if halt is None else eos | trig | halt).nonzero()[:, 0].tolist():
            r = int(alive[j])  # an EOS, a step may have closed, or a stop string may have appeared
            if bool(eos[j]):
                reason[r], count[r], by_eos[r], finished[j] = "end", t + 1, True, True
                continue
            text = tokenizer.decode(tokens[r, :t + 1].tolist(), skip_special_tokens=True)
            if halt is not None and bool(halt[j]):
                cut[r] = stop_cut(text, stops.strings, stops.leads[r])
                if cut[r] is not None:
                    reason[r], count[r], finished[j] = "stop", t + 1, True
                    continue
            if step_mode:
                step, closed = contract.first_step(text)
                stop = ("end" if is_final_step(step) else "step") if closed else None
            else:
                stop = "end" if contract.answer_cut(text) is not None else None
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
    return [Decoded(ids[r][:count[r]], reason[r], by_eos[r], cut[r]) for r in range(rows)]
