"""Shards on Ray (models.ray_workers): the same rows as the local executor whatever the number of
workers, a worker killed in the middle of a shard retried by Ray without changing a row or writing a
shard twice, models sent as the call that loads them (never their weights), and a Ray that cannot
start or is not installed named as such, with ``executor: local``. One local Ray session with 2 CPUs
serves the module (starting Ray takes seconds)."""

from __future__ import annotations

import copy
import logging
import os
import pickle
import signal
import sys
from pathlib import Path

import pandas as pd
import pytest
import ray

from ttc_lib.generation.generator import Generator
from ttc_lib.models import ray_workers
from ttc_lib.models.ray_workers import Reload, rebuilt, shippable
from ttc_lib.models.workers import EXECUTOR_ENV, executor, run_tasks
from ttc_lib.search.grid import grid, run_jobs
from ttc_lib.search.pool import sample_pool
from ttc_lib.storage import ResultCache
from ttc_lib.verifiers.hash_verifier import HashVerifier

MAX_NEW = 40


def square(x: int, offset: int = 0) -> int:
    return x * x + offset


def fail_on_two(x: int, offset: int = 0) -> int:
    if x == 2:
        raise ValueError("task two fails")
    return x


class KillsItsWorkerOnce(HashVerifier):
    """HashVerifier's scores (and identity); the first ``score`` call in a process other than the
    test's own kills that process, in the middle of its shard (after sampling, before scoring)."""

    def __init__(self, marker: Path) -> None:
        super().__init__()
        self.marker, self.driver = marker, os.getpid()

    def score(self, questions, solutions):
        if os.getpid() != self.driver and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().score(questions, solutions)


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import tests/
    yield
    ray.shutdown()


@pytest.fixture
def on_ray(ray_session, monkeypatch):
    monkeypatch.setenv(EXECUTOR_ENV, "ray")


@pytest.fixture
def policy(trained_policy, one_thread):
    path, problems = trained_policy
    return Generator.from_pretrained(path, device="cpu"), list(problems)


def process_id(x: int) -> int:
    return os.getpid()


def test_shards_on_ray_agree_with_the_serial_loop_and_a_failing_shard_is_raised_here(on_ray):
    tasks = [{"x": i} for i in range(5)]
    assert executor() == "ray"
    assert dict(run_tasks(square, tasks, {"offset": 1}, workers=2)) == {i: i * i + 1 for i in range(5)}
    first, second = (set(dict(run_tasks(process_id, tasks, {}, workers=2)).values()) for _ in range(2))
    assert os.getpid() not in first and second <= first  # the same models: the same actors, kept between calls
    ray_workers.stop_ray()  # what a finished stage calls: it stops only a Ray it started, not this one
    assert ray.is_initialized()
    with pytest.raises(ValueError, match="task two fails"):
        list(run_tasks(fail_on_two, [{"x": i} for i in range(4)], {}, workers=2))


def test_a_model_travels_as_its_load_call_never_its_weights(policy):
    gen, _ = policy
    verifier = HashVerifier()
    sent = shippable({"generator": gen, "verifiers": {"a": (verifier, True), "b": (gen, False)}})
    assert isinstance(sent["generator"], Reload) and sent["verifiers"]["b"][0] is sent["generator"]
    assert sent["verifiers"]["a"][0] is verifier  # built in memory: sent as it is
    weights = sum(p.numel() * p.element_size() for p in gen.model.parameters())
    assert len(pickle.dumps(sent)) < min(10_000, weights / 10)
    back = rebuilt(pickle.loads(pickle.dumps(sent)))
    assert back["generator"] is back["verifiers"]["b"][0]  # loaded once
    assert back["generator"].identity == gen.identity and back["generator"].device == gen.device


def test_pool_and_search_rows_on_ray_equal_the_local_ones(policy, on_ray, monkeypatch, tmp_path):
    gen, problems = policy
    jobs, _ = grid([{"strategy": "beam", "width": 2}, {"strategy": "dvts", "width": 2}], [4], [0, 1])
    pools, searches = [], []
    for name, workers in (("local", 1), ("ray", 2)):
        monkeypatch.setenv(EXECUTOR_ENV, name)
        cache = ResultCache(tmp_path / f"pool-{name}.jsonl")
        pools.append(sample_pool(gen, HashVerifier(), problems, 3, max_new_tokens=MAX_NEW, cache=cache,
                                 rows_per_call=3, progress=False, workers=workers))
        cache.close()
        cache = ResultCache(tmp_path / f"search-{name}.jsonl")
        searches.append(run_jobs(jobs, gen, HashVerifier(), problems, max_new_tokens=MAX_NEW, cache=cache,
                                 progress=False, workers=workers))
        cache.close()
    pd.testing.assert_frame_equal(pools[0], pools[1])
    pd.testing.assert_frame_equal(searches[0], searches[1])
    assert pools[1].attrs["timing"]["samples"] == 3 * len(problems)  # drawn on Ray, not read from a cache
    assert len(ResultCache(tmp_path / "search-ray.jsonl")) == len(jobs)


