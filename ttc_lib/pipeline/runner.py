"""Run the notebooks in order with papermill, on a named profile, with parameters checked first.

``python -m ttc_lib.pipeline run --profile cpu`` is what ``make run`` calls. A profile is
``params/<name>.yaml``: a ``common`` section given to every notebook, then one section per
notebook stem. papermill only *warns* about a parameter a notebook does not declare, so this
module checks every name and type against the notebook's ``parameters`` cell before anything
runs, and names the profile file, section and key at fault. Executed copies go to
``build/<profile>/``; the source notebooks are never written.

Ranges. A parameter declares the values it accepts in a tag that opens its comment, e.g.
``n_test: int = 80  # [0..] test problems (0: all)`` or ``budgets: list = [4]  # [non-empty; ints 1..]``.
Every value of a profile or a ``--set`` is checked against it before any kernel starts; the error
names the profile file (or --set), the notebook, the parameter, the value and the tag. Grammar:
``[`` constraint (``;`` constraint)* ``]``, every constraint must hold:

- ``a..b``, ``a..``, ``..b``: a number from a to b, both included (``1..``: at least 1);
- ``> a``, ``< b``: strictly above a, strictly below b (``> 0; < 1``: a fraction, both ends excluded);
- ``in {x, y}``: one of these strings (``""``: the empty string);
- ``non-empty``: a list or string with at least one item;
- ``ints``, ``numbers``, ``strs``, ``dicts``: (lists) what every element is; in a list's tag, bounds
  and ``in`` apply to every element (``ints 1..``: every element an int of at least 1).

A tag holds no ``=`` (papermill's own parameter parser gives up on a line with two); a parameter
without a tag is checked for its type only. ``parameter_ranges`` parses the tags and holds the few
rules that tie parameters of one notebook together (e.g. 00's arithmetic world needs ``n_test`` >= 1).
Reserved: ``profile`` names the run folder and comes from ``--profile`` only, never from a profile
section or ``--set``. Run settings (``environment.RUN_SETTINGS``: ``requires_gpu``, ``allow_cpu``,
``executor``, ``ray_address``) sit in a profile's ``common`` section or come from ``--set``; they are
about the run, no notebook sees them as a parameter: a profile that ``requires_gpu`` (gpu, math500) stops before any
kernel starts when notebook 01's ``device`` resolves to CPU, unless ``allow_cpu=true``; ``executor``
(``local`` | ``ray``) and ``ray_address`` reach the kernels as environment variables (``environment.exported``). Profile files and ``--set`` values are read as YAML with one change: ``1e-3``,
``2E-4`` and ``5e+2`` are floats (YAML 1.1, PyYAML's dialect, reads them as strings).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from ttc_lib.pipeline.compare_runs import compare_summaries
from ttc_lib.pipeline.environment import RUN_SETTINGS, exported, gpu_problem, take_settings
from ttc_lib.pipeline.parameter_ranges import Range, combination_problem, notebook_ranges
from ttc_lib.pipeline.publish import main_text, publish, results_folder
from ttc_lib.pipeline.run_lock import RunLocked, run_lock
from ttc_lib.pipeline.runs import STAGES, notebook_parameters, notebook_path, project_root, runs_root
from ttc_lib.progress import terminal_progress
from ttc_lib.storage import write_json

TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,),
                                      "bool": (bool,), "list": (list,), "dict": (dict,)}
RESERVED = {"profile": "it names the run folder data/runs/<profile>/ and comes from --profile <name> "
                       "(params/<name>.yaml) only"}


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, plus floats written with an exponent and no dot or sign (1e-3, 2E-4, 5e+2)."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
                              list("-+0123456789."))


def read_yaml(text: str) -> Any:
    """``text`` as YAML, read the same way for profile files and --set values (module docstring)."""
    return yaml.load(text, Loader=_Loader)


def load_profile(profile: str) -> dict[str, dict[str, Any]]:
    """stage -> parameters for ``params/<profile>.yaml``, validated against every notebook."""
    path = project_root() / "params" / f"{profile}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ValueError(f"unknown profile {profile!r}: no {path}; known profiles: {known}")
    raw = read_yaml(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: top level must be a mapping of sections")
    unknown = sorted(set(raw) - set(STAGES) - {"common"})
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {unknown}; sections are 'common' and {STAGES}")
    for section, values in raw.items():
        if not isinstance(values or {}, dict):
            raise ValueError(f"{path}: [{section}] must be a mapping of parameter: value")
        reserved = sorted(set(values or {}) & set(RESERVED))
        if reserved:
            raise ValueError(f"{path}: [{section}] {reserved[0]!r} cannot be set in a profile: {RESERVED[reserved[0]]}")
    common = dict(raw.get("common") or {})
    take_settings(common, f"{path}: [common]")  # run settings: read by run_settings, passed to no notebook
    resolved = {}
    for stage in STAGES:
        if not notebook_path(stage).exists():
            continue
        declared, ranges = notebook_parameters(notebook_path(stage)), notebook_ranges(notebook_path(stage))
        values = {**common, **(raw.get(stage) or {}), "profile": profile}
        for key, value in values.items():
            section = stage if key in (raw.get(stage) or {}) else "common"
            _check_value(path, section, stage, key, value, declared, ranges)
        resolved[stage] = values
    _check_combinations(path, resolved)
    return resolved


def run_settings(profile: str, overrides: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The run settings (module docstring) of ``params/<profile>.yaml``, ``--set`` ones applied, and
    the overrides that are notebook parameters."""
    path = project_root() / "params" / f"{profile}.yaml"
    raw = (read_yaml(path.read_text()) or {}) if path.exists() else {}
    common = raw.get("common") if isinstance(raw, dict) else None
    settings = take_settings(dict(common or {}), f"{path}: [common]")
    rest = []
    for item in overrides:
        key, _, text = item.partition("=")
        if key in RUN_SETTINGS:
            settings.update(take_settings({key: read_yaml(text) if text.strip() else ""}, f"--set {item}:"))
        else:
            rest.append(item)
    return settings, rest


