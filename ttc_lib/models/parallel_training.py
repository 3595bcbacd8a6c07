"""Independent training jobs side by side, each in its own single-thread process.

Why: on 2 cores two single-thread jobs side by side train faster than one two-thread job, because
the small model's kernels are too small to use two threads well. A job
is a list of train_model calls run in order (e.g. the policy, then the verifier backbone that
continues it), so dependent runs share a process and independent ones run in parallel. Progress
from every job is drawn in the calling process, so it shows in a Jupyter cell.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from ttc_lib.models.checkpoints import ModelSpec, get_spec
from ttc_lib.models.train_config import TrainConfig
from ttc_lib.models.training import tqdm_disabled, train_model


def train_many(jobs: list[dict | list[dict]], parallel: bool = True,
               max_workers: int | None = None) -> list[dict]:
    """Run training jobs; return one record per train_model call, in the order given.

    A job is a dict of train_model keyword arguments, or a list of them run in order (e.g. the
    small policy, then the verifier backbone continued from it with ``init_from``). With
    ``parallel`` each job runs in its own spawned process with one torch thread (unless its
    config sets num_threads); progress from all jobs is shown here, in the calling process, so it
    appears in a Jupyter cell. ``max_workers`` defaults to min(jobs, CPU cores): more single-thread
    workers than cores only share them.
    """
    jobs = [[j] if isinstance(j, dict) else list(j) for j in jobs]
    if not parallel or len(jobs) == 1:
        return [train_model(**call) for job in jobs for call in job]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    ctx = mp.get_context("spawn")  # fork is unsafe with torch threads and inside Jupyter kernels
    with ctx.Manager() as manager, ProcessPoolExecutor(
            max_workers or min(len(jobs), _cores()), mp_context=ctx) as pool:
        queue = manager.Queue()
        futures = [pool.submit(_run_job, i, job, queue, os.getpid()) for i, job in enumerate(jobs)]
        bars: dict[tuple[int, int], Any] = {}
        while not all(f.done() for f in futures) or not queue.empty():
            try:
                info = queue.get(timeout=0.5)
            except Exception:  # queue.Empty through the manager proxy
                continue
            key = (info["job"], info["call"])
            if key not in bars:
                bars[key] = tqdm(total=info["total"], desc=info["desc"], position=len(bars), leave=True,
                                 disable=tqdm_disabled())
            bars[key].n = info["step"]
            bars[key].set_postfix(loss=f"{info['loss']:.3f}", refresh=True)
        for bar in bars.values():
            bar.close()
        return [record for f in futures for record in f.result()]


PARENT_POLL_SECONDS = 1.0  # how often a worker checks that the process that started it is alive


def exit_with_parent(parent: int, poll: float = PARENT_POLL_SECONDS) -> threading.Thread:
    """Make this process exit as soon as ``parent`` is no longer its parent (it died: the process was
    handed to another). Why: a notebook kernel killed while training leaves its workers training on,
    and they would write checkpoints into the folder a rerun is writing too. Returns the watcher
    (a daemon thread)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os._exit(1)

    watcher = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    watcher.start()
    return watcher


def _run_job(index: int, calls: list[dict], queue: Any, parent: int | None = None) -> list[dict]:
    """One job in a worker process: its train_model calls in order, single-threaded by default; the
    worker stops if ``parent`` (the process that submitted the job) dies."""
    import torch

    if parent is not None:
        exit_with_parent(parent)
    torch.set_num_threads(1)
    records = []
    for c, call in enumerate(calls):
        config = call["config"] if isinstance(call["config"], TrainConfig) else TrainConfig(**call["config"])
        spec = call.get("spec_or_model")
        name = get_spec(spec).name if isinstance(spec, (str, ModelSpec)) else "model"
        desc = f"{name} -> {Path(call['out_dir']).name}"

        def report(info: dict, c: int = c, desc: str = desc, total: int = config.steps) -> None:
            if info["step"] % 10 == 0 or info["step"] == total:
                queue.put({"job": index, "call": c, "total": total, "desc": desc, **info})

        records.append(train_model(**{**call, "progress": False, "callback": report}))
    return records


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use, not the host's
    except AttributeError:
        return os.cpu_count() or 1
