"""Where every stage's artifacts live, and how they are written so nothing is lost or torn.

Layout: ``data/runs/<profile>/<NN_stage>/`` holds a stage's files, its ``manifest.json``
(parameters, seed, library version, git commit, inputs) and its ``summary.json`` (headline
numbers). Files are written to a temporary name and renamed, so an interrupted run never leaves
a half-written artifact. ``ResultCache`` is the append-only store that lets long loops resume.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable

from ttc_lib import __version__
from ttc_lib.storage import read_json, write_json

STAGES = [  # notebook stems in run order; "run NN_x first" errors name these
    "00_data", "01_train_generator", "02_train_verifier", "03_difficulty_bins", "04_search",
    "05_revisions", "06_compute_optimal", "07_ttc_vs_pretraining",
]


def project_root() -> Path:
    """The repository root (the folder holding pyproject.toml above ttc_lib/), else the cwd."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def runs_root() -> Path:
    """``data/runs`` under the project root; ``TTC_RUNS_DIR`` overrides it (tests use a tmp dir)."""
    return Path(os.environ.get("TTC_RUNS_DIR", project_root() / "data" / "runs"))


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
        from ttc_lib.generation.generator import Generator

        summary = self.read_summary("01_train_generator")
        path = summary["checkpoints"].get(role)
        if not path:
            raise FileNotFoundError(f"stage {self.name}: notebook 01 of profile {self.profile!r} recorded no "
                                    f"{role!r} model (known: {sorted(summary['checkpoints'])})")
        options = {"device": summary.get("device", "cpu"), "prompt_style": summary.get("prompt_style"), **kwargs}
        return Generator.from_pretrained(path, **options)
