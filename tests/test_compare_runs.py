"""compare_summaries: which numbers of the study a change altered, the machine's timings aside."""

import json

import pytest

from ttc_lib.pipeline import runner
from ttc_lib.pipeline.compare_runs import compare_summaries


def write(root, stage, summary):
    folder = root / "ci" / stage
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary))


def test_identical_runs_up_to_timings_and_the_runs_folder(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, "04_search", {"accuracy": {"beam": [0.5, 0.75]}, "wall_seconds": 12.0, "throughput": {"x": 1},
                           "path": f"{a}/ci/04_search/results.parquet", "n": 1, "nulls": {}})
    write(b, "04_search", {"accuracy": {"beam": [0.5, 0.75]}, "wall_seconds": 99.0, "throughput": {"x": 7},
                           "path": "ci/04_search/results.parquet", "n": 1.0,
                           "nulls": {"/throughput/samples_per_second": "NaN: nothing sampled"}})
    assert compare_summaries(a, b, "ci") == {"04_search": []}


def test_a_changed_number_is_named_by_its_path(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, "04_search", {"accuracy": {"beam": [0.5, 0.75]}, "verdict": "x"})
    write(b, "04_search", {"accuracy": {"beam": [0.5, 0.70]}, "verdict": "x", "new": 1})
    write(a, "05_revisions", {"k": 1})
    report = compare_summaries(a, b, "ci")
    assert report["04_search"] == ["04_search.accuracy.beam[1]: 0.75 vs 0.7", "04_search.new: only in the second run"]
    assert report["05_revisions"] == ["summary only in the first run"]


def test_nan_equals_nan_and_a_missing_profile_is_named(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, "02_train_verifier", {"auroc": float("nan")})
    write(b, "02_train_verifier", {"auroc": float("nan")})
    assert compare_summaries(a, b, "ci") == {"02_train_verifier": []}
    with pytest.raises(FileNotFoundError, match="profile 'cpu'"):
        compare_summaries(a, b, "cpu")


def test_cli_exit_code_says_whether_anything_differs(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, "00_data", {"n_test": 80})
    write(b, "00_data", {"n_test": 80})
    assert runner.main(["compare", str(a), str(b)]) == 0
    write(b, "00_data", {"n_test": 40})
    assert runner.main(["compare", str(a), str(b)]) == 1
    assert "00_data.n_test: 80 vs 40" in capsys.readouterr().out
