"""GPU check: the Generator on random models of real shapes, one printed line per figure.

    .venv/bin/python benchmarks/gpu_check.py [--device cuda] [--out FILE]   # one H200: a few minutes
    .venv/bin/python benchmarks/gpu_check.py --tiny                         # tiny shapes on CPU: seconds

No download: a Qwen2.5-1.5B-shaped policy and a 7B-shaped PRM backbone are built from a Qwen2Config
with random weights (bf16 on CUDA). Tokenizer route: the project's tiny byte-level BPE (built in
memory, ~270 tokens); the model's vocabulary is larger, as Qwen's 151936 is larger than its
tokenizer — the Generator handles that, and ids past the tokenizer decode to "". Prompts are
random digit strings (one token per digit), so every prompt has the same length. Figures:
(a) the engine's next-token logits (greedy, prefill then decode) vs the model's own SDPA forward;
(b) tokens/s of Generator.sample vs model.generate on the same prompts, n samples each;
(c) peak GPU memory of each setting; (d) sample_steps vs sample time per token (a random model
never closes a step, so both run to the budget: this is step mode's overhead per token);
(e) the 7B-shaped PRM forward (backbone + a 2-way head on every position): tokens/s;
(f) the rows per decode chunk the Generator picks from free memory when max_batch_rows is unset.
Imports only torch, transformers, the standard library and ttc_lib (generation, models.tokenizer).
Each line reads `name: value unit (details)`.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ttc_lib.generation.generator import Generator  # noqa: E402
from ttc_lib.generation.memory import CUDA_DECODE_SHARE, decode_rows  # noqa: E402
from ttc_lib.tasks.prompts import format_prompt  # noqa: E402

# ---- knobs: full run (one H200), then the --tiny overrides (CPU, seconds)
POLICY = dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
              intermediate_size=8960, vocab_size=151936, tie_word_embeddings=True)  # Qwen2.5-1.5B
PRM = dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
           intermediate_size=18944, vocab_size=151936)  # Qwen2.5-7B-shaped backbone
ROWS = [64, 256, 512, 1024]  # sequences decoded together (prompts x SAMPLES)
SAMPLES = 16  # samples per prompt (n)
PROMPT_DIGITS = 120  # prompt length in tokens, about (one token per digit)
MAX_NEW = 256  # generated tokens per sample
STEP_ROWS, STEP_NEW = 256, 64  # (d): rows and token budget of the step vs full comparison
LOGIT_PROMPTS, LOGIT_TOKENS = 4, 16  # (a): prompts checked, greedy tokens each
LOGIT_TOL = 0.03  # (a): max |engine - SDPA| allowed, as a fraction of max |logit| (bf16 rounding)
PRM_BATCH, PRM_LEN, PRM_BATCHES = 16, 512, 8  # (e): rows x tokens per forward, forwards timed
TINY = dict(policy=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                        intermediate_size=128, tie_word_embeddings=True),
            prm=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                     intermediate_size=128),
            rows=[8, 16], samples=4, digits=12, max_new=8, step=(8, 8), logit=(2, 4), prm_sizes=(2, 32, 2))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--tiny", action="store_true", help="tiny shapes on CPU in seconds (the test runs this)")
    p.add_argument("--out", help="also write the figure lines to this file")
    args = p.parse_args(argv)
    if args.tiny:
        args.device = "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available here: use --tiny (tiny shapes) or --device cpu")
    return args


def settings(tiny: bool) -> dict:
    """The knobs above as one dict; --tiny swaps in TINY's shapes and sizes."""
    if tiny:
        return dict(TINY)
    return dict(policy=POLICY, prm=PRM, rows=ROWS, samples=SAMPLES, digits=PROMPT_DIGITS, max_new=MAX_NEW,
                step=(STEP_ROWS, STEP_NEW), logit=(LOGIT_PROMPTS, LOGIT_TOKENS),
                prm_sizes=(PRM_BATCH, PRM_LEN, PRM_BATCHES))


def build_tokenizer_in_memory():
    """The project's byte-level BPE trained on a few digit lines (no download, no file)."""
    from ttc_lib.models.tokenizer import build_tokenizer

    rng = random.Random(0)
    return build_tokenizer(["".join(rng.choice("0123456789") for _ in range(40)) + "\n" for _ in range(50)], 300)


