"""Progress of a stage's long loops on the terminal that runs the pipeline.

Under papermill a notebook's progress bars are widgets inside the executed notebook: the terminal
of ``make run`` sees one bar per *cell*, silent for the tens of minutes a training or search cell
takes. So the runner wraps each stage in ``terminal_progress(path)``: it names a progress file to
its kernels (``PROGRESS_ENV``) and prints what they append to it on its own stderr while the stage
runs. In a kernel, ``install()`` (called by ``import ttc_lib``, before any module binds
``tqdm.auto.tqdm``) makes every ``tqdm.auto`` bar of the library also append a plain line to that
file, at most every ``EVERY_SECONDS`` and when it closes; training workers spawned by a kernel
inherit the variable and report the same way. The file (``build/<profile>/<stage>.progress``) stays
as the stage's progress log. Lines look like

    [ttc] small -> policy: 1200/2000 (60%) 9:12 elapsed, ~6:08 left

Unset (tests, JupyterLab, plain scripts): nothing changes.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

PROGRESS_ENV = "TTC_PROGRESS_FILE"  # the progress file a kernel's bars append to; unset: no lines
EVERY_SECONDS = 60.0  # a running bar writes a line at most this often (and one when it closes)
POLL_SECONDS = 2.0  # how often the runner looks for new lines


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


def line(desc: str, done: float, total: float | None, elapsed: float) -> str:
    """The progress line of one bar (module docstring)."""
    name = f"{desc}: " if desc else ""
    if not total:
        return f"[ttc] {name}{done:g} {_clock(elapsed)} elapsed"
    left = f", ~{_clock(elapsed * (total - done) / done)} left" if 0 < done < total else ""
    return f"[ttc] {name}{done:g}/{total:g} ({100 * done / total:.0f}%) {_clock(elapsed)} elapsed{left}"


def install() -> bool:
    """Make ``tqdm.auto.tqdm`` append its progress to the file named by ``PROGRESS_ENV``, when set;
    returns whether it did."""
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return False
    import tqdm.auto

    base = tqdm.auto.tqdm
    if getattr(base, "_ttc_progress", False):
        return True

    class FileProgress(base):  # type: ignore[misc, valid-type]
        _ttc_progress = True

        def update(self, n: float = 1):
            out = super().update(n)
            if not self.disable and time.monotonic() - getattr(self, "_ttc_last", 0.0) >= EVERY_SECONDS:
                self._ttc_report()
            return out

        def close(self):
            if not self.disable and not getattr(self, "_ttc_closed", False):
                self._ttc_closed = True
                self._ttc_report()
            return super().close()

        def _ttc_report(self) -> None:
            self._ttc_last = time.monotonic()
            text = line(self.desc or "", self.n, self.total, self.format_dict.get("elapsed", 0.0)) + "\n"
            try:
                with open(path, "a", encoding="utf-8") as f:  # one short append per line: processes interleave whole lines
                    f.write(text)
            except OSError:
                pass  # progress is a courtesy: a missing folder never stops a stage

    tqdm.auto.tqdm = FileProgress
    return True


def _follow(path: Path, stop: threading.Event, out: TextIO) -> None:
    offset = 0
    while True:
        stopping = stop.wait(POLL_SECONDS)
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                new = f.read()
        except OSError:
            new = b""
        complete = new[:new.rfind(b"\n") + 1]  # a line still being written waits for the next look
        if complete:
            out.write(complete.decode("utf-8", errors="replace"))
            out.flush()
            offset += len(complete)
        if stopping:
            return


@contextmanager
def terminal_progress(path: str | Path, out: TextIO | None = None) -> Iterator[Path]:
    """While the block runs, kernels and their workers append progress lines to ``path`` (emptied
    first) and they are copied to ``out`` (default: this process's stderr). ``PROGRESS_ENV`` is
    restored afterwards."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    previous = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = str(path)
    stop = threading.Event()
    follower = threading.Thread(target=_follow, args=(path, stop, out or sys.stderr), daemon=True)
    follower.start()
    try:
        yield path
    finally:
        stop.set()
        follower.join()
        if previous is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = previous
