"""Training throughput of notebook 01's loop against variants of it, as ratios measured in one run.

    nice -n 10 .venv/bin/python benchmarks/training.py [--profile cpu] [--model small] [--batches 16]

The rows are notebook 01's under --profile: 00_data's world and training split from the profile's
parameters, the tokenizer, context rows on ``context_share`` of them (models.context_rows). The
pool is --batches of the batches a whole run of the policy would train on (batches.batch_schedule:
a seeded shuffle, length-sorted within chunks of ``bucket_batches`` batches), evenly spaced in
order of width, so its mix of short and long rows is the run's. Every variant trains its own copy
of one freshly initialised model with ``training.train_step`` (the loop's step):

  today          the loop as notebook 01 runs it: bf16 autocast (bf16="auto" on CPU), 1 torch thread
  fp32           no autocast
  compile        torch.compile(model, dynamic=True) (inductor; dynamic: widths vary), bf16 autocast
  threads=2      2 torch threads in this process (notebook 01 runs two 1-thread processes side by
                 side, one per model, so this could only help once one of them is done)
  fused-adamw    AdamW(fused=True) instead of the per-tensor loop
  compile+fused  both
  eager-attention  the model's attention as plain matmuls and softmax (attn_implementation="eager")
                 instead of torch's scaled_dot_product_attention (flash kernel on CPU)
  sorted         a run's batches cut after sorting the whole epoch by length (bucket_batches = all
                 rows: less padding, but every batch holds rows of one length), the same pool rule

The first pass over the pool warms every variant up (oneDNN kernels for each batch width,
compilation) and is timed apart. Then --passes timed passes, cut into blocks of --block batches;
the variants take turns block by block, the first one rotating, so load from other processes on a
shared machine hits all alike. Throughput is non-pad tokens per second (the D of 6·N·D, as in the
training record), from all passes' wall time, from each batch's best pass (robust to bursts of
load from others: the reported ratio) and from process CPU time. The padding share of a whole
run's batches for a few ``bucket_batches`` is printed too (the schedule alone, no training).
Printed last, per variant:
    <variant>/today tokens/s ratio: <x>
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ttc_lib.models.batches import PAD_MULTIPLE, batch_schedule, tokenize_problems  # noqa: E402
from ttc_lib.models.checkpoints import build_model, get_spec  # noqa: E402
from ttc_lib.models.context_rows import with_context_rows  # noqa: E402
from ttc_lib.models.tokenizer import build_tokenizer  # noqa: E402
from ttc_lib.models.train_config import TrainConfig, lr_at  # noqa: E402
from ttc_lib.models.training import BF16_AUTO_ON_CPU, build_optimizer, train_step  # noqa: E402
from ttc_lib.pipeline.runner import load_profile  # noqa: E402
from ttc_lib.pipeline.runs import notebook_parameters, notebook_path  # noqa: E402
from ttc_lib.tasks.arithmetic import ArithmeticWorld, make_splits  # noqa: E402
from ttc_lib.tasks.prompts import training_text  # noqa: E402

VARIANTS = ("today", "fp32", "compile", "threads=2", "fused-adamw", "compile+fused", "eager-attention", "sorted")
WORLD_KEYS = ("min_ops", "max_ops", "max_value", "max_value_hardest", "addsub_max", "addsub_max_hardest", "mul_max")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="cpu", help="params/<profile>.yaml whose 00_data and 01 rows to use")
    p.add_argument("--model", default="small", help="models.MODEL_SPECS preset (the policy: small)")
    p.add_argument("--batches", type=int, default=16, help="batches in the pool (each pass runs all of them)")
    p.add_argument("--passes", type=int, default=3, help="timed passes over the pool, after the warm-up pass")
    p.add_argument("--block", type=int, default=1, help="batches a variant runs before the next one's turn")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                   help="which to time (today is always timed: the ratios are against it)")
    return p.parse_args()


def profile_rows(profile: str) -> tuple[list, object, TrainConfig, dict]:
    """(tokenized training rows, tokenizer, the policy's TrainConfig, 01's parameters) of ``profile``."""
    given = load_profile(profile)
    data_p = {k: d for k, (_, d) in notebook_parameters(notebook_path("00_data")).items()} | given["00_data"]
    gen_p = {k: d for k, (_, d) in notebook_parameters(notebook_path("01_train_generator")).items()}
    gen_p |= given["01_train_generator"]
    if data_p["source"] != "arithmetic":
        raise ValueError(f"--profile {profile}: benchmarks/training.py builds the arithmetic world only")
    world = ArithmeticWorld(**{k: data_p[k] for k in WORLD_KEYS})
    train, _ = make_splits(world, data_p["n_train"], data_p["n_test"], data_p["seed"], data_p["train_level_power"])
    tokenizer = build_tokenizer((a + b for a, b in (training_text(p.question, p.solution) for p in train)),
                                vocab_size=gen_p["vocab_size"])
    limit = get_spec(gen_p["policy_model"]).max_position_embeddings
    rows = with_context_rows(train, gen_p["context_share"], gen_p["seed"], tokenizer=tokenizer, max_tokens=limit)
    config = TrainConfig(steps=gen_p["policy_steps"], batch_size=gen_p["batch_size"], lr=gen_p["lr"],
                         seed=gen_p["seed"])
    return tokenize_problems(rows, tokenizer), tokenizer, config, gen_p


def padded_width(batch: list[tuple[list[int], int]]) -> int:
    return -(-max(len(ids) for ids, _ in batch) // PAD_MULTIPLE) * PAD_MULTIPLE


def pad_share(batches: list[list[tuple[list[int], int]]]) -> float:
    real = sum(len(ids) for b in batches for ids, _ in b)
    return 1 - real / sum(padded_width(b) * len(b) for b in batches)


def run_padding(data: list, config: TrainConfig) -> None:
    """Padding share of a whole run's batches (config.steps of them) for a few bucket_batches."""
    lengths = [len(ids) for ids, _ in data]
    cells = []
    for bucket in (config.bucket_batches, 64, 256, len(data)):
        schedule = batch_schedule(lengths, TrainConfig(**{**config.__dict__, "bucket_batches": bucket}))
        cells.append(f"bucket_batches={bucket}: {pad_share([[data[i] for i in b] for b in schedule]):.3f}")
    print(f"padding share of the {config.steps} batches of a run: " + ", ".join(cells))


