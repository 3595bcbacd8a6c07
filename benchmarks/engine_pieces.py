"""Engine pieces on vs off in one process: the small own-token attention products.

    nice -n 10 .venv/bin/python benchmarks/engine_pieces.py [--checkpoint DIR] [--questions 16] [--n 64]

Each piece must show its gain to stay in the Generator (docs/benchmarks.md, "Engine pieces"). This
script also measured the kept sampled steps (decoding handed a closed step's own keys/values to
the prefix store, so the next beam round prefilled only the step's closing token) with a
``keep_steps`` switch; their gain was not beyond the noise and they were removed (2026-12-02).
Variants, all on the same model, questions and seed:
  base          the Generator as it is: small own-token products as multiply + sum;
  no small prod ``kv_cache.SMALL_PRODUCT = 0``: every own-token attention product through matmul;
  base (again)  base once more, a control: its ratio to base shows what noise alone gives.
Workloads: (1) beam search (``run_strategy("beam", ...)``, --questions test questions, budget
--n, --width, a hash verifier: cheap, so the time is the Generator's), every variant; printed:
wall and process CPU seconds, the seconds inside ``sample_steps``, prompt tokens the prefill ran
(counted by the Generator minus those read from its prefix store) and whether the step samples are
identical to base's; (2) step sampling alone, the first step of every question (--step-n samples
each), every variant; (3) a microbenchmark of the own-token attention of one decode token
(``kv_cache._softmax_parts``: scores and values products) at decode shapes (--rows rows, the
policy's key heads and head dim, 1..--own own tokens), multiply + sum vs matmul.

Repetitions (--repeats) interleave the variants in a rotating order, so load from other processes
hits all of them alike; ratios are variant / base (above 1: the piece saves time), per repetition
and of the summed times, from wall and from process CPU time. Without --checkpoint the "small"
policy of benchmarks/generation.py is trained for --train-steps first (same --work-dir and settings:
a run of either script reuses it). One torch thread by default; ``nice`` is up to the caller.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ttc_lib.generation import kv_cache  # noqa: E402
from ttc_lib.generation.generator import Generator  # noqa: E402
from ttc_lib.generation.pass_at_1 import max_new_tokens_for  # noqa: E402
from ttc_lib.search import run_strategy  # noqa: E402
from ttc_lib.verifiers.hash_verifier import HashVerifier  # noqa: E402

SMALL = kv_cache.SMALL_PRODUCT  # the engine's threshold (base)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="a trained policy checkpoint dir (default: train one now)")
    p.add_argument("--train-steps", type=int, default=150, help="steps of the throw-away policy")
    p.add_argument("--work-dir", default=str(Path(tempfile.gettempdir()) / "ttc-bench-generation"),
                   help="where the throw-away policy is kept (shared with benchmarks/generation.py)")
    p.add_argument("--questions", type=int, default=16)
    p.add_argument("--n", type=int, default=64, help="beam search budget N")
    p.add_argument("--width", type=int, default=4, help="beam width M")
    p.add_argument("--step-n", type=int, default=64, help="first steps sampled per question in workload (2)")
    p.add_argument("--repeats", type=int, default=6, help="interleaved repetitions of every variant")
    p.add_argument("--rows", type=int, default=512, help="decode rows in the microbenchmark")
    p.add_argument("--own", type=int, default=16, help="own tokens up to which the microbenchmark goes")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is robust on a shared machine)")
    return p.parse_args()


def policy(args: argparse.Namespace, problems: list) -> Generator:
    """benchmarks/generation.py's policy: the checkpoint, or the "small" model trained (or reused)."""
    from generation import policy as generation_policy  # the sibling script (benchmarks/ is on sys.path)

    return generation_policy(argparse.Namespace(checkpoint=args.checkpoint, work_dir=args.work_dir,
                                                train_steps=args.train_steps, rows=512), problems)


def configure(gen: Generator, variant: str) -> None:
    """Put the engine in ``variant``'s state, its prefix store empty (no run reads another's)."""
    kv_cache.SMALL_PRODUCT = 0 if variant == "no small prod" else SMALL
    if gen.prefixes is not None:
        gen.prefixes.clear()


