"""Strict JSON: no NaN/Infinity in what write_json and Stage write (null plus a reason), while older
files with bare NaN still read and compare."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ttc_lib.pipeline.compare_runs import compare_summaries
from ttc_lib.pipeline.runs import Stage
from ttc_lib.storage import NULL_REASONS, json_text, read_json, write_json


def strict_load(path):
    return json.loads(path.read_text(), parse_constant=lambda c: 1 / 0)  # NaN/Infinity would divide by zero


def sample():
    return {"a": float("nan"), "b": [1, float("inf")], "c": {"d": np.float64("nan"), "e/f": np.array([0.5, -np.inf]),
                                                           "g": np.float32(0.25), "n": np.int64(3)}}


def test_write_json_writes_null_and_a_reason_for_every_non_finite_value(tmp_path):
    obj = sample()
    write_json(tmp_path / "x.json", obj)
    data = strict_load(tmp_path / "x.json")
    assert data["a"] is None and data["b"] == [1, None] and data["c"] == {"d": None, "e/f": [0.5, None], "g": 0.25,
                                                                          "n": 3}
    assert data["nulls"] == {"/a": NULL_REASONS["NaN"], "/b/1": NULL_REASONS["Infinity"], "/c/d": NULL_REASONS["NaN"],
                             "/c/e~1f/1": NULL_REASONS["-Infinity"]}
    assert list(data)[-1] == "nulls" and data["nulls"]["/a"].startswith("NaN: not a number")
    back = [float(NULL_REASONS[k].split(":")[0]) for k in ("Infinity", "-Infinity")]  # a reason gives the value back
    assert back == [math.inf, -math.inf]
    assert math.isnan(obj["a"]) and "nulls" not in obj  # the caller's object is not changed


def test_finite_values_are_written_as_before(tmp_path):
    obj = {"x": 1.5, "y": [1, 2], "z": {"k": None}, "p": tmp_path}
    assert json.loads(json_text(obj)) == {"x": 1.5, "y": [1, 2], "z": {"k": None}, "p": str(tmp_path)}
    assert json_text([float("nan"), 1]) == "[\n  null,\n  1\n]\n"  # a top-level list: no place for reasons


def test_reasons_merge_with_a_nulls_record_already_there():
    again = json.loads(json_text({"v": None, "w": float("-inf"), "nulls": {"/v": NULL_REASONS["NaN"]}}))
    assert again["nulls"] == {"/v": NULL_REASONS["NaN"], "/w": NULL_REASONS["-Infinity"]}
    with pytest.raises(ValueError, match="'nulls' already holds"):
        json_text({"w": float("nan"), "nulls": 3})


def test_stage_summary_and_manifest_are_strict(tmp_path, monkeypatch):
    monkeypatch.setenv("TTC_RUNS_DIR", str(tmp_path))
    stage = Stage("ci", "02_train_verifier")
    stage.write_manifest({"threshold": float("inf"), "seed": 0}, seed=0)
    summary = sample()
    stage.write_summary(summary)
    written = strict_load(stage.dir / "summary.json")
    assert written["nulls"]["/c/d"] == NULL_REASONS["NaN"] and written["b"] == [1, None]
    manifest = strict_load(stage.dir / "manifest.json")
    assert manifest["parameters"]["threshold"] is None
    assert manifest["nulls"] == {"/parameters/threshold": NULL_REASONS["Infinity"]}
    assert Stage("ci", "03_difficulty_bins").read_summary("02_train_verifier")["a"] is None
    assert math.isnan(summary["a"])


def test_an_older_summary_with_bare_nan_still_reads_and_equals_a_new_one(tmp_path):
    old, new = tmp_path / "old" / "ci" / "02_train_verifier", tmp_path / "new" / "ci" / "02_train_verifier"
    old.mkdir(parents=True)
    (old / "summary.json").write_text('{"auroc": NaN, "ratio": Infinity, "n": 2}')
    write_json(new / "summary.json", {"auroc": float("nan"), "ratio": float("inf"), "n": 2})
    assert math.isnan(read_json(old / "summary.json")["auroc"])
    assert compare_summaries(tmp_path / "old", tmp_path / "new", "ci") == {"02_train_verifier": []}
    write_json(new / "summary.json", {"auroc": 0.5, "ratio": float("inf"), "n": 2})
    assert compare_summaries(tmp_path / "old", tmp_path / "new", "ci")["02_train_verifier"][0].startswith(
        "02_train_verifier.auroc: None vs 0.5")
