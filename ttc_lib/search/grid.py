"""Run a grid of search configurations × budgets × seeds into one results table, resumably.

Rules
-----
* A spec is a dict ``{"strategy": name, **config}`` (e.g. ``{"strategy": "beam", "width": 4,
  "lookahead": 1}``); ``grid`` crosses specs with budgets and seeds into ``Job``s, in that order,
  and leaves out the jobs a strategy cannot run: lookahead k needs a budget of at least k+1
  generations (``skipped`` lists them with the reason).
* ``run_jobs`` runs every job on the same problems through ``search.run_strategy`` (beam,
  lookahead and DVTS are run separately at each budget: their runs are not prefixes of each
  other) and flattens the results with ``search.results_table`` (RESULT_COLUMNS). Each finished
  job is one record of a ``storage.ResultCache`` keyed by the job, the question set's content
  (``question_tag``: ids, texts and reference answers), the generator's and verifier's
  ``identity`` (not their paths: a retrained model keeps its path), the sampling knobs and the
  aggregation rule (``job_key``), so a killed run redoes at most the job in flight.
  ``df.attrs["seconds"]``: one record per job, {method, budget, seed, seconds} (wall seconds; cached
  jobs keep their first run's time).
* ``pool_jobs`` evaluates best-of-N from notebook 03's pool (``search.best_of_n.from_pool``) at
  each budget and selection, ``n_subsets`` random subsets each (their index in ``seed``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd
from tqdm.auto import tqdm

from ttc_lib.models.identity import identity_of
from ttc_lib.models.workers import forget_history, run_tasks
from ttc_lib.search import run_strategy
from ttc_lib.search.best_of_n import from_pool
from ttc_lib.search.common import RESULT_COLUMNS, config_key, results_table
from ttc_lib.storage import ResultCache, key_digest
from ttc_lib.tasks.problem import Problem, content_id
from ttc_lib.verifiers.base import Verifier


@dataclass(frozen=True)
class Job:
    strategy: str
    config: tuple[tuple[str, Any], ...]  # sorted (key, value) pairs
    budget: int
    seed: int

    @property
    def config_dict(self) -> dict:
        return dict(self.config)

    def key(self, tag: str = "") -> str:
        return f"{self.strategy}[{config_key(self.config_dict)}]|N={self.budget}|seed={self.seed}|{tag}"


def _check_spec(spec: Any) -> tuple[str, dict]:
    if not isinstance(spec, dict) or not isinstance(spec.get("strategy"), str):
        raise ValueError(f"a search spec must be a dict with a 'strategy' name, got {spec!r}")
    return spec["strategy"], {k: v for k, v in spec.items() if k != "strategy"}


def grid(specs: Sequence[dict], budgets: Sequence[int], seeds: Sequence[int]) -> tuple[list[Job], list[str]]:
    """(jobs, skipped): every feasible (spec, budget, seed), and why the others were left out."""
    bad = [b for b in budgets if isinstance(b, bool) or not isinstance(b, int) or b < 1]
    if bad:
        raise ValueError(f"budgets must be positive ints, got {bad}")
    jobs, skipped = [], []
    for spec in specs:
        name, config = _check_spec(spec)
        for budget in budgets:
            k = config.get("lookahead", 0) if name == "beam" else 0
            if budget < k + 1:
                skipped.append(f"{name}[{config_key(config)}] at N={budget}: lookahead {k} needs N >= {k + 1}")
                continue
            jobs.extend(Job(name, tuple(sorted(config.items())), int(budget), int(s)) for s in seeds)
    return jobs, skipped


def question_tag(problems: Sequence[Problem]) -> str:
    """A short fingerprint of a question set's ids and content (question text, reference answer)."""
    return f"{len(problems)}q-{key_digest([(p.id, content_id(p)) for p in problems])[:8]}"


