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
    for key in set(raw.get("common") or {}) - set(pipeline.RUN_SETTINGS):  # run settings: no notebook's
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


# ---- ranges: declared next to the types, checked before any kernel starts ----------------------------------------


def _own_profile(tmp_path, monkeypatch, name: str, text: str) -> str:
    """A profile ``name`` in a tmp params/ folder, the notebooks the real ones."""
    (tmp_path / "params").mkdir(exist_ok=True)
    if not (tmp_path / "notebooks").exists():
        (tmp_path / "notebooks").symlink_to(ROOT / "notebooks")
    monkeypatch.setattr(pipeline, "project_root", lambda: tmp_path)
    (tmp_path / "params" / f"{name}.yaml").write_text(text)
    return name


def test_profile_is_reserved(tmp_path, monkeypatch):
    # measured: `--profile ci --set profile=cpu` wrote ci-sized artifacts into runs/cpu/
    with pytest.raises(ValueError, match=r"--set profile=cpu: 'profile' cannot be overridden: .*--profile"):
        pipeline.apply_overrides(pipeline.load_profile("ci"), ["profile=cpu"])
    _own_profile(tmp_path, monkeypatch, "sneaky", "04_search:\n  profile: cpu\n")
    with pytest.raises(ValueError, match=r"sneaky.yaml: \[04_search\] 'profile' cannot be set in a profile"):
        pipeline.load_profile("sneaky")


@pytest.mark.parametrize("override, stage, message", [
    # measured: both silently dropped problems by negative slicing
    ("n_test=-3", "00_data", r"'n_test' = -3 of notebooks/00_data.ipynb must be >= 0 \(allowed: \[0\.\.\]\)"),
    ("n_questions=-5", "03_difficulty_bins",
     r"'n_questions' = -5 of notebooks/03_difficulty_bins.ipynb must be >= 0 \(allowed: \[0\.\.\]\)"),
    # measured: 05 exited 0 with -1 dropped while its summary recorded [4, -1]
    ("budgets=[4,-1]", "05_revisions", r"'budgets' = \[4, -1\] of notebooks/05_revisions.ipynb element -1 must be >= 1"),
    ("budgets=[]", "05_revisions", r"'budgets' = \[\] of notebooks/05_revisions.ipynb must not be empty"),
    ("selections=[weighted, best]", "04_search", r"'selections' = \['weighted', 'best'\] of notebooks/04_search.ipynb "
                                                 r"element 'best' must be one of \['weighted', 'majority', 'naive'\]"),
    ("context_share=1.5", "01_train_generator", r"'context_share' = 1.5 .* must be <= 1 \(allowed: \[0\.\.1\]\)"),
    ("temperature=0", "01_train_generator", r"'temperature' = 0 of notebooks/01_train_generator.ipynb must be > 0"),
])
def test_out_of_range_override_names_notebook_parameter_and_range(override, stage, message):
    resolved = pipeline.load_profile("ci")
    with pytest.raises(ValueError, match=r"^--set: \[override\] parameter " + message) as err:
        pipeline.apply_overrides(resolved, ["source=mine.jsonl", override])
    assert f"notebooks/{stage}.ipynb" in str(err.value)


def test_exponent_floats_are_floats(tmp_path, monkeypatch):
    # measured: lr=1e-3 was refused as 'must be float' (YAML 1.1 reads 1e-3 as a string)
    resolved = pipeline.load_profile("ci")
    pipeline.apply_overrides(resolved, ["lr=1e-3", "large_lr=2E-4"])
    assert resolved["01_train_generator"]["lr"] == 0.001 and isinstance(resolved["01_train_generator"]["lr"], float)
    assert resolved["01_train_generator"]["large_lr"] == 0.0002
    assert pipeline.read_yaml("5e+2") == 500.0 and pipeline.read_yaml("1.5e-3") == 0.0015
    assert pipeline.read_yaml("3") == 3 and pipeline.read_yaml("abc") == "abc" and pipeline.read_yaml("1e") == "1e"
    assert yaml.safe_load("1e-3") == "1e-3", "PyYAML's own safe loader is left as it is"
    _own_profile(tmp_path, monkeypatch, "floats", "01_train_generator:\n  lr: 1e-3\n  large_lr: 5E-4\n")
    assert pipeline.load_profile("floats")["01_train_generator"]["lr"] == 0.001


def test_arithmetic_world_needs_test_problems():
    # measured: n_test=0 with the arithmetic world ended in a bare StopIteration inside notebook 00
    with pytest.raises(ValueError, match=r"00_data.ipynb: n_test = 0 means all of your own data .* n_test >= 1"):
        pipeline.apply_overrides(pipeline.load_profile("ci"), ["n_test=0"])
    with pytest.raises(ValueError, match=r"needs max_ops >= 3 and n_test >= 3"):
        pipeline.apply_overrides(pipeline.load_profile("ci"), ["n_test=2"])
    resolved = pipeline.load_profile("ci")
    pipeline.apply_overrides(resolved, ["source=mine.jsonl", "n_test=0"])  # your own data: 0 means all of it
    assert resolved["00_data"]["n_test"] == 0


def test_range_errors_come_before_any_kernel(monkeypatch, capsys):
    import papermill

    def no_kernel(*args, **kwargs):
        raise AssertionError("papermill was called")

    monkeypatch.setattr(papermill, "execute_notebook", no_kernel)
    assert pipeline.main(["run", "--profile", "ci", "--set", "source=mine.jsonl", "--set", "n_test=-3"]) == 2
    err = capsys.readouterr().err
    assert "notebooks/00_data.ipynb must be >= 0 (allowed: [0..])" in err and "Traceback" not in err


def test_range_grammar():
    from ttc_lib.pipeline.parameter_ranges import parse_range

    assert parse_range("1..", "int").violation(0) == "must be >= 1"
    assert parse_range("0..4", "float").violation(4.5) == "must be <= 4"
    assert parse_range("> 0; < 1", "float").violation(1) == "must be < 1"
    assert parse_range("> 0; ..10", "float").violation(10) is None
    assert parse_range('in {"", last}', "str").violation("") is None
    assert parse_range("non-empty; ints 1..", "list").violation([1, 2.5]) == "element 2.5 is not one of the ints"
    assert parse_range("numbers > 0", "list").violation([]) is None  # empty allowed unless non-empty
    for text, annotation in (("1..x", "int"), ("in {a, b}", "int"), ("ints", "int"), ("1..", "str"),
                             ("non-empty", "int"), ("at least 1", "int"), ("1..", "list")):
        with pytest.raises(ValueError):
            parse_range(text, annotation)


UNRANGED = {"profile", "train_source", "generator", "verifier_backbone", "large_generator", "verifier"}  # free text


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_declared_range_parses_and_holds_its_default(nb_path):
    from ttc_lib.pipeline.parameter_ranges import notebook_ranges

    ranges, params = notebook_ranges(nb_path), notebook_parameters(nb_path)
    for name, (annotation, default) in params.items():
        if name in ranges:
            assert ranges[name].violation(default) is None, f"{nb_path.name}: default {name} = {default!r} is out of range"
        else:
            assert annotation == "bool" or name in UNRANGED, f"{nb_path.name}: {name} declares no range"
    assert "profile" not in ranges


def test_every_profile_passes_the_checks(capsys):
    assert pipeline.main(["check", *(p.stem for p in PROFILES)]) == 0
    assert capsys.readouterr().out.count(": ok") == len(PROFILES)
