"""Killed at any point, every stage folder is complete and consistent or visibly unfinished, and the
rerun ends with the summaries of an uninterrupted run. The whole pipeline runs on the math500
profile with a tiny random model (as test_math500) in subprocesses: once uninterrupted, then
interrupted by Ctrl-C (SIGINT to the pipeline) and by SIGKILL to the pipeline and its kernel, then
resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_math500 import FIXTURE, ROOT, STAGES, TINY, tiny_qwen2

from ttc_lib.pipeline.artifacts import inconsistent_stages
from ttc_lib.pipeline.compare_runs import compare_summaries


def pipeline(runs: Path, model: Path) -> subprocess.Popen:
    env = {**os.environ, "TTC_RUNS_DIR": str(runs), "TQDM_DISABLE": "1"}
    command = [sys.executable, "-m", "ttc_lib.pipeline", "run", "--profile", "math500",
               "--set", f"generator={model}", "--set", f"source={FIXTURE}", *[a for t in TINY for a in ("--set", t)]]
    # SIGINT as at a terminal: a shell without job control starts background jobs (`make test &`) with
    # SIGINT ignored, and the runner would inherit that and never see the Ctrl-C this test sends
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def consistent(runs: Path) -> list[str]:
    return inconsistent_stages(runs / "math500", STAGES)


def test_killed_runs_leave_consistent_stages_and_resume_to_the_same_results(tmp_path):
    model = tiny_qwen2(tmp_path / "tiny-qwen2")
    reference = tmp_path / "reference"
    assert pipeline(reference, model).wait(timeout=900) == 0

    runs = tmp_path / "runs"
    for delay, how in ((6, "SIGINT"), (14, "SIGKILL")):
        started, process = time.time(), pipeline(runs, model)
        while time.time() - started < delay and process.poll() is None:
            time.sleep(0.2)
        signalled = process.poll() is None
        if signalled:
            if how == "SIGINT":
                process.send_signal(signal.SIGINT)
            else:
                os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=120)
        assert not signalled or process.returncode != 0, f"{how} did not stop the run"
        assert consistent(runs) == [], how
    assert pipeline(runs, model).wait(timeout=900) == 0
    assert consistent(runs) == []
    report = compare_summaries(reference, runs, "math500")
    assert set(report) == set(STAGES) and not any(report.values()), report
