"""Generator throughput: vs transformers' generate(), and step-wise vs full-solution sampling.

    .venv/bin/python benchmarks/generation.py [--checkpoint DIR] [--questions 100] [--n 64]

(1) Generator.sample vs a plain model.generate(num_return_sequences=n, do_sample=True) loop on the
same questions, n and token budget. (2) Step-wise sampling in the beam-search pattern, against
(1)'s full-solution throughput per generated token, --step-n next steps per (question, prefix)
(the first value, 4 = beam width M, gives the reported ratio): "rounds" = per question up to
--prefixes chains, each started from the first step of one of the policy's own finished samples
and then continued by the first step sampled for it in the last round (as a beam survivor is;
the chain ends when that sample is final or cut off), one sample_steps call per round for the
whole block, so each round's prompts are the last round's plus one step the Generator sampled:
with the Generator's reuse of the last round's prompts (the reported ratio), and the same rounds
without it ("no reuse", a second Generator on the same model); "full-sample prefixes" = chains
that follow the full samples' own later steps (prompts extend the last round's by a step the
step calls did not sample; also only the prompt part is reused, since the Generator no longer
keeps sampled steps: docs/benchmarks.md); "fresh" = one call on unrelated pairs of one random
depth per question, no previous round.

Without --checkpoint the "small" policy (hidden 128, 4 layers, 4 heads, MLP 512) is trained on the
synthetic world for --train-steps first (~1-2 min on 2 cores; kept in --work-dir, a rerun reuses
it): random weights almost never emit "\\n" or EOS, so every step and solution would run to the
length limit and the step comparison would mean nothing. With a trained model lengths differ from
sample to sample: every side is charged the tokens each sequence really generated (up to and
including its EOS); all sample from the same distribution, so mean lengths agree up to noise
(printed). Work is interleaved block by block, so load from other processes on a shared machine
hits all sides alike; ratios from process CPU time are printed too. Printed last:
    generator/generate throughput ratio: <x>
    step/full throughput ratio: <x>
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ttc_lib.generation.generator import Generator  # noqa: E402
from ttc_lib.tasks.prompts import format_prompt, training_text  # noqa: E402
from ttc_lib.tasks.steps import STEP_DELIMITER, prefix_text, split_steps  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="a trained policy checkpoint dir (default: train one now)")
    p.add_argument("--train-steps", type=int, default=150, help="steps of the throw-away policy")
    p.add_argument("--work-dir", default=str(Path(tempfile.gettempdir()) / "ttc-bench-generation"),
                   help="where the throw-away policy is kept (a rerun with the same settings reuses it)")
    p.add_argument("--questions", type=int, default=100)
    p.add_argument("--n", type=int, default=64, help="full solutions per question")
    p.add_argument("--max-new-tokens", type=int, default=128, help="full-solution budget")
    p.add_argument("--step-n", type=int, nargs="+", default=[4, 16],
                   help="samples per (question, prefix); the first (beam width M=4) is the reported ratio")
    p.add_argument("--prefixes", type=int, default=4, help="prefixes (followed samples) per question in the step workloads")
    p.add_argument("--step-max-new-tokens", type=int, default=32)
    p.add_argument("--rows", type=int, default=512, help="max_batch_rows, also rows per generate() call")
    p.add_argument("--blocks", type=int, default=4, help="interleaved blocks the questions are cut into")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 is far more robust than 2 on a shared 2-core machine)")
    p.add_argument("--ablations", action="store_true", help="also time kv_cache='dynamic'")
    return p.parse_args()


def policy(args: argparse.Namespace, problems: list) -> Generator:
    if args.checkpoint:
        return Generator.from_pretrained(args.checkpoint, device="cpu", max_batch_rows=args.rows)
    from ttc_lib.models.tokenizer import build_tokenizer
    from ttc_lib.models.train_config import TrainConfig
    from ttc_lib.models.training import train_model

    tokenizer = build_tokenizer(["".join(training_text(p.question, p.solution)) for p in problems], 320)
    out = Path(args.work_dir) / f"policy-{args.train_steps}"
    t0 = time.perf_counter()
    train_model(problems, tokenizer, "small", TrainConfig(steps=args.train_steps, warmup_steps=30,
                                                          checkpoint_every=0), out, progress=False)
    print(f"policy 'small', {args.train_steps} training steps, ready in {time.perf_counter() - t0:.0f}s: {out}")
    return Generator.from_pretrained(out, device="cpu", max_batch_rows=args.rows)


def hf_generate(gen: Generator, questions: list[str], n: int, max_new: int, rows: int) -> int:
    """The baseline: plain model.generate(num_return_sequences=n, do_sample=True); returns the
    tokens the sequences generated up to and including their first EOS."""
    tok, model, total = gen.tokenizer, gen.model, 0
    tok.padding_side = "left"  # decoder-only batches must end at the same column
    per_call = max(1, rows // n)
    for s in range(0, len(questions), per_call):
        enc = tok([format_prompt(q) for q in questions[s:s + per_call]], return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = model.generate(**enc, do_sample=True, num_return_sequences=n, max_new_tokens=max_new,
                                 temperature=1.0, top_p=1.0, top_k=0, pad_token_id=gen.pad_id,
                                 eos_token_id=gen.eos_ids)
        new = out[:, enc["input_ids"].shape[1]:]
        is_eos = torch.isin(new, torch.tensor(gen.eos_ids))
        ended = is_eos.any(-1)
        total += int(torch.where(ended, is_eos.int().argmax(-1) + 1, new.shape[1]).sum())
    return total


def beam_pairs(questions: list[str], samples: list[list], per_question: int,
               rng: random.Random) -> tuple[list[str], list[str]]:
    """(question, prefix) pairs shaped like one beam-search round: per question a random depth
    r >= 1 and up to ``per_question`` distinct r-step prefixes cut from the policy's own finished
    samples (what beam survivors look like)."""
    out_q, out_p = [], []
    for question, row in zip(questions, samples):
        solutions = [split_steps(s.text) for s in row if s.finish_reason == "end"]
        depths = sorted(len(steps) - 1 for steps in solutions if len(steps) > 1)
        if not depths:
            continue
        r = rng.randint(1, depths[len(depths) // 2])
        prefixes = list(dict.fromkeys(prefix_text(steps[:r]) for steps in solutions if len(steps) > r))
        for prefix in rng.sample(prefixes, min(per_question, len(prefixes))):
            out_q.append(question)
            out_p.append(prefix)
    return out_q, out_p


def first_chains(questions: list[str], samples: list[list], per_question: int,
                 rng: random.Random) -> list[tuple[str, list[str], int]]:
    """Up to ``per_question`` of each question's finished multi-step samples as (question, steps,
    stream): chains of one question with the same first step get distinct streams, as beam search
    gives duplicate beams."""
    chains, seen = [], {}
    for question, row in zip(questions, samples):
        solutions = [split_steps(s.text) for s in row if s.finish_reason == "end"]
        solutions = [steps for steps in solutions if len(steps) > 1]
        for steps in rng.sample(solutions, min(per_question, len(solutions))):
            seen[question, steps[0]] = seen.get((question, steps[0]), -1) + 1
            chains.append((question, steps, seen[question, steps[0]]))
    return chains


def full_sample_rounds(chains: list[tuple[str, list[str], int]]) -> list[tuple[list[str], list[str], list[int]]]:
    """(questions, prefixes, streams) of each round when the chains follow their full samples:
    round r holds each sample's first r steps (r >= 1) while it has a step after them."""
    out = []
    for r in range(1, max((len(steps) for _, steps, _ in chains), default=0)):
        live = [(q, prefix_text(steps[:r]), st) for q, steps, st in chains if len(steps) > r]
        out.append(tuple(list(x) for x in zip(*live)))
    return out


