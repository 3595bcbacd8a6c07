"""The Ray executor: a stage's independent pieces of work as shards on Ray actors, on the cores of
one machine or the GPUs of a cluster (``workers.run_tasks`` chooses it with ``executor: ray``).

Rules
-----
* Start: a Ray session already started in this process is used as it is (a test's, a user's own
  ``ray.init``). Otherwise ``RAY_ADDRESS`` (the run setting ``ray_address`` sets it) joins that
  cluster, and the ``ttc_lib`` code of this process goes with the job (Ray's ``py_modules``);
  without it Ray starts on this machine's cores: no cluster set-up. Ray sends its token to a cluster
  named by an address only with ``RAY_AUTH_MODE=token``: a join that the cluster refuses for want of
  it says so (``TOKEN_HINT``). A session started here is
  stopped when the stage writes its summary (``stop_ray``), or when the process ends, never left running. A Ray that cannot be
  imported or started is a RuntimeError that says why and names ``executor: local``.
* Workers: ``min(workers, tasks, capacity)`` actors, capacity being the cluster's CPUs, or its GPUs
  when the stage's models are on a GPU: each actor then asks for one GPU and holds its own copy of
  the models there. One torch thread per actor. An actor runs one shard at a time and gets the next
  as soon as it is free; results come back in completion order. The actors of a call that finished
  are kept, idle, for the next call with the same models and count (a stage runs its pool and its
  grids on the same models: they load once); another call stops them first.
* What moves: a model that knows how it was loaded (``reload_call``: ``Generator.from_pretrained``,
  ``verifiers.kinds.load_verifier``, a picklable call naming its path and options) travels as that
  call and is loaded again by each actor on its own device — paths, config and ids, never weights.
  A model built in memory (a test's, ``HashVerifier``) travels pickled, once per session (Ray's
  object store). Tasks are small (question records, job settings); results are rows.
* Faults: an actor whose process dies (killed, node lost) is restarted by Ray and its shard is run
  again (``RETRIES`` times); the shard's result reaches the caller once, and the caller caches it
  as it arrives, so a shard is never computed twice to completion and a rerun reads finished shards
  from the cache. An exception raised by the task itself is raised here, and no more shards start.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
from collections import deque
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

RETRIES = 3  # times Ray restarts a dead actor and runs its shard again before the stage fails
INLINE_BYTES = 100_000  # a pickled payload this large goes to Ray's object store once, not into every actor
THREADS = 1  # torch threads per actor: tiny models use two threads badly, and the cores go to actors
LOCAL_HINT = ('run it with executor: local instead (--set executor=local, or executor: local in the '
              "profile's common section)")
TOKEN_HINT = ("the cluster asks for Ray's token authentication, which Ray uses for a cluster named by an address "
              "only when told to: run with RAY_AUTH_MODE=token and the cluster's token in ~/.ray/auth_token or "
              "RAY_AUTH_TOKEN (`ray get-auth-token` on the head node prints it)")


@dataclass(frozen=True)
class Reload:
    """A model sent as the call that loads it (module rules, "What moves")."""

    call: Callable[[], Any]


def reloadable(model: Any, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``model`` with ``reload_call`` = ``call(*args, **kwargs)`` deferred: how a worker loads it again.
    The arguments name paths and options (a device as asked for: "auto" or "cuda" is a worker's own GPU)."""
    model.reload_call = partial(call, *args, **kwargs)
    return model


def ray_module():
    """The ``ray`` module, or a RuntimeError saying how to install it and naming ``executor: local``."""
    try:
        import ray
    except ImportError as err:
        raise RuntimeError(f'executor: ray needs the ray package ({err}): pip install -e ".[ray]" '
                           f"(make test installs it); or {LOCAL_HINT}") from None
    return ray


def start_ray():
    """The ``ray`` module with a session running (module rules, "Start")."""
    ray = ray_module()
    if ray.is_initialized():
        return ray
    address = os.environ.get("RAY_ADDRESS", "").strip()
    quiet = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address:
            package = Path(__file__).resolve().parents[1]  # ttc_lib: the workers run this very code
            ray.init(address=address, runtime_env={"py_modules": [str(package)]}, **quiet)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, **quiet)
    except Exception as err:  # any failure to start or join: say so, and how to run without Ray
        where = f"joining the cluster at RAY_ADDRESS={address}" if address else "starting Ray on this machine"
        token = f"{TOKEN_HINT}; or " if address and token_refused(err) else ""
        raise RuntimeError(f"executor: ray failed {where}: {type(err).__name__}: {err}; {token}{LOCAL_HINT}") from err
    _STARTED.append(True)
    atexit.register(stop_ray)  # started here: stopped when the stage's process ends, at the latest
    return ray


def token_refused(err: BaseException) -> bool:
    """Whether ``err`` or an exception behind it (``__cause__``, ``__context__``) is the cluster refusing
    a missing or wrong token: Ray's ``AuthenticationError``, or its gRPC ``InvalidAuthToken`` text
    (Ray wraps it in a ConnectionError whose own message names only the address)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if type(err).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(err):
            return True
        err = err.__cause__ or err.__context__
    return False


_STARTED: list[bool] = []  # non-empty while a Ray session started by start_ray runs


def stop_ray() -> None:
    """Stop the Ray session ``start_ray`` started in this process, if any (a session it found running
    is left alone); the actors kept for the next call go with it. ``runs.Stage.write_summary`` calls
    it: a finished stage's kernel then exits at once, never killed mid-shutdown."""
    if _STARTED:
        import ray

        _KEPT.clear()
        ray.shutdown()
        _STARTED.clear()


