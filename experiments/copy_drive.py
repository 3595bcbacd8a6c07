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

Its probe (--reuse --probe): bare pass@1 .043; own correct - none +.240 [+.159, +.331], own wrong -
none -.008 [-.024, +.007]; its reviser +.105 [+.051, +.159] and -.004 [-.016, +.008].

The copier, then 2000 steps on --share .5 --correct .5 (--lr 2e-3; D): bare pass@1 .385; its reviser
(--reuse --probe --chains 4): own correct - none +.085 [+.039, +.132], own wrong - none +.033
[+.002, +.063]; chains' pass@1 by step .219 .235 .261 .261, step 4 - step 1 +.042 [+.007, +.078]
(180 questions): both revision tests pass, from bare answers (.219) worse than D's own. With
--revision-lr 1e-4 the reviser keeps its bare answers (chain step 1 .372) and both fail: own wrong -
none -.065 [-.097, -.031], step 4 - step 1 -.051 [-.083, -.019]. The pass was the damage.
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

from hard_context_rows import REVISION, probe, probe_questions, reviser, teacher_forced  # noqa: E402

from ttc_lib.analysis.revision_intervals import step_curve, step_difference  # noqa: E402
from ttc_lib.analysis.uncertainty import interval  # noqa: E402
from ttc_lib.generation.pass_at_1 import max_new_tokens_for  # noqa: E402
from ttc_lib.models.context_rows import with_context_rows  # noqa: E402
from ttc_lib.models.parallel_training import train_many  # noqa: E402
from ttc_lib.models.train_config import TrainConfig  # noqa: E402
from ttc_lib.revisions import data as rd  # noqa: E402
from ttc_lib.revisions.analysis import transitions  # noqa: E402
from ttc_lib.search.revision_chains import attempts_frame, run_chains  # noqa: E402
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
    parser.add_argument("--probe", action="store_true",
                        help="then the context probe of the continued model and of its reviser (notebook 05's recipe)")
    parser.add_argument("--reuse", action="store_true", help="skip the training: the model already under --work")
    parser.add_argument("--per-level", type=int, default=20)  # probe: questions per level, levels 4-12
    parser.add_argument("--samples", type=int, default=8)  # probe: answers per question and context
    parser.add_argument("--chains", type=int, default=0,
                        help="with --probe: this many revision chains of 4 steps per probe question, by the reviser")
    parser.add_argument("--revision-lr", type=float, default=REVISION["revision_lr"],
                        help="peak lr of the reviser's fine-tuning (notebook 05's cpu value by default)")
    parser.add_argument("--work", default=str(ROOT / "build" / "experiments" / "copy_drive"))
    args = parser.parse_args()
    runs = Path(os.environ.get("TTC_RUNS_DIR", ROOT / "data" / "runs")) / args.profile
    start = None if args.init_from == "scratch" else Path(args.init_from or runs / "01_train_generator" / "policy")
    tokenizer = AutoTokenizer.from_pretrained(runs / "01_train_generator" / "tokenizer")
    train = load_jsonl(runs / "00_data" / "train.jsonl")
    test_all = load_jsonl(runs / "00_data" / "test.jsonl")
    work = Path(args.work) / "model"
    if not args.reuse:
        if start is not None:
            print("start", start, json.dumps(teacher_forced(start, test_all, tokenizer)), flush=True)
        rows = with_context_rows(train, args.share, args.rows_seed, tokenizer=tokenizer, max_tokens=512,
                                 correct_share=args.correct)
        config = TrainConfig(steps=args.steps, batch_size=32, lr=args.lr, seed=args.rows_seed)
        began = time.time()
        record = train_many([[dict(problems=rows, tokenizer=tokenizer, spec_or_model=args.spec, init_from=start,
                                   config=config, out_dir=work)]], parallel=False)[0]
        print(f"continued {args.steps} steps (share {args.share}, correct {args.correct}) in "
              f"{time.time() - began:.0f} s, final loss {record['final_loss']:.4f}", flush=True)
    print("continued", json.dumps(teacher_forced(work, test_all, tokenizer)), flush=True)
    if args.probe:
        from ttc_lib.generation.generator import Generator

        max_new_tokens = max_new_tokens_for(train, tokenizer)
        test = probe_questions(test_all, 4, args.per_level)
        model = Generator.from_pretrained(work, device="cpu")
        attempts = rd.sample_answers(model, test, 8, temperature=1.0, max_new_tokens=max_new_tokens, seed=1,
                                     progress=False)
        print(f"bare pass@1 {attempts.correct.mean():.3f}",
              json.dumps(probe(model, test, attempts, args, max_new_tokens)), flush=True)
        revised = reviser(model, work, train[-REVISION["revision_questions"]:], Path(args.work) / "reviser",
                          max_new_tokens, lr=args.revision_lr)
        print("reviser", json.dumps(probe(revised, test, attempts, args, max_new_tokens)), flush=True)
        if args.chains:
            chains = run_chains(revised, test, [4] * args.chains, seed=3, max_new_tokens=max_new_tokens,
                                progress=False)
            frame = attempts_frame(test, chains)
            print("chains: pass@1 by step", step_curve(frame).round(3).to_dict("records"),
                  "step 4 - step 1", interval(step_difference(frame, 4, 1), 3), "transitions", transitions(frame),
                  flush=True)


if __name__ == "__main__":
    main()
