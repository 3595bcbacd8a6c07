from __future__ import annotations

import pytest

from ttc_lib.pipeline.runs import Stage
from ttc_lib.storage import ResultCache, atomic_write_text, read_json, write_json


def test_stage_paths_manifest_and_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("TTC_RUNS_DIR", str(tmp_path))
    stage = Stage("ci", "00_data")
    manifest = stage.write_manifest({"seed": 3}, seed=3)
    assert stage.dir == tmp_path / "ci" / "00_data"
    assert read_json(stage.dir / "manifest.json")["parameters"] == {"seed": 3}
    assert manifest["ttc_lib_version"]
    stage.write_summary({"x": 1})
    assert Stage("ci", "01_train_generator").read_summary("00_data") == {"x": 1}


def test_missing_upstream_stage_names_the_make_target(tmp_path, monkeypatch):
    monkeypatch.setenv("TTC_RUNS_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"run 00_data first \(make 00_data PROFILE=cpu"):
        Stage("cpu", "01_train_generator").require("00_data")


def test_unknown_stage_is_named():
    with pytest.raises(ValueError, match="unknown stage '99_x'"):
        Stage("ci", "99_x")


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "a" / "b.json"
    write_json(target, {"k": [1, 2]})
    atomic_write_text(target, "replaced")
    assert target.read_text() == "replaced"
    assert [p.name for p in target.parent.iterdir()] == ["b.json"]


def test_read_json_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing file"):
        read_json(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        read_json(bad)


def test_result_cache_resumes_and_ignores_a_torn_line(tmp_path):
    path = tmp_path / "cache.jsonl"
    cache = ResultCache(path)
    cache.put_many([("q1", {"a": 1}), ("q2", [1, 2])])
    cache.close()
    with path.open("a") as fh:
        fh.write('{"key": "q3", "val')  # killed mid-write
    reopened = ResultCache(path)
    assert "q1" in reopened and reopened.get("q2") == [1, 2] and "q3" not in reopened
    reopened.put("q3", 3)
    reopened.close()
    assert ResultCache(path).get("q3") == 3
    assert sum(1 for line in path.read_text().splitlines() if line.startswith("{") and line.endswith("}")) == 3


def test_atomic_dir_replaces_only_on_success(tmp_path):
    from ttc_lib.storage import atomic_dir

    target = tmp_path / "ckpt"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("first")
    assert (target / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("killed")
    assert (target / "a.txt").read_text() == "first"  # the old folder survives a failed write
    with atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("second")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"] and not (target / "a.txt").exists()


def test_stage_generator_loads_the_role_notebook_01_recorded(tmp_path, monkeypatch, tiny_checkpoint):
    monkeypatch.setenv("TTC_RUNS_DIR", str(tmp_path))
    Stage("ci", "01_train_generator").write_summary(
        {"checkpoints": {"policy": str(tiny_checkpoint)}, "prompt_style": "plain", "device": "cpu"})
    generator = Stage("ci", "03_difficulty_bins").generator("policy")
    assert generator.prompt_style == "plain" and generator.device.type == "cpu" and generator.num_params > 0
    with pytest.raises(FileNotFoundError, match="'large'"):
        Stage("ci", "07_ttc_vs_pretraining").generator("large")