def shippable(obj: Any, memo: dict[int, Reload] | None = None) -> Any:
    """``obj`` (models, possibly in dicts, lists, tuples) with every model that has a ``reload_call``
    replaced by a ``Reload`` of it; the same model twice becomes the same Reload."""
    memo = {} if memo is None else memo
    if isinstance(obj, dict):
        return {k: shippable(v, memo) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(shippable(v, memo) for v in obj)
    call = getattr(obj, "reload_call", None)
    if callable(call):
        return memo.setdefault(id(obj), Reload(call))
    return obj


def rebuilt(obj: Any, memo: dict[int, Any] | None = None) -> Any:
    """The inverse of ``shippable`` in a worker: each ``Reload`` called once, its model shared."""
    memo = {} if memo is None else memo
    if isinstance(obj, dict):
        return {k: rebuilt(v, memo) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(rebuilt(v, memo) for v in obj)
    if isinstance(obj, Reload):
        if id(obj) not in memo:
            memo[id(obj)] = obj.call()
        return memo[id(obj)]
    return obj


def on_gpu(obj: Any) -> bool:
    """Whether any model in ``obj`` (dicts, lists, tuples) sits on a CUDA device."""
    if isinstance(obj, dict):
        return any(on_gpu(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(on_gpu(v) for v in obj)
    return str(getattr(obj, "device", "")).startswith("cuda")


class ShardWorker:
    """A Ray actor: the models, loaded once, and one shard at a time."""

    def __init__(self, payload: Any) -> None:
        import torch

        torch.set_num_threads(THREADS)
        self.models = rebuilt(payload)

    def run(self, fn: Callable[..., Any], task: dict[str, Any]) -> Any:
        return fn(**self.models, **task)


@lru_cache(maxsize=None)
def _actor_class():
    return ray_module().remote(ShardWorker)


_KEPT: dict[str, Any] = {}  # the last call that finished cleanly: {"key", "actors", "payload": as sent}


def _actors(ray, key: str, payload: Any, size: int, count: int, options: dict[str, Any]) -> tuple[Any, list]:
    """(``payload`` as sent, ``count`` actors holding its models): the last call's when its ``key`` is
    this one (the same session, models, count and options), else new ones (the old ones stopped: they
    hold cores). A payload of ``INLINE_BYTES`` or more goes to the object store once; that ref must
    outlive the actors, since Ray restarts a dead actor from it. A smaller one (models sent as their
    load calls) travels inside each actor's creation."""
    if _KEPT.get("key") == key:
        return _KEPT.pop("payload"), _KEPT.pop("actors")
    _stop(ray, _KEPT.pop("actors", []))
    _KEPT.clear()
    sent = ray.put(payload) if size >= INLINE_BYTES else payload
    return sent, [_actor_class().options(**options).remote(sent) for _ in range(count)]


def _stop(ray, actors: list) -> None:
    for actor in actors:
        ray.kill(actor)


def run_on_ray(fn: Callable[..., Any], tasks: Sequence[dict[str, Any]], models: dict[str, Any],
               workers: int) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, fn(**models, **tasks[index]))`` for every task, run as shards on Ray actors
    (module rules), in completion order."""
    ray = start_ray()
    gpu = on_gpu(models)
    kind = "GPU" if gpu else "CPU"
    capacity = int(ray.cluster_resources().get(kind, 0))
    if capacity < 1:
        raise RuntimeError(f"executor: ray: the stage's models are on a {kind} but the Ray cluster has no "
                           f"{kind} (resources: {ray.cluster_resources()}); {LOCAL_HINT}")
    options = {"num_cpus": 0 if gpu else 1, "num_gpus": 1 if gpu else 0,
               "max_restarts": RETRIES, "max_task_retries": RETRIES}
    payload, count = shippable(models), min(workers, len(tasks), capacity)
    blob = ray.cloudpickle.dumps(payload)
    key = hashlib.sha256(blob + repr((ray.get_runtime_context().get_job_id(), count, options)).encode()).hexdigest()
    sent, actors = _actors(ray, key, payload, len(blob), count, options)
    waiting, running, finished = deque(range(len(tasks))), {}, False

    def give(actor) -> None:
        if waiting:
            index = waiting.popleft()
            running[actor.run.remote(fn, tasks[index])] = (index, actor)

    try:
        for actor in actors:
            give(actor)
        while running:
            [done], _ = ray.wait(list(running), num_returns=1)
            index, actor = running.pop(done)
            try:
                result = ray.get(done)
            except ray.exceptions.RayActorError as err:
                raise RuntimeError(f"executor: ray: shard {index} lost its worker {RETRIES + 1} times "
                                   f"({type(err).__name__}: {err}); its finished shards are cached: run the "
                                   f"stage again, or {LOCAL_HINT}") from err
            give(actor)
            yield index, result
        finished = True
    finally:
        if finished:  # idle, models loaded: the next call with the same models starts at once
            _KEPT.update(key=key, actors=actors, payload=sent)
        else:  # an error, or the caller stopped early: shards may still be running
            _stop(ray, actors)
