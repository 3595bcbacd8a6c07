"""Monte-Carlo step labels (Math-Shepherd style) for training and checking verifiers; resumable.

Rules
-----
* Samples: ``samples_per_question`` (K) full solutions per question, ``generator.sample(...,
  seed=config.seed)``. A sample is DROPPED when its finish_reason is "length" (cut off) or it has
  no parsable final answer (``grading.extract_answer`` is None); the counts per reason are in
  ``frame.attrs["dropped"]``. Kept samples are graded with ``grading.grade_answer``.
* Steps are those of the generator's step contract (``steps.contract_of(generator)``):
  ``contract.split(text)``; the prefix after step i is ``contract.prefix_text(steps[:i + 1])``
  (the generator continues after it).
* Labels of step i (one row per question, sample, step):
  - the final step (i = n_steps - 1): soft = hard = final_correct, no rollouts;
  - an earlier step: R = ``rollouts_per_step`` rollouts continue after its prefix; a rollout is
    right iff it finishes ("end" or "stop", not cut off) and the final answer of ITS OWN continuation
    grades equal to the reference. soft = right / R (the policy's chance of success from
    there), hard = right > 0 (hard agrees better with true step correctness: 90% of steps vs
    87% for soft in the cpu reference run, docs/results/cpu/README.md section 02,
    `make 02_train_verifier PROFILE=cpu`);
  - ``skip_correct``: every step of a solution whose final answer is right gets soft = hard = 1
    without rollouts (the sample itself is a successful continuation of each of its prefixes).
  - ``oracle``: ``tasks.step_labels`` when the problem is from the arithmetic world (and steps are
    its lines), else NaN.
* Rollouts are batched over many (question, prefix) pairs per ``generator.sample`` call, and
  identical (question, prefix) pairs (samples sharing early steps) are rolled out ONCE. The
  rollout seed is derived from ``config.seed``; the generator draws sample j of a prompt from
  (seed, prompt text = question + prefix, j), so each prefix's rollouts depend only on
  (config.seed, question, prefix), never on which other prefixes share the batch.
* Resume: ``cache_dir`` holds two ``runs.ResultCache`` files, ``samples.jsonl`` (K samples per
  question) and ``rollouts.jsonl`` (the final answers of the R rollouts per prefix), keyed by
  question id + a hash of (the generator's ``identity``, question, prefix, every config field
  that changes results): a policy retrained in place samples and rolls out again. Grades are
  computed on reading, so an edited reference answer is graded afresh. Each generator batch is
  flushed as soon as it is done, so a killed run loses at most the batches in flight and a rerun
  skips every cached key.
* Workers: the batches are tasks of ``models.workers.run_tasks`` (``workers`` > 1 or ``executor: ray``:
  side by side, each from the Generator's fresh state; the batches, hence the samples, do not depend
  on the number of workers).
* ``frame.attrs["throughput"]`` reports work done by THIS call (cached work is not counted).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ttc_lib.models.identity import identity_of
from ttc_lib.models.workers import run_tasks
from ttc_lib.storage import ResultCache
from ttc_lib.tasks import Problem, step_labels
from ttc_lib.tasks.grading import extract_answer, grade_answer
from ttc_lib.tasks.steps import LINES, StepContract, contract_of
from ttc_lib.verifiers.base import LabelledSolution

SAMPLE_BATCH_QUESTIONS = 64  # questions per sampling call (x K rows); one cache flush per batch
ROLLOUT_BATCH_PREFIXES = 256  # distinct (question, prefix) pairs per rollout call (x R rows)
SOFT_THRESHOLD = 0.5  # label_agreement: a soft label >= this counts as "step right"
# label_solutions' columns. ``finished`` is True on every row (unfinished samples are dropped): it
# is kept so frames from other sources can carry it; ``rollouts`` = rollouts behind the label.
COLUMNS = ["question_id", "question", "level", "sample", "step", "n_steps", "solution", "finished",
           "final_correct", "soft", "hard", "rollouts", "oracle"]
LabelKind = Literal["soft", "hard", "oracle", "outcome"]


@dataclass(frozen=True)
class LabelConfig:
    """How Monte-Carlo labels are made. Defaults: the paper's K, R = 8 (half the paper's 16; hard
    labels need only one right rollout)."""

    samples_per_question: int = 16  # K solutions sampled per training question (paper: 16)
    rollouts_per_step: int = 8  # R rollouts from every step prefix (paper: 16; the cpu profile uses 8)
    temperature: float = 1.0  # sampling temperature for samples and rollouts
    top_p: float = 1.0  # nucleus for samples and rollouts
    max_new_tokens: int = 160  # per sample / rollout; 14*ops+24 = 136 covers 8-op solutions
    skip_correct: bool = True  # label every step of a right-answer solution 1 without rollouts (-40% cost)
    seed: int = 0  # samples use it; rollouts use a seed derived from it

    def __post_init__(self) -> None:
        def bad(field: str, why: str) -> None:
            raise ValueError(f"LabelConfig.{field}={getattr(self, field)!r}: {why}")

        for f in ("samples_per_question", "rollouts_per_step", "max_new_tokens"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                bad(f, "must be a positive int")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            bad("seed", "must be a non-negative int")
        if not isinstance(self.temperature, (int, float)) or not 0 < self.temperature <= 10:
            bad("temperature", "must be in (0, 10] (greedy rollouts would all be identical)")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            bad("top_p", "must be in (0, 1]")
        if not isinstance(self.skip_correct, bool):
            bad("skip_correct", "must be a bool")

    @property
    def rollout_seed(self) -> int:
        """The seed of every rollout call (per-prefix streams come from the prompt text)."""
        return int(hashlib.sha256(f"ttc-rollouts/{self.seed}".encode()).hexdigest()[:8], 16)


def _key(question_id: str, *parts: Any) -> str:
    digest = hashlib.sha1(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()[:20]
    return f"{question_id}|{digest}"


def _oracle(problem: Problem, solution: str, n_steps: int, steps: StepContract) -> list[float]:
    if steps != LINES:  # the world's oracle labels lines
        return [math.nan] * n_steps
    try:
        return [float(x) for x in step_labels(problem, solution)]
    except ValueError:  # not an arithmetic-world problem: no oracle
        return [math.nan] * n_steps


def label_solutions(generator: Any, problems: Sequence[Problem], config: LabelConfig, cache_dir: str | Path,
                    progress: bool = True, on_batch: Callable[[dict], None] | None = None,
                    batch_prefixes: int = ROLLOUT_BATCH_PREFIXES, workers: int = 1) -> pd.DataFrame:
    """Sample K solutions per problem and label every step by rollouts (see the module rules).

    ``generator`` needs only ``.sample(questions, n, temperature=, top_p=, max_new_tokens=,
    seed=, progress=, prefixes=)`` and ``.identity`` (generation.Generator). ``on_batch(info)`` is called after
    every flushed batch (stage, batch = batches done, batches, rows); raising from it interrupts the run,
    which a later call resumes. ``workers`` > 1 (or ``executor: ray``) runs the sampling and rollout batches
    side by side (``models.workers``: the same batches, each cached as it arrives). Returns one row per
    (question, sample, step) with COLUMNS; attrs: ``dropped`` ({"length", "no_answer", "kept"} sample
    counts), ``throughput`` (seconds: wall time), ``config``.
    """
    if not isinstance(config, LabelConfig):
        raise ValueError(f"config must be a LabelConfig, got {type(config).__name__}")
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        raise ValueError("problems must have unique ids (caches and seeds are keyed by them)")
    cache_dir = Path(cache_dir)
    sample_cache = ResultCache(cache_dir / "samples.jsonl")
    rollout_cache = ResultCache(cache_dir / "rollouts.jsonl")
    c = config
    bar = {} if progress else {"disable": True}  # else tqdm honours TQDM_DISABLE
    gen_kw = dict(temperature=c.temperature, top_p=c.top_p, max_new_tokens=c.max_new_tokens, progress=False)
    steps = contract_of(generator)  # what a step is: the generator's contract (module rules)
    try:
        # ---- stage 1: K samples per question
        model = identity_of(generator)  # a retrained policy's samples and rollouts are new work
        skey = {p.id: _key(p.id, "samples", model, p.question, c.samples_per_question, c.temperature, c.top_p,
                           c.max_new_tokens, c.seed) for p in problems}
        todo = [p for p in problems if skey[p.id] not in sample_cache]
        batches = [todo[s:s + SAMPLE_BATCH_QUESTIONS] for s in range(0, len(todo), SAMPLE_BATCH_QUESTIONS)]
        t0, made = time.perf_counter(), 0
        tasks = [{"questions": [p.question for p in batch], "n": c.samples_per_question, "seed": c.seed,
                  "options": gen_kw} for batch in batches]
        done = run_tasks(_sample_batch, tasks, {"generator": generator}, workers)
        for b, (i, out) in enumerate(tqdm(done, total=len(batches), desc="label: samples", **bar)):
            batch = batches[i]
            sample_cache.put_many((skey[p.id], [list(s) for s in samples]) for p, samples in zip(batch, out))
            made += sum(len(s) for s in out)
            if on_batch:
                on_batch({"stage": "samples", "batch": b + 1, "batches": len(batches), "rows": len(batch)})
        sample_seconds = time.perf_counter() - t0

        # ---- which samples survive, and which prefixes need rollouts
        dropped = {"length": 0, "no_answer": 0, "kept": 0}
        kept: list[tuple[Problem, int, str, list[str], bool]] = []
        need: dict[str, tuple[Problem, str]] = {}  # rollout key -> (problem, prefix), first-seen order
        step_uses, skipped = 0, 0
        for p in problems:
            for j, (text, _, reason) in enumerate(sample_cache.get(skey[p.id])):
                answer = extract_answer(text) if reason != "length" else None
                if reason == "length" or answer is None:
                    dropped["length" if reason == "length" else "no_answer"] += 1
                    continue
                parts, correct = steps.split(text), grade_answer(answer, p.answer)
                kept.append((p, j, text, parts, correct))
                if correct and c.skip_correct:
                    skipped += len(parts) - 1
                    continue
                for i in range(len(parts) - 1):
                    prefix = steps.prefix_text(parts[:i + 1])
                    need.setdefault(_rollout_key(model, p, prefix, c), (p, prefix))
                    step_uses += 1
        dropped["kept"] = len(kept)

        # ---- stage 2: rollouts for the distinct prefixes not cached yet
        todo_r = [(k, p, pre) for k, (p, pre) in need.items() if k not in rollout_cache]
        batches_r = [todo_r[s:s + batch_prefixes] for s in range(0, len(todo_r), batch_prefixes)]
        t0, rolled, rtokens = time.perf_counter(), 0, 0
        tasks = [{"questions": [p.question for _, p, _ in batch], "n": c.rollouts_per_step, "seed": c.rollout_seed,
                  "options": {**gen_kw, "prefixes": [pre for _, _, pre in batch]}} for batch in batches_r]
        done = run_tasks(_sample_batch, tasks, {"generator": generator}, workers)
        for b, (i, out) in enumerate(tqdm(done, total=len(batches_r), desc="label: rollouts", **bar)):
            batch = batches_r[i]
            rollout_cache.put_many(
                (k, {"answers": [extract_answer(text) if reason in ("end", "stop") else None
                                 for text, _, reason in rolls],
                     "tokens": sum(tokens for _, tokens, _ in rolls)})
                for (k, _, _), rolls in zip(batch, out))
            rolled += sum(len(r) for r in out)
            rtokens += sum(tokens for r in out for _, tokens, _ in r)
            if on_batch:
                on_batch({"stage": "rollouts", "batch": b + 1, "batches": len(batches_r), "rows": len(batch)})
        rollout_seconds = time.perf_counter() - t0
    finally:
        sample_cache.close()
        rollout_cache.close()

    # ---- assemble one row per step
    rows = []
    for p, j, text, parts, correct in kept:
        oracle = _oracle(p, text, len(parts), steps)
        for i in range(len(parts)):
            if i == len(parts) - 1 or (correct and c.skip_correct):
                soft, hard, used = float(correct), bool(correct), 0
            else:
                answers = rollout_cache.get(_rollout_key(model, p, steps.prefix_text(parts[:i + 1]), c))["answers"]
                right = sum(a is not None and grade_answer(a, p.answer) for a in answers)
                soft, hard, used = right / len(answers), right > 0, len(answers)
            rows.append((p.id, p.question, p.level, j, i, len(parts), text, True, correct, soft, hard, used,
                         oracle[i]))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame.attrs["dropped"] = dropped
    frame.attrs["config"] = asdict(c)
    frame.attrs["throughput"] = {
        "samples_generated": made, "sample_seconds": round(sample_seconds, 3),
        "samples_per_second": made / sample_seconds if made else math.nan,
        "prefixes_needed": len(need), "prefixes_rolled_out": len(todo_r),
        "step_rollout_uses": step_uses,  # (sample, step) pairs served by rollouts; > prefixes_needed = dedup
        "steps_skipped_correct": skipped,  # non-final steps labelled 1 by skip_correct
        "rollouts_generated": rolled, "rollout_tokens": rtokens, "rollout_seconds": round(rollout_seconds, 3),
        "rollouts_per_second": rolled / rollout_seconds if rolled else math.nan,
    }
    return frame


def _sample_batch(generator: Any, questions: list[str], n: int, seed: int, options: dict) -> list[list[tuple]]:
    """One sampling or rollout batch (a task of ``models.workers.run_tasks``): per question, its n samples
    as (text, tokens, finish reason)."""
    out = generator.sample(questions, n, seed=seed, **options)
    return [[(s.text, s.num_tokens, s.finish_reason) for s in samples] for samples in out]


def _rollout_key(model: str | None, problem: Problem, prefix: str, c: LabelConfig) -> str:
    return _key(problem.id, "rollouts", model, problem.question, prefix, c.rollouts_per_step, c.temperature, c.top_p,
                c.max_new_tokens, c.rollout_seed)


def to_labelled(frame: pd.DataFrame, kind: LabelKind) -> list[LabelledSolution]:
    """One LabelledSolution per (question, sample) of a label_solutions frame, in frame order.

    ``soft``: the fraction (float); ``hard``/``oracle``: 1.0 / 0.0; ``outcome`` (the ORM target):
    final correctness at the last step, None at the others. ``oracle`` on rows without one
    (not the arithmetic world) is a ValueError.
    """
    if kind not in ("soft", "hard", "oracle", "outcome"):
        raise ValueError(f"to_labelled: kind must be 'soft', 'hard', 'oracle' or 'outcome', got {kind!r}")
    missing = sorted(set(COLUMNS) - set(frame.columns))
    if missing:
        raise ValueError(f"to_labelled: frame lacks columns {missing} (make it with label_solutions)")
    if kind == "oracle" and frame["oracle"].isna().any():
        raise ValueError("to_labelled(kind='oracle'): some rows have no oracle label (not arithmetic-world)")
    out = []
    for (qid, _), part in frame.groupby(["question_id", "sample"], sort=False):
        part = part.sort_values("step")
        if list(part["step"]) != list(range(int(part["n_steps"].iloc[0]))):
            raise ValueError(f"to_labelled: question {qid} sample {part['sample'].iloc[0]} has steps "
                             f"{list(part['step'])}, expected 0..{int(part['n_steps'].iloc[0]) - 1}")
        if kind == "outcome":
            labels = [None] * (len(part) - 1) + [float(part["final_correct"].iloc[-1])]
        else:
            labels = [float(x) for x in part[kind]]
        first = part.iloc[0]
        out.append(LabelledSolution(str(qid), first["question"], first["solution"], tuple(labels)))
    return out


def label_agreement(frame: pd.DataFrame) -> dict:
    """How often Monte-Carlo labels agree with the oracle's step labels (rows with an oracle).

    Keys (fractions; NaN when a subset is empty): ``hard``/``soft`` over all steps, ``*_incorrect``
    over steps of wrong-answer solutions, ``*_rolled`` over steps that got rollouts (the only ones
    where MC can disagree with itself), ``*_false_right`` = share of oracle-wrong steps labelled
    right, ``*_false_wrong`` = share of oracle-right steps labelled wrong, and the row counts.
    Soft labels count as "right" when >= SOFT_THRESHOLD.
    """
    f = frame[frame["oracle"].notna()]
    oracle = f["oracle"].to_numpy(dtype=float) == 1.0
    calls = {"hard": f["hard"].to_numpy(dtype=bool), "soft": f["soft"].to_numpy(dtype=float) >= SOFT_THRESHOLD}
    subsets = {"": np.ones(len(f), bool), "_incorrect": ~f["final_correct"].to_numpy(dtype=bool),
               "_rolled": f["rollouts"].to_numpy() > 0}
    out: dict[str, float] = {f"steps{k}": int(m.sum()) for k, m in subsets.items()}
    for name, call in calls.items():
        for suffix, m in subsets.items():
            out[f"{name}{suffix}"] = float((call[m] == oracle[m]).mean()) if m.any() else math.nan
        out[f"{name}_false_right"] = float(call[~oracle].mean()) if (~oracle).any() else math.nan
        out[f"{name}_false_wrong"] = float((~call[oracle]).mean()) if oracle.any() else math.nan
    return out
