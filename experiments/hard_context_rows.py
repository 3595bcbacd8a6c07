"""Does a policy learn to read its attempts when its context rows sit where computing is hard?

    TTC_RUNS_DIR=RUNS .venv/bin/python experiments/hard_context_rows.py --profile cpu --steps 2000

Why: reading an attempt pays only where the model's own computation is unsure. The cpu profile
draws training problems with level ~ level^-1.5, so about half of all rows are one-operation
problems, and context rows placed uniformly (``context_share``) land mostly where the policy
computes the answer perfectly from the question alone: copying an attempt never lowers the loss
there. This trains two ``small`` policies side by side (one single-thread process each, same seed,
same batches, the profile's training problems and policy recipe) that differ only in WHICH rows
read attempts (``models.context_rows``: 1-4 attempts at the row's own question, then the reference):

* ``uniform`` — a ``--share`` of all rows, each row independently (the project's rows today);
* ``hard`` — every row of level >= ``--hard-from`` and none below (about the same share of rows
  with the cpu profile's data; the script prints both shares).

Each policy is then probed as notebook 05 probes the reviser (``revisions.probe``): on the first
``--per-level`` test questions of each level >= ``--probe-from``, ``--attempts`` answers from the
bare question give the question's own correct and wrong attempts; ``--samples`` answers after
none / another question's attempt / an own correct one / an own wrong one. Then each policy is
fine-tuned into a reviser with notebook 05's recipe (the cpu profile's 05 values, ``REVISION``)
twice — on its answers to the last ``revision_questions`` training questions (05's choice) and to
the last ones of level >= ``--revise-from`` (where the policy makes mistakes to learn from) — and
each reviser is probed on the same questions and attempts. Prints the paired differences
(own - none) with bootstrap intervals over questions, per model.

Measured (2026-12-02, the cpu profile's 00 data and tokenizer of commit 03578d7, 2000 steps; the
probe on 180 questions, levels 4-12, 20 each; differences own - none with 95% bootstrap intervals):

    model                  other question       own correct          own wrong
    uniform policy         -.106 [-.140 -.073]  -.112 [-.152 -.074]  -.093 [-.128 -.059]
      reviser, 05's qs     -.151 [-.194 -.115]  -.130 [-.170 -.092]  -.106 [-.138 -.073]
      reviser, levels 5+   -.130 [-.171 -.090]  -.113 [-.156 -.071]  -.086 [-.123 -.052]
    hard policy            -.113 [-.169 -.058]  -.454 [-.570 -.329]  -.028 [-.076 +.020]

Neither floor makes reading pay: every attempt costs pass@1, a correct one as much as another
question's. The ``hard`` policy never saw a plain question of level >= 6 and fails them (bare
pass@1 .179 vs .462 for ``uniform``); its teacher-forced loss per target token of the reference
after one correct attempt at levels 7-9 (.0379, 40 questions; ``--reuse --losses-only``) is still
above ``uniform``'s with no attempt (.0180): with attempts in its prompt the 1M policy computes
worse, and it does not copy (``uniform`` after a correct attempt: .0291). The hard policy's two
revisers were not run (the script was stopped to free the machine).

Reads a finished ``00_data`` and the ``01_train_generator`` tokenizer of the profile in
the runs folder (``TTC_RUNS_DIR``, default ``data/runs``); writes only under ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ttc_lib.analysis.revision_intervals import probe_differences  # noqa: E402
from ttc_lib.analysis.uncertainty import interval  # noqa: E402
from ttc_lib.generation.pass_at_1 import max_new_tokens_for  # noqa: E402
from ttc_lib.models.context_rows import context_share, with_context_rows  # noqa: E402
from ttc_lib.models.parallel_training import train_many  # noqa: E402
from ttc_lib.models.train_config import TrainConfig  # noqa: E402
from ttc_lib.revisions import data as rd  # noqa: E402
from ttc_lib.revisions.probe import paired_effects, probe_contexts  # noqa: E402
from ttc_lib.revisions.training import train_revision_model  # noqa: E402
from ttc_lib.tasks.math_dataset import load_jsonl  # noqa: E402

# notebook 05's recipe in the cpu profile (params/cpu.yaml and the notebook's defaults)
REVISION = dict(revision_questions=240, revision_samples=16, revision_temperature=1.2, max_context=4, val_fraction=0.1,
                revision_steps=100, revision_batch_size=32, revision_lr=3e-4, keep_share=0.5, eval_every=15, patience=2)


def hard_rows(train: list, hard_from: int, tokenizer, max_tokens: int, seed: int) -> list:
    """Every row of level >= hard_from reads 1-4 attempts at its own question; the others are plain."""
    with_all = with_context_rows(train, 1.0, seed, tokenizer=tokenizer, max_tokens=max_tokens)
    return [row if p.level >= hard_from else p for row, p in zip(with_all, train)]


def probe_questions(test_all: list, from_level: int, per_level: int) -> list:
    """The probe's questions: the first ``per_level`` test questions of each level >= ``from_level``."""
    return [p for level in sorted({p.level for p in test_all}) if level >= from_level
            for p in [q for q in test_all if q.level == level][:per_level]]


