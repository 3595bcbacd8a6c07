"""Files that are never torn and work that is never lost: atomic writes and the resume cache.

``atomic_write_text`` / ``atomic_dir`` / ``write_json`` write to a temporary name beside the
target and rename, so an interrupted run never leaves a half-written file or folder.
``write_json`` / ``json_text`` write strict JSON: a non-finite float becomes ``null`` and a dict
records why under ``"nulls"`` (``finite_json``); ``read_json`` still reads older files' bare ``NaN``.
``ResultCache`` is the append-only store that lets long loops resume after a kill; ``key_digest``
hashes what a cached result depends on into the tail of its key.

This module imports nothing from the project: every layer may use it.
"""

from __future__ import annotations

import hashlib
import json
import math
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


NULLS_KEY = "nulls"  # top-level key of a written dict: JSON Pointer of each non-finite value -> why it is null
NULL_REASONS = {
    "NaN": "NaN: not a number (undefined, e.g. an AUROC where every step has one label, a rate over nothing)",
    "Infinity": "Infinity: larger than any number (e.g. a ratio over zero)",
    "-Infinity": "-Infinity: smaller than any number",
}


def finite_json(obj: Any) -> tuple[Any, dict[str, str]]:
    """(a copy of ``obj`` in plain JSON types with every non-finite float (Python, numpy, torch,
    inside dicts, lists, tuples and arrays) replaced by None, {JSON Pointer -> reason} of each one).

    The pointer is RFC 6901: ``""`` is ``obj`` itself, ``/a/b/0`` is ``obj["a"]["b"][0]`` (``~`` in
    a key written ``~0``, ``/`` written ``~1``). The reason is a value of ``NULL_REASONS``; it starts
    with ``NaN``, ``Infinity`` or ``-Infinity`` followed by ``:``, so ``float(reason.split(":")[0])``
    gives the value back. ``obj`` is not changed."""
    nulls: dict[str, str] = {}
    return _finite(obj, "", nulls), nulls


def _finite(obj: Any, where: str, nulls: dict[str, str]) -> Any:
    if isinstance(obj, float):  # numpy float64 is a float too
        if math.isfinite(obj):
            return obj
        nulls[where] = NULL_REASONS["NaN" if math.isnan(obj) else "Infinity" if obj > 0 else "-Infinity"]
        return None
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if isinstance(obj, dict):
        return {k: _finite(v, f"{where}/{str(k).replace('~', '~0').replace('/', '~1')}", nulls)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v, f"{where}/{i}", nulls) for i, v in enumerate(obj)]
    return _finite(json_default(obj), where, nulls)  # numpy / torch scalars and arrays, paths


def json_text(obj: Any) -> str:
    """The text ``write_json`` writes for ``obj`` (indented, keys in their order): strict JSON, never
    ``NaN`` or ``Infinity`` (which strict readers reject). Each non-finite float is written as
    ``null``; when ``obj`` is a dict, its top-level ``"nulls"`` (``NULLS_KEY``, added last, merged with
    one already there) maps the JSON Pointer of each such value to why it is null (``finite_json``),
    e.g. ``"nulls": {"/test_step_quality/orm/step_auroc": "NaN: not a number (...)"}``. A dict with
    no non-finite value is written unchanged, with no ``"nulls"``. A list or scalar at the top has
    nowhere to record reasons: its nulls are written without them. ``obj`` itself is not changed."""
    clean, nulls = finite_json(obj)
    if nulls and isinstance(clean, dict):
        before = clean.pop(NULLS_KEY, None) or {}
        if not isinstance(before, dict):
            raise ValueError(f"cannot record why values are null: {NULLS_KEY!r} already holds {before!r}")
        clean[NULLS_KEY] = {**before, **nulls}
    return json.dumps(clean, indent=2, sort_keys=False, default=json_default, allow_nan=False) + "\n"


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json_text(obj))


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
        try:
            return obj.item()
        except (ValueError, RuntimeError):  # an array or tensor of more than one value
            pass
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
    being written; a torn last line is ignored on reload. ``put_many`` appends its records in one
    write (a shard's rows, as they arrive from a worker) and syncs them to disk before it returns.
    Each record stands alone, so a shard whose write was cut off keeps its complete records and a
    rerun computes the rest. Re-running a loop skips keys present.
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
        lines = []
        for key, value in items:
            self._records[key] = value
            lines.append(json.dumps({"key": key, "value": value}, default=json_default) + "\n")
        self._fh.write("".join(lines))  # a shard's records in one append: a kill tears at most the last one
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(self._records.items())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
