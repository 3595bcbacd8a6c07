"""Run the notebooks in order with papermill, on a named profile, with parameters checked first.

``python -m ttc_lib.pipeline run --profile cpu`` is what ``make run`` calls. A profile is
``params/<name>.yaml``: a ``common`` section given to every notebook, then one section per
notebook stem. papermill only *warns* about a parameter a notebook does not declare, so this
module checks every name and type against the notebook's ``parameters`` cell before anything
runs, and names the profile file, section and key at fault. Executed copies go to
``build/<profile>/``; the source notebooks are never written.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ttc_lib.pipeline.compare_runs import compare_summaries
from ttc_lib.pipeline.runs import STAGES, notebook_parameters, notebook_path, project_root
from ttc_lib.storage import write_json

TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,),
                                      "bool": (bool,), "list": (list,), "dict": (dict,)}


def load_profile(profile: str) -> dict[str, dict[str, Any]]:
    """stage -> parameters for ``params/<profile>.yaml``, validated against every notebook."""
    import yaml

    path = project_root() / "params" / f"{profile}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ValueError(f"unknown profile {profile!r}: no {path}; known profiles: {known}")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: top level must be a mapping of sections")
    unknown = sorted(set(raw) - set(STAGES) - {"common"})
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {unknown}; sections are 'common' and {STAGES}")
    common = raw.get("common") or {}
    resolved = {}
    for stage in STAGES:
        if not notebook_path(stage).exists():
            continue
        declared = notebook_parameters(notebook_path(stage))
        values = {**common, **(raw.get(stage) or {}), "profile": profile}
        for key, value in values.items():
            section = stage if key in (raw.get(stage) or {}) else "common"
            _check_value(path, section, stage, key, value, declared)
        resolved[stage] = values
    return resolved


def _check_value(path: Path, section: str, stage: str, key: str, value: Any,
                 declared: dict[str, tuple[str, Any]]) -> None:
    if key not in declared:
        raise ValueError(f"{path}: [{section}] parameter {key!r} is not declared in notebooks/"
                         f"{stage}.ipynb (its parameters: {sorted(declared)})")
    annotation = declared[key][0]
    allowed = TYPES.get(annotation.split("[")[0])
    if allowed and (not isinstance(value, allowed) or (annotation != "bool" and isinstance(value, bool))):
        raise ValueError(f"{path}: [{section}] parameter {key!r} = {value!r} must be {annotation} "
                         f"(notebooks/{stage}.ipynb)")


def apply_overrides(resolved: dict[str, dict[str, Any]], overrides: list[str]) -> None:
    """``key=value`` (value parsed as YAML) set in every notebook that declares ``key``."""
    import yaml

    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must be key=value")
        value = yaml.safe_load(text)
        hit = False
        for stage in resolved:
            declared = notebook_parameters(notebook_path(stage))
            if key in declared:
                _check_value(Path("--set"), "override", stage, key, value, declared)
                resolved[stage][key] = value
                hit = True
        if not hit:
            raise ValueError(f"override {key!r} is not a parameter of any notebook")


# Parameters that name a file, folder or model: a relative path is taken from where you run make
# (the notebooks run with notebooks/ as their working directory). Hub ids are left alone.
PATH_PARAMETERS = ("source", "train_source", "generator", "verifier_backbone", "large_generator", "verifier")


def absolute_paths(resolved: dict[str, dict[str, Any]], base: Path | None = None) -> None:
    """Make every relative path in PATH_PARAMETERS that exists under ``base`` (default: the current
    directory) absolute, in place."""
    base = Path.cwd() if base is None else base
    for values in resolved.values():
        for key in PATH_PARAMETERS:
            value = values.get(key)
            if isinstance(value, str) and value and not Path(value).is_absolute() and (base / value).exists():
                values[key] = str((base / value).resolve())


def run(profile: str, stages: list[str] | None = None, overrides: list[str] = ()) -> dict[str, float]:
    """Execute the notebooks of ``profile`` in order; returns stage -> wall seconds."""
    import papermill

    resolved = load_profile(profile)
    apply_overrides(resolved, list(overrides))
    absolute_paths(resolved)
    chosen = stages or list(resolved)
    for stage in chosen:
        if stage not in resolved:
            raise ValueError(f"unknown stage {stage!r}; known: {list(resolved)}")
    out_dir = project_root() / "build" / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    timings_path = out_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    for stage in chosen:
        print(f"== {stage} (profile {profile})", flush=True)
        start = time.time()
        try:
            papermill.execute_notebook(str(notebook_path(stage)), str(out_dir / f"{stage}.ipynb"),
                                       parameters=resolved[stage], cwd=str(project_root() / "notebooks"),
                                       progress_bar=True, log_output=False, kernel_name="python3")
        except papermill.PapermillExecutionError as err:
            if err.ename != "StageStopped":  # own_model.StageStopped: summary written, nothing more to do
                raise
            print(f"== {stage}: {err.evalue}", flush=True)
        timings[stage] = round(time.time() - start, 1)
        write_json(timings_path, timings)
        print(f"== {stage} done in {timings[stage]:.0f} s", flush=True)
    return timings


CONTRACT_MARK = "# NBVAL_CHECK_OUTPUT"  # nbval --nbval-lax compares only the outputs of these cells


def record_contracts(stages: list[str] | None = None) -> list[str]:
    """Run the ``ci`` profile, then store the printed outputs of each notebook's contract cells
    in the source notebook (every other output stays empty): what ``make test`` compares against.
    Returns the notebooks that changed."""
    import nbformat

    run("ci", stages)
    changed = []
    for stage in stages or [s for s in STAGES if notebook_path(s).exists()]:
        source_path, executed_path = notebook_path(stage), project_root() / "build" / "ci" / f"{stage}.ipynb"
        source, executed = nbformat.read(source_path, 4), nbformat.read(executed_path, 4)
        outputs = {c.get("id"): c.get("outputs", []) for c in executed.cells if c.cell_type == "code"}
        before = nbformat.writes(source)
        for cell in source.cells:
            if cell.cell_type != "code":
                continue
            contract = CONTRACT_MARK in cell.source
            # nbval skips a reference cell without an execution count ("unrun reference cell")
            cell.execution_count = 1 if contract else None
            cell.outputs = [o for o in outputs.get(cell.get("id"), []) if o.get("output_type") == "stream"] \
                if contract else []
        if nbformat.writes(source) != before:
            nbformat.write(source, source_path)
            changed.append(stage)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ttc_lib.pipeline", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="execute notebooks with papermill")
    run_p.add_argument("--profile", default="cpu")
    run_p.add_argument("--stages", nargs="*", help="notebook stems (default: all, in order)")
    run_p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    check_p = sub.add_parser("check", help="validate params/<profile>.yaml against the notebooks")
    check_p.add_argument("profiles", nargs="*")
    record_p = sub.add_parser("record", help="run ci and store contract-cell outputs in the sources")
    record_p.add_argument("--stages", nargs="*")
    compare_p = sub.add_parser("compare", help="list the summary values that differ between two runs folders")
    compare_p.add_argument("first")
    compare_p.add_argument("second")
    compare_p.add_argument("--profile", default="ci")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            run(args.profile, args.stages, args.overrides)
        elif args.command == "record":
            print("contract outputs changed in:", record_contracts(args.stages) or "none")
        elif args.command == "compare":
            report = compare_summaries(args.first, args.second, args.profile)
            for stage, differences in report.items():
                print(f"{stage}: {'identical' if not differences else f'{len(differences)} differences'}")
                for line in differences[:20]:
                    print("   ", line)
            return 1 if any(report.values()) else 0
        else:
            names = args.profiles or sorted(p.stem for p in (project_root() / "params").glob("*.yaml"))
            for name in names:
                load_profile(name)
                print(f"profile {name}: ok")
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