def random_model(shape: dict, tokenizer, device: torch.device, dtype: torch.dtype, backbone: bool = False):
    """A randomly initialised Qwen2 (causal LM, or the bare backbone) made directly on ``device``."""
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2Model

    shape = {**shape, "vocab_size": shape.get("vocab_size", len(tokenizer))}
    cfg = Qwen2Config(**shape, max_position_embeddings=4096, pad_token_id=tokenizer.pad_token_id,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      attn_implementation="sdpa")
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with device:
            model = (Qwen2Model if backbone else Qwen2ForCausalLM)(cfg)
    finally:
        torch.set_default_dtype(old)
    return model.eval()


def prompts(count: int, digits: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice("0123456789") for _ in range(digits)) for _ in range(count)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_line(name: str, device: torch.device, details: str) -> str:
    if device.type != "cuda":
        return f"{name}: n/a MiB (not measured on {device.type}; {details})"
    return f"{name}: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB ({details})"


@torch.inference_mode()
def logits_check(gen: Generator, s: dict) -> str:
    """(a) Greedy engine run per prompt, every forward's last logits captured by a hook, against
    the model's own SDPA forward on prompt + the same greedy tokens (no cache)."""
    count, new = s["logit"]
    seen: list[torch.Tensor] = []
    hook = gen.model.register_forward_hook(lambda m, a, out: seen.append(out.logits[:, -1].float()))
    worst = scale = 0.0
    try:
        for q in prompts(count, s["digits"], seed=1):
            seen.clear()
            gen.sample([q], 1, temperature=0, max_new_tokens=new, progress=False)
            got = torch.cat(seen[-new:])  # prefill's last logits, then one per decode step
            ids = gen.tokenizer(format_prompt(q))["input_ids"] + got.argmax(-1)[:-1].tolist()
            hook.remove()
            ref = gen.model(input_ids=torch.tensor([ids], device=gen.device)).logits[0, -new:].float()
            hook = gen.model.register_forward_hook(lambda m, a, out: seen.append(out.logits[:, -1].float()))
            worst, scale = max(worst, float((got - ref).abs().max())), max(scale, float(ref.abs().max()))
    finally:
        hook.remove()
    ok = "within" if worst <= LOGIT_TOL * scale else "OUTSIDE"
    return (f"logits_max_abs_diff: {worst:.4g} logits ({count} prompts x {new} greedy tokens, "
            f"{gen.model.dtype}; max|logit| {scale:.3g}; tolerance {LOGIT_TOL} x max|logit|: {ok})")


def generate_tokens(gen: Generator, questions: list[str], n: int, max_new: int) -> int:
    """The baseline: one model.generate call, sampling; tokens up to and including the first EOS."""
    enc = gen.tokenizer([format_prompt(q) for q in questions], return_tensors="pt", padding=True).to(gen.device)
    out = gen.model.generate(**enc, do_sample=True, num_return_sequences=n, max_new_tokens=max_new,
                             temperature=1.0, top_p=1.0, top_k=0, pad_token_id=gen.pad_id, eos_token_id=gen.eos_ids)
    new = out[:, enc["input_ids"].shape[1]:]
    is_eos = torch.isin(new, torch.tensor(gen.eos_ids, device=new.device))
    return int(torch.where(is_eos.any(-1), is_eos.int().argmax(-1) + 1, new.shape[1]).sum())


def timed(fn, device: torch.device) -> tuple[int, float]:
    sync(device)
    t0 = time.perf_counter()
    tokens = fn()
    sync(device)
    return tokens, time.perf_counter() - t0


