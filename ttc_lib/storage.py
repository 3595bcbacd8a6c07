"""Files that are never torn and work that is never lost: atomic writes and the resume cache.

``atomic_write_text`` / ``atomic_dir`` / ``write_json`` write to a temporary name beside the
target and rename, so an interrupted run never leaves a half-written file or folder.
``ResultCache`` is the append-only store that lets long loops resume after a kill; ``key_digest``
hashes what a cached result depends on into the tail of its key.

This module imports nothing from the project: every layer may use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; when the block ends without error it
    replaces ``path`` (an existing one is moved aside first, removed last), else it is deleted.
    A killed run never leaves a half-written folder at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = (path.parent / f".{path.name}.{tag}-{os.getpid()}" for tag in ("tmp", "old"))
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        yield tmp
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"missing file {path}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None


def json_default(obj: Any) -> Any:
    """JSON for numpy/torch scalars and arrays and paths (``json.dumps(default=...)``)."""
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def key_digest(*parts: Any) -> str:
    """A short stable hash of JSON-able ``parts`` (dict keys sorted): the part of a cache key that
    names everything the cached result depends on (models' identities, settings, seed, content)."""
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1)


class ResultCache:
    """Append-only JSONL store of finished work keyed by a string. Its users derive the key from
    what the result depends on (``key_digest``): the ``identity`` of each model that did the work
    (Generator, verifiers: paths outlive retraining), the settings, the seed and the question's
    content (``tasks.problem.content_id``: text and reference answer, not only its id).

    Each ``put`` appends one line and flushes, so killing the process loses at most the record
    being written; a torn last line is ignored on reload. Re-running a loop skips keys present.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._records: dict[str, Any] = {}
        if self.path.exists():
            with self.path.open() as fh:
                for line in fh:
                    try:
                        row = json.loads(line)
                        self._records[row["key"]] = row["value"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue  # a torn line from an interrupted write
        self._fh = None

    def __contains__(self, key: str) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def get(self, key: str, default: Any = None) -> Any:
        return self._records.get(key, default)

    def put(self, key: str, value: Any) -> None:
        self.put_many([(key, value)])

    def put_many(self, items: Iterable[tuple[str, Any]]) -> None:
        if self._fh is None:
            torn = self.path.exists() and self.path.stat().st_size > 0 and _last_byte(self.path) != b"\n"
            self._fh = self.path.open("a")
            if torn:  # start a fresh line after a record cut off by an interrupted write
                self._fh.write("\n")
        for key, value in items:
            self._records[key] = value
            self._fh.write(json.dumps({"key": key, "value": value}, default=json_default) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(self._records.items())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