class Recorder:
    """Wraps ``gen.sample_steps``: the seconds spent in it and every answer, for one variant at a time."""

    def __init__(self, gen: Generator) -> None:
        self.real, self.seconds, self.samples = gen.sample_steps, 0.0, []
        gen.sample_steps = self  # an instance attribute: only this Generator

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        out = self.real(*args, **kwargs)
        self.seconds += time.perf_counter() - t0
        self.samples.append(out)
        return out


def timed(fn):
    gc.collect()  # no collection of an earlier run's garbage inside this one
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def report(title: str, variants: list[str], wall: dict, cpu: dict, extra: dict | None = None) -> None:
    """Sums and ratios to base: of the summed times, and the median and range of per-repetition ratios."""
    print(f"\n{title}")
    for v in variants:
        line = f"  {v:14s} wall {sum(wall[v]):7.2f}s  cpu {sum(cpu[v]):7.2f}s"
        if v != "base":
            per = [a / b for a, b in zip(wall[v], wall["base"])]
            per_cpu = [a / b for a, b in zip(cpu[v], cpu["base"])]
            line += (f"  {v}/base wall {sum(wall[v]) / sum(wall['base']):.3f} (per repetition median "
                     f"{statistics.median(per):.3f}, {min(per):.3f}-{max(per):.3f}), cpu "
                     f"{sum(cpu[v]) / sum(cpu['base']):.3f} (median {statistics.median(per_cpu):.3f}, "
                     f"{min(per_cpu):.3f}-{max(per_cpu):.3f})")
        print(line + ((extra or {}).get(v) or ""))


def beam_search(args, gen: Generator, problems: list, max_new: int) -> None:
    """Workload (1): beam search under every variant; times, prompt tokens, identical samples."""
    print("\n(1) beam search, per repetition")
    variants = ["base", "no small prod", "base (again)"]
    wall, cpu, inside = ({v: [] for v in variants} for _ in range(3))
    prompt_run, prompt_read, same = dict.fromkeys(variants, 0), dict.fromkeys(variants, 0), dict.fromkeys(variants, True)
    first = {}
    recorder = Recorder(gen)
    for rep in range(args.repeats):
        for v in variants[rep % len(variants):] + variants[:rep % len(variants)]:  # rotating order
            configure(gen, v)
            recorder.seconds, recorder.samples = 0.0, []
            prefilled, reused = gen.prefill_tokens, gen.prefixes.reused_tokens
            results, dt, dc = timed(lambda: run_strategy("beam", gen, HashVerifier(), problems, args.n,
                                                         seed=0, max_new_tokens=max_new, progress=False,
                                                         width=args.width))
            wall[v].append(dt)
            cpu[v].append(dc)
            inside[v].append(recorder.seconds)
            print(f"  repetition {rep}: {v:14s} wall {dt:6.2f}s  cpu {dc:6.2f}s  in sample_steps {recorder.seconds:6.2f}s")
            read = gen.prefixes.reused_tokens - reused
            prompt_read[v], prompt_run[v] = read, gen.prefill_tokens - prefilled - read
            outcome = (recorder.samples, [(r.answer, r.candidates, r.cost) for r in results])
            first.setdefault(v, outcome)
            same[v] &= outcome == first.get("base", outcome)
    configure(gen, "base")
    del gen.sample_steps  # the Generator's own method again
    extra = {v: f"  in sample_steps {sum(inside[v]):6.2f}s  prompt tokens run {prompt_run[v]:,} "
                f"(read from kept {prompt_read[v]:,})  samples same as base: {same[v]}" for v in variants}
    extra["base"] = extra["base"].replace("  samples same as base: True", "")
    report(f"(1) beam search: {len(problems)} questions, N={args.n}, width {args.width}, "
           f"max_new_tokens={max_new}, {args.repeats} repetitions", variants, wall, cpu, extra)
    for v in variants[1:]:
        print(f"  {v}/base time in sample_steps: {sum(inside[v]) / sum(inside['base']):.3f}")