def job_key(job: Job, generator, verifier: Verifier | None, problems: Sequence[Problem], *, max_new_tokens: int,
            temperature: float, aggregate: str) -> str:
    """``job.key`` followed by the question set (``question_tag``) and a digest of the models'
    identities and the knobs every job shares: all its results depend on."""
    shared = key_digest(identity_of(generator), identity_of(verifier), temperature, max_new_tokens, aggregate)
    return job.key(f"{question_tag(problems)}|{shared}")


def run_jobs(jobs: Sequence[Job], generator, verifier: Verifier | None, problems: Sequence[Problem], *,
             max_new_tokens: int, temperature: float = 1.0, cache: ResultCache | None = None,
             progress: bool = True, aggregate: str = "last", workers: int = 1) -> pd.DataFrame:
    """RESULT_COLUMNS rows of every job (module rules); ``aggregate``: how every strategy turns step
    scores into a score (search.common). ``df.attrs["seconds"]``: {method, budget, seed, seconds}
    per job, method = "strategy[config]". ``workers`` > 1 runs the uncached jobs in that many
    single-thread processes (``models.workers``; each job is seeded by its own seed, so the rows are
    the same), caching each job as it finishes."""
    problems = list(problems)
    keys = [job_key(job, generator, verifier, problems, max_new_tokens=max_new_tokens, temperature=temperature,
                    aggregate=aggregate) for job in jobs]
    records = {i: cache.get(k) for i, k in enumerate(keys) if cache is not None and cache.get(k) is not None}
    todo = [i for i in range(len(jobs)) if i not in records]
    tasks = [{"job": jobs[i], "problems": problems, "max_new_tokens": max_new_tokens, "temperature": temperature,
              "aggregate": aggregate} for i in todo]
    bar = tqdm(total=len(jobs), initial=len(records), desc="search jobs", unit="job",
               **({} if progress else {"disable": True}))
    for t, record in run_tasks(_run_job, tasks, {"generator": generator, "verifier": verifier}, workers):
        records[todo[t]] = record
        if cache is not None:
            cache.put(keys[todo[t]], record)
        bar.update(1)
    bar.close()
    frames = [pd.DataFrame(records[i]["rows"], columns=RESULT_COLUMNS) for i in range(len(jobs))]
    seconds = [{"method": f"{job.strategy}[{config_key(job.config_dict)}]", "budget": job.budget, "seed": job.seed,
                "seconds": records[i]["seconds"]} for i, job in enumerate(jobs)]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RESULT_COLUMNS)
    out.attrs["seconds"] = seconds
    return out


def _run_job(generator, verifier: Verifier | None, job: Job, problems: list[Problem], max_new_tokens: int,
             temperature: float, aggregate: str) -> dict:
    """One job (a task of ``models.workers.run_tasks``): its result rows and seconds. It starts from the
    generator's fresh state (``Generator.forget``), so its rows do not depend on the jobs that ran before
    it in its process, nor on the number of workers."""
    forget_history(generator)
    start = time.perf_counter()
    results = run_strategy(job.strategy, generator, verifier, problems, job.budget, seed=job.seed,
                           temperature=temperature, max_new_tokens=max_new_tokens, progress=False,
                           aggregate=aggregate, **job.config_dict)
    table = results_table(results, {p.id: p.answer for p in problems})
    return {"rows": table.to_dict(orient="records"), "seconds": round(time.perf_counter() - start, 3)}


def pool_jobs(pool: pd.DataFrame, budgets: Sequence[int], selections: Sequence[str], *, n_subsets: int, seed: int,
              generator_params: int, verifier_params: int, references: dict[str, str]) -> pd.DataFrame:
    """Best-of-N from the pool at every (selection, budget): RESULT_COLUMNS rows."""
    largest = int(pool.groupby("question_id").size().min()) if len(pool) else 0
    too_big = [b for b in budgets if b > largest]
    if too_big:
        raise ValueError(f"best-of-N budgets {too_big} exceed the pool's {largest} samples per question "
                         f"(raise n_samples in notebook 03)")
    frames = [results_table(from_pool(pool, int(b), n_subsets, seed, sel, generator_params, verifier_params), references)
              for sel in selections for b in budgets]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RESULT_COLUMNS)
