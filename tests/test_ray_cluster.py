"""Joining a Ray cluster that is already running (``ray_address`` / ``RAY_ADDRESS``, models.ray_workers):
a head started by ``ray start --head`` (its own temp dir and port, 2 CPUs, token authentication with
a token made for the test), a driver process that runs the sample pool on it with 2 workers, and the
rows of an in-process run without Ray. The head is stopped by its own processes, never ``ray stop``
(that stops every Ray on the machine). Skipped when the ``ray`` CLI is not installed."""

from __future__ import annotations

import json
import os
import pickle
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from ttc_lib.generation.generator import Generator
from ttc_lib.search.pool import sample_pool
from ttc_lib.verifiers.hash_verifier import HashVerifier

RAY_CLI = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")  # this venv's first
ROOT = Path(__file__).resolve().parents[1]  # the checkout whose ttc_lib the driver (and so the workers) run
START_SECONDS = 90  # `ray start --head` takes ~8 s on a quiet 2-core machine; a loaded one, more
STOP_SECONDS = 3  # after SIGTERM, then SIGKILL: the agents go at once, gcs_server and the monitor outlive 15 s
POOL = dict(n_samples=3, max_new_tokens=40, rows_per_call=3, progress=False)  # one question per shard: 3 shards

pytestmark = pytest.mark.skipif(RAY_CLI is None, reason="the ray CLI is not installed (pip install -e \".[ray]\")")

DRIVER = """
import json, pickle, sys
import ray
from ttc_lib.generation.generator import Generator
from ttc_lib.search.pool import sample_pool
from ttc_lib.verifiers.hash_verifier import HashVerifier

policy, problems, out, settings = sys.argv[1], pickle.load(open(sys.argv[2], "rb")), sys.argv[3], json.loads(sys.argv[4])
pool = sample_pool(Generator.from_pretrained(policy, device="cpu"), HashVerifier(), problems, workers=2, **settings)
pickle.dump({"pool": pool, "gcs": ray.get_runtime_context().gcs_address,
             "cpus": ray.cluster_resources().get("CPU")}, open(out, "wb"))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def head_processes(temp_dir: str) -> list[int]:
    """The pids of the head started with ``temp_dir`` (its daemons name the dir on their command
    line) and of their descendants (the agents and workers of its raylet), never this process or
    its ancestors."""
    parents, named = {}, set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        if temp_dir in command and running(int(entry.name)):
            named.add(int(entry.name))
    found, grew = set(named), True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        found |= children
        grew = bool(children)
    mine, pid = set(), os.getpid()  # this process and its shells may name the dir too: never theirs
    while pid > 1 and pid not in mine:
        mine.add(pid)
        pid = parents.get(pid, 1)
    return sorted(found - mine)


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (a daemon's zombie waits for an init that may not reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stop_head(temp_dir: str) -> None:
    """SIGTERM to the head's processes, SIGKILL to those left after ``STOP_SECONDS``."""
    pids = head_processes(temp_dir)
    for how in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, how)
            except ProcessLookupError:
                pass
        deadline = time.time() + STOP_SECONDS
        while time.time() < deadline and any(running(pid) for pid in pids):
            time.sleep(0.2)
        pids = [pid for pid in pids if running(pid)]
        if not pids:
            return


@pytest.fixture
def ray_head():
    """(address, environment with its token, temp dir, the ``ray start --head`` process: wait for it)
    of a one-node cluster; it starts while the test does its local run."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the head is stopped through /proc (Linux)")
    temp_dir = tempfile.mkdtemp(prefix="ttc_ray_")  # short: Ray's socket paths live under it
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), PYTHONPATH=str(ROOT))
    start = subprocess.Popen([RAY_CLI, "start", "--head", f"--port={port}", "--num-cpus=2", f"--temp-dir={temp_dir}",
                              "--include-dashboard=false", "--disable-usage-stats"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield f"127.0.0.1:{port}", env, temp_dir, start
    finally:
        if start.poll() is None:
            start.kill()
        start.communicate()
        stop_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_a_stage_joins_a_running_cluster_and_draws_the_rows_of_a_local_run(ray_head, trained_policy, one_thread,
                                                                            tmp_path):
    address, env, temp_dir, start = ray_head
    policy, problems = trained_policy
    local = sample_pool(Generator.from_pretrained(policy, device="cpu"), HashVerifier(), list(problems), **POOL)
    pickle.dump(list(problems), (tmp_path / "problems.pkl").open("wb"))
    out = tmp_path / "driver.pkl"
    log, _ = start.communicate(timeout=START_SECONDS)
    assert start.returncode == 0, f"ray start --head failed: {log[-3000:]}"
    driver = subprocess.run([sys.executable, "-c", DRIVER, str(policy), str(tmp_path / "problems.pkl"), str(out),
                             json.dumps(POOL)], env={**env, "TTC_EXECUTOR": "ray", "RAY_ADDRESS": address},
                            capture_output=True, text=True, timeout=120)
    assert driver.returncode == 0, driver.stderr[-3000:]
    assert head_processes(temp_dir), "the driver's end stopped the cluster it joined"
    joined = pickle.load(out.open("rb"))
    assert joined["gcs"].endswith(f":{address.rsplit(':', 1)[1]}") and joined["cpus"] == 2  # that head, not a new Ray
    pd.testing.assert_frame_equal(joined["pool"], local)
    assert joined["pool"].attrs["timing"]["samples"] == POOL["n_samples"] * len(problems)  # drawn, not cached
