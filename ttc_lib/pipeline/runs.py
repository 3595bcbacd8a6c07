"""Where every stage's artifacts live, and how they are written so nothing is lost or torn.

Layout: ``data/runs/<profile>/<NN_stage>/`` holds a stage's files, its ``manifest.json``
(parameters, seed, library version, git commit, inputs) and its ``summary.json`` (headline
numbers). Files are written to a temporary name and renamed, so an interrupted run never leaves
a half-written artifact. ``ResultCache`` is the append-only store that lets long loops resume.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from ttc_lib import __version__
from ttc_lib.models.ray_workers import stop_ray
from ttc_lib.pipeline.artifacts import (
    artifact_hashes,
    check_upstream,
    file_hash,
    paths_from_runs_folder,
    paths_in_runs_folder,
    stage_digest,
)
from ttc_lib.pipeline.environment import environment
from ttc_lib.storage import atomic_write_text, json_text, read_json, write_json

STAGES = [  # notebook stems in run order; "run NN_x first" errors name these
    "00_data", "01_train_generator", "02_train_verifier", "03_difficulty_bins", "04_search",
    "05_revisions", "06_compute_optimal", "07_ttc_vs_pretraining", "08_claims",
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
    "07_ttc_vs_pretraining": ["00_data", "01_train_generator", "03_difficulty_bins", "04_search", "05_revisions",
                              "06_compute_optimal"],
    "08_claims": ["00_data", "01_train_generator", "02_train_verifier", "03_difficulty_bins", "04_search",
                  "05_revisions", "06_compute_optimal", "07_ttc_vs_pretraining"],
}


def dependents(name: str) -> list[str]:
    """The stages that read ``name``, directly or through another stage (STAGE_INPUTS), in run order."""
    found: list[str] = []
    for later in STAGES[STAGES.index(name) + 1:]:
        if any(upstream == name or upstream in found for upstream in STAGE_INPUTS[later]):
            found.append(later)
    return found


def project_root() -> Path:
    """The repository root (the folder holding pyproject.toml above ttc_lib/), else the cwd."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def runs_root() -> Path:
    """``data/runs`` under the project root; ``TTC_RUNS_DIR`` overrides it (tests use a tmp dir)."""
    return Path(os.environ.get("TTC_RUNS_DIR", project_root() / "data" / "runs"))


def notebook_path(stage: str) -> Path:
    return project_root() / "notebooks" / f"{stage}.ipynb"


def parameters_source(path: str | Path) -> str:
    """The source of the one cell tagged ``parameters`` of notebook ``path``."""
    path = Path(path)
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{path}: expected exactly one cell tagged 'parameters', found {len(tagged)}")
    return "".join(tagged[0]["source"])


