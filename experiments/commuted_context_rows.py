"""Does a second correct derivation make a policy read its attempts? Operand order as free notation.

    TTC_RUNS_DIR=RUNS .venv/bin/python experiments/commuted_context_rows.py --profile cpu --steps 2000

Why: every correct derivation of a world problem is one string, so a target written from the
reference carries no information about the attempts before it: the policy can compute every token
from the question, and reading an attempt never lowers the loss by more than computing does (the
measurements in ``experiments/hard_context_rows.py``). Here the world gets a second correct
derivation of each step: "a+b=c" may be written "b+a=c" (likewise "*"; "-" stays). Every training
solution draws its order per step (a coin each). In a context row (``--share`` of the rows, 1-4
attempts as ``models.context_rows`` makes them) the target keeps the orders of the row's LAST
attempt, step by step, and the other attempts draw their own: so without reading, each "+"/"*" step
costs a coin flip (ln 2 nats on its first operand); reading the last attempt's step costs nothing.
That is the copying the reviser must do to keep a correct attempt and to reuse the correct part of
a wrong one. The fine-tuning data (notebook 05's recipe, ``REVISION`` of hard_context_rows) get the
same rule: each target is rewritten in its last attempt's orders.

Prints, as hard_context_rows does: the teacher-forced loss per target token of the (canonical-order)
reference after the bare question, one correct attempt, one slip; the context probe of the policy and
of its reviser (own - none, 95% bootstrap intervals over questions). Compare with hard_context_rows'
``uniform`` numbers (same data, seed, steps, probe questions). Writes only under ``--work``.

Measured (2026-12-02, the cpu profile's 00 data and tokenizer; probe on 180 questions of levels 4-12;
own - none with 95% bootstrap intervals over questions; more in docs/revisions.md):

    run                                   bare pass@1  own correct          own wrong
    2000 steps                            .351         -.064 [-.111 -.018]  -.062 [-.095 -.031]
    +1500 steps (--init-from, --lr 1e-3,  .728         -.102 [-.141 -.064]  -.092 [-.139 -.044]
      --rows-seed 1); its reviser (--reuse)            -.093 [-.131 -.059]  -.089 [-.137 -.041]

(The 2000-step policy's reviser was made by a first version of ``last_attempt_orders`` that swapped
relative to each target's own orders; its numbers are in docs/revisions.md, marked so.)

Teacher-forced loss per target token after one correct attempt vs the bare question, levels 1-3:
.0699 vs .0729 (2000 steps), .0398 vs .0409 (3500); above it at levels 7-12 in both: the policy
takes under a tenth of what copying the last attempt's orders is worth (up to ~.04-.05 per token).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

from hard_context_rows import REVISION, probe, probe_questions, reviser, teacher_forced  # noqa: E402

from ttc_lib.generation.pass_at_1 import max_new_tokens_for  # noqa: E402
from ttc_lib.models.context_rows import row_tokens  # noqa: E402
from ttc_lib.models.parallel_training import train_many  # noqa: E402
from ttc_lib.models.train_config import TrainConfig  # noqa: E402
from ttc_lib.revisions import data as rd  # noqa: E402
from ttc_lib.tasks.arithmetic import reference_steps  # noqa: E402
from ttc_lib.tasks.math_dataset import load_jsonl  # noqa: E402
from ttc_lib.tasks.prompts import MAX_ATTEMPTS, revision_question, training_text  # noqa: E402
from ttc_lib.tasks.slips import attempts_for  # noqa: E402
from ttc_lib.tasks.steps import join_steps, split_steps  # noqa: E402

STEP = re.compile(r"(\d+)([+*])(\d+)=(\d+)")


def with_orders(solution: str, flips: list[bool]) -> str:
    """``solution`` with step i's two operands swapped where flips[i] (only "+"/"*" steps)."""
    steps = split_steps(solution)
    out = []
    for i, step in enumerate(steps):
        m = STEP.fullmatch(step)
        out.append(f"{m[3]}{m[2]}{m[1]}={m[4]}" if m and i < len(flips) and flips[i] else step)
    return join_steps(out)


def orders_of(question: str, solution: str) -> list[bool]:
    """Which steps of ``solution`` write the question's operand first (by the reference's operands)."""
    ref = reference_steps(question)
    flips = []
    for i, step in enumerate(split_steps(solution)):
        m = STEP.fullmatch(step)
        flips.append(bool(m and i < len(ref) and int(m[1]) == ref[i][2] and int(m[3]) == ref[i][0]
                          and ref[i][0] != ref[i][2]))
    return flips


