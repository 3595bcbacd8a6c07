"""Where every stage's artifacts live, and how they are written so nothing is lost or torn.

Layout: ``data/runs/<profile>/<NN_stage>/`` holds a stage's files, its ``manifest.json``
(parameters, seed, library version, git commit, inputs) and its ``summary.json`` (headline
numbers). Files are written to a temporary name and renamed, so an interrupted run never leaves
a half-written artifact. ``ResultCache`` is the append-only store that lets long loops resume.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from . import __version__

STAGES = [  # notebook stems in run order; "run NN_x first" errors name these
    "00_data", "01_train_generator", "02_train_verifier", "03_difficulty_bins", "04_search",
    "05_revisions", "06_compute_optimal", "07_ttc_vs_pretraining",
]


def project_root() -> Path:
    """The repository root (the folder holding pyproject.toml above ttc_lib), else the cwd."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def runs_root() -> Path:
    """``data/runs`` under the project root; ``TTC_RUNS_DIR`` overrides it (tests use a tmp dir)."""
    return Path(os.environ.get("TTC_RUNS_DIR", project_root() / "data" / "runs"))


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
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"missing file {path}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root(), capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class Stage:
    """One notebook's artifact folder: ``Stage("cpu", "01_train_generator")``."""

    def __init__(self, profile: str, name: str):
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; known: {STAGES}")
        if not profile or "/" in profile:
            raise ValueError(f"invalid profile name {profile!r}")
        self.profile, self.name = profile, name
        self.dir = runs_root() / profile / name

    def path(self, *parts: str) -> Path:
        """A path inside the stage folder (the folder is created)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        return self.dir.joinpath(*parts)

    def require(self, name: str) -> Path:
        """The folder of an earlier stage of the same profile; a clear error if it never finished."""
        upstream = Stage(self.profile, name)
        if not (upstream.dir / "summary.json").exists():
            raise FileNotFoundError(
                f"stage {self.name} needs {name}: run {name} first "
                f"(make {name} PROFILE={self.profile}, or make run PROFILE={self.profile})")
        return upstream.dir

    def write_manifest(self, parameters: dict, seed: int | None = None,
                       inputs: Iterable[str] = ()) -> dict:
        manifest = {
            "stage": self.name, "profile": self.profile, "parameters": parameters, "seed": seed,
            "ttc_lib_version": __version__, "git_commit": git_commit(),
            "inputs": {n: str(Stage(self.profile, n).dir) for n in inputs},
            "python": platform.python_version(), "machine": platform.machine(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_json(self.path("manifest.json"), manifest)
        return manifest

    def write_summary(self, summary: dict) -> None:
        write_json(self.path("summary.json"), summary)

    def read_summary(self, name: str | None = None) -> dict:
        folder = self.dir if name is None else self.require(name)
        return read_json(folder / "summary.json")

    def generator(self, role: str = "policy", **kwargs: Any):
        """The model notebook 01 recorded for ``role`` ("policy", "verifier_backbone", "large") as a
        ``generation.Generator``, with the prompt style and device it recorded: how every later stage
        loads a model, trained by ttc or your own. A role 01 did not provide is a clear error."""
        from .generation import Generator

        summary = self.read_summary("01_train_generator")
        path = summary["checkpoints"].get(role)
        if not path:
            raise FileNotFoundError(f"stage {self.name}: notebook 01 of profile {self.profile!r} recorded no "
                                    f"{role!r} model (known: {sorted(summary['checkpoints'])})")
        options = {"device": summary.get("device", "cpu"), "prompt_style": summary.get("prompt_style"), **kwargs}
        return Generator.from_pretrained(path, **options)


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1)


class ResultCache:
    """Append-only JSONL store of finished work keyed by a string (question, config, seed, and the
    ``model_identity.model_identity`` of the models that did the work: paths outlive retraining).

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
            self._fh.write(json.dumps({"key": key, "value": value}, default=_json_default) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(self._records.items())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
