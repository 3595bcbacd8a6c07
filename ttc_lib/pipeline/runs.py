"""Where every stage's artifacts live, and how they are written so nothing is lost or torn.

Layout: ``data/runs/<profile>/<NN_stage>/`` holds a stage's files, its ``manifest.json``
(parameters, seed, library version, git commit, inputs) and its ``summary.json`` (headline
numbers). Files are written to a temporary name and renamed, so an interrupted run never leaves
a half-written artifact. ``ResultCache`` is the append-only store that lets long loops resume.
"""

from __future__ import annotations

import ast
import json
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
STAGE_INPUTS = {  # the earlier stages each notebook reads (checked and recorded in its manifest)
    "00_data": [],
    "01_train_generator": ["00_data"],
    "02_train_verifier": ["00_data", "01_train_generator"],
    "03_difficulty_bins": ["00_data", "01_train_generator", "02_train_verifier"],
    "04_search": ["00_data", "01_train_generator", "02_train_verifier", "03_difficulty_bins"],
    "05_revisions": ["00_data", "01_train_generator", "02_train_verifier", "03_difficulty_bins"],
    "06_compute_optimal": ["00_data", "01_train_generator", "02_train_verifier", "03_difficulty_bins", "04_search",
                           "05_revisions"],
    "07_ttc_vs_pretraining": ["00_data", "01_train_generator", "03_difficulty_bins", "06_compute_optimal"],
}


def project_root() -> Path:
    """The repository root (the folder holding pyproject.toml above ttc_lib/), else the cwd."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def runs_root() -> Path:
    """``data/runs`` under the project root; ``TTC_RUNS_DIR`` overrides it (tests use a tmp dir)."""
    return Path(os.environ.get("TTC_RUNS_DIR", project_root() / "data" / "runs"))


def notebook_path(stage: str) -> Path:
    return project_root() / "notebooks" / f"{stage}.ipynb"


def notebook_parameters(path: str | Path) -> dict[str, tuple[str, Any]]:
    """name -> (annotation, default) of the cell tagged ``parameters`` (typed literals only)."""
    path = Path(path)
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{path}: expected exactly one cell tagged 'parameters', found {len(tagged)}")
    source = "".join(tagged[0]["source"])
    params = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            raise ValueError(f"{path}: parameters cell line {node.lineno} is not `name: type = literal`")
        annotation = ast.unparse(node.annotation)
        params[node.target.id] = (annotation, ast.literal_eval(node.value))
    return params


def parameters_of(stage: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """The current values of a notebook's declared parameters (for its manifest)."""
    return {name: namespace[name] for name in notebook_parameters(notebook_path(stage))}


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root(), capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class Stage:
    """One notebook's artifact folder: ``Stage("cpu", "01_train_generator")``; a notebook starts with
    ``stage = Stage.open(profile, "04_search", globals())``."""

    def __init__(self, profile: str, name: str):
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; known: {STAGES}")
        if not profile or "/" in profile:
            raise ValueError(f"invalid profile name {profile!r}")
        self.profile, self.name = profile, name
        self.dir = runs_root() / profile / name

    @classmethod
    def open(cls, profile: str, name: str, namespace: dict[str, Any], torch_threads: int = 0) -> "Stage":
        """Start notebook ``name``: every stage it reads (STAGE_INPUTS) must have finished, its manifest
        is written (the notebook's declared parameters, read from ``namespace``, and its seed), and
        ``torch_threads`` > 0 sets torch's thread count. The manifest is ``stage.manifest``."""
        stage = cls(profile, name)
        for upstream in STAGE_INPUTS[name]:
            stage.require(upstream)
        if torch_threads > 0:
            import torch

            torch.set_num_threads(torch_threads)
        stage.manifest = stage.write_manifest(parameters_of(name, namespace), seed=namespace.get("seed"),
                                              inputs=STAGE_INPUTS[name])
        return stage

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

    def device(self) -> str:
        """The device notebook 01 recorded ("auto" resolved), for verifiers and other models."""
        from ttc_lib.generation.generator import resolve_device

        return str(resolve_device(self.read_summary("01_train_generator").get("device", "cpu")))

    def problems(self, split: str = "test") -> list:
        """Notebook 00's ``train`` or ``test`` split as ``Problem`` records."""
        from ttc_lib.tasks import load_jsonl

        return load_jsonl(self.require("00_data") / f"{split}.jsonl")

    def verifier(self, path: str | Path | None = None):
        """The verifier notebook 02 chose (or the saved verifier at ``path``), on the recorded device."""
        from ttc_lib.verifiers.kinds import load_verifier

        return load_verifier(path or self.read_summary("02_train_verifier")["chosen_verifier_path"],
                             device=self.device())

    def bins(self):
        """Notebook 03's difficulty bins (one row per test question)."""
        import pandas as pd

        return pd.read_parquet(self.require("03_difficulty_bins") / "bins.parquet")

    def revision_models(self) -> tuple:
        """(revision model as a Generator, revision-aware ORM) that notebook 05 trained."""
        from ttc_lib.generation.generator import Generator

        summary = self.read_summary("05_revisions")
        return (Generator.from_pretrained(summary["revision_model_path"], device=self.device()),
                self.verifier(summary["revision_orm_path"]))
