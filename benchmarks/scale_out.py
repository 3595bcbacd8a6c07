"""Speed-up of 2 workers over one process on the same work — notebook 03's sample pool and notebook
04's search grid — with each executor, in one run.

    nice -n 10 .venv/bin/python benchmarks/scale_out.py [--profile cpu] [--pool-questions 48]
        [--samples 32] [--grid-questions 16] [--budget 16]

Models: the profile's policy and the verifier notebook 02 chose (data/runs/<profile>/, or
TTC_RUNS_DIR), else the fallback of benchmarks/search.py (a throw-away policy of the cpu profile's
size, "small", trained for --train-steps, scored by a likelihood PRM on its own weights). Every
executor does the same work from no cache: the pool (--samples per question of --pool-questions,
--rows-per-call rows per chunk, as 03 draws it), then the grid (beam width 4 and DVTS width 4 at
N = --budget, seeds 0 and 1, on --grid-questions), and its rows must equal the first executor's.

Executors: ``local`` with 1 worker (this process, one torch thread), ``local`` with 2 (two
single-thread processes), ``ray`` with 2 (two actors on a Ray started here). Before the pool, each
runs one empty task per worker with the same models and that call is timed as "start": for ``local``
x 2 it is what every loop pays (spawn two processes, import torch, unpickle the models); for ``ray``
x 2 what a stage pays once (start two actors, load the models), since the actors then serve the pool
and the grid. Ray's own start is timed apart (once per stage). Printed last: the speed-ups over
``local`` x 1 of the loops alone and of a stage's worth (loops + what it pays once), and which
executor with 2 workers is faster.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from search import load_models  # noqa: E402  (benchmarks/search.py: the profile's models or the fallback)

from ttc_lib.generation.pass_at_1 import max_new_tokens_for  # noqa: E402
from ttc_lib.models.ray_workers import start_ray  # noqa: E402
from ttc_lib.models.workers import EXECUTOR_ENV, run_tasks  # noqa: E402
from ttc_lib.pipeline.runs import runs_root  # noqa: E402
from ttc_lib.search.grid import grid, run_jobs  # noqa: E402
from ttc_lib.search.pool import sample_pool  # noqa: E402

EXECUTORS = [("local", 1), ("local", 2), ("ray", 2)]  # (executor, workers); the first is the reference


def empty_task(**models) -> None:
    """A task that does nothing: what starting the workers with these models costs."""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="cpu", help="runs profile whose 00-03 artifacts to use")
    p.add_argument("--pool-questions", type=int, default=48, help="questions of the pool (03)")
    p.add_argument("--samples", type=int, default=32, help="samples per pool question (03's n_samples)")
    p.add_argument("--rows-per-call", type=int, default=256, help="pool rows per chunk (sample_pool)")
    p.add_argument("--grid-questions", type=int, default=16, help="questions of the search grid (04)")
    p.add_argument("--budget", type=int, default=16, help="N of every grid job")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-steps", type=int, default=300, help="fallback policy training steps")
    p.add_argument("--work-dir", default=str(Path(tempfile.gettempdir()) / "ttc-bench-search"))
    return p.parse_args()


def max_new_tokens(args: argparse.Namespace, gen, problems) -> int:
    """03's recorded length budget for the profile, else one fitted to the questions' references."""
    summary = runs_root() / args.profile / "03_difficulty_bins" / "summary.json"
    if summary.exists():
        return int(json.loads(summary.read_text())["max_new_tokens"])
    return max_new_tokens_for(problems, gen.tokenizer)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)  # one thread per worker, here too
    args.questions = max(args.pool_questions, args.grid_questions)  # what load_models reads
    gen, verifier, problems, source = load_models(args)
    max_new = max_new_tokens(args, gen, problems)
    jobs, _ = grid([{"strategy": "beam", "width": 4}, {"strategy": "dvts", "width": 4}], [args.budget], [0, 1])
    print(f"models: {source}\npool: {args.pool_questions} questions x {args.samples} samples; grid: {len(jobs)} jobs "
          f"(beam, DVTS, N={args.budget}, 2 seeds) on {args.grid_questions} questions; max_new_tokens={max_new}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    start = time.perf_counter()
    start_ray()
    ray_start = time.perf_counter() - start
    print(f"ray start: {ray_start:.1f} s (once per stage; not in the times below)")
    seconds, started, reference = {}, {}, None
    models = {"generator": gen, "verifier": verifier}
    for name, workers in EXECUTORS:
        os.environ[EXECUTOR_ENV] = name
        t0 = time.perf_counter()
        list(run_tasks(empty_task, [{}] * workers, models, workers))
        started[name, workers] = time.perf_counter() - t0
        t0 = time.perf_counter()
        pool = sample_pool(gen, verifier, problems[:args.pool_questions], args.samples, max_new_tokens=max_new,
                           seed=args.seed, rows_per_call=args.rows_per_call, progress=False, workers=workers)
        t1 = time.perf_counter()
        search = run_jobs(jobs, gen, verifier, problems[:args.grid_questions], max_new_tokens=max_new,
                          progress=False, workers=workers)
        seconds[name, workers] = (t1 - t0, time.perf_counter() - t1)
        checked = "the reference rows"
        if reference is None:
            reference = (pool, search)
        else:  # the same rows whatever the executor
            pd.testing.assert_frame_equal(pool, reference[0])
            pd.testing.assert_frame_equal(search, reference[1])
            checked = "rows equal to local x1"
        print(f"{name:5s} x{workers}: start {started[name, workers]:5.1f} s  pool {seconds[name, workers][0]:7.1f} s  "
              f"grid {seconds[name, workers][1]:7.1f} s  ({checked})")
    base = sum(seconds[EXECUTORS[0]])
    for name, workers in EXECUTORS[1:]:
        pool_s, grid_s = seconds[name, workers]
        once = ray_start + started[name, workers] if name == "ray" else 0.0  # local x2 pays its start in every loop
        print(f"speed-up of {name} x{workers} over local x1: pool {seconds[EXECUTORS[0]][0] / pool_s:.2f}x  "
              f"grid {seconds[EXECUTORS[0]][1] / grid_s:.2f}x  both {base / (pool_s + grid_s):.2f}x  "
              f"stage (+ {once:.1f} s paid once) {base / (pool_s + grid_s + once):.2f}x")
    stage = {n: sum(seconds[n, 2]) + (ray_start + started[n, 2] if n == "ray" else 0.0) for n in ("local", "ray")}
    print(f"faster with 2 workers: {min(stage, key=stage.get)} (a stage's pool + grid: local {stage['local']:.1f} s, "
          f"ray {stage['ray']:.1f} s with its starts)")


if __name__ == "__main__":
    main()