def stratified(batches: list, k: int) -> list:
    """``k`` of ``batches`` evenly spaced in order of padded width: a pool whose mix of widths (and so
    of attention cost) is the whole run's."""
    ranked = sorted(batches, key=padded_width)
    return [ranked[int((i + 0.5) * len(ranked) / k)] for i in range(k)]


class Variant:
    """One variant: its model copy, optimizer, batches and settings; keeps each timed batch's wall
    and CPU seconds, pass after pass."""

    def __init__(self, name: str, model: torch.nn.Module, config: TrainConfig, batches: list, pad_id: int) -> None:
        self.name, self.batches, self.pad_id, self.config = name, batches, pad_id, config
        self.model = copy.deepcopy(model).train()
        if name == "eager-attention":
            self.model.set_attn_implementation("eager")
        self.params = list(self.model.parameters())
        self.opt = build_optimizer(self.params, config)
        if "fused" in name:
            groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in self.opt.param_groups]
            self.opt = torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, config.beta2), fused=True)
        self.forward = torch.compile(self.model, dynamic=True) if "compile" in name else self.model
        self.bf16 = BF16_AUTO_ON_CPU and name != "fp32"
        self.threads = 2 if name == "threads=2" else 1
        self.tokens = [sum(len(ids) for ids, _ in b) for b in batches]
        self.wall: dict[int, list[float]] = {i: [] for i in range(len(batches))}
        self.cpu: dict[int, list[float]] = {i: [] for i in range(len(batches))}
        self.step, self.losses, self.warmup = 0, [], 0.0

    def run(self, indices: range, timed: bool = True) -> None:
        torch.set_num_threads(self.threads)
        for i in indices:
            t0, c0 = time.perf_counter(), time.process_time()
            loss = train_step(self.forward, self.opt, self.params, self.batches[i], self.pad_id,
                              lr_at(self.step, self.config), self.config.grad_clip, "cpu", self.bf16)
            self.losses.append(loss.item())
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            self.step += 1
            if timed:
                self.wall[i].append(dt)
                self.cpu[i].append(dc)
            else:
                self.warmup += dt
        torch.set_num_threads(1)

    def rate(self, times: dict[int, list[float]], pick=sum) -> float:
        """Tokens per second: every batch's tokens over its ``pick`` of seconds (sum: all passes, so
        the tokens are counted once per pass; min: its best pass)."""
        passes = len(times[0]) if pick is sum else 1
        return passes * sum(self.tokens) / sum(pick(t) for t in times.values())


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data, tokenizer, config, gen_p = profile_rows(args.profile)
    lengths = [len(ids) for ids, _ in data]
    run = [[data[i] for i in b] for b in batch_schedule(lengths, config)]
    whole_sort = TrainConfig(**{**config.__dict__, "bucket_batches": len(data)})
    today = stratified(run, args.batches)
    by_length = stratified([[data[i] for i in b] for b in batch_schedule(lengths, whole_sort)], args.batches)
    model = build_model(args.model, tokenizer, seed=config.seed)
    print(f"profile {args.profile}: {len(data)} training rows (context_share {gen_p['context_share']}), "
          f"{len(tokenizer)} tokens in the vocabulary, ready in {time.perf_counter() - t0:.0f}s; model "
          f"{args.model} {sum(p.numel() for p in model.parameters()):,} params; torch {torch.__version__}; "
          f"bf16 autocast today: {BF16_AUTO_ON_CPU}")
    print(f"pool: {args.batches} of the run's {len(run)} batches of {config.batch_size} rows, evenly spaced in "
          f"width ({sum(len(ids) for b in today for ids, _ in b)} tokens, widths {padded_width(today[0])}.."
          f"{padded_width(today[-1])}); sorted: the same from a run with bucket_batches={len(data)}")
    run_padding(data, config)
    print(f"padding share of the pool: today's batches {pad_share(today):.3f}, sorted {pad_share(by_length):.3f}")
    names = ["today"] + [v for v in args.variants if v != "today"]
    variants = []
    for name in names:
        try:
            v = Variant(name, model, config, by_length if name == "sorted" else today, tokenizer.pad_token_id)
            v.run(range(len(v.batches)), timed=False)  # warm-up pass (kernels per width, compilation)
        except Exception as err:  # e.g. torch.compile without a working C++ toolchain
            print(f"{name}: failed in its warm-up pass, left out: {type(err).__name__}: {str(err)[:300]}")
            continue
        print(f"{name}: warm-up pass {v.warmup:.1f}s", flush=True)
        variants.append(v)
    turn = 0
    for _ in range(args.passes):
        for start in range(0, args.batches, args.block):
            block = range(start, min(start + args.block, args.batches))
            for k in range(len(variants)):
                variants[(turn + k) % len(variants)].run(block)
            turn += 1
    base = variants[0]
    best = {v.name: v.rate(v.wall, min) / base.rate(base.wall, min) for v in variants}
    for v in variants:
        tail = v.losses[-args.batches:]
        print(f"{v.name:15s} {v.rate(v.wall):6.0f} tokens/s, ratio {v.rate(v.wall) / base.rate(base.wall):.2f} "
              f"(all passes' wall time), {best[v.name]:.2f} (each batch's best pass), "
              f"{v.rate(v.cpu) / base.rate(base.cpu):.2f} (CPU time)  warm-up {v.warmup:5.1f}s  "
              f"mean loss of its last pass {sum(tail) / len(tail):.3f}")
    print("timings taken on a shared machine: compare the ratios, not the absolute numbers "
          "(CPU-time ratios count both threads of threads=2)")
    for v in variants[1:]:
        print(f"{v.name}/today tokens/s ratio: {best[v.name]:.2f}")


if __name__ == "__main__":
    main()
