"""The trained-head PRM's data curve on oracle labels, against the likelihood PRM on the same labels.

    TTC_RUNS_DIR=RUNS .venv/bin/python experiments/head_data_curve.py --profile cpu --sizes 100 300

Reads a finished run of the profile (``00_data`` splits, ``01_train_generator`` models) in the runs
folder (``TTC_RUNS_DIR``, default ``data/runs``) and writes nothing there. The policy samples
``--samples`` solutions for each of the first max(``--sizes``) training questions once (finished
samples with an answer kept, as ``verifiers.labelling`` keeps them); every step is labelled by the
oracle (``tasks.step_labels``: right before the first wrong step). For each size n, the first n of
those questions train, side by side:

* ``head`` — the paper's PRM: the verifier backbone plus a scalar head, fine-tuned on the oracle
  labels (notebook 02's ``oracle_prm`` recipe: ``--lr``, ``--epochs``, ``--batch-size``; 10% of the
  questions held out for early stopping), saved under ``--work`` (a rerun with the same inputs
  reuses it);
* ``likelihood`` — the likelihood PRM of the same backbone (its token log-prob features, logistic
  calibration) fitted on the same labels.

Both score ``--eval-samples`` solutions of each of the first ``--eval-questions`` test questions
(prompts too long for the policy left out); the table gives the same-step AUROC (groups = question x
step index: neither difficulty nor position can game it) and the within-question AUROC, each with a
95% question-bootstrap interval (``analysis.auroc``), and the ``position_only`` row, -(step index),
once; ``q`` = test questions with at least one group holding both a right and a wrong step (the
questions the interval resamples). Prints a markdown table; ``--json`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from ttc_lib.analysis import verifier_quality as vq  # noqa: E402
from ttc_lib.generation.context_limit import fitting_problems  # noqa: E402
from ttc_lib.pipeline.runs import Stage  # noqa: E402
from ttc_lib.tasks import step_labels  # noqa: E402
from ttc_lib.tasks.grading import extract_answer  # noqa: E402
from ttc_lib.verifiers.base import LabelledSolution  # noqa: E402
from ttc_lib.verifiers.head_prm_training import HeadTrainConfig, train_head_prm  # noqa: E402
from ttc_lib.verifiers.likelihood_prm import fit_likelihood_prm  # noqa: E402


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def oracle_items(problems, samples) -> list[LabelledSolution]:
    """One LabelledSolution per finished, answered sample with at least one step: the oracle's labels."""
    items = []
    for problem, group in zip(problems, samples):
        for sample in group:
            if sample.finish_reason == "length" or extract_answer(sample.text) is None:
                continue
            labels = step_labels(problem, sample.text)
            if labels:
                items.append(LabelledSolution(problem.id, problem.question, sample.text,
                                              tuple(float(y) for y in labels)))
    return items


def evaluate(verifier, eval_set, samples, n_boot: int, seed: int) -> tuple[dict, dict, dict]:
    """(same-step interval, within-question interval) of ``verifier`` on the evaluation samples, and
    both intervals of the position-only score -(step index) on the same steps."""
    table = vq.step_table(eval_set, samples, vq.score_samples(verifier, eval_set, samples), step_labels)
    intervals = vq.quality_intervals({"v": table}, n_boot=n_boot, seed=seed)
    same, within = intervals["same_step_auroc"], intervals["within_question_auroc_ci"]
    return same["v"], within["v"], {"same_step_auroc": same[vq.POSITION_ONLY],
                                    "within_question_auroc": within[vq.POSITION_ONLY]}