@torch.inference_mode()
def throughput(gen: Generator, s: dict, rows: int) -> list[str]:
    """(b)+(c) Generator.sample vs model.generate at ``rows`` rows, same prompts, n, budget."""
    n, max_new = s["samples"], s["max_new"]
    questions = prompts(max(1, rows // n), s["digits"], seed=rows)
    gen.max_batch_rows = rows  # one chunk: all rows decoded together
    out, lines, rate = {}, [], {}
    reset_peak(gen.device)
    tok, dt = timed(lambda: sum(x.num_tokens for row in gen.sample(questions, n, max_new_tokens=max_new,
                                                                   seed=rows, progress=False) for x in row),
                    gen.device)
    out["engine"] = (tok, dt, peak_line(f"peak_memory[engine,rows={rows}]", gen.device, "Generator.sample"))
    reset_peak(gen.device)
    tok, dt = timed(lambda: generate_tokens(gen, questions, n, max_new), gen.device)
    out["generate"] = (tok, dt, peak_line(f"peak_memory[generate,rows={rows}]", gen.device, "model.generate"))
    for name, (tok, dt, _) in out.items():
        rate[name] = tok / dt
        lines.append(f"tokens_per_s[{name},rows={rows}]: {rate[name]:.1f} tokens/s "
                     f"({len(questions)} prompts x n={n}, {tok} tokens in {dt:.2f}s, budget {max_new})")
    lines.append(f"speedup[rows={rows}]: {rate['engine'] / rate['generate']:.2f} x (engine / generate tokens/s)")
    return lines + [mem for _, _, mem in out.values()]


@torch.inference_mode()
def step_ratio(gen: Generator, s: dict) -> str:
    """(d) seconds per token of sample_steps vs sample, same prompts, rows and budget."""
    rows, new = s["step"]
    n = min(s["samples"], rows)
    questions = prompts(max(1, rows // n), s["digits"], seed=7)
    gen.max_batch_rows = rows
    if gen.prefixes is not None:
        gen.prefixes.clear()  # no reuse of earlier prompts: both sides prefill alike
    full, t_full = timed(lambda: sum(x.num_tokens for r in gen.sample(questions, n, max_new_tokens=new, seed=3,
                                                                      progress=False) for x in r), gen.device)
    if gen.prefixes is not None:
        gen.prefixes.clear()
    step, t_step = timed(lambda: sum(x.num_tokens for r in gen.sample_steps(
        questions, [""] * len(questions), n, max_new_tokens=new, seed=3, progress=False) for x in r), gen.device)
    ratio = (t_step / step) / (t_full / full)
    return (f"step_full_time_ratio: {ratio:.3f} ratio (seconds/token of sample_steps / sample, {rows} rows, "
            f"budget {new}; random model: steps never close, so this is step mode's per-token overhead)")


def chunk_rows(gen: Generator, s: dict) -> str:
    """(f) Rows per decode chunk from memory (memory.decode_rows), for the throughput budget."""
    rows = decode_rows(gen.model, gen.device, s["max_new"])
    where = f"{CUDA_DECODE_SHARE:.0%} of free GPU memory" if gen.device.type == "cuda" else "the fixed CPU budget"
    return (f"chunk_rows: {rows} rows (decode rows per chunk for a {s['max_new']}-token budget, "
            f"shared-prefix cache, sized from {where})")


@torch.inference_mode()
def prm_forward(s: dict, tokenizer, device: torch.device, dtype: torch.dtype) -> list[str]:
    """(e) The 7B-shaped PRM: backbone + a 2-way head on every position, random scoring inputs."""
    batch, length, batches = s["prm_sizes"]
    model = random_model(s["prm"], tokenizer, device, dtype, backbone=True)
    head = torch.nn.Linear(model.config.hidden_size, 2, device=device, dtype=dtype)
    ids = torch.randint(0, model.config.vocab_size, (batch, length), generator=torch.Generator().manual_seed(0))
    ids = ids.to(device)
    head(model(input_ids=ids).last_hidden_state)  # warm-up
    reset_peak(device)
    _, dt = timed(lambda: [head(model(input_ids=ids).last_hidden_state) for _ in range(batches)], device)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    lines = [f"prm_tokens_per_s: {batch * length * batches / dt:.1f} tokens/s ({params:.1f}M-param backbone, "
             f"{batches} forwards of {batch} x {length} tokens in {dt:.2f}s)",
             peak_line("peak_memory[prm]", device, f"{batch} x {length} tokens per forward")]
    return lines


def main(argv: list[str] | None = None) -> list[str]:
    args = parse_args(argv)
    s = settings(args.tiny)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32  # bf16 on CPU is slow
    tokenizer = build_tokenizer_in_memory()
    model = random_model(s["policy"], tokenizer, device, dtype)
    gen = Generator(model, tokenizer, device=device, identity="gpu-check-random")
    gen.sample(prompts(2, s["digits"], seed=0), 2, max_new_tokens=4, progress=False)  # warm-up
    generate_tokens(gen, prompts(2, s["digits"], seed=0), 2, 4)
    lines: list[str] = []

    def emit(new: str | list[str]) -> None:
        for line in [new] if isinstance(new, str) else new:
            print(line, flush=True)
            lines.append(line)

    emit(logits_check(gen, s))
    emit(chunk_rows(gen, s))
    for rows in s["rows"]:
        emit(throughput(gen, s, rows))
    emit(step_ratio(gen, s))
    del gen, model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    emit(prm_forward(s, tokenizer, device, dtype))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return lines


if __name__ == "__main__":
    main()
