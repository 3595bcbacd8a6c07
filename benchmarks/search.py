"""Wall time of beam search vs best-of-N at equal N on the same questions, in one run.

    nice -n 10 .venv/bin/python benchmarks/search.py --profile ci [--questions 16] [--n 64]

Both strategies get the same generator, verifier, questions, budget N, seed and token budget:
best-of-N (weighted) samples N full solutions per question and scores them once; beam search
(width 4, no lookahead) samples, scores and prunes step by step (ttc_lib/search/beam.py). The
policy is data/runs/<profile>/01_train_generator/policy and the verifier the one 02 chose
(summary.json ``chosen_verifier_path``); questions are the first --questions of 00_data's test
split. Without those artifacts a throw-away "small" policy is trained for --train-steps (kept in
--work-dir) and scored by a likelihood PRM on its own weights with fixed coefficients: the timing
compares the same work, only the accuracy means nothing then.

Both run once on two questions first (warm-up: token tables, allocator). With --repeats R the
two alternate R times (load from other processes hits both alike) and times are summed.
Printed last: ``beam/best_of_n wall-time ratio: <x>``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ttc_lib.generation.generator import Generator  # noqa: E402
from ttc_lib.generation.pass_at_1 import max_new_tokens_for  # noqa: E402
from ttc_lib.pipeline.runs import runs_root  # noqa: E402
from ttc_lib.search import results_table, run_strategy  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="ci", help="runs profile whose 00-02 artifacts to use")
    p.add_argument("--questions", type=int, default=16)
    p.add_argument("--n", type=int, default=64, help="budget N for both strategies")
    p.add_argument("--width", type=int, default=4, help="beam width M")
    p.add_argument("--repeats", type=int, default=1, help="alternating timed runs of each strategy")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is robust on a shared 2-core machine)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-steps", type=int, default=300, help="fallback policy training steps")
    p.add_argument("--work-dir", default=str(Path(tempfile.gettempdir()) / "ttc-bench-search"))
    return p.parse_args()


def load_models(args: argparse.Namespace):
    """(generator, verifier, problems, where from) for the profile, or a throw-away fallback."""
    from ttc_lib.tasks.math_dataset import load_jsonl
    from ttc_lib.verifiers.kinds import load_verifier

    root = runs_root() / args.profile
    policy, summary = root / "01_train_generator" / "policy", root / "02_train_verifier" / "summary.json"
    test = root / "00_data" / "test.jsonl"
    if policy.is_dir() and summary.exists() and test.exists():
        gen = Generator.from_pretrained(policy, device="cpu")
        chosen = json.loads(summary.read_text())["chosen_verifier_path"]
        return gen, load_verifier(chosen), load_jsonl(test)[:args.questions], f"{policy} + {chosen}"
    from ttc_lib.models.tokenizer import build_tokenizer
    from ttc_lib.models.train_config import TrainConfig
    from ttc_lib.models.training import train_model
    from ttc_lib.tasks.arithmetic import ArithmeticWorld, make_splits
    from ttc_lib.tasks.prompts import training_text
    from ttc_lib.verifiers.likelihood_prm import LikelihoodPRM

    train, problems = make_splits(ArithmeticWorld(), n_train=20000, n_test=args.questions, seed=0)
    out = Path(args.work_dir) / f"policy-{args.train_steps}"
    if not out.is_dir():
        tokenizer = build_tokenizer(["".join(training_text(p.question, p.solution)) for p in train], 320)
        train_model(train, tokenizer, "small", TrainConfig(steps=args.train_steps, warmup_steps=30,
                                                           checkpoint_every=0), out, progress=False)
    gen = Generator.from_pretrained(out, device="cpu")
    verifier = LikelihoodPRM(Generator.from_pretrained(out, device="cpu"), [0.5, 0.5, 0.5], 3.0, out)
    return gen, verifier, problems, f"fallback: {out} (no {args.profile} artifacts under {root})"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    gen, verifier, problems, source = load_models(args)
    max_new = max_new_tokens_for(problems, gen.tokenizer)
    refs = {p.id: p.answer for p in problems}
    runs = {"best_of_n": ("best_of_n", {"selection": "weighted"}), "beam": ("beam", {"width": args.width})}
    print(f"models: {source}\n{len(problems)} questions, N={args.n}, beam width {args.width}, "
          f"max_new_tokens={max_new}, threads={args.threads}, load average {os.getloadavg()[0]:.2f}")
    for name, (strategy, config) in runs.items():  # warm-up
        run_strategy(strategy, gen, verifier, problems[:2], 4, seed=args.seed, max_new_tokens=max_new,
                     progress=False, **config)
    wall = {name: 0.0 for name in runs}
    cpu = dict(wall)
    for _ in range(args.repeats):
        for name, (strategy, config) in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            results = run_strategy(strategy, gen, verifier, problems, args.n, seed=args.seed,
                                   max_new_tokens=max_new, progress=False, **config)
            wall[name] += time.perf_counter() - t0
            cpu[name] += time.process_time() - c0
            table = results_table(results, refs)
            print(f"{name:10s} wall {wall[name]:7.2f}s  cpu {cpu[name]:7.2f}s  accuracy {table.correct.mean():.3f}  "
                  f"generated {int(table.generated_tokens.sum()):,}  prompt {int(table.prompt_tokens.sum()):,}  "
                  f"verifier {int(table.verifier_tokens.sum()):,} tokens")
    print(f"load average after: {os.getloadavg()[0]:.2f}; cpu-time ratio: {cpu['beam'] / cpu['best_of_n']:.2f}")
    print(f"beam/best_of_n wall-time ratio: {wall['beam'] / wall['best_of_n']:.2f}")


if __name__ == "__main__":
    main()