def test_a_worker_killed_mid_shard_is_retried_and_the_rows_are_those_of_an_undisturbed_run(policy, on_ray,
                                                                                           monkeypatch, tmp_path):
    gen, problems = policy
    jobs, _ = grid([{"strategy": "beam", "width": 2}, {"strategy": "best_of_n"}], [4], [0, 1])
    run = dict(max_new_tokens=MAX_NEW, progress=False)
    monkeypatch.setenv(EXECUTOR_ENV, "local")
    undisturbed = run_jobs(jobs, gen, HashVerifier(), problems, **run)
    monkeypatch.setenv(EXECUTOR_ENV, "ray")
    marker, path = tmp_path / "killed", tmp_path / "search.jsonl"
    in_memory = copy.copy(gen)  # sent with its weights: through the object store, which a restart reads again
    del in_memory.reload_call
    assert len(pickle.dumps(shippable({"generator": in_memory}))) >= ray_workers.INLINE_BYTES
    cache = ResultCache(path)
    killed = run_jobs(jobs, in_memory, KillsItsWorkerOnce(marker), problems, cache=cache, workers=2, **run)
    cache.close()
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker really died mid-shard
    pd.testing.assert_frame_equal(killed, undisturbed)
    assert len(path.read_text().splitlines()) == len(jobs)  # every shard written once: none computed twice
    cache = ResultCache(path)  # a rerun reads every finished shard from the cache
    again = run_jobs(jobs, gen, HashVerifier(), problems, cache=cache, workers=2, **run)
    cache.close()
    pd.testing.assert_frame_equal(again, undisturbed)
    assert len(path.read_text().splitlines()) == len(jobs)


def test_a_ray_that_cannot_start_says_so_and_names_executor_local(monkeypatch):
    monkeypatch.setenv(EXECUTOR_ENV, "ray")
    monkeypatch.setenv("RAY_ADDRESS", "10.255.255.1:6379")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)

    def refuse(*args, **kwargs):
        raise ConnectionError("could not reach the GCS")

    monkeypatch.setattr(ray, "init", refuse)
    assert dict(run_tasks(square, [{"x": 1}, {"x": 2}], {}, workers=1)) == {0: 1, 1: 4}  # one worker: here, no Ray
    with pytest.raises(RuntimeError, match=r"executor: ray failed joining the cluster at RAY_ADDRESS=10.255.255.1:6379: "
                                           r"ConnectionError: could not reach the GCS; run it with executor: local"):
        list(run_tasks(square, [{"x": 1}, {"x": 2}], {}, workers=2))
    monkeypatch.setitem(sys.modules, "ray", None)  # not installed
    with pytest.raises(RuntimeError, match=r'needs the ray package .*pip install -e "\.\[ray\]".*executor: local'):
        ray_workers.start_ray()


def test_a_cluster_refusing_a_missing_token_is_named_with_ray_auth_mode(monkeypatch):
    monkeypatch.setenv(EXECUTOR_ENV, "ray")
    monkeypatch.setenv("RAY_ADDRESS", "10.255.255.1:6379")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)

    def refuse(*args, **kwargs):  # what ray.init raises when the cluster wants a token it was not sent
        try:
            raise ray.exceptions.AuthenticationError("RPC error: InvalidAuthToken: token is missing")
        except ray.exceptions.AuthenticationError as err:
            raise ConnectionError("Failed to connect to Ray cluster at 10.255.255.1:6379") from err

    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(RuntimeError, match=r"RAY_ADDRESS=10.255.255.1:6379: ConnectionError: .*token authentication"
                                           r".*RAY_AUTH_MODE=token.*RAY_AUTH_TOKEN.*executor: local"):
        list(run_tasks(square, [{"x": 1}, {"x": 2}], {}, workers=2))
    assert not ray_workers.token_refused(ConnectionError("could not reach the GCS"))


@pytest.mark.parametrize("bad", ["spark", "Ray"])
def test_an_unknown_executor_is_refused_naming_the_variable(monkeypatch, bad):
    monkeypatch.setenv(EXECUTOR_ENV, bad)
    with pytest.raises(ValueError, match=rf"TTC_EXECUTOR='{bad}' is not an executor: use one of \['local', 'ray'\]"):
        list(run_tasks(square, [{"x": 1}], {}))