def _check_value(path: Path, section: str, stage: str, key: str, value: Any,
                 declared: dict[str, tuple[str, Any]], ranges: dict[str, Range]) -> None:
    if key not in declared:
        raise ValueError(f"{path}: [{section}] parameter {key!r} is not declared in notebooks/"
                         f"{stage}.ipynb (its parameters: {sorted(declared)})")
    annotation = declared[key][0]
    allowed = TYPES.get(annotation.split("[")[0])
    if allowed and (not isinstance(value, allowed) or (annotation != "bool" and isinstance(value, bool))):
        raise ValueError(f"{path}: [{section}] parameter {key!r} = {value!r} must be {annotation} "
                         f"(notebooks/{stage}.ipynb)")
    why = ranges[key].violation(value) if key in ranges else None
    if why:
        raise ValueError(f"{path}: [{section}] parameter {key!r} = {value!r} of notebooks/{stage}.ipynb {why} "
                         f"(allowed: [{ranges[key].text}])")


def _check_combinations(where: Path, resolved: dict[str, dict[str, Any]]) -> None:
    """``parameter_ranges.combination_problem`` for every notebook, its defaults filling in the rest."""
    for stage, given in resolved.items():
        defaults = {name: default for name, (_, default) in notebook_parameters(notebook_path(stage)).items()}
        problem = combination_problem(stage, {**defaults, **given})
        if problem:
            raise ValueError(f"{where}: notebooks/{stage}.ipynb: {problem}")


def apply_overrides(resolved: dict[str, dict[str, Any]], overrides: list[str]) -> None:
    """``key=value`` (value read as YAML, ``read_yaml``; nothing after ``=``: the empty string) set in
    every notebook that declares ``key``, each value checked like a profile's."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must be key=value")
        if key in RESERVED:
            raise ValueError(f"--set {item}: {key!r} cannot be overridden: {RESERVED[key]}")
        value = read_yaml(text) if text.strip() else ""
        hit = False
        for stage in resolved:
            declared = notebook_parameters(notebook_path(stage))
            if key in declared:
                _check_value(Path("--set"), "override", stage, key, value, declared, notebook_ranges(notebook_path(stage)))
                resolved[stage][key] = value
                hit = True
        if not hit:
            raise ValueError(f"override {key!r} is not a parameter of any notebook")
    _check_combinations(Path("--set"), resolved)


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
    """Execute the notebooks of ``profile`` in order; returns stage -> wall seconds. Once the
    parameters are checked, the whole run holds the lock of the profile's runs folder
    (``runs_root()/<profile>/.lock``, ``run_lock``; it covers ``build/<profile>/`` too): a second run
    of the same profile meanwhile is refused with ``RunLocked`` naming this one. A notebook stepped
    through in JupyterLab takes no lock."""
    resolved = load_profile(profile)
    settings, overrides = run_settings(profile, list(overrides))
    apply_overrides(resolved, overrides)
    absolute_paths(resolved)
    first = "01_train_generator"
    device = resolved.get(first, {}).get("device") or notebook_parameters(notebook_path(first))["device"][1]
    problem = gpu_problem(profile, settings, device)
    if problem:
        raise ValueError(problem)
    chosen = stages or list(resolved)
    for stage in chosen:
        if stage not in resolved:
            raise ValueError(f"unknown stage {stage!r}; known: {list(resolved)}")
    with run_lock(runs_root() / profile / ".lock"), exported(settings):  # the executor, to every kernel
        return _run_stages(profile, chosen, resolved)


def _run_stages(profile: str, chosen: list[str], resolved: dict[str, dict[str, Any]]) -> dict[str, float]:
    import papermill

    out_dir = project_root() / "build" / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    timings_path = out_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    for stage in chosen:
        print(f"== {stage} (profile {profile})", flush=True)
        start = time.time()
        try:
            with terminal_progress(out_dir / f"{stage}.progress"):  # the long loops' lines on this terminal
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
    publish_p = sub.add_parser("publish", help="copy a finished run's figures, notebooks and timings into "
                                               "docs/results/<profile> with a README made from its summaries")
    publish_p.add_argument("profile")
    publish_p.add_argument("--out", help="results folder (default: docs/results/<profile>)")
    publish_p.add_argument("--build", help="executed notebooks and timings.json (default: build/<profile>)")
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
        elif args.command == "publish":
            report = publish(args.profile, args.out, args.build)
            print(main_text(report, Path(args.out) if args.out else results_folder(args.profile)))
        else:
            names = args.profiles or sorted(p.stem for p in (project_root() / "params").glob("*.yaml"))
            for name in names:
                load_profile(name)
                print(f"profile {name}: ok")
    except (ValueError, FileNotFoundError, RunLocked) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
