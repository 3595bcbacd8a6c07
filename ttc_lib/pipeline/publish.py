"""A finished run as the reference results folder: ``python -m ttc_lib.pipeline publish <profile>``
(``make publish PROFILE=<profile>``), by default into ``docs/results/<profile>/``.

Rules
- Copied from every finished stage (``summary.json`` written) of ``runs_root()/<profile>/``: its
  figures (``*.png``) and small tables (``*.csv`` up to ``MAX_CSV_BYTES``) as
  ``<stage number>_<name>`` (``04_figure3_intervals.png``); notebook 08's ``claims.md`` as
  ``claims.md``; the executed notebooks ``build/<profile>/<stage>.ipynb`` into ``notebooks/``;
  ``build/<profile>/timings.json``.
- ``README.md`` is generated from the summaries, the manifests and ``timings.json`` only
  (``results_readme``): every number in it is a summary's.
- ``published.json`` lists what this publish wrote. The next publish removes the files of that
  list it no longer writes; anything else in the folder (``claims.md``, a hand-written note) stays.
- The profile's run lock is held while publishing: a run in progress is refused (``RunLocked``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ttc_lib.pipeline.results_readme import read_dict, readme
from ttc_lib.pipeline.run_lock import run_lock
from ttc_lib.pipeline.runs import STAGES, project_root, runs_root
from ttc_lib.storage import atomic_write_text, write_json

MAX_CSV_BYTES = 200_000
MANIFEST = "published.json"
PROTECTED = {"claims.md", MANIFEST}  # never removed by a publish


def results_folder(profile: str) -> Path:
    """Where ``publish`` writes by default: ``docs/results/<profile>``."""
    return project_root() / "docs" / "results" / profile


def publish(profile: str, out: str | Path | None = None, build: str | Path | None = None) -> dict[str, list[str]]:
    """Write the results folder of ``profile`` (module rules) into ``out`` (default
    ``docs/results/<profile>``) from ``runs_root()/<profile>`` and ``build`` (default
    ``build/<profile>``). Returns {"written", "removed", "unlisted"}: files written, files of the
    previous publish removed, and files in ``out`` that no publish wrote (left alone)."""
    runs = runs_root() / profile
    stages = {s: runs / s for s in STAGES if (runs / s / "summary.json").exists()}
    if not stages:
        raise FileNotFoundError(f"no finished stage in {runs}: run `make run PROFILE={profile}` first "
                                "(or set TTC_RUNS_DIR to the runs folder that holds it)")
    out = Path(out) if out else results_folder(profile)
    build = Path(build) if build else project_root() / "build" / profile
    with run_lock(runs / ".lock", command=f"publish {profile}"):
        out.mkdir(parents=True, exist_ok=True)
        copies: dict[str, Path] = {}
        figures: dict[str, list[str]] = {}
        for stage, folder in stages.items():
            for path in sorted(folder.glob("*.png")) + sorted(folder.glob("*.csv")):
                if path.suffix == ".png" or path.stat().st_size <= MAX_CSV_BYTES:
                    copies[f"{stage[:2]}_{path.name}"] = path
                    figures.setdefault(stage, []).append(f"{stage[:2]}_{path.name}")
        if (runs / "08_claims" / "claims.md").exists() and "08_claims" in stages:
            copies["claims.md"] = runs / "08_claims" / "claims.md"
            figures.setdefault("08_claims", []).append("claims.md")
        notebooks = {s for s in stages if (build / f"{s}.ipynb").exists()}
        copies.update({f"notebooks/{s}.ipynb": build / f"{s}.ipynb" for s in notebooks})
        if (build / "timings.json").exists():
            copies["timings.json"] = build / "timings.json"
        for name, source in copies.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, out / name)
        try:
            label = str(runs.parent.resolve().relative_to(project_root().resolve()))
        except ValueError:
            label = str(runs.parent)
        timings = read_dict(build / "timings.json")
        atomic_write_text(out / "README.md", readme(profile, stages, figures, timings, notebooks,
                                                    f"{label}/{profile}"))
        written = sorted([*copies, "README.md"])
        previous = read_dict(out / MANIFEST).get("files") or []
        removed = [n for n in previous if n not in written and n not in PROTECTED and (out / n).is_file()
                   and (out / n).resolve().is_relative_to(out.resolve())]  # a hand-edited list cannot reach out
        for name in removed:
            (out / name).unlink()
        write_json(out / MANIFEST, {"profile": profile, "files": written})
    present = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    return {"written": written, "removed": removed,
            "unlisted": [p for p in present if p not in written and p not in PROTECTED]}


def main_text(report: dict[str, list[str]], out: Path) -> str:
    """What the CLI prints about a publish."""
    lines = [f"published {len(report['written'])} files into {out}"]
    lines += [f"removed (written by the previous publish, not by this run): {', '.join(report['removed'])}"] \
        if report["removed"] else []
    lines += [f"left alone (no publish wrote them): {', '.join(report['unlisted'])}"] if report["unlisted"] else []
    return "\n".join(lines)