def commuted_rows(train: list, share: float, seed: int, tokenizer, max_tokens: int) -> list:
    rng, rows = random.Random(seed), []
    for p in train:
        coin = lambda: [rng.random() < 0.5 for _ in range(p.level + 1)]  # noqa: E731
        flips = coin()
        if rng.random() >= share:
            rows.append(replace(p, solution=with_orders(p.solution, flips)))
            continue
        attempts = attempts_for(p, rng.randint(1, MAX_ATTEMPTS), rng)
        attempts = [with_orders(a, coin()) for a in attempts[:-1]] + [with_orders(attempts[-1], flips)]
        target = with_orders(p.solution, flips)
        while attempts and row_tokens(tokenizer, p.question, attempts, target) > max_tokens:
            attempts = attempts[1:]
        rows.append(replace(p, question=revision_question(p.question, attempts), solution=target))
    return rows


def last_attempt_orders(example):
    """A revision example whose target is written in its last attempt's operand orders."""
    if not example.context:
        return example
    canonical = with_orders(example.target, orders_of(example.question, example.target))  # undo its own swaps
    return replace(example, target=with_orders(canonical, orders_of(example.question, example.context[-1])))


def main() -> None:
    from transformers import AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--share", type=float, default=0.25)
    parser.add_argument("--probe-from", type=int, default=4)
    parser.add_argument("--per-level", type=int, default=20)
    parser.add_argument("--attempts", type=int, default=8)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--reuse", action="store_true", help="probe the policy already under --work")
    parser.add_argument("--init-from", help="continue training this policy checkpoint (fresh rows: --rows-seed)")
    parser.add_argument("--rows-seed", type=int, default=0, help="seed of the rows' coins, attempts and slips")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument("--losses-of", nargs="+", metavar="DIR",
                        help="only print the teacher-forced losses of these checkpoints (e.g. the run's 01 large)")
    parser.add_argument("--work", default=str(ROOT / "build" / "experiments" / "commuted_context_rows"))
    args = parser.parse_args()
    runs = Path(os.environ.get("TTC_RUNS_DIR", ROOT / "data" / "runs")) / args.profile
    tokenizer = AutoTokenizer.from_pretrained(runs / "01_train_generator" / "tokenizer")
    train = load_jsonl(runs / "00_data" / "train.jsonl")
    max_new_tokens = max_new_tokens_for(train, tokenizer)
    test_all = load_jsonl(runs / "00_data" / "test.jsonl")
    if args.losses_of:
        for path in args.losses_of:
            print(path, json.dumps(teacher_forced(Path(path), test_all, tokenizer)), flush=True)
        return
    test = probe_questions(test_all, args.probe_from, args.per_level)
    rows = commuted_rows(train, args.share, args.rows_seed, tokenizer, 512)
    print(f"{sum(r.question != p.question for r, p in zip(rows, train)) / len(train):.3f} of rows read attempts; "
          f"sample row:\n{training_text(*[x for r in rows if 'Attempt' in r.question for x in (r.question, r.solution)][:2])}",
          flush=True)
    work = Path(args.work)
    config = TrainConfig(steps=args.steps, batch_size=32, lr=args.lr, seed=args.rows_seed)
    if not args.reuse:
        start = dict(init_from=args.init_from, spec_or_model="small") if args.init_from else dict(spec_or_model="small")
        record = train_many([[dict(problems=rows, tokenizer=tokenizer, config=config, out_dir=work / "policy",
                                   **start)]])[0]
        print(f"policy: {args.steps} steps, {record['wall_seconds']:.0f} s, final loss {record['final_loss']:.4f}",
              flush=True)
    print("teacher-forced:", json.dumps(teacher_forced(work / "policy", test_all, tokenizer)), flush=True)
    from ttc_lib.generation.generator import Generator

    policy = Generator.from_pretrained(work / "policy", device="cpu")
    attempts = rd.sample_answers(policy, test, args.attempts, temperature=1.0, max_new_tokens=max_new_tokens,
                                 seed=1, progress=False)
    print(f"policy: bare pass@1 {attempts.correct.mean():.3f}",
          json.dumps(probe(policy, test, attempts, args, max_new_tokens), indent=1), flush=True)
    model = reviser(policy, work / "policy", train[-REVISION["revision_questions"]:], work / "reviser", max_new_tokens,
                    rewrite=last_attempt_orders)
    print("reviser:", json.dumps(probe(model, test, attempts, args, max_new_tokens), indent=1), flush=True)


if __name__ == "__main__":
    main()
