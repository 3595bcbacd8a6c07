"""Kill every long stage at three points, resume, and compare with an uninterrupted run.

    .venv/bin/python experiments/kill_matrix.py --reference RUNS_REF --work RUNS_WORK [--profile ci]

RUNS_REF is a runs folder holding a complete, uninterrupted run of the profile (``TTC_RUNS_DIR=RUNS_REF
make run PROFILE=ci``); its manifests give each stage's duration. RUNS_WORK starts as a copy of
RUNS_REF's 00_data (the splits). For each long stage (01 to 05) and each point (25%, 50%, 80% of
its reference duration, counted from the moment the notebook passed ``Stage.open``, as the reference
manifest's times are) the stage is started alone (``python -m ttc_lib.pipeline run --stages S``)
and killed there: SIGINT to the pipeline (Ctrl-C) at 25%, SIGKILL to the notebook's kernel at 50%
and 80%. After every kill each stage folder must be complete and consistent (its summary beside the
files its manifest records, made from the inputs it records) or visibly unfinished (no summary).
Then the stage is run to its end, and the next stage goes. Last, 06, 07 and 08 run and every summary is
compared with the reference (``pipeline.compare_runs``; timings aside). Prints one line per kill
and the comparison; exit code 0 when everything held. About 2.5 times one run of the profile. A kill
point reached after the stage already finished (caches from the earlier kills make a restarted stage
faster) is printed as such.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ttc_lib.pipeline.artifacts import inconsistent_stages  # noqa: E402
from ttc_lib.pipeline.compare_runs import compare_summaries  # noqa: E402
from ttc_lib.pipeline.runs import STAGES  # noqa: E402

LONG_STAGES = STAGES[1:6]  # 01 .. 05
POINTS = ((0.25, "SIGINT to the pipeline"), (0.5, "SIGKILL to the kernel"), (0.8, "SIGKILL to the kernel"))


def duration(manifest: dict) -> float:
    parse = lambda text: datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")  # noqa: E731
    return (parse(manifest["finished"]) - parse(manifest["started"])).total_seconds()


def start(work: Path, profile: str, stage: str) -> subprocess.Popen:
    env = {**os.environ, "TTC_RUNS_DIR": str(work), "TQDM_DISABLE": "1"}
    command = [sys.executable, "-m", "ttc_lib.pipeline", "run", "--profile", profile, "--stages", stage,
               "--set", "publish_claims=false"]  # a kill-matrix run never overwrites docs/results/<profile>/claims.md
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def opened(manifest: Path, launched: float, process: subprocess.Popen) -> float:
    """When the stage's notebook passed ``Stage.open`` (its manifest rewritten, status running): the
    kill points count from there, as the reference durations do (kernel start-up excluded)."""
    while process.poll() is None:
        try:
            if manifest.stat().st_mtime >= launched and json.loads(manifest.read_text()).get("status") == "running":
                return time.time()
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    return time.time()


def kernels_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    children = [int(p) for p in out.split()]
    return [c for c in children if b"ipykernel" in Path(f"/proc/{c}/cmdline").read_bytes()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, type=Path)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--profile", default="ci")
    args = parser.parse_args()
    ref, work = args.reference / args.profile, args.work
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(ref / STAGES[0], work / args.profile / STAGES[0])
    ok = True
    for stage in LONG_STAGES:
        seconds = duration(json.loads((ref / stage / "manifest.json").read_text()))
        for fraction, how in POINTS:
            launched = time.time()
            process = start(work, args.profile, stage)
            began = opened(work / args.profile / stage / "manifest.json", launched, process)
            while time.time() - began < fraction * seconds and process.poll() is None:
                time.sleep(0.2)
            if process.poll() is None and how.startswith("SIGINT"):
                process.send_signal(signal.SIGINT)
            elif process.poll() is None:
                for kernel in kernels_of(process.pid):
                    os.kill(kernel, signal.SIGKILL)
            process.wait(timeout=600)
            wrong = inconsistent_stages(work / args.profile, STAGES)
            ok &= not wrong
            finished = (work / args.profile / stage / "summary.json").exists()
            print(f"{stage} killed at {fraction:.0%} ({fraction * seconds:.0f} s, {how}): "
                  f"{'finished before the kill' if finished else 'visibly unfinished'}; "
                  f"{'consistent' if not wrong else wrong}", flush=True)
        ok &= start(work, args.profile, stage).wait() == 0
    for stage in STAGES[6:]:
        ok &= start(work, args.profile, stage).wait() == 0
    report = compare_summaries(args.reference, work, args.profile)
    for stage, differences in report.items():
        print(f"{stage}: {'identical' if not differences else differences[:5]}")
        ok &= not differences
    print("kill matrix:", "every stage consistent after every kill; resumed results identical" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
