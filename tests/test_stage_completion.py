"""A stage is finished only when its summary is written, last; a later stage refuses inputs that
changed after they were made, naming the stage to rerun; runs folders can be moved."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from ttc_lib.pipeline.artifacts import StaleStage, artifact_hashes
from ttc_lib.pipeline.runs import STAGES, Stage, dependents, notebook_parameters, notebook_path, read_json


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("TTC_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def defaults(name: str, **values) -> dict:
    """A notebook's namespace as papermill leaves it: its declared parameters' defaults."""
    return {**{k: v for k, (_, v) in notebook_parameters(notebook_path(name)).items()}, **values}


def finish(name: str, files: dict[str, str] | None = None, **values) -> Stage:
    """Run stage ``name`` as its notebook would: open, write its artifacts, write its summary."""
    stage = Stage.open("ci", name, defaults(name, **values))
    for file, text in (files or {}).items():
        stage.path(*file.split("/")).parent.mkdir(parents=True, exist_ok=True)
        stage.path(*file.split("/")).write_text(text)
    stage.write_summary({"made_from": values, "model": str(stage.path("policy"))})
    return stage


def test_a_rerun_removes_the_old_summary_until_it_finishes(runs):
    finish("00_data", {"test.jsonl": "a\n"}, seed=0)
    finish("01_train_generator", {"policy/w": "w"})
    Stage.open("ci", "00_data", defaults("00_data", seed=7))  # the rerun fails before its summary
    assert not (runs / "ci" / "00_data" / "summary.json").exists()
    assert read_json(runs / "ci" / "00_data" / "manifest.json")["status"] == "running"
    with pytest.raises(FileNotFoundError, match="run 00_data first"):
        Stage.open("ci", "02_train_verifier", defaults("02_train_verifier"))


def test_a_rerun_leaves_the_stages_built_on_it_visibly_unfinished(runs):
    finish("00_data", {"test.jsonl": "a\n"}, seed=0)
    finish("01_train_generator", {"policy/w": "w"})
    finish("02_train_verifier", {"prm/w": "v"})
    Stage.open("ci", "01_train_generator", defaults("01_train_generator"))  # a rerun, killed before its summary
    finished = sorted(p.parent.name for p in (runs / "ci").glob("*/summary.json"))
    assert finished == ["00_data"]  # 02 was made from the 01 now being rewritten
    assert dependents("00_data") == STAGES[1:]
    assert dependents("04_search") == ["06_compute_optimal", "07_ttc_vs_pretraining", "08_claims"]
    assert dependents("08_claims") == []


def test_a_finished_stage_records_its_files_and_digest(runs):
    stage = finish("00_data", {"test.jsonl": "a\n", "cache/x.jsonl": "c", ".tmp": "t"}, seed=0)
    manifest = read_json(stage.dir / "manifest.json")
    assert manifest["status"] == "complete" and set(manifest["artifacts"]) == {"test.jsonl"}
    assert manifest["digest"] and manifest["summary_sha256"]


def test_a_file_changed_after_its_stage_finished_is_refused(runs):
    finish("00_data", {"test.jsonl": "a\nb\n"}, seed=0)
    (runs / "ci" / "00_data" / "test.jsonl").write_text("a\n")  # cut, as by hand
    with pytest.raises(StaleStage, match=r"00_data's files changed.*changed: test\.jsonl.*rerun 00_data"):
        Stage.open("ci", "01_train_generator", defaults("01_train_generator"))


def test_a_stage_made_from_an_older_input_is_refused(runs):
    finish("00_data", {"test.jsonl": "seed 0\n"}, seed=0)
    finish("01_train_generator", {"policy/w": "w"})
    finish("02_train_verifier", {"verifiers/v": "v"})
    kept = {name: (runs / "ci" / name / "summary.json").read_text() for name in ("01_train_generator",
                                                                             "02_train_verifier")}
    finish("00_data", {"test.jsonl": "seed 7\n"}, seed=7)  # 00 rerun with another seed, 01 and 02 not...
    for name, text in kept.items():  # ...and their old summaries put back, as by copying folders in
        (runs / "ci" / name / "summary.json").write_text(text)
    with pytest.raises(StaleStage, match="01_train_generator was made from an earlier 00_data.*rerun 01_train_generator"):
        Stage.open("ci", "03_difficulty_bins", defaults("03_difficulty_bins"))


def test_an_unchanged_chain_opens_and_records_its_inputs(runs):
    finish("00_data", {"test.jsonl": "a\n"})
    one = finish("01_train_generator", {"policy/w": "w"})
    stage = Stage.open("ci", "02_train_verifier", defaults("02_train_verifier"))
    assert stage.manifest["inputs"] == {"00_data": read_json(runs / "ci" / "00_data" / "manifest.json")["digest"],
                                        "01_train_generator": read_json(one.dir / "manifest.json")["digest"]}


def test_the_manifest_hashes_the_data_files_a_parameter_names(runs, tmp_path):
    data = tmp_path / "math.jsonl"
    data.write_text('{"problem": "1+1"}\n')
    stage = Stage.open("ci", "00_data", defaults("00_data", source=str(data)))
    assert len(stage.manifest["input_files"]["source"]) == 64


def test_summaries_hold_paths_relative_to_the_runs_folder(runs, tmp_path, monkeypatch):
    finish("00_data", {"test.jsonl": "a\n"})
    one = finish("01_train_generator", {"policy/w": "w"})
    assert json.loads((one.dir / "summary.json").read_text())["model"] == "ci/01_train_generator/policy"
    moved = tmp_path / "moved"
    shutil.move(str(runs), str(moved))
    monkeypatch.setenv("TTC_RUNS_DIR", str(moved))
    stage = Stage.open("ci", "02_train_verifier", defaults("02_train_verifier"))
    assert stage.read_summary("01_train_generator")["model"] == str(moved / "ci" / "01_train_generator" / "policy")


def test_save_writes_through_a_temporary_file(runs):
    stage = Stage("ci", "04_search")
    stage.save(pd.DataFrame({"a": [1, 2]}), "t.csv", index=False)
    assert stage.path("t.csv").read_text() == "a\n1\n2\n"

    class Broken(pd.DataFrame):
        def to_csv(self, path, **kwargs):
            open(path, "w").write("half")
            raise KeyboardInterrupt  # killed while writing

    with pytest.raises(KeyboardInterrupt):
        stage.save(Broken({"a": [3]}), "t.csv", index=False)
    assert stage.path("t.csv").read_text() == "a\n1\n2\n"  # the old file, whole
    assert [p.name for p in stage.dir.iterdir()] == ["t.csv"]  # no temporary left behind
    with pytest.raises(ValueError, match="no rule"):
        stage.save({"a": 1}, "t.json")
    assert artifact_hashes(stage.dir).keys() == {"t.csv"}


def test_inconsistent_stages_lists_what_a_kill_must_never_leave(runs):
    from ttc_lib.pipeline.artifacts import inconsistent_stages
    from ttc_lib.pipeline.runs import STAGES

    finish("00_data", {"test.jsonl": "a\n"})
    finish("01_train_generator", {"policy/w": "w"})
    Stage.open("ci", "02_train_verifier", defaults("02_train_verifier"))  # started, never finished
    assert inconsistent_stages(runs / "ci", STAGES) == []
    (runs / "ci" / "01_train_generator" / "policy" / "w").write_text("changed")
    assert [w.split("'")[0] for w in inconsistent_stages(runs / "ci", STAGES)] == ["01_train_generator"]
