"""One run per runs folder at a time: a lock file naming its holder.

``runner.run`` holds ``run_lock(runs_root() / profile / ".lock")`` for the whole run of a profile,
so two ``make run PROFILE=x`` (or ``make record``, which runs ``ci``) never run the same stages at
once, duplicate the work and overwrite each other's files; the executed notebooks under
``build/<profile>/`` belong to the same profile, so the one lock covers them too. A notebook
stepped through by hand in JupyterLab takes no lock: nothing stops it from writing while a run of
the same profile is going on.

Rules
- The lock is a file holding JSON ``{"pid", "host", "pid_start", "started", "command"}``. It is
  made complete under a temporary name and then linked to the lock's name (``os.link`` fails if
  the name exists), so it never exists half-written and only one of two racing runs gets it.
- A lock whose holder still runs refuses the run: ``RunLocked`` names the pid, host, start time,
  command and lock file, and what to do. A lock made on another host counts as held (its process
  cannot be checked from here).
- A *stale* lock is taken over: its process is gone (``os.kill(pid, 0)`` raises
  ``ProcessLookupError``, or the pid now belongs to a process started at another time, read from
  ``/proc`` where there is one), or its content is unreadable (not the JSON above). The takeover
  replaces the file in one rename while holding ``<lock>.takeover`` (made with ``O_EXCL``), and
  only if the lock still holds what was judged stale, so two runs cannot both take it over.
- The lock is released (the file removed, if it is still ours) when the ``with`` block ends,
  normally, by an exception or by Ctrl-C. A run killed outright leaves it behind, stale.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ATTEMPTS = 50  # tries to take the lock while other runs race for it, ~RETRY_SECONDS apart
RETRY_SECONDS = 0.1
TAKEOVER_STALE_SECONDS = 30.0  # a <lock>.takeover this old was left by a killed run: removed


class RunLocked(RuntimeError):
    """Another run holds the lock of this runs folder."""


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (field 22 of /proc/<pid>/stat), None where /proc has no answer."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def holder_info(command: str | None = None) -> dict:
    """What this process writes into a lock it takes."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "pid_start": _process_start(os.getpid()),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": command if command is not None else " ".join([Path(sys.executable).name, *sys.argv])}


def _parse(raw: bytes) -> dict | None:
    """The holder recorded in a lock file's bytes; None if they are not a lock's JSON."""
    try:
        info = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(info, dict) or type(info.get("pid")) is not int or info["pid"] <= 0:
        return None
    return info


def is_stale(info: dict | None) -> bool:
    """Whether a lock with holder ``info`` (None: unreadable) may be taken over (module rules)."""
    if info is None:
        return True
    if info.get("host") != socket.gethostname():
        return False
    pid = info["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    recorded, now = info.get("pid_start"), _process_start(pid)
    return recorded is not None and now is not None and recorded != now


def _describe(path: Path, info: dict) -> str:
    where = "" if info.get("host") == socket.gethostname() else f" on host {info.get('host')}"
    return (f"another run holds {path}: process {info['pid']}{where}, started {info.get('started', '?')}, "
            f"running `{info.get('command', '?')}`. Wait for it to finish or stop it (kill {info['pid']}); "
            f"if no such run is going on, delete {path} and run again")


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _create(path: Path, text: bytes) -> bool:
    """Make ``path`` hold ``text`` unless it exists; True if this call made it (module rules)."""
    fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links: exclusive create, then write
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as fh:
                fh.write(text)
            return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def _replace_stale(path: Path, seen: bytes, text: bytes) -> bool:
    """Put ``text`` in ``path`` if it still holds the stale ``seen``; True if this call did."""
    guard = path.with_name(path.name + ".takeover")
    try:
        fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:  # another run is taking over right now; a killed one left it if old
        try:
            if time.time() - guard.stat().st_mtime > TAKEOVER_STALE_SECONDS:
                guard.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        return False
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        if _read(path) != seen:
            return False
        fd, tmp = tempfile.mkstemp(prefix=f"{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(text)
        os.replace(tmp, path)  # never a moment without a lock file
        return True
    finally:
        guard.unlink(missing_ok=True)


def acquire(path: str | Path, command: str | None = None) -> bytes:
    """Take the lock at ``path`` (its folder is created) and return what it holds; ``RunLocked`` if a
    live run holds it. A stale lock is taken over, with a note on stderr."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (json.dumps(holder_info(command)) + "\n").encode()
    for _ in range(ATTEMPTS):
        if _create(path, text):
            return text
        seen = _read(path)
        if seen is None:  # released meanwhile
            continue
        info = _parse(seen)
        if not is_stale(info):
            raise RunLocked(_describe(path, info))
        if _replace_stale(path, seen, text):
            what = "unreadable" if info is None else f"left by process {info['pid']}, which is no longer running"
            print(f"note: took over the stale lock {path} ({what})", file=sys.stderr, flush=True)
            return text
        time.sleep(RETRY_SECONDS)
    raise RunLocked(f"could not take the lock {path}: other runs keep racing for it; try again")


def release(path: str | Path, text: bytes) -> None:
    """Remove the lock at ``path`` if it still holds ``text`` (what ``acquire`` returned)."""
    path = Path(path)
    if _read(path) == text:
        path.unlink(missing_ok=True)


@contextmanager
def run_lock(path: str | Path, command: str | None = None) -> Iterator[Path]:
    """Hold the lock at ``path`` for the ``with`` block (module rules); ``RunLocked`` names a live
    holder. ``command`` (default: this process's command line) is recorded for that message."""
    path = Path(path)
    text = acquire(path, command)
    try:
        yield path
    finally:
        release(path, text)
