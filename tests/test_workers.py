"""Work in single-thread worker processes (models.workers): the same pool and the same search rows
whatever the number of workers, each finished piece cached as it arrives, errors raised here."""

from __future__ import annotations

import pandas as pd
import pytest

from ttc_lib.generation.generator import Generator
from ttc_lib.models.workers import check_workers, run_tasks
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


def test_run_tasks_serial_and_in_workers_agree():
    tasks = [{"x": i} for i in range(5)]
    serial = dict(run_tasks(square, tasks, {"offset": 1}, workers=1))
    parallel = dict(run_tasks(square, tasks, {"offset": 1}, workers=2))
    assert serial == parallel == {i: i * i + 1 for i in range(5)}


def test_a_failing_task_is_raised_here():
    with pytest.raises(ValueError, match="task two fails"):
        list(run_tasks(fail_on_two, [{"x": i} for i in range(4)], {}, workers=2))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_workers_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        check_workers(bad)


@pytest.fixture
def policy(trained_policy, one_thread):
    path, problems = trained_policy
    return Generator.from_pretrained(path, device="cpu"), list(problems)


def test_pool_and_search_rows_do_not_depend_on_workers(policy, tmp_path):
    gen, problems = policy
    pools, searches = [], []
    for workers in (1, 2):
        cache = ResultCache(tmp_path / f"pool{workers}.jsonl")
        pools.append(sample_pool(gen, HashVerifier(), problems, 3, max_new_tokens=MAX_NEW, cache=cache,
                                 rows_per_call=3, progress=False, workers=workers))
        cache.close()
        jobs, _ = grid([{"strategy": "beam", "width": 2}, {"strategy": "dvts", "width": 2}], [4], [0, 1])
        cache = ResultCache(tmp_path / f"search{workers}.jsonl")
        searches.append(run_jobs(jobs, gen, HashVerifier(), problems, max_new_tokens=MAX_NEW, cache=cache,
                                 progress=False, workers=workers))
        cache.close()
        assert len(ResultCache(tmp_path / f"search{workers}.jsonl")) == len(jobs)  # every job cached
    pd.testing.assert_frame_equal(pools[0], pools[1])
    pd.testing.assert_frame_equal(searches[0], searches[1])
    assert pools[1].attrs["timing"]["samples"] == 3 * len(problems)
    assert [s["method"] for s in searches[1].attrs["seconds"]] == [s["method"] for s in searches[0].attrs["seconds"]]


def test_revision_sweep_rows_do_not_depend_on_workers(policy, tmp_path):
    from ttc_lib.search.revision_chains import sweep

    gen, problems = policy
    frames = []
    for workers in (1, 2):
        frames.append(sweep(gen, problems, [4], seeds=[0, 1], verifiers={"h": (HashVerifier(), True)},
                            max_new_tokens=MAX_NEW, cache_path=tmp_path / f"sweep{workers}.jsonl", chunk_size=1,
                            progress=False, workers=workers))
    pd.testing.assert_frame_equal(frames[0], frames[1])
    again = sweep(gen, problems, [4], seeds=[0, 1], verifiers={"h": (HashVerifier(), True)}, max_new_tokens=MAX_NEW,
                  cache_path=tmp_path / "sweep2.jsonl", chunk_size=1, progress=False, workers=2)
    pd.testing.assert_frame_equal(frames[1], again)  # read back from the cache: the same rows


def test_greedy_answers_do_not_depend_on_workers(policy, tmp_path, monkeypatch):
    from ttc_lib.generation import pass_at_1

    gen, problems = policy
    monkeypatch.setattr(pass_at_1, "GREEDY_CHUNK", 1)  # a chunk per question: 3 shards
    one, two = (pass_at_1.greedy_answers(gen, problems, max_new_tokens=MAX_NEW, cache_path=tmp_path / f"g{w}.jsonl",
                                         progress=False, workers=w) for w in (1, 2))
    pd.testing.assert_frame_equal(one, two)
    assert len(ResultCache(tmp_path / "g2.jsonl")) == len(problems)  # every chunk cached