def cell(value: dict) -> str:
    if value.get("estimate") is None:
        return f"undefined: {value['reason']}"
    return f"{value['estimate']:.3f} [{value['ci_low']:.3f}, {value['ci_high']:.3f}], {value['n_questions']} q"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu", help="the run to read (its 00_data and 01_train_generator)")
    parser.add_argument("--sizes", type=positive, nargs="+", default=[100, 300],
                        help="labelled training questions per point of the curve")
    parser.add_argument("--samples", type=positive, default=16, help="sampled solutions per training question")
    parser.add_argument("--eval-questions", type=positive, default=100, help="first N test questions scored")
    parser.add_argument("--eval-samples", type=positive, default=16, help="solutions scored per test question")
    parser.add_argument("--lr", type=float, default=3e-4, help="head PRM learning rate (notebook 02's head_lr)")
    parser.add_argument("--epochs", type=positive, default=2, help="head PRM epochs at most (early stopping)")
    parser.add_argument("--batch-size", type=positive, default=128, help="head PRM solutions per step")
    parser.add_argument("--temperature", type=float, default=1.0, help="policy sampling temperature")
    parser.add_argument("--n-boot", type=positive, default=2000, help="question-bootstrap replicates")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=positive, default=1, help="torch threads")
    parser.add_argument("--work", type=Path, default=None,
                        help="where the trained heads go (default build/head_data_curve/<profile>)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = args.work or ROOT / "build" / "head_data_curve" / args.profile
    stage = Stage(args.profile, "02_train_verifier")  # read only: nothing is opened or written there
    generator_summary = stage.read_summary("01_train_generator")
    strong, max_new_tokens = generator_summary["checkpoints"]["verifier_backbone"], generator_summary["max_new_tokens"]
    train, test = stage.problems("train"), stage.problems("test")
    if max(args.sizes) > len(train):
        parser.error(f"--sizes up to {max(args.sizes)} but the {args.profile} run has {len(train)} training questions")
    policy = stage.generator("policy")
    started = time.perf_counter()
    labelled = train[:max(args.sizes)]
    train_samples = policy.sample([p.question for p in labelled], args.samples, temperature=args.temperature,
                                  max_new_tokens=max_new_tokens, seed=args.seed, progress=False)
    eval_set = fitting_problems(policy, test[:args.eval_questions], max_new_tokens)[0]
    eval_samples = policy.sample([p.question for p in eval_set], args.eval_samples, temperature=args.temperature,
                                 max_new_tokens=max_new_tokens, seed=args.seed + 1, progress=False)
    items = oracle_items(labelled, train_samples)
    print(f"sampled {len(labelled)} x {args.samples} training and {len(eval_set)} x {args.eval_samples} test "
          f"solutions in {time.perf_counter() - started:.0f} s; {len(items)} labelled solutions kept", flush=True)
    config = HeadTrainConfig(lr=args.lr, max_epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    rows, position = [], None
    for size in sorted(args.sizes):
        ids = {p.id for p in labelled[:size]}
        subset = [it for it in items if it.question_id in ids]
        steps = sum(len(it.labels) for it in subset)
        right = sum(sum(it.labels) for it in subset) / max(steps, 1)
        head, record = train_head_prm(strong, subset, config, work / f"head_{size}", name=f"head_oracle_{size}",
                                      progress=False)  # record: the training's own wall seconds, also when reused
        t0 = time.perf_counter()
        likelihood = fit_likelihood_prm(strong, subset)
        fit_seconds = time.perf_counter() - t0
        for name, verifier, seconds in (("head", head, record["wall_seconds"]), ("likelihood", likelihood, fit_seconds)):
            same, within, position = evaluate(verifier, eval_set, eval_samples, args.n_boot, args.seed)
            rows.append({"questions": size, "verifier": name, "solutions": len(subset), "steps": steps,
                         "right_share": round(right, 4), "training_seconds": round(seconds, 1),
                         "same_step_auroc": same, "within_question_auroc": within})
            print(f"  {size} questions, {name}: same-step {cell(same)}, within-question {cell(within)} "
                  f"({seconds:.0f} s)", flush=True)
    print(f"\n{len(eval_set)} test questions x {args.eval_samples} samples; 95% question-bootstrap intervals; "
          f"total {time.perf_counter() - started:.0f} s\n")
    print("| label questions | verifier | same-step AUROC | within-question AUROC | labelled steps | training s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['questions']} | {r['verifier']} | {cell(r['same_step_auroc'])} | {cell(r['within_question_auroc'])} "
              f"| {r['steps']} ({r['right_share']:.1%} right) | {r['training_seconds']} |")
    print(f"| — | position only, −(step index) | {cell(position['same_step_auroc'])} "
          f"| {cell(position['within_question_auroc'])} | — | — |")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                         "position_only": position, "eval_questions": len(eval_set)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
