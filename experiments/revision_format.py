"""Does restating the question before the revision let a policy learn to read its attempts?

    TTC_RUNS_DIR=RUNS .venv/bin/python experiments/revision_format.py --profile cpu --steps 700 --max-level 6

Reads a finished ``00_data`` and the ``01_train_generator`` tokenizer of the profile in the runs
folder (``TTC_RUNS_DIR``, default ``data/runs``) and writes nothing there. Two ``small`` policies
train side by side (one single-thread process each, same seed, same batches) on the training
problems of levels 1..``--max-level``, half of their rows context rows (``models.context_rows``:
1-4 attempts at the row's own question, the reference or a slip, then the reference solution):

* ``restated`` — the project's format (``prompts.revision_question``): the question, the attempts,
  "Revision:", the question again;
* ``question_first`` — the same without the restatement: the solution follows "Revision:".

Each is then scored on the first ``--eval-questions`` test questions of levels 3..``--max-level``:
the teacher-forced loss per target token of the reference solution after the bare question
(``plain``), after one correct attempt (``correct1``), one slipped attempt (``wrong1``) and three
(``wrong3``). Reading pays when a context's loss is below ``plain``. Prints one line per format.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import ttc_lib.models.context_rows as context_rows  # noqa: E402
from ttc_lib.models.parallel_training import train_many  # noqa: E402
from ttc_lib.models.train_config import TrainConfig  # noqa: E402
from ttc_lib.tasks.math_dataset import load_jsonl  # noqa: E402
from ttc_lib.tasks.prompts import REVISION_MARK, revision_question, training_text  # noqa: E402
from ttc_lib.tasks.slips import attempts_for  # noqa: E402

CONTEXT_SHARE = 0.5  # half the rows read attempts: enough for either format to show what it teaches in 700 steps


def question_first(question: str, attempts) -> str:
    """The project's format without the restated question (the solution follows "Revision:")."""
    text = revision_question(question, attempts)
    return text if not attempts else text[:text.rindex(REVISION_MARK) + len(REVISION_MARK)]


FORMATS = {"restated": revision_question, "question_first": question_first}


def rows_in(fmt: str, train: list, tokenizer) -> list:
    # context rows in one format: with_context_rows builds them with the format it imports
    original = context_rows.revision_question
    context_rows.revision_question = FORMATS[fmt]
    try:
        return context_rows.with_context_rows(train, CONTEXT_SHARE, 0, tokenizer=tokenizer, max_tokens=512)
    finally:
        context_rows.revision_question = original


def losses(path: Path, fmt: str, test: list, tokenizer) -> dict[str, float]:
    from transformers import AutoModelForCausalLM

    model, rng = AutoModelForCausalLM.from_pretrained(path).eval(), random.Random(1)
    form = FORMATS[fmt]

    def loss(question: str, solution: str) -> float:
        prompt, target = training_text(question, solution)
        a, b = tokenizer(prompt).input_ids, tokenizer(target, add_special_tokens=False).input_ids
        ids = torch.tensor([a + b])
        with torch.no_grad():
            logits = model(ids).logits[0, len(a) - 1:-1]
        return torch.nn.functional.cross_entropy(logits.float(), ids[0, len(a):]).item()

    out: dict[str, list[float]] = {"plain": [], "correct1": [], "wrong1": [], "wrong3": []}
    for p in test:
        out["plain"].append(loss(p.question, p.solution))
        out["correct1"].append(loss(form(p.question, [p.solution]), p.solution))
        out["wrong1"].append(loss(form(p.question, attempts_for(p, 1, rng, 0.0)), p.solution))
        out["wrong3"].append(loss(form(p.question, attempts_for(p, 3, rng, 0.0)), p.solution))
    return {k: round(sum(v) / len(v), 4) for k, v in out.items()}


def main() -> None:
    from transformers import AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--steps", type=int, default=700)
    parser.add_argument("--max-level", type=int, default=6)
    parser.add_argument("--eval-questions", type=int, default=150)
    parser.add_argument("--work", default=str(ROOT / "build" / "experiments" / "revision_format"))
    args = parser.parse_args()
    runs = Path(os.environ.get("TTC_RUNS_DIR", ROOT / "data" / "runs")) / args.profile
    tokenizer = AutoTokenizer.from_pretrained(runs / "01_train_generator" / "tokenizer")
    train = [p for p in load_jsonl(runs / "00_data" / "train.jsonl") if p.level <= args.max_level]
    test = [p for p in load_jsonl(runs / "00_data" / "test.jsonl") if 3 <= p.level <= args.max_level]
    config = TrainConfig(steps=args.steps, batch_size=32, lr=2e-3, seed=0)
    work = Path(args.work)
    records = train_many([dict(problems=rows_in(fmt, train, tokenizer), tokenizer=tokenizer, spec_or_model="small",
                               config=config, out_dir=work / fmt) for fmt in FORMATS])
    for fmt, record in zip(FORMATS, records):
        print(fmt, f"{args.steps} steps, {record['wall_seconds']:.0f} s:",
              losses(work / fmt, fmt, test[:args.eval_questions], tokenizer))


if __name__ == "__main__":
    main()
