"""Independent pieces of work (chunks of the sample pool, search-grid jobs, revision-sweep pieces,
label and greedy shards) run side by side: in single-thread worker processes on the local cores, or
as shards on Ray (``ray_workers``: every core of a laptop, every GPU of a cluster).

Why: the models of the embedded world are too small to use two torch threads well, so on a
2-core machine one process leaves a core idle; two single-thread workers on independent pieces
run ~2x as fast. A study at paper scale needs many GPUs: the same pieces go to Ray.

Rules
-----
* The executor is a run setting (``executor: local | ray`` in a profile's ``common`` section, or
  ``--set executor=ray``): the runner exports it to the stages as ``TTC_EXECUTOR`` (``EXECUTOR_ENV``)
  and ``run_tasks`` reads it there (``executor()``); unset means ``local``. A notebook stepped through
  in JupyterLab runs ``local`` unless its kernel was started with ``TTC_EXECUTOR=ray``.
* ``workers == 1`` (or one task), either executor: every task runs here, in order — exactly the serial
  loop (one worker elsewhere would only add its start; Ray is not started).
* ``local``, ``workers > 1``: a spawned pool of ``min(workers, tasks)`` processes (spawn: fork is unsafe
  with torch threads and inside Jupyter kernels), one torch thread each; each stops when the
  process that started it dies (``models.parallel_training.exit_with_parent``). The ``models``
  (e.g. the generator and verifier objects) are pickled once per worker, the tasks are small.
* ``ray``, ``workers > 1``: every task is a shard run by one of ``workers`` Ray actors (``ray_workers`` states its rules:
  start, retries, GPUs, what moves over the network).
* Results come back in completion order as ``(task index, result)``: the caller writes each to
  its result cache as it arrives, so an interrupted run keeps every finished task.
* A task's result must not depend on the process that ran it: samples are seeded per question
  and a search job by its own seed, so ``workers`` and ``executor`` change the wall time, never the numbers.
* Tasks that generate start from a Generator's fresh state (``forget_history``), in every process:
  in a worker (local or Ray) every task starts with ``forget_models``; the serial loop leaves that to
  the task (pool, grid and sweep pieces forget; label, greedy and solve() batches run as they always
  did, each on the state the batch before left, which can move a sampled token only at an exact
  near-tie, generation.generator's rule).
* ``fn`` must be a module-level function (it is pickled by name); it is called as
  ``fn(**models, **task)``.
* An exception in a task is raised here, and the tasks not yet started are cancelled.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any, Callable, Iterator, Sequence

from ttc_lib.models.parallel_training import exit_with_parent

EXECUTOR_ENV = "TTC_EXECUTOR"  # the environment variable the runner sets from the run setting ``executor``
EXECUTORS = ("local", "ray")  # local: this process or local worker processes; ray: shards on Ray (ray_workers)

_MODELS: dict[str, Any] = {}  # set in each worker process by _start_worker


def _start_worker(models: dict[str, Any], parent: int) -> None:
    import torch

    torch.set_num_threads(1)
    exit_with_parent(parent)
    _MODELS.update(models)


def _call(fn: Callable[..., Any], task: dict[str, Any]) -> Any:
    return fresh_call(fn, tuple(_MODELS), **_MODELS, **task)


def fresh_call(fn: Callable[..., Any], model_names: tuple[str, ...], **arguments: Any) -> Any:
    """``fn(**arguments)`` after ``forget_models`` of the arguments named in ``model_names``: how a
    worker (a local process or a Ray actor) runs each task."""
    forget_models([arguments[name] for name in model_names])
    return fn(**arguments)


def forget_history(generator: Any) -> None:
    """``generator.forget()`` when it has one (``generation.Generator``: its prefix store and decode
    buffers): a task's result must not depend on the tasks its process ran before."""
    forget = getattr(generator, "forget", None)
    if callable(forget):
        forget()


def forget_models(models: Any) -> None:
    """``forget_history`` of every model in ``models`` (dicts, lists, tuples of them): what a worker
    does before each task, so a shard never depends on the shards its process ran before."""
    if isinstance(models, dict):
        models = list(models.values())
    if isinstance(models, (list, tuple)):
        for model in models:
            forget_models(model)
    else:
        forget_history(models)


def check_workers(workers: Any) -> int:
    """``workers`` as an int >= 1, or a ValueError naming the parameter."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1 (1 runs everything in this process), got {workers!r}")
    return workers


def executor() -> str:
    """The executor the stages run with: ``TTC_EXECUTOR`` (module rules), ``local`` when unset; a
    ValueError names the variable and the executors otherwise."""
    name = os.environ.get(EXECUTOR_ENV, "").strip() or "local"
    if name not in EXECUTORS:
        raise ValueError(f"{EXECUTOR_ENV}={name!r} is not an executor: use one of {list(EXECUTORS)} "
                         f"(the run setting executor: in a profile's common section, or --set executor=...)")
    return name


def run_tasks(fn: Callable[..., Any], tasks: Sequence[dict[str, Any]], models: dict[str, Any],
              workers: int = 1) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, fn(**models, **tasks[index]))`` for every task (module rules)."""
    workers, name = check_workers(workers), executor()
    if workers == 1 or len(tasks) <= 1:
        for i, task in enumerate(tasks):
            yield i, fn(**models, **task)
        return
    if name == "ray":
        from ttc_lib.models.ray_workers import run_on_ray  # Ray is optional: imported only when chosen

        yield from run_on_ray(partial(fresh_call, fn, tuple(models)), tasks, models, workers)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(min(workers, len(tasks)), mp_context=mp.get_context("spawn"),
                               initializer=_start_worker, initargs=(models, os.getpid()))
    try:
        futures = {pool.submit(_call, fn, task): i for i, task in enumerate(tasks)}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
