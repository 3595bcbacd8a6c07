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
- Host reads: one per step, the chunk's sampled tokens (``tolist``); the token tables are bytes on
  the host, each row's tokens are host lists, finished/alive are host bookkeeping. A text check
  decodes only the row's tokens since its anchor (RowText), not the whole row each time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from tokenizers import decoders

from ttc_lib.generation.kv_cache import SharedPrefixCache, cache_arg
from ttc_lib.generation.sampling import choose_tokens
from ttc_lib.tasks.steps import LINES, StepContract, is_final_step

COMPACT_FRACTION = 0.25  # drop finished rows from the batch once this share of it is done
EOS, STEP_END, STOP_END = 1, 2, 4  # bits of a token id's flags: EOS, may close a step, may complete a stop


def open_piece(text: str, delimiter: str) -> str:
    """The text after the last ``delimiter`` of ``text`` (as ``text.split`` cuts it): the step still open."""
    return text.split(delimiter)[-1]


def stop_at(whole: str, stops: Sequence[str], text_start: int) -> int | None:
    """Where in ``whole`` the first stop string that ends past ``text_start`` starts, else None."""
    starts = [k for k in (whole.find(stop, max(0, text_start - len(stop) + 1)) for stop in stops) if k >= 0]
    return min(starts) if starts else None


def stop_cut(text: str, stops: Sequence[str], lead: str = "") -> int | None:
    """Offset in ``text`` where the first stop string in ``lead + text`` that ends inside ``text``
    starts (0 when it starts in ``lead``, the prompt's tail), None when there is none."""
    k = stop_at(lead + text, stops, len(lead))
    return None if k is None else max(0, k - len(lead))


@dataclass(frozen=True)
class StopStrings:
    """A style's stop strings for one decode; ``leads[r]`` the tail of row r's prompt."""

    strings: tuple[str, ...]
    leads: list[str]


def char_table(texts: Sequence[str], chars: set[str], vocab: int) -> torch.Tensor:
    """Per token id (``texts``: each known id's decoded text): does its text hold one of ``chars``.
    Ids past the texts (a padded vocabulary) are False."""
    table = torch.zeros(vocab, dtype=torch.bool)
    table[:len(texts)] = torch.tensor([any(c in t for c in chars) for t in texts[:vocab]])
    return table


def token_flags(eos_ids: Sequence[int], step_end: torch.Tensor, stop_end: torch.Tensor | None) -> bytes:
    """One byte per token id (of ``step_end``'s vocabulary): EOS | STEP_END | STOP_END bits, from
    the EOS ids and the two char_tables (``stop_end`` None: the style has no stop strings)."""
    flags = step_end.to(torch.uint8) * STEP_END
    flags[[i for i in eos_ids if i < len(flags)]] |= EOS
    if stop_end is not None:
        flags |= stop_end.to(torch.uint8) * STOP_END
    return bytes(flags.tolist())