CPU = {}  # process CPU seconds per workload: steadier than wall time when others load the machine


def timed(fn, name: str):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    CPU[name] = CPU.get(name, 0.0) + time.process_time() - c0
    return out, time.perf_counter() - t0


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    from ttc_lib.tasks.arithmetic import ArithmeticWorld, make_splits

    train, test = make_splits(ArithmeticWorld(), n_train=0 if args.checkpoint else 20000,
                              n_test=args.questions, seed=0)
    gen = policy(args, train)
    questions = [p.question for p in test]
    print(f"model {gen.num_params:,} params, kv_cache={gen.kv_cache}, threads={args.threads}, "
          f"{len(questions)} questions x n={args.n} (max {args.max_new_tokens} tokens); "
          f"beam-round pairs: {args.prefixes} prefixes per question x n in {args.step_n} "
          f"(max {args.step_max_new_tokens} tokens)")
    gen.sample(questions[:2], 4, max_new_tokens=8, progress=False)  # warm-up (token tables, allocator)
    hf_generate(gen, questions[:2], 4, 8, args.rows)
    variants = {"generator": gen}
    if args.ablations:
        variants["generator[kv_cache=dynamic]"] = Generator(gen.model, gen.tokenizer, device="cpu",
                                                             max_batch_rows=args.rows, kv_cache="dynamic")
    plain = Generator(gen.model, gen.tokenizer, device="cpu", max_batch_rows=args.rows, reuse_prefixes=False)
    step_names = [f"steps n={sn}" for sn in args.step_n]  # rounds following sampled steps
    kinds = {"": gen, " no reuse": plain, " full-sample prefixes": gen, " fresh": plain}
    tokens = {k: 0 for k in [*variants, "generate", *(s + k for k in kinds for s in step_names)]}
    seconds = dict.fromkeys(tokens, 0.0)
    samples = dict.fromkeys(tokens, 0)
    size = -(-len(questions) // args.blocks)
    rng, n_pairs, reasons = random.Random(0), 0, []

    def record(name, n_tokens, dt, n_samples):
        tokens[name] += n_tokens
        seconds[name] += dt
        samples[name] += n_samples

    def step_call(name, g, sn, seed, qs, ps, streams):
        if seed == b and g.prefixes is not None:
            g.prefixes.clear()  # a workload's first round: nothing from the full-solution calls or other runs
        out, dt = timed(lambda: g.sample_steps(qs, ps, sn, max_new_tokens=args.step_max_new_tokens,
                                               seed=seed, streams=streams, progress=False), name)
        record(name, sum(s.num_tokens for row in out for s in row), dt, len(out) * sn)
        return out

    for b in range(0, len(questions), size):
        block = questions[b:b + size]
        for name, g in variants.items():
            out, dt = timed(lambda: g.sample(block, args.n, max_new_tokens=args.max_new_tokens,
                                             seed=b, progress=False), name)
            record(name, sum(s.num_tokens for row in out for s in row), dt, len(block) * args.n)
            if name == "generator":
                full = out  # the step workload is cut from these samples
        n_tok, dt = timed(lambda: hf_generate(gen, block, args.n, args.max_new_tokens, args.rows), "generate")
        record("generate", n_tok, dt, len(block) * args.n)
        chains = first_chains(block, full, args.prefixes, rng)
        replays = {" full-sample prefixes": full_sample_rounds(chains),
                   " fresh": [(*beam_pairs(block, full, args.prefixes, rng), None)]}
        for sn, base in zip(args.step_n, step_names):
            live = [(q, prefix_text(steps[:1]), st) for q, steps, st in chains]
            replays[" no reuse"] = own = []  # the rounds below, replayed without reuse
            while live:  # beam-search rounds: each chain continued by its first sampled step
                qs, ps, streams = (list(x) for x in zip(*live))
                out = step_call(base, gen, sn, b + len(own), qs, ps, streams)
                own.append((qs, ps, streams))
                if sn == args.step_n[0]:
                    n_pairs += len(qs)
                    reasons += [s.finish_reason for row in out for s in row]
                live = [(q, p + row[0].text + STEP_DELIMITER, st) for q, p, st, row in zip(qs, ps, streams, out)
                        if row[0].finish_reason == "step"]
            for kind in (" no reuse", " full-sample prefixes", " fresh"):
                for r, (qs, ps, streams) in enumerate(replays[kind]):
                    step_call(base + kind, kinds[kind], sn, b + r, qs, ps, streams)
    rate = {k: tokens[k] / seconds[k] for k in tokens}
    for k in tokens:
        print(f"{k:28s} {seconds[k]:7.1f}s {tokens[k]:9d} tokens {rate[k]:9.0f} tokens/s "
              f"{samples[k] / seconds[k]:7.1f} samples/s  {tokens[k] / samples[k]:5.1f} tokens/sample")
    print(f"step rounds: {n_pairs} (question, prefix) pairs in all; finish reasons " +
          ", ".join(f"{r}={reasons.count(r)}" for r in ("step", "end", "length")))
    cpu = {k: tokens[k] / CPU[k] for k in tokens}
    steps = [k for k in tokens if k.startswith("steps")]
    print(f"same ratios from process CPU time: generator/generate {cpu['generator'] / cpu['generate']:.2f}, "
          + ", ".join(f"step/full ({k}) {cpu[k] / cpu['generator']:.2f}" for k in steps))
    for k in steps[1:]:
        print(f"step/full throughput ratio ({k}): {rate[k] / rate['generator']:.2f}")
    print("timings taken on a shared machine: compare the ratios, not the absolute numbers")
    print(f"generator/generate throughput ratio: {rate['generator'] / rate['generate']:.2f}")
    print(f"step/full throughput ratio: {rate[step_names[0]] / rate['generator']:.2f}")


if __name__ == "__main__":
    main()
