"""Prompts longer than the model can read: one rule, applied before any token is generated.

Rule
----
A prompt (``prompts.format_prompt(question, style) + prefix``, tokenised with the tokenizer's
special tokens, exactly as the Generator reads it) *fits* when its tokens plus ``max_new_tokens``
are at most the model's ``max_position_embeddings`` (of its text config; a model without one has
no limit). Past that the model reads positions it never learnt: a RoPE model silently writes
garbage, a learnt position table fails with an index error.

* ``Generator.sample`` / ``sample_steps`` refuse a call holding a prompt that does not fit: a
  ValueError giving how many prompts do not fit, the longest one's length and the start of its
  text, the limit, and what to change (leave such problems out with ``fitting_problems``, lower
  ``max_new_tokens``, or use a model with more positions). Nothing is generated for that call.
* ``fitting_problems(generator, problems, max_new_tokens)`` -> (kept problems, dropped ids): what
  a stage runs before sampling its problems, so that problems whose bare question does not fit are
  left out, counted and reported (notebook 01 per model, notebook 03 in its summary as
  ``too_long_prompts``; later stages take their questions from 03's bins).
* Fail fast: one token covers at most as many characters as the longest entry of the vocabulary
  (for tokenizers that delete no text), so a prompt of more than ``max_positions`` x that many
  characters cannot fit: it is refused (or dropped) without being tokenised. A 5 MB problem fails
  at once instead of after seconds of tokenising and a forward pass over millions of tokens.
"""

from __future__ import annotations

from typing import Any, Sequence

from ttc_lib.tasks.problem import Problem
from ttc_lib.tasks.prompts import model_prompt

WHAT_TO_DO = ("leave those problems out first (generation.context_limit.fitting_problems; notebooks 01 and 03 "
              "do), lower max_new_tokens, or use a model with more positions")


def position_limit(model: Any) -> int | None:
    """The model's ``max_position_embeddings`` (its text config's), None when it states none."""
    config = model.config
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    limit = getattr(config, "max_position_embeddings", None)
    return int(limit) if isinstance(limit, int) and limit > 0 else None


def max_prompt_chars(tokenizer: Any, max_positions: int | None) -> int | None:
    """Characters beyond which a prompt cannot fit ``max_positions`` tokens: the positions times the
    longest vocabulary entry (an upper bound on a token's characters); None without a limit."""
    if max_positions is None:
        return None
    return max_positions * max(1, max((len(t) for t in tokenizer.get_vocab()), default=1))


def encode(generator: Any, texts: Sequence[str]) -> list[list[int] | None]:
    """Token ids of each prompt text; None for a text over ``generator.max_prompt_chars`` (not
    tokenised: it cannot fit)."""
    cap = generator.max_prompt_chars
    todo = [k for k, t in enumerate(texts) if cap is None or len(t) <= cap]
    ids = iter(generator.tokenizer([texts[k] for k in todo])["input_ids"] if todo else [])
    todo_set = set(todo)
    return [next(ids) if k in todo_set else None for k in range(len(texts))]


def encode_prompts(generator: Any, texts: Sequence[str], max_new_tokens: int) -> list[list[int]]:
    """Token ids of every prompt of a Generator call, or a ValueError when any does not fit."""
    enc = encode(generator, texts)
    limit = generator.max_positions
    over = [k for k, e in enumerate(enc) if e is None or (limit is not None and len(e) + max_new_tokens > limit)]
    if over:
        huge = [k for k in over if enc[k] is None]
        k = max(huge, key=lambda i: len(texts[i])) if huge else max(over, key=lambda i: len(enc[i]))
        length = (f"{len(texts[k]):,} characters, not tokenised: more than {limit} positions of at most "
                  f"{generator.max_prompt_chars // limit} characters each can hold" if huge else f"{len(enc[k])} tokens")
        raise ValueError(f"{len(over)} of {len(texts)} prompts do not fit the model's {limit} positions with "
                         f"max_new_tokens={max_new_tokens}: the longest is {length} (it starts "
                         f"{texts[k][:60]!r}); {WHAT_TO_DO}")
    return enc  # type: ignore[return-value]


def fitting_problems(generator: Any, problems: Sequence[Problem],
                     max_new_tokens: int) -> tuple[list[Problem], list[str]]:
    """(problems whose prompt fits with ``max_new_tokens``, ids of the others), in the given order.
    A generator without ``max_positions`` (a stand-in, or a model with no limit) keeps them all;
    problems of which none fits are a ValueError (nothing would be left to run)."""
    limit = getattr(generator, "max_positions", None)
    if limit is None:
        return list(problems), []
    enc = encode(generator, [model_prompt(generator, p.question) for p in problems])
    fits = [e is not None and len(e) + max_new_tokens <= limit for e in enc]
    if problems and not any(fits):
        shortest = min((len(e) for e in enc if e is not None), default=None)
        length = f"{shortest} tokens" if shortest is not None else f"over {generator.max_prompt_chars:,} characters"
        raise ValueError(f"none of the {len(problems)} problems fits the model's {limit} positions with max_new_tokens="
                         f"{max_new_tokens} (the shortest prompt is {length}); lower max_new_tokens or use a model "
                         "with more positions")
    return [p for p, ok in zip(problems, fits) if ok], [p.id for p, ok in zip(problems, fits) if not ok]
