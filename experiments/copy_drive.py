"""Is it the drive? Continue a trained model on rows where reading the attempts pays far more.

    TTC_RUNS_DIR=RUNS .venv/bin/python experiments/copy_drive.py --profile cpu --share 1.0 --correct 1.0 --steps 300

Why: in the cpu recipe a quarter of the rows read 1-4 attempts, a quarter of those attempts are the
reference itself, and a policy that computes every step already has a small loss, so copying the
attempt is worth little per row (``experiments/hard_context_rows.py``: after a correct attempt the
loss of the reference is *above* the bare question's). Here a trained checkpoint (default: the run's
01 policy) trains on rows with a larger ``--share`` of context rows and a larger ``--correct`` share
of attempts that are the reference; with ``--share 1 --correct 1`` every row holds its own target,
so a model that copies would bring the loss after a correct attempt far below what computing gives.

Prints the teacher-forced loss per target token (``hard_context_rows.teacher_forced``: the
reference after the bare question, one correct attempt, one slip; 40 test questions per group of
three levels) of the start checkpoint and of the continued one. Reading shows as a loss after a
correct attempt below the *start's* bare loss; a loss after the attempt that only falls to the
level of the bare question's, while the bare loss rises, is a model that learnt the long format,
not the look-up. Writes only under ``--work``.

Measured (2026-12-02, the reference run's 00 data and 01 models; the full table in
docs/revisions.md). Levels 10-12, bare / correct attempt / slip:

    01 policy (start)                              .0381 / .0625 / .0638
    01 policy, --share 1 --correct 1, 300 steps    .3144 / .0484 / .0491   (bare question forgotten)
      then 1000 more                               .7849 / .0142 / .0174   (correct ~ slip: no look-up)
      then 300 on --share .8 --correct 1           .0314 / .0279 / .0303
    --init-from scratch --lr 2e-3, 600 steps       1.6805 / .4183 / .8572  (levels 1-3: 1.93 / .0215 / .87,
                                                                            a blind copier)
      then 1000 on --share .5 --correct .5         .2367 / .1676 / .2489   (copies a correct attempt,
                                                                            reads no slip, computes poorly)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

from hard_context_rows import teacher_forced  # noqa: E402

from ttc_lib.models.context_rows import with_context_rows  # noqa: E402
from ttc_lib.models.parallel_training import train_many  # noqa: E402
from ttc_lib.models.train_config import TrainConfig  # noqa: E402
from ttc_lib.tasks.math_dataset import load_jsonl  # noqa: E402


def main() -> None:
    from transformers import AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--init-from", help="checkpoint to continue (default: the run's 01 policy; 'scratch': none)")
    parser.add_argument("--spec", default="small", help="its models.MODEL_SPECS preset (small_x2: the run's 01 large)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--share", type=float, default=1.0, help="share of rows that read 1-4 attempts")
    parser.add_argument("--correct", type=float, default=1.0, help="share of attempts that are the reference")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    parser.add_argument("--rows-seed", type=int, default=5)
    parser.add_argument("--work", default=str(ROOT / "build" / "experiments" / "copy_drive"))
    args = parser.parse_args()
    runs = Path(os.environ.get("TTC_RUNS_DIR", ROOT / "data" / "runs")) / args.profile
    start = None if args.init_from == "scratch" else Path(args.init_from or runs / "01_train_generator" / "policy")
    tokenizer = AutoTokenizer.from_pretrained(runs / "01_train_generator" / "tokenizer")
    train = load_jsonl(runs / "00_data" / "train.jsonl")
    test_all = load_jsonl(runs / "00_data" / "test.jsonl")
    if start is not None:
        print("start", start, json.dumps(teacher_forced(start, test_all, tokenizer)), flush=True)
    rows = with_context_rows(train, args.share, args.rows_seed, tokenizer=tokenizer, max_tokens=512,
                             correct_share=args.correct)
    config = TrainConfig(steps=args.steps, batch_size=32, lr=args.lr, seed=args.rows_seed)
    began = time.time()
    record = train_many([[dict(problems=rows, tokenizer=tokenizer, spec_or_model=args.spec, init_from=start,
                               config=config, out_dir=Path(args.work))]], parallel=False)[0]
    print(f"continued {args.steps} steps (share {args.share}, correct {args.correct}) in {time.time() - began:.0f} s, "
          f"final loss {record['final_loss']:.4f}", flush=True)
    print("continued", json.dumps(teacher_forced(Path(args.work), test_all, tokenizer)), flush=True)


if __name__ == "__main__":
    main()
