"""One run per runs folder: a live holder refuses a second run by name, a stale lock is taken over,
the lock goes when the run ends (returned, raised or interrupted), and runner.run holds it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ttc_lib.pipeline import runner
from ttc_lib.pipeline.run_lock import RunLocked, holder_info, run_lock

HOLD = """
import sys, time
from ttc_lib.pipeline.run_lock import run_lock
with run_lock(sys.argv[1], command="make run PROFILE=ci"):
    print("held", flush=True)
    time.sleep(60)
"""


def write_lock(path, info):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


def test_a_live_holder_refuses_a_second_run_by_name(tmp_path):
    lock = tmp_path / "ci" / ".lock"
    write_lock(lock, holder_info(command="make run PROFILE=ci"))  # this process, alive
    with pytest.raises(RunLocked) as err:
        with run_lock(lock):
            pytest.fail("a second run got the lock")
    message = str(err.value)
    assert f"process {os.getpid()}," in message and "make run PROFILE=ci" in message and str(lock) in message
    assert "started 20" in message and f"kill {os.getpid()}" in message and "delete" in message
    assert json.loads(lock.read_text())["pid"] == os.getpid()  # the holder's lock is left alone


def test_a_holder_in_another_process_and_its_stale_lock_after_a_kill(tmp_path, capsys):
    lock = tmp_path / "ci" / ".lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked, match=f"process {holder.pid}, started .* running `make run PROFILE=ci`"):
            with run_lock(lock):
                pass
    finally:
        holder.kill()  # killed outright: no release, the lock stays behind
        holder.wait()
    assert json.loads(lock.read_text())["pid"] == holder.pid
    with run_lock(lock):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert f"took over the stale lock {lock} (left by process {holder.pid}" in capsys.readouterr().err


@pytest.mark.parametrize("content", ["dead", '{"pid": 12', "", '{"pid": 0}', "[1]"],
                         ids=["dead-pid", "torn", "empty", "pid-0", "not-a-dict"])
def test_a_stale_or_unreadable_lock_is_taken_over(tmp_path, content):
    lock = tmp_path / ".lock"
    if content == "dead":
        write_lock(lock, {**holder_info(), "pid": dead_pid(), "pid_start": None})
    else:
        lock.write_text(content)
    with run_lock(lock, command="second") as held:
        info = json.loads(held.read_text())
        assert info["pid"] == os.getpid() and info["command"] == "second"
    assert not lock.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no temporary or takeover file left


RACE = """
import os, sys, time
from ttc_lib.pipeline.run_lock import RunLocked, run_lock
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
try:
    with run_lock(sys.argv[1]):
        print("got", flush=True)
        while not os.path.exists(sys.argv[3]):  # hold it until every racer has tried
            time.sleep(0.05)
except RunLocked:
    print("refused", flush=True)
"""


def test_runs_racing_for_a_stale_lock_let_exactly_one_in(tmp_path):
    import time

    lock, release = tmp_path / "runs" / ".lock", tmp_path / "release"
    write_lock(lock, {**holder_info(), "pid": dead_pid(), "pid_start": None})
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    start = str(time.time() + 1.0)
    racers = [subprocess.Popen([sys.executable, "-c", RACE, str(lock), start, str(release)], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, cwd=root) for _ in range(4)]
    try:
        outcomes = sorted(r.stdout.readline().strip() for r in racers)
    finally:
        release.touch()
        for r in racers:
            r.communicate(timeout=60)
    assert outcomes == ["got", "refused", "refused", "refused"]
    assert not lock.exists()


def test_a_reused_pid_started_at_another_time_is_stale(tmp_path):
    if not os.path.exists(f"/proc/{os.getpid()}/stat"):
        pytest.skip("no /proc here")
    lock = tmp_path / ".lock"
    write_lock(lock, {**holder_info(), "pid_start": "1"})  # our pid, but a process that started at tick 1
    with run_lock(lock):
        assert json.loads(lock.read_text())["pid_start"] != "1"


def test_the_lock_is_released_after_return_exception_and_interrupt(tmp_path):
    lock = tmp_path / ".lock"
    with run_lock(lock):
        assert lock.exists()
    assert not lock.exists()
    for error in (RuntimeError("stage failed"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with run_lock(lock):
                raise error
        assert not lock.exists()


def test_a_lock_taken_over_meanwhile_is_not_removed_by_the_old_holder(tmp_path):
    lock = tmp_path / ".lock"
    with run_lock(lock):
        lock.write_text(json.dumps({**holder_info(), "command": "someone else"}))
    assert json.loads(lock.read_text())["command"] == "someone else"


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    """runner.run on one stage with papermill replaced: returns (runs folder, calls, lock path)."""
    import papermill

    runs = tmp_path / "runs"
    monkeypatch.setenv("TTC_RUNS_DIR", str(runs))
    monkeypatch.setattr(runner, "project_root", lambda: tmp_path)
    monkeypatch.setattr(runner, "load_profile", lambda profile: {"00_data": {"profile": profile, "seed": 0}})
    calls = []
    lock = runs / "ci" / ".lock"

    def execute(source, output, **kwargs):
        holder = json.loads(lock.read_text())  # the lock is taken before any notebook runs
        calls.append((source, output, holder["pid"]))
        if kwargs["parameters"].get("seed") == 1:
            raise RuntimeError("the notebook failed")

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    return runs, calls, lock


def test_runner_holds_the_lock_while_papermill_runs(fake_run, tmp_path):
    runs, calls, lock = fake_run
    timings = runner.run("ci")
    assert list(timings) == ["00_data"] and calls[0][2] == os.getpid()
    assert calls[0][1] == str(tmp_path / "build" / "ci" / "00_data.ipynb")
    assert not lock.exists()  # released once run returns


def test_runner_releases_the_lock_when_a_notebook_fails(fake_run, monkeypatch):
    runs, calls, lock = fake_run
    monkeypatch.setattr(runner, "load_profile", lambda profile: {"00_data": {"profile": profile, "seed": 1}})
    with pytest.raises(RuntimeError, match="the notebook failed"):
        runner.run("ci")
    assert calls[0][2] == os.getpid() and not lock.exists()


def test_runner_refuses_a_second_run_before_papermill(fake_run, capsys):
    runs, calls, lock = fake_run
    write_lock(lock, holder_info(command="make run PROFILE=ci"))
    with pytest.raises(RunLocked, match=f"process {os.getpid()}"):
        runner.run("ci")
    assert runner.main(["run", "--profile", "ci"]) == 2
    assert f"error: another run holds {lock}: process {os.getpid()}" in capsys.readouterr().err
    assert calls == [] and lock.exists()
