"""Progress of long loops on the runner's terminal: off unless asked; kernels append lines to a
file the runner copies to its stderr while the stage runs."""

import io
import os
import subprocess
import sys
from pathlib import Path

from ttc_lib.progress import PROGRESS_ENV, install, line, terminal_progress

ROOT = Path(__file__).resolve().parents[1]
CODE = ("import ttc_lib\nfrom tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc='labelling'): pass\n"
        "bar = tqdm(total=4, desc='training')\nbar.update(4)\nbar.close()\n")


def test_a_line_says_done_total_share_and_time_left():
    assert line("small -> policy", 1200, 2000, 552) == "[ttc] small -> policy: 1200/2000 (60%) 9:12 elapsed, ~6:08 left"
    assert line("", 5, None, 3725) == "[ttc] 5 1:02:05 elapsed"
    assert line("x", 3, 3, 1) == "[ttc] x: 3/3 (100%) 0:01 elapsed"


def test_unset_changes_nothing(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    assert install() is False


def _child(env: dict) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in env.items() if k != "TQDM_DISABLE"}, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_a_child_process_reports_through_the_file_to_the_runners_stream(tmp_path):
    out = io.StringIO()
    before = os.environ.get(PROGRESS_ENV)
    with terminal_progress(tmp_path / "stage.progress", out=out) as path:
        assert os.environ[PROGRESS_ENV] == str(path)
        child = _child(dict(os.environ))
    assert os.environ.get(PROGRESS_ENV) == before  # restored
    copied = out.getvalue()
    assert "[ttc] labelling: 3/3 (100%)" in copied and "[ttc] training: 4/4 (100%)" in copied
    assert copied == path.read_text()  # every line copied once, the file kept as the stage's log
    assert "[ttc]" not in child.stderr  # the child's own stderr (a notebook's cell output) gets nothing
    quiet = _child({k: v for k, v in os.environ.items() if k != PROGRESS_ENV})
    assert "[ttc]" not in quiet.stderr