def step_sampling(args, gen: Generator, problems: list, max_new: int) -> None:
    """Workload (2): first steps of every question, every variant."""
    variants = ["base", "no small prod", "base (again)"]
    wall, cpu = {v: [] for v in variants}, {v: [] for v in variants}
    outs, tokens = {}, {}
    questions = [p.question for p in problems]
    for rep in range(args.repeats):
        for v in variants[rep % len(variants):] + variants[:rep % len(variants)]:
            configure(gen, v)
            out, dt, dc = timed(lambda: gen.sample_steps(questions, [""] * len(questions), args.step_n,
                                                         max_new_tokens=max_new, seed=rep, progress=False))
            wall[v].append(dt)
            cpu[v].append(dc)
            outs.setdefault(rep, {})[v] = out
            tokens[v] = tokens.get(v, 0) + sum(s.num_tokens for row in out for s in row)
    configure(gen, "base")
    same = all(o["base"] == o[v] for o in outs.values() for v in variants)
    report(f"(2) step sampling: {len(questions)} questions x {args.step_n} first steps, max_new_tokens={max_new}, "
           f"{args.repeats} repetitions; {tokens['base']:,} tokens generated; samples same: {same}",
           variants, wall, cpu)


def microbenchmark(args, gen: Generator) -> None:
    """Workload (3): one decode token's own-token attention, per own-token count, both thresholds."""
    cfg = gen.model.config.get_text_config()
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    per_kv = cfg.num_attention_heads // heads
    g = torch.Generator().manual_seed(0)
    print(f"\n(3) own-token attention of one decode token (kv_cache._softmax_parts): {args.rows} rows, "
          f"{heads} key heads x {per_kv} queries, head dim {dim}; us per call, median of "
          f"{args.repeats} interleaved repetitions of 200 calls")
    total = {SMALL: 0.0, 0: 0.0}
    for t in range(1, args.own + 1):
        q = torch.randn(args.rows, heads, per_kv, dim, generator=g)
        k, v = (torch.randn(args.rows, heads, t, dim, generator=g) for _ in range(2))
        times = {SMALL: [], 0: []}
        for rep in range(args.repeats):
            for small in ((SMALL, 0) if rep % 2 == 0 else (0, SMALL)):
                kv_cache.SMALL_PRODUCT = small
                kv_cache._softmax_parts(q, k, v, dim ** -0.5)  # warm
                t0 = time.perf_counter()
                for _ in range(200):
                    kv_cache._softmax_parts(q, k, v, dim ** -0.5)
                times[small].append((time.perf_counter() - t0) / 200 * 1e6)
        kv_cache.SMALL_PRODUCT = SMALL
        med = {s: statistics.median(x) for s, x in times.items()}
        for s in total:
            total[s] += med[s]
        branch = "multiply+sum" if per_kv * dim * t < SMALL else "matmul (both)"
        print(f"  {t:3d} own tokens: SMALL_PRODUCT={SMALL} {med[SMALL]:8.1f}  SMALL_PRODUCT=0 {med[0]:8.1f}  "
              f"ratio {med[0] / med[SMALL]:.2f}  [{branch}]")
    print(f"  summed over 1..{args.own} own tokens: {total[SMALL]:.0f} vs {total[0]:.0f} us, "
          f"no small prod/base {total[0] / total[SMALL]:.3f}")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    from ttc_lib.tasks.arithmetic import ArithmeticWorld, make_splits

    train, problems = make_splits(ArithmeticWorld(), n_train=0 if args.checkpoint else 20000,
                                  n_test=args.questions, seed=0)
    gen = policy(args, train)
    if gen.prefixes is None:
        raise SystemExit("the policy's Generator keeps no prefixes (kv_cache='dynamic'): nothing to compare")
    max_new = max_new_tokens_for(problems, gen.tokenizer)
    print(f"model {gen.num_params:,} params, threads={args.threads}, SMALL_PRODUCT={SMALL}")
    # warm-up at full size (token tables, allocator, the decode buffers grown to their size)
    run_strategy("beam", gen, HashVerifier(), problems, args.n, max_new_tokens=max_new, progress=False,
                 width=args.width)
    t0 = time.perf_counter()
    microbenchmark(args, gen)
    beam_search(args, gen, problems, max_new)
    step_sampling(args, gen, problems, max_new)
    print(f"\ntimings taken on a shared machine: compare the ratios ({time.perf_counter() - t0:.0f}s)")


if __name__ == "__main__":
    main()
