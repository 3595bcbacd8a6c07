"""Meta-tests: profiles agree with the notebooks, notebooks stay thin, runs fail clearly."""

from __future__ import annotations

import ast
import json

import pytest
import yaml

from ttc_lib.pipeline import runner as pipeline
from ttc_lib.pipeline.runs import STAGES, notebook_parameters, project_root

ROOT = project_root()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PROFILES = sorted((ROOT / "params").glob("*.yaml"))


def test_notebooks_are_the_stages_in_order():
    stems = [p.stem for p in NOTEBOOKS]
    assert stems == STAGES[: len(stems)], "notebooks must be the first stages of runs.STAGES, in order"
    assert len(stems) >= 2


@pytest.mark.parametrize("profile_path", PROFILES, ids=lambda p: p.stem)
def test_every_profile_key_is_a_notebook_parameter(profile_path):
    raw = yaml.safe_load(profile_path.read_text())
    declared = {p.stem: notebook_parameters(p) for p in NOTEBOOKS}
    for key in raw.get("common") or {}:
        for stem, params in declared.items():
            assert key in params, f"{profile_path.name}: common key {key!r} missing from {stem}.ipynb"
    for section, values in raw.items():
        if section == "common":
            continue
        assert section in STAGES, f"{profile_path.name}: unknown section {section}"
        if section in declared:
            for key in values or {}:
                assert key in declared[section], f"{profile_path.name}: {section}.{key} not in the notebook"
    pipeline.load_profile(profile_path.stem)  # and the types agree


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_thin_and_clean(nb_path):
    nb = json.loads(nb_path.read_text())
    params = notebook_parameters(nb_path)
    assert {"profile", "seed"} <= set(params), "every notebook takes profile and seed"
    assert params["profile"][1] == "ci", "notebook defaults are the ci profile"
    assert nb["cells"][0]["cell_type"] == "markdown", "a notebook opens with what it does and why"
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
        assert not any(isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) for n in ast.walk(tree)), \
            f"{nb_path.name}: no def/class in notebooks (put it in ttc_lib)"
        assert "injected-parameters" not in cell.get("metadata", {}).get("tags", [])
        assert not any(o.get("output_type") == "error" for o in cell.get("outputs", []))


MAX_CELL_LINES = 15  # a code cell is a few library calls; anything longer belongs in ttc_lib


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_cells_are_short(nb_path):
    nb = json.loads(nb_path.read_text())
    long = []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code" or "parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        lines = len("".join(cell["source"]).strip().splitlines())
        if lines > MAX_CELL_LINES:
            long.append(f"cell {index} ({cell.get('id')}): {lines} lines")
    assert not long, f"{nb_path.name}: code cells over {MAX_CELL_LINES} lines (move the logic to ttc_lib): {long}"


def test_a_stage_opens_with_one_library_call():
    for nb_path in NOTEBOOKS:
        source = "".join("".join(c["source"]) for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == "code")
        assert f'Stage.open(profile, "{nb_path.stem}", globals()' in source, f"{nb_path.name}: open with Stage.open"


def test_ci_profile_equals_notebook_defaults():
    raw = yaml.safe_load((ROOT / "params" / "ci.yaml").read_text())
    for stem, values in raw.items():
        targets = [p for p in NOTEBOOKS if p.stem == stem] if stem != "common" else NOTEBOOKS
        for nb_path in targets:
            declared = notebook_parameters(nb_path)
            for key, value in (values or {}).items():
                assert declared[key][1] == value, f"ci.yaml {stem}.{key}={value!r} != default in {nb_path.name}"


def test_unknown_profile_is_named():
    with pytest.raises(ValueError, match="unknown profile 'nope'"):
        pipeline.load_profile("nope")


def test_unknown_or_mistyped_parameter_is_named(tmp_path, monkeypatch):
    params_dir = tmp_path / "params"
    params_dir.mkdir()
    (tmp_path / "notebooks").symlink_to(ROOT / "notebooks")
    monkeypatch.setattr(pipeline, "project_root", lambda: tmp_path)
    (params_dir / "bad.yaml").write_text("00_data:\n  n_trian: 5\n")
    with pytest.raises(ValueError, match=r"bad.yaml: \[00_data\] parameter 'n_trian' is not declared"):
        pipeline.load_profile("bad")
    (params_dir / "typed.yaml").write_text("00_data:\n  n_train: many\n")
    with pytest.raises(ValueError, match=r"'n_train' = 'many' must be int"):
        pipeline.load_profile("typed")
    (params_dir / "section.yaml").write_text("99_nothing:\n  x: 1\n")
    with pytest.raises(ValueError, match="unknown section"):
        pipeline.load_profile("section")


def test_override_must_name_a_parameter():
    resolved = pipeline.load_profile("ci")
    with pytest.raises(ValueError, match="'no_such_knob' is not a parameter"):
        pipeline.apply_overrides(resolved, ["no_such_knob=3"])
    pipeline.apply_overrides(resolved, ["seed=7"])
    assert all(v["seed"] == 7 for v in resolved.values())


def test_cli_reports_errors_without_traceback(capsys):
    assert pipeline.main(["check", "nope"]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_sees_every_parameter(nb_path):
    # papermill's own parser (papermill --help-notebook) gives up on some lines, e.g. '=' in a comment
    from papermill.translators import PythonTranslator

    cell = next(c for c in json.loads(nb_path.read_text())["cells"] if "parameters" in c["metadata"].get("tags", []))
    seen = {p.name for p in PythonTranslator.inspect({"source": "".join(cell["source"])})}
    assert seen == set(notebook_parameters(nb_path))


def test_relative_paths_are_taken_from_where_make_runs(tmp_path):
    from ttc_lib.pipeline.runner import absolute_paths

    (tmp_path / "mine.jsonl").write_text("")
    resolved = {"00_data": {"source": "mine.jsonl", "n_test": 3},
                "01_train_generator": {"generator": "Qwen/Qwen2.5-0.5B", "prompt_style": "plain"}}
    absolute_paths(resolved, base=tmp_path)
    assert resolved["00_data"]["source"] == str((tmp_path / "mine.jsonl").resolve())
    assert resolved["01_train_generator"]["generator"] == "Qwen/Qwen2.5-0.5B"  # a hub id, not a path here
    assert resolved["01_train_generator"]["prompt_style"] == "plain"