def notebook_parameters(path: str | Path) -> dict[str, tuple[str, Any]]:
    """name -> (annotation, default) of the cell tagged ``parameters`` (typed literals only); the
    range a parameter declares in its comment: ``parameter_ranges.notebook_ranges``."""
    path = Path(path)
    source = parameters_source(path)
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
        """Start notebook ``name``. Every stage it reads (STAGE_INPUTS) must have finished and still
        hold what it made, from inputs that have not changed since (``artifacts.check_upstream``:
        else ``StaleStage`` names the stage to rerun). Then this stage's old ``summary.json`` is
        removed (until the new one is written, at the end, the stage is visibly unfinished and no
        later stage reads it); before it go those of the stages built on this one (``dependents``:
        made from what is now being rewritten, they stay unfinished until rerun, so a kill at any
        point leaves no finished stage on an unfinished one). Then its manifest is written: the
        notebook's declared parameters read from ``namespace``, its seed, the digest of every input
        stage, the hash of every data file a path parameter names, the environment
        (``environment.environment``: versions, CUDA, GPU, the device: this notebook's ``device``
        parameter, else the one 01 recorded, else None). ``torch_threads`` > 0 sets torch's thread
        count."""
        stage = cls(profile, name)
        inputs = {upstream: stage.check_input(upstream) for upstream in STAGE_INPUTS[name]}
        if torch_threads > 0:
            import torch

            torch.set_num_threads(torch_threads)
        for later in reversed(dependents(name)):  # first: a kill in between leaves them visibly unfinished
            (stage.dir.parent / later / "summary.json").unlink(missing_ok=True)
        (stage.dir / "summary.json").unlink(missing_ok=True)
        parameters = parameters_of(name, namespace)
        files = {key: file_hash(Path(v)) for key, v in parameters.items()
                 if isinstance(v, str) and v and Path(v).is_file()}  # source=, train_source=: data it reads
        device = parameters.get("device")
        if device is None and "01_train_generator" in inputs:
            device = stage.read_summary("01_train_generator").get("device", "cpu")
        stage.manifest = stage.write_manifest(parameters, seed=namespace.get("seed"), inputs=inputs,
                                              input_files=files, device=device)
        return stage

    def check_input(self, name: str) -> str:
        """The digest of earlier stage ``name`` after checking it finished and is not stale."""
        folder = self.require(name)
        manifest = read_json(folder / "manifest.json") if (folder / "manifest.json").exists() else {}
        current = {up: _recorded_digest(Stage(self.profile, up).dir) for up in (manifest.get("inputs") or {})}
        hint = "make {} PROFILE=" + self.profile
        check_upstream(name, folder, manifest, current, hint)
        return manifest["digest"]

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

    def write_manifest(self, parameters: dict, seed: int | None = None, inputs: dict[str, str] | None = None,
                       input_files: dict[str, str] | None = None, device: str | None = None) -> dict:
        """The manifest of a run in progress (``status`` "running"): parameters, seed, versions, the
        digest of each input stage, the sha256 of each input data file, and the ``environment``
        (``environment.environment(device)``; ``device`` None: a stage that uses none)."""
        manifest = {
            "stage": self.name, "profile": self.profile, "status": "running", "parameters": parameters,
            "seed": seed, "ttc_lib_version": __version__, "git_commit": git_commit(),
            "inputs": dict(inputs or {}), "input_files": dict(input_files or {}),
            "python": platform.python_version(), "machine": platform.machine(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "environment": environment(device),
        }
        write_json(self.path("manifest.json"), manifest)
        return manifest

    def write_summary(self, summary: dict) -> None:
        """Finish the stage: paths inside the runs folder made relative to it, the manifest completed
        with the hash of every artifact and the stage's digest, then ``summary.json`` written last;
        a Ray session the stage started (``executor: ray``) is stopped."""
        text = json_text(paths_in_runs_folder(summary, runs_root()))
        manifest_file = self.path("manifest.json")
        manifest = read_json(manifest_file) if manifest_file.exists() else {"stage": self.name, "profile": self.profile}
        artifacts = artifact_hashes(self.dir)
        summary_hash = hashlib.sha256(text.encode()).hexdigest()
        manifest.update(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), artifacts=artifacts,
                        summary_sha256=summary_hash,
                        digest=stage_digest(artifacts, summary_hash, manifest.get("inputs") or {}))
        write_json(manifest_file, manifest)
        atomic_write_text(self.path("summary.json"), text)
        stop_ray()  # executor: ray: the stage stops the Ray it started (models.ray_workers)

    def save(self, obj: Any, name: str, **kwargs: Any) -> None:
        """Write an artifact through a temporary file and a rename (a kill never leaves it torn): a
        DataFrame as ``.parquet`` or ``.csv`` (``kwargs`` go to pandas), a figure or seaborn grid
        (anything with ``savefig``) as an image (``kwargs`` go to savefig)."""
        path = self.path(name)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
        try:
            if hasattr(obj, "savefig"):
                obj.savefig(tmp, **kwargs)
            elif path.suffix == ".parquet":
                obj.to_parquet(tmp, **kwargs)
            elif path.suffix == ".csv":
                obj.to_csv(tmp, **kwargs)
            else:
                raise ValueError(f"Stage.save: no rule for {type(obj).__name__} as {name!r} "
                                 "(a DataFrame as .parquet/.csv, or a figure)")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def read_summary(self, name: str | None = None) -> dict:
        """A stage's summary (this one's, or earlier stage ``name``'s), its relative paths made absolute."""
        folder = self.dir if name is None else self.require(name)
        return paths_from_runs_folder(read_json(folder / "summary.json"), runs_root(), self.profile, STAGES)

    def step_delimiter(self) -> str:
        """The run's step contract (tasks.steps), as notebook 01 recorded it ("newline" when 01 predates it)."""
        return self.read_summary("01_train_generator").get("step_delimiter", "newline")

    def generator(self, role: str = "policy", **kwargs: Any):
        """The model notebook 01 recorded for ``role`` ("policy", "verifier_backbone", "large") as a
        ``generation.Generator``, with the prompt style, device and step contract it recorded: how every
        later stage loads a model, trained by ttc or your own. A role 01 did not provide is a clear error."""
        from ttc_lib.generation.generator import Generator

        summary = self.read_summary("01_train_generator")
        path = summary["checkpoints"].get(role)
        if not path:
            raise FileNotFoundError(f"stage {self.name}: notebook 01 of profile {self.profile!r} recorded no "
                                    f"{role!r} model (known: {sorted(summary['checkpoints'])})")
        options = {"device": summary.get("device", "cpu"), "prompt_style": summary.get("prompt_style"),
                   "step_delimiter": summary.get("step_delimiter", "newline"), **kwargs}
        return Generator.from_pretrained(path, **options)

    def device(self) -> str:
        """The device notebook 01 recorded ("auto" resolved), for verifiers and other models."""
        from ttc_lib.generation.generator import resolve_device

        return str(resolve_device(self.read_summary("01_train_generator").get("device", "cpu")))

    def problems(self, split: str = "test") -> list:
        """Notebook 00's ``train`` or ``test`` split as ``Problem`` records."""
        from ttc_lib.tasks import load_jsonl

        return load_jsonl(self.require("00_data") / f"{split}.jsonl", allow_empty=True)  # no training data: []

    def verifier(self, path: str | Path | None = None):
        """The verifier notebook 02 chose (or the saved verifier at ``path``), on the recorded device.
        It must cut steps as the run does (its step contract is the one 01 recorded), else ValueError."""
        from ttc_lib.tasks.steps import contract_of
        from ttc_lib.verifiers.kinds import load_verifier

        path = path or self.read_summary("02_train_verifier")["chosen_verifier_path"]
        verifier = load_verifier(path, device=self.device())
        if contract_of(verifier).name != self.step_delimiter():
            raise ValueError(f"verifier {path} cuts steps by step_delimiter {contract_of(verifier).name!r}, but "
                             f"this run's (notebook 01) is {self.step_delimiter()!r}: it would score other steps "
                             f"than the run makes; make it under this run (e.g. make 02_train_verifier "
                             f"PROFILE={self.profile})")
        return verifier

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


def _recorded_digest(folder: Path) -> str | None:
    """The digest a finished stage recorded in its manifest (None: unfinished or never run)."""
    manifest = folder / "manifest.json"
    if not (folder / "summary.json").exists() or not manifest.exists():
        return None
    return read_json(manifest).get("digest")