def splits_at_newlines(tokenizer) -> bool:
    """True when ``decode(ids) == decode(ids[:k]) + decode(ids[k:])`` whenever ``decode(ids[:k])``
    ends with "\\n": a fast tokenizer whose decoder is byte-level (bytes joined, then UTF-8 decoded:
    after a newline byte nothing earlier can change; transformers' space clean-up never spans a
    newline). Other decoders (SentencePiece's leading space, WordPiece's "##") are not."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and isinstance(backend.decoder, decoders.ByteLevel)


class RowText:
    """The stop rules' view of one row's text, so that a check decodes only the tokens since the
    row's anchor. Full mode only moves the anchor (``movable``): after a check whose new text ends
    with "\\n" on a tokenizer that splits_at_newlines. What is kept is what the rules still read of
    the text before the anchor: its open step under the contract's delimiter (the answer check
    splits the rest at the same places, also when a "\n\n" delimiter straddles the anchor; every
    closed step was checked when it closed) and its last ``keep`` characters (a stop
    string ending past the anchor starts in them; none ends before it, since every token that
    could complete one was checked, which needs stop strings ending in an ASCII character).
    Step mode never moves it: a step ends at its first delimiter, so its checks are few."""

    __slots__ = ("anchor", "offset", "piece", "tail", "tail_start")

    def __init__(self, lead: str) -> None:
        self.anchor = 0  # the row's ids[:anchor] decode to text no later token changes
        self.offset = 0  # that text's length
        self.piece = ""  # its open step
        self.tail, self.tail_start = lead, -len(lead)  # its last chars (after the prompt's tail), where they start

    def check(self, tokenizer, ids: list[int], *, halt: bool, step_mode: bool, stops: StopStrings | None,
              movable: bool, contract: StepContract) -> tuple[str | None, int | None]:
        """(finish reason or None, stop cut) of the row whose generated ids are ``ids``; ``halt``:
        the last token may complete a stop string; ``contract``: what closes a step."""
        new = tokenizer.decode(ids[self.anchor:], skip_special_tokens=True)
        if halt and stops is not None:
            k = stop_at(self.tail + new, stops.strings, max(0, -self.tail_start))
            if k is not None:
                return "stop", max(0, self.tail_start + k)
        if step_mode:  # the anchor is 0: ``new`` is the whole text
            step, closed = contract.first_step(new)
            return (("end" if is_final_step(step) else "step") if closed else None), None
        window = self.piece + new
        if contract.answer_cut(window) is not None:
            return "end", None
        if movable and new.endswith("\n"):
            keep = 0 if stops is None else max(map(len, stops.strings)) - 1
            tail = self.tail + new
            self.anchor, self.offset = len(ids), self.offset + len(new)
            self.piece = open_piece(window, contract.delimiter)
            self.tail = tail[max(0, len(tail) - keep):] if keep else ""
            self.tail_start = self.offset - len(self.tail)
        return None, None


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
           attn: torch.Tensor | None, flags: bytes, step_mode: bool, temperature: float, top_p: float,
           max_new: int, stops: StopStrings | None = None, movable: bool = False,
           contract: StepContract = LINES) -> list[Decoded]:
    """Decode every row of ``cache`` from its first-token ``logits``. ``keys``: sampling keys;
    ``next_pos``: position of each row's first new token; ``attn``: the 2D mask (prompt columns
    then ``max_new``) for a DynamicCache, None for a SharedPrefixCache (which needs none);
    ``flags``: token_flags (its STEP_END bit must flag the tokens holding the last character of
    ``contract``'s delimiter); ``stops``: the prompt style's stop strings, None when it has none;
    ``movable``: full-mode text checks may move their anchor (RowText); ``contract``: what closes a step."""
    rows, device = len(keys), keys.device
    shared = isinstance(cache, SharedPrefixCache)
    width = None if shared else attn.shape[1] - max_new  # generated token t sits at column width + t
    ids: list[list[int]] = [[] for _ in range(rows)]  # every row's tokens, on the host
    texts = [RowText(stops.leads[r] if stops is not None else "") for r in range(rows)]
    alive = list(range(rows))  # original row of each batch row
    finished = [False] * rows  # per batch row
    reason, count, by_eos, cut = ["length"] * rows, [max_new] * rows, [False] * rows, [None] * rows
    movable = movable and not step_mode
    done = 0
    for t in range(max_new):
        tok = choose_tokens(logits, keys, t, temperature=temperature, top_p=top_p)
        sampled = tok.tolist()  # the step's one host read
        for r, x in zip(alive, sampled):
            ids[r].append(x)  # finished rows too until they leave the batch: cut by count below
        for j in [j for j, x in enumerate(sampled) if flags[x] and not finished[j]]:
            r, f = alive[j], flags[sampled[j]]  # an EOS, a step may have closed, or a stop string appeared
            if f & EOS:
                stop, by_eos[r] = "end", True
            else:
                stop, cut[r] = texts[r].check(tokenizer, ids[r], halt=bool(f & STOP_END), step_mode=step_mode,
                                              stops=stops, movable=movable, contract=contract)
            if stop:
                reason[r], count[r], finished[j] = stop, t + 1, True
                done += 1
        if t == max_new - 1 or done == len(alive):
            break
        if done >= COMPACT_FRACTION * len(alive):  # stop computing done rows
            kept = [j for j in range(len(alive)) if not finished[j]]
            keep = torch.tensor(kept, device=device)
            cache.batch_select_indices(keep)
            next_pos, keys, tok = (x.index_select(0, keep) for x in (next_pos, keys, tok))
            attn = None if shared else attn.index_select(0, keep)
            alive, finished, done = [alive[j] for j in kept], [False] * len(kept), 0
        extra = dict(shared_prefix=cache) if shared else dict(attention_mask=attn[:, :width + t + 1])
        out = model(input_ids=tok[:, None], position_ids=(next_pos + t)[:, None], **cache_arg(model, cache),
                    use_cache=True, **extra)
        logits = out.logits[:, -1]
    return [Decoded(ids[r][:count[r]], reason[r], by_eos[r], cut[r]) for r in range(rows)]