def probe(generator, test: list, attempts, args, max_new_tokens: int) -> dict:
    table = probe_contexts(generator, test, attempts, args.samples, temperature=1.0,
                           max_new_tokens=max_new_tokens, seed=2)
    return {"means": paired_effects(table).round(3).to_dict("records"),
            "differences": {k: interval(v, 3) for k, v in probe_differences(table).items()}}


def reviser(policy, policy_path: Path, questions: list, out: Path, max_new_tokens: int, rewrite=None,
            lr: float | None = None):
    """Notebook 05's fine-tuning of ``policy`` on its answers to ``questions`` (REVISION); ``rewrite``
    (a RevisionExample -> RevisionExample) is applied to each example first, when given; ``lr``
    replaces the recipe's peak learning rate."""
    from ttc_lib.generation.generator import Generator

    r = REVISION
    answers = rd.sample_answers(policy, questions, r["revision_samples"], temperature=r["revision_temperature"],
                                max_new_tokens=max_new_tokens, seed=0, progress=False)
    examples = rd.build_revision_data(questions, answers, max_context=r["max_context"], seed=0,
                                      keep_share=r["keep_share"])
    examples = [rewrite(e) for e in examples] if rewrite else examples
    fit, val = rd.split_examples(examples, r["val_fraction"], 0)
    config = TrainConfig(steps=r["revision_steps"], batch_size=r["revision_batch_size"], lr=lr or r["revision_lr"],
                         warmup_steps=max(1, r["revision_steps"] // 10), seed=0)
    record = train_revision_model(policy_path, fit, val, config, out, eval_every=r["eval_every"],
                                  patience=r["patience"], max_positions=max(1024, 5 * max_new_tokens + 256))
    print(f"  {out.name}: answers correct {answers.correct.mean():.2f}, {len(examples)} trajectories "
          f"({sum(bool(e.context) for e in examples)} with context), kept step {record['chosen_step']}", flush=True)
    return Generator.from_pretrained(out, device="cpu")


def teacher_forced(path: Path, test_all: list, tokenizer) -> dict[str, dict[str, float]]:
    """Loss per target token of the reference after the bare question, one correct attempt and one
    slip (``revisions.training.target_loss``), on the first 40 test questions of each group of
    three levels."""
    import random
    from dataclasses import replace

    from transformers import AutoModelForCausalLM

    from ttc_lib.revisions.training import target_loss
    from ttc_lib.tasks.prompts import revision_question
    from ttc_lib.tasks.slips import attempts_for

    model = AutoModelForCausalLM.from_pretrained(path).eval()
    out = {}
    for low in range(1, max(p.level for p in test_all) + 1, 3):
        group, rng = [p for p in test_all if low <= p.level < low + 3][:40], random.Random(0)
        contexts = {"plain": lambda p: [], "correct1": lambda p: [p.solution],
                    "wrong1": lambda p: attempts_for(p, 1, rng, 0.0)}
        out[f"levels {low}-{low + 2}"] = {
            name: round(target_loss(model, tokenizer, [replace(p, question=revision_question(p.question, attempts(p)))
                                                       for p in group]), 4)
            for name, attempts in contexts.items()}
    return out


def main() -> None:
    from transformers import AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--share", type=float, default=0.25)
    parser.add_argument("--hard-from", type=int, default=6)
    parser.add_argument("--probe-from", type=int, default=4)
    parser.add_argument("--per-level", type=int, default=20)
    parser.add_argument("--attempts", type=int, default=8)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--revise-from", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="probe the policies already under --work")
    parser.add_argument("--losses-only", action="store_true", help="with --reuse: the teacher-forced losses only")
    parser.add_argument("--max-new-tokens", type=int, default=0, help="0: notebook 01's rule")
    parser.add_argument("--work", default=str(ROOT / "build" / "experiments" / "hard_context_rows"))
    args = parser.parse_args()
    runs = Path(os.environ.get("TTC_RUNS_DIR", ROOT / "data" / "runs")) / args.profile
    tokenizer = AutoTokenizer.from_pretrained(runs / "01_train_generator" / "tokenizer")
    train = load_jsonl(runs / "00_data" / "train.jsonl")
    max_new_tokens = args.max_new_tokens or max_new_tokens_for(train, tokenizer)  # as notebook 01 sets it
    test_all = load_jsonl(runs / "00_data" / "test.jsonl")
    test = probe_questions(test_all, args.probe_from, args.per_level)
    rows = {"uniform": with_context_rows(train, args.share, 0, tokenizer=tokenizer, max_tokens=512),
            "hard": hard_rows(train, args.hard_from, tokenizer, 512, 0)}
    for name, arm in rows.items():
        print(f"{name}: {context_share(arm, train):.3f} of {len(train)} rows read attempts", flush=True)
    config = TrainConfig(steps=args.steps, batch_size=32, lr=2e-3, seed=0)
    work = Path(args.work)
    if not args.reuse:
        records = train_many([[dict(problems=arm, tokenizer=tokenizer, spec_or_model="small", config=config,
                                    out_dir=work / name)] for name, arm in rows.items()])
    for name, record in zip(rows, records if not args.reuse else []):
        print(f"{name}: {args.steps} steps, {record['wall_seconds']:.0f} s, final loss {record['final_loss']:.4f}",
              flush=True)
    for name in rows:
        print(f"{name} policy, teacher-forced:", json.dumps(teacher_forced(work / name, test_all, tokenizer)), flush=True)
    if args.losses_only:
        return
    from ttc_lib.generation.generator import Generator

    n = REVISION["revision_questions"]
    revision_sets = {"05_questions": train[-n:], f"level_{args.revise_from}_up": [
        p for p in train[:-n] if p.level >= args.revise_from][-n:]}
    for name in rows:
        policy = Generator.from_pretrained(work / name, device="cpu")
        attempts = rd.sample_answers(policy, test, args.attempts, temperature=1.0, max_new_tokens=max_new_tokens,
                                     seed=1, progress=False)
        print(f"{name} policy: bare pass@1 {attempts.correct.mean():.3f}",
              json.dumps(probe(policy, test, attempts, args, max_new_tokens), indent=1), flush=True)
        for label, questions in revision_sets.items():
            model = reviser(policy, work / name, questions, work / f"{name}_reviser_{label}", max_new_tokens)
            print(f"{name} reviser ({label}):", json.dumps(probe(model, test, attempts, args, max_new_tokens),
                                                           indent=1), flush=True)


if __name__ == "__main__":
    main()
