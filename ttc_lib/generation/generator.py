"""The Generator: batched, seeded sampling of full solutions or of the next step, CPU or CUDA.

Rules callers rely on:
- The model reads ``prompts.model_prompt(generator, question) + prefix`` (prefix = the step
  contract's prefix_text of earlier steps, "" for none), tokenised as one text with the tokenizer's
  special tokens. The style is checked against the tokenizer when the Generator is made.
- Determinism: the tokens of sample i of a prompt depend only on (seed, prompt text, i) and the
  model (sampling.py), not on the other prompts in the call, chunking, or n. On CPU in fp32 the
  same call on a fresh Generator gives bit-identical samples; across batch compositions, and
  with prompt keys/values reused from earlier calls (prefix_reuse.py), the logits can differ by
  float rounding (~1e-7), which changes a token only at an exact near-tie. Identical (question, prefix)
  pairs get identical samples: vary the seed to get fresh ones. temperature=0 is greedy and
  computes one row per prompt.
- Sample.finish_reason:
  "end"    the solution is finished: EOS was generated, or a completed step (closed by the
           step contract's delimiter) holds ANSWER_MARKER (real models often never emit EOS);
  "step"   (sample_steps only) the step was closed by the delimiter and is not a final step;
  "stop"   the text came to hold one of the style's stop strings (prompts.py; fewshot: an invented
           next problem): the solution ends here (in sample_steps too); the text is cut before it;
  "length" max_new_tokens ran out first: the text is cut off and must never count as a finished
           solution or step.
- Steps follow ``step_contract`` (tasks.steps, ``step_delimiter=``): where a step ends, the few-shot
  layout, the text. Sample.text has no special tokens. sample(): the continuation as the contract
  keeps it (StepContract.sample_text), cut after its answer step when that ended generation.
  sample_steps(): the step alone, stripped; leading delimiters/whitespace close no empty step.
- Sample.num_tokens counts the token ids the model generated for the sample, the stopping token
  (EOS, or the token completing a step or a stop string) included; "length" samples have exactly
  max_new_tokens.
- A call holding a prompt whose tokens plus max_new_tokens exceed the model's positions is refused
  with a ValueError before anything is generated (context_limit.py states the rule; a huge text is
  refused without being tokenised); context_limit.fitting_problems leaves such problems out first.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ttc_lib.generation.context_limit import encode_prompts, max_prompt_chars, position_limit
from ttc_lib.generation.decoding import StopStrings, char_table, decode, final_text, splits_at_newlines, token_flags
from ttc_lib.generation.kv_cache import (
    ATTENTION,
    SAFE_MODEL_TYPES,
    KVPool,
    attention_implementation,
    supports_shared_prefix,
)
from ttc_lib.generation.memory import decode_rows, free_bytes, logits_budget
from ttc_lib.generation.prefill import plain_prefill, shared_prefill
from ttc_lib.generation.prefix_reuse import PrefixStore
from ttc_lib.generation.sampling import GOLDEN, mix32, prompt_key, row_key
from ttc_lib.generation.teacher_forcing import teacher_forced_logprobs
from ttc_lib.models.identity import weights_identity
from ttc_lib.models.ray_workers import reloadable
from ttc_lib.tasks.prompts import PROMPT_STYLES, check_prompt_style, model_prompt
from ttc_lib.tasks.steps import StepContract, identity_suffix, step_contract

PREFILL_TOKENS = 1024  # tokens per prefill forward on CPU (x16 on CUDA)
REUSE_BYTES = 1 << 29  # earlier calls' prompt keys/values kept on CPU; CUDA keeps 10% of free memory


@dataclass(frozen=True)
class Sample:
    """One generated continuation (see the module rules for text, num_tokens, finish_reason)."""

    text: str
    num_tokens: int
    finish_reason: str  # "end" | "step" | "stop" | "length"


@dataclass(frozen=True)
class TokenLogprobs:
    """log p(token | prompt, earlier tokens) for each token of a solution text, and the character
    offset in that text just past each token (compare with steps.step_end_offsets)."""

    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    end_offsets: tuple[int, ...]


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def default_dtype(device: str | torch.device) -> torch.dtype:
    """The dtype ``Generator.from_pretrained`` loads with on ``device`` when given none."""
    dev = resolve_device(device)
    return torch.bfloat16 if dev.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32


class Generator:
    """Samples solutions or next steps from a causal LM; see the module docstring for the rules.

    ``max_batch_rows`` caps the sequences decoded together (memory); None sizes it by memory.py
    (CPU: the KV cache in a fixed budget, at most 512; CUDA: KV cache, vocabulary-sized
    temporaries and activations in a share of free memory). ``kv_cache``: "auto" ("shared" for architectures kv_cache.py supports: each
    prompt's keys stored once, cascade attention; else "dynamic": transformers' DynamicCache).
    Decode buffers are kept between calls (faster on CPU); one call at a time (not thread-safe).
    ``reuse_prefixes``: keep recent calls' prompt keys/values (prefix_reuse.py), so a prompt that
    extends an earlier one (the next beam-search round) prefills only its new tokens.
    ``identity`` (models.identity): what the model is, for the keys of caches of its work;
    from_pretrained gives the checkpoint's ``model_identity``; None hashes the weights on first use.
    """

    def __init__(self, model, tokenizer, *, prompt_style: str = "plain", device: str | torch.device = "auto",
                 max_batch_rows: int | None = None, kv_cache: str = "auto", reuse_prefixes: bool = True,
                 identity: str | None = None, step_delimiter: str | StepContract = "newline") -> None:
        self.stop_strings = check_prompt_style(prompt_style, tokenizer).stop_strings  # clear errors
        self.step_contract = step_contract(step_delimiter)  # clear error for an unknown name
        if kv_cache not in ("auto", "shared", "dynamic"):
            raise ValueError(f"kv_cache must be 'auto', 'shared' or 'dynamic', got {kv_cache!r}")
        if max_batch_rows is not None and max_batch_rows < 1:
            raise ValueError(f"max_batch_rows must be >= 1, got {max_batch_rows}")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer, self.prompt_style, self.max_batch_rows = tokenizer, prompt_style, max_batch_rows
        self._model_identity = identity
        shared_ok = supports_shared_prefix(model.config)
        if kv_cache == "shared" and not shared_ok:
            raise ValueError(f"kv_cache='shared' supports plain full attention of {sorted(SAFE_MODEL_TYPES)}")
        self.kv_cache = "shared" if kv_cache == "shared" or (kv_cache == "auto" and shared_ok) else "dynamic"
        self.num_params = sum(p.numel() for p in model.parameters())
        self.pad_id = next((i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0)
        eos = {tokenizer.eos_token_id}
        for cfg in (model.config, getattr(model, "generation_config", None)):
            ids = getattr(cfg, "eos_token_id", None)
            eos.update(ids if isinstance(ids, (list, tuple)) else [ids])
        self.eos_ids = sorted(i for i in eos if i is not None)
        self._flags: bytes | None = None  # decoding.token_flags, made on first use
        # full-solution text checks decode only the tokens since a newline (decoding.RowText):
        # exact when the tokenizer splits at newlines and every stop string ends in an ASCII char
        self._movable = splits_at_newlines(tokenizer) and all(ord(s[-1]) < 128 for s in self.stop_strings)
        self._pool = KVPool()  # decode buffers reused across chunks and calls
        self.generated_tokens = 0  # running totals over this Generator's calls (compute accounting)
        self.prefill_tokens = 0
        budget = REUSE_BYTES if self.device.type != "cuda" else 0.1 * free_bytes(self.device)
        self.prefixes = PrefixStore(int(budget)) if reuse_prefixes and self.kv_cache == "shared" else None
        self.max_positions = position_limit(model)  # prompt + max_new_tokens must fit (context_limit.py)

    def forget(self) -> None:
        """Drop the state kept between calls (the prefix store, the decode buffers): what follows is
        computed as by a fresh Generator. Why: reused keys/values and buffers sliced from larger ones
        equal fresh ones only up to float rounding, which can flip a sampled token — a piece of work
        that must not depend on what ran before it in this process starts here."""
        self._pool = KVPool()
        if self.prefixes is not None:
            self.prefixes.clear()

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str | os.PathLike, device: str | torch.device = "auto", dtype=None,
                        prompt_style: str | None = None, trust_remote_code: bool = False,
                        **kwargs) -> "Generator":
        """Load a checkpoint dir or a hub id already in the local HF cache (models.load_checkpoint:
        safetensors only, remote code only when asked for by name, errors name the path).

        The prompt style comes from the checkpoint's ttc_config.json, else ``prompt_style``; a
        conflict between the two is an error. dtype None: float32 on CPU (faster than bf16 for
        generation there), bfloat16 on CUDA when supported. ``kwargs`` go to the constructor.
        """
        from ttc_lib.models.checkpoints import load_checkpoint, read_ttc_config
        from ttc_lib.models.identity import model_identity

        dev = resolve_device(device)
        dtype = default_dtype(dev) if dtype is None else dtype
        model, tokenizer, _ = load_checkpoint(path_or_hub_id, device=str(dev), dtype=dtype,
                                              trust_remote_code=trust_remote_code)
        local = Path(path_or_hub_id).expanduser()
        saved = read_ttc_config(local).get("prompt_style") if local.is_dir() else None
        if saved and prompt_style and saved != prompt_style:
            raise ValueError(f"prompt_style={prompt_style!r} conflicts with {saved!r} recorded in "
                             f"{local / 'ttc_config.json'}")
        style = saved or prompt_style
        if not style:
            raise ValueError(f"no prompt style for generator {path_or_hub_id}: it has no ttc_config.json "
                             f"with 'prompt_style'; pass prompt_style= (one of {sorted(PROMPT_STYLES)})")
        kwargs.setdefault("identity", model_identity(path_or_hub_id))
        return reloadable(cls(model, tokenizer, prompt_style=style, device=dev, **kwargs),  # models.ray_workers
                          cls.from_pretrained, str(path_or_hub_id), device, dtype, style, trust_remote_code, **kwargs)

    @cached_property
    def max_prompt_chars(self) -> int | None:
        """A longer prompt text cannot fit max_positions: refused untokenised (context_limit.py)."""
        return max_prompt_chars(self.tokenizer, self.max_positions)

    @property
    def identity(self) -> str:
        """The model's identity, prompt style, stop strings and step contract (they decide the samples): cache keys."""
        if self._model_identity is None:  # an in-memory model: its weights, hashed once
            self._model_identity = weights_identity(self.model)
        stops = f"|stop={list(self.stop_strings)}" if self.stop_strings else ""  # samples end there
        return f"{self._model_identity}|prompt={self.prompt_style}{stops}{identity_suffix(self.step_contract)}"

    # ----------------------------------------------------------------------------- public calls
    def sample(self, questions: list[str], n: int, *, temperature: float = 1.0, top_p: float = 1.0,
               max_new_tokens: int = 256, seed: int = 0, progress: bool = True,
               prefixes: list[str] | None = None) -> list[list[Sample]]:
        """n full solutions per question (continued after ``prefixes[k]`` when given: rollouts).
        Callers must check finish_reason: "length" samples are unfinished."""
        prefixes = [""] * len(questions) if prefixes is None else prefixes
        return self._generate(questions, prefixes, n, False, temperature, top_p, max_new_tokens, seed, progress)

    def sample_steps(self, questions: list[str], prefixes: list[str], n: int, *, temperature: float = 1.0,
                     top_p: float = 1.0, max_new_tokens: int = 256, seed: int = 0,
                     progress: bool = True, streams: list[int] | None = None) -> list[list[Sample]]:
        """n next steps per (question, prefix) pair; finish "step", "end" or "length".

        ``streams`` (optional, one int per pair): pairs with the same text but different streams
        draw different samples (search trees that must not share randomness, e.g. DVTS subtrees
        or duplicate beams); stream 0 is the plain seed, so leaving it out changes nothing."""
        return self._generate(questions, prefixes, n, True, temperature, top_p, max_new_tokens, seed, progress,
                              streams)

    @torch.inference_mode()
    def token_logprobs(self, questions: list[str], solutions: list[str]) -> list[TokenLogprobs]:
        """Per solution, log p of each of its tokens given the prompt (teacher forcing; tokens
        shared with other solutions of the call are run once). Prompt and solution are tokenised
        separately (solution without special tokens)."""
        if len(questions) != len(solutions):
            raise ValueError(f"{len(questions)} questions but {len(solutions)} solutions")
        prompts = self.tokenizer([model_prompt(self, q) for q in questions])["input_ids"]
        sol_ids, ends = self._solution_tokens(solutions)
        seqs = [p + s for p, s in zip(prompts, sol_ids)]
        values = teacher_forced_logprobs(self.model, seqs, [len(p) for p in prompts],
                                         [k for k in range(len(seqs)) if sol_ids[k]], self.pad_id,
                                         self.max_batch_rows or 512, logits_budget(self.device))
        out = [TokenLogprobs(tuple(sol_ids[k]), tuple(values.get(k, ())), tuple(ends[k])) for k in range(len(seqs))]
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------------------------- internals
    def _solution_tokens(self, solutions: list[str]) -> tuple[list[list[int]], list[list[int]]]:
        try:
            enc = self.tokenizer(solutions, add_special_tokens=False, return_offsets_mapping=True)
            return enc["input_ids"], [[e for _, e in offs] for offs in enc["offset_mapping"]]
        except NotImplementedError:  # slow tokenizers: offsets from incremental decoding
            ids = self.tokenizer(solutions, add_special_tokens=False)["input_ids"]
            return ids, [[min(len(s), len(self.tokenizer.decode(row[:j + 1]))) for j in range(len(row))]
                         for s, row in zip(solutions, ids)]

    def _token_tables(self, vocab: int) -> bytes:
        """Per token id (decoding.token_flags): is it EOS, may it close a step (its text holds the
        delimiter's last character), may it complete a stop string. The vocabulary is decoded once."""
        if self._flags is None or len(self._flags) != vocab:
            known = min(vocab, len(self.tokenizer))
            texts = self.tokenizer.batch_decode([[i] for i in range(known)])
            delim = char_table(texts, {self.step_contract.delimiter[-1]}, vocab)
            halt = char_table(texts, {t[-1] for t in self.stop_strings}, vocab) if self.stop_strings else None
            self._flags = token_flags(self.eos_ids, delim, halt)
        return self._flags

    def _rows_per_chunk(self, prompt_len: int, max_new: int) -> int:
        """max_batch_rows, else memory.decode_rows for this model and KV cache (a shared-prefix
        row stores only its own tokens; on CUDA the decode buffers kept from earlier calls count
        as free, as the next chunk reuses them)."""
        if self.max_batch_rows is not None:
            return self.max_batch_rows
        width = max_new if self.kv_cache == "shared" else prompt_len + max_new
        return decode_rows(self.model, self.device, width, self._pool.nbytes())

    def _generate(self, questions, prefixes, n, step_mode, temperature, top_p, max_new_tokens,
                  seed, progress, streams=None) -> list[list[Sample]]:
        if len(questions) != len(prefixes):
            raise ValueError(f"{len(questions)} questions but {len(prefixes)} prefixes")
        if streams is not None and len(streams) != len(prefixes):
            raise ValueError(f"{len(streams)} streams but {len(prefixes)} prefixes")
        if n < 1 or max_new_tokens < 1:
            raise ValueError(f"n and max_new_tokens must be >= 1, got n={n}, max_new_tokens={max_new_tokens}")
        if temperature < 0 or not 0 < top_p <= 1:
            raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        texts = [model_prompt(self, q) + p for q, p in zip(questions, prefixes)]
        # a prompt is (text, stream); identical prompts share samples: compute them once
        texts = list(zip(texts, [0] * len(texts) if streams is None else [int(s) for s in streams]))
        unique = list(dict.fromkeys(texts))
        if not unique:
            return []
        draws = 1 if temperature == 0 else n  # greedy: every sample of a prompt is the same
        enc = encode_prompts(self, [t for t, _ in unique], max_new_tokens)  # refused if one does not fit
        bases = [prompt_key(seed, t) if s == 0 else mix32(prompt_key(seed, t) ^ mix32(s * GOLDEN))
                 for t, s in unique]
        question = dict(zip(texts, questions))
        group = [question[t] for t in unique]  # prompts of one question share their stem
        shortest: dict[str, int] = {}
        for u, g in enumerate(group):
            shortest[g] = min(shortest.get(g, 1 << 30), len(enc[u]))
        # a question's prompts adjacent (stem sharing), questions by length (less padding)
        order = sorted(range(len(unique)), key=lambda u: (shortest[group[u]], group[u], len(enc[u])))
        rows = [(u, i) for u in order for i in range(draws)]
        size = self._rows_per_chunk(max(len(e) for e in enc), max_new_tokens)
        chunks = [rows[s:s + size] for s in range(0, len(rows), size)]
        bar = dict(disable=True) if not progress else {}  # else tqdm honours TQDM_DISABLE
        longest = max(map(len, self.stop_strings), default=0)  # a prompt's tail may begin a stop string
        leads = [t[max(0, len(t) + 1 - longest):] for t, _ in unique] if self.stop_strings else None
        done: dict[tuple[int, int], Sample] = {}
        for chunk in tqdm(chunks, desc="steps" if step_mode else "samples", unit="chunk", **bar):
            done.update(zip(chunk, self._decode_chunk(chunk, enc, group, bases, step_mode, temperature,
                                                      top_p, max_new_tokens, leads)))
        slot = {t: u for u, t in enumerate(unique)}
        return [[done[(slot[t], i if draws > 1 else 0)] for i in range(n)] for t in texts]

    def _prefill(self, chunk, enc, group, max_new):
        """Each distinct prompt of the chunk prefilled once, the prompts of one question sharing
        their common token prefix; rows of one prompt are contiguous in a chunk."""
        spans: dict[int, list[int]] = {}
        for r, (u, _) in enumerate(chunk):
            spans.setdefault(u, [r, r])[1] = r + 1
        distinct = list(spans)
        self.prefill_tokens += sum(len(enc[u]) for u in distinct)
        rows = [slice(*spans[u]) for u in distinct]
        if self.kv_cache == "dynamic":
            cache, logits, mask = plain_prefill(self.model, [enc[u] for u in distinct], rows, len(chunk), self.pad_id)
            return cache, logits, torch.cat([mask, mask.new_ones(len(chunk), max_new)], dim=1)
        members: dict[int, list[int]] = {}
        for u in distinct:
            members.setdefault(group[u], []).append(u)
        stems = []
        for u in distinct:
            same = [enc[v] for v in members[group[u]]]
            stems.append(0 if len(same) < 2 else
                         min(len(os.path.commonprefix(same)), min(len(x) for x in same) - 1))
        budget = PREFILL_TOKENS if self.device.type != "cuda" else 16 * PREFILL_TOKENS
        cache, logits = shared_prefill(self.model, self._pool, [enc[u] for u in distinct], stems, rows,
                                       len(chunk), max_new - 1, self.pad_id, budget, self.prefixes)
        if self.prefixes is not None:  # before decoding: compaction replaces cache.prefix
            self.prefixes.add(cache.prefix, [enc[u] for u in distinct])
        return cache, logits, None

    @torch.inference_mode()
    def _decode_chunk(self, chunk, enc, group, bases, step_mode, temperature, top_p, max_new,
                      leads=None) -> list[Sample]:
        """Prefill the chunk's prompts, then decode all its rows together until each one stops."""
        cache, logits, attn = self._prefill(chunk, enc, group, max_new)
        keys = torch.tensor([row_key(bases[u], i) for u, i in chunk], device=self.device)
        next_pos = torch.tensor([len(enc[u]) for u, _ in chunk], device=self.device)
        shared, flags = attn is None, self._token_tables(logits.shape[-1])
        stops = StopStrings(self.stop_strings, [leads[u] for u, _ in chunk]) if self.stop_strings else None
        with attention_implementation(self.model, ATTENTION) if shared else nullcontext():
            rows = decode(self.model, self.tokenizer, cache, logits, keys=keys, next_pos=next_pos, attn=attn,
                          flags=flags, step_mode=step_mode, temperature=temperature, top_p=top_p,
                          max_new=max_new, stops=stops, movable=self._movable, contract=self.step_contract)
        self.generated_tokens += sum(len(r.ids) for r in rows)
        texts = [final_text(self.tokenizer, r, step_mode, self.step_contract) for r in rows]
        return [Sample(t, len(r.ids), r.reason) for t, r in zip(texts, rows)]
