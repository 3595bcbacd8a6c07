"""publish: a finished run becomes the results folder; its README holds the summaries' numbers only."""

import json

import pytest

from ttc_lib.pipeline import runner
from ttc_lib.pipeline.publish import MAX_CSV_BYTES, publish
from ttc_lib.pipeline.run_lock import RunLocked, run_lock

PNG = b"\x89PNG\r\n\x1a\nfake"


def interval(estimate, low, high, n, **extra):
    return {"estimate": estimate, "ci_low": low, "ci_high": high, "n_questions": n, **extra}


SUMMARIES = {
    "01_train_generator": {"models": {"policy": {"sampled": {"1": 0.81, "2": 0.44}, "greedy": {"1": 0.9, "2": 0.5}},
                                      "large": {"sampled": {"1": 0.69, "2": 0.31}}}},
    "02_train_verifier": {"chosen_verifier": "likelihood_strong", "chosen_by": "same_step_auroc",
                          "within_question_auroc_ci": {"orm": interval(0.6111, 0.5222, 0.7333, 44)},
                          "prm_vs_baselines": {"likelihood_strong": {"8": {"vs_majority": interval(0.0417, -0.02, 0.1, 24),
                                                                          "vs_orm": {"estimate": None, "reason": "no ORM"}}}}},
    "04_search": {"baseline_method": "best_of_n[selection=weighted]", "headline_budgets": [4], "headline_questions": 400,
                  "differences": {"beam[lookahead=0,width=4]": {"4": {"all": interval(0.125, 0.05, 0.2, 400),
                                                                      "3": interval(-0.07, -0.14, 0.02, 100)}},
                                  "beam[lookahead=1,width=4]": {"4": {"all": interval(0.3, 0.2, 0.4, 120)}}},
                  "accuracy": {"best_of_n[selection=weighted]": {"4": 0.51, "16": 0.6},
                               "beam[lookahead=0,width=4]": {"4": 0.64}},
                  "lookahead_vs_beam": "a string where a mapping belongs"},
    "06_compute_optimal": {"efficiency_ratio_curve": {"best_fixed": {"oracle": {
        "16": {"estimate": 2.5, "ci_low": 1.25, "ci_high": 3.75, "censored": 0.125, "status": "defined", "n_questions": 120},
        "64": {"estimate": None, "ci_low": None, "ci_high": None, "censored": None, "status": "baseline_flat",
               "reason": "flat", "n_questions": 120}}}}},
    "08_claims": {"claims": [{"claim": "beam beats best-of-N at N = 4", "paper": "> 0", "verdict": "reproduces",
                              **interval(0.125, 0.05, 0.2, 400)}],
                  "verdict_counts": {"reproduces": 1, "contradicts": 0}},
}


@pytest.fixture
def run_folders(tmp_path, monkeypatch):
    """A fake finished run of profile "fake": runs folder, build folder; 00, 03, 05 and 07 never ran."""
    runs, build = tmp_path / "runs", tmp_path / "build" / "fake"
    monkeypatch.setenv("TTC_RUNS_DIR", str(runs))
    for stage, summary in SUMMARIES.items():
        folder = runs / "fake" / stage
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps(summary))
        (folder / "manifest.json").write_text(json.dumps({"started": f"2031-01-0{stage[1]}T10:00:00+0000",
                                                          "finished": f"2031-01-0{stage[1]}T11:00:00+0000",
                                                          "git_commit": "abcdef0123456789"}))
    search = runs / "fake" / "04_search"
    (search / "figure3_intervals.png").write_bytes(PNG)
    (search / "old_figure.png").write_bytes(PNG)
    (search / "differences.csv").write_text("method,estimate\nbeam,0.125\n")
    (search / "results_big.csv").write_text("x" * (MAX_CSV_BYTES + 1))
    (search / "results.parquet").write_bytes(b"not copied")
    (runs / "fake" / "08_claims" / "claims.md").write_text("# claims of this run\n")
    (runs / "fake" / "05_revisions").mkdir()  # started, never finished: no summary
    (runs / "fake" / "05_revisions" / "pass1_by_step.png").write_bytes(PNG)
    build.mkdir(parents=True)
    notebook = {"cells": [{"cell_type": "code", "source": "print(1)", "metadata": {}, "execution_count": 1,
                           "outputs": [{"output_type": "stream", "name": "stdout", "text": "1\n"}]}],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (build / "04_search.ipynb").write_text(json.dumps(notebook))
    (build / "timings.json").write_text(json.dumps({"01_train_generator": 600.4, "04_search": 1200.0}))
    return runs / "fake", build, tmp_path / "out"


def test_files_are_copied_with_stage_prefixes(run_folders):
    runs, build, out = run_folders
    report = publish("fake", out, build)
    assert (out / "04_figure3_intervals.png").read_bytes() == PNG
    assert (out / "04_differences.csv").exists() and not (out / "04_results_big.csv").exists()
    assert not (out / "04_results.parquet").exists()
    assert not (out / "05_pass1_by_step.png").exists()  # an unfinished stage publishes nothing
    assert json.loads((out / "notebooks" / "04_search.ipynb").read_text())["cells"][0]["outputs"][0]["text"] == "1\n"
    assert json.loads((out / "timings.json").read_text())["04_search"] == 1200.0
    assert (out / "claims.md").read_text() == "# claims of this run\n"
    assert set(report["written"]) == set(json.loads((out / "published.json").read_text())["files"])
    assert "04_figure3_intervals.png" in report["written"] and report["removed"] == []


def test_readme_numbers_come_from_the_summaries(run_folders):
    runs, build, out = run_folders
    publish("fake", out, build)
    text = (out / "README.md").read_text()
    assert "| beam[lookahead=0,width=4] | 4 | all | 0.125 [0.050, 0.200] | 0.075 | 400 |" in text
    assert "| beam[lookahead=0,width=4] | 4 | 3 | -0.070 [-0.140, 0.020] | 0.080 | 100 |" in text
    assert "beam[lookahead=1,width=4]" in text.split("`differences`")[1].split("`accuracy`")[0]  # no headline_specs
    assert "| policy, sampled | 0.810 | 0.440 |" in text and "| large, sampled | 0.690 | 0.310 |" in text
    assert "| orm | — | — | 0.611 [0.522, 0.733] | 44 |" in text
    assert "| likelihood_strong | 8 | 0.042 [-0.020, 0.100] | 24 | undefined (no ORM) | — |" in text
    assert "| best_fixed | oracle | 16 | defined | 2.500 [1.250, 3.750] | 0.125 | 120 |" in text
    assert "| best_fixed | oracle | 64 | baseline_flat | undefined | — | 120 |" in text
    assert "| beam beats best-of-N at N = 4 | > 0 | 0.125 [0.050, 0.200] | 400 | reproduces |" in text
    assert "| best_of_n[selection=weighted] | 0.510 | 0.600 |" in text and "| beam[lookahead=0,width=4] | 0.640 | — |" in text
    assert "| 01_train_generator | 600 |" in text and "| total | 1800 |" in text
    assert "2031-01-01T10:00:00+0000" in text and "2031-01-08T11:00:00+0000" in text and "abcdef0123" in text
    assert "make run PROFILE=fake" in text and "python -m ttc_lib.pipeline publish fake" in text
    assert "![04_figure3_intervals.png](04_figure3_intervals.png)" in text
    assert "[executed notebook](notebooks/04_search.ipynb)" in text and "[claims.md](claims.md)" in text


def test_missing_stages_and_keys_are_reported_not_raised(run_folders):
    runs, build, out = run_folders
    publish("fake", out, build)
    text = (out / "README.md").read_text()
    for stage in ("00_data", "03_difficulty_bins", "05_revisions", "07_ttc_vs_pretraining"):
        assert f"`{stage}/summary.json`: not in this run" in text
    assert "`same_step_auroc`: not in this run's summary." in text
    assert "`predicted_vs_oracle`: not in this run's summary." in text
    assert "unexpected shape" in text.split("## 04_search")[1].split("## 05")[0]  # lookahead_vs_beam is a string


def test_a_second_publish_removes_what_the_run_no_longer_makes(run_folders):
    runs, build, out = run_folders
    publish("fake", out, build)
    (out / "notes.md").write_text("written by hand\n")
    (out / "claims.md").write_text("edited by hand\n")
    (runs / "04_search" / "old_figure.png").unlink()
    (runs / "08_claims" / "claims.md").unlink()
    report = publish("fake", out, build)
    assert report["removed"] == ["04_old_figure.png"] and not (out / "04_old_figure.png").exists()
    assert (out / "notes.md").read_text() == "written by hand\n" and report["unlisted"] == ["notes.md"]
    assert (out / "claims.md").read_text() == "edited by hand\n"  # claims.md is never removed
    assert (out / "04_figure3_intervals.png").exists() and "04_old_figure.png" not in (out / "README.md").read_text()


def test_command_line_and_its_errors(run_folders, tmp_path, capsys):
    runs, build, out = run_folders
    assert runner.main(["publish", "fake", "--out", str(out), "--build", str(build)]) == 0
    assert f"into {out}" in capsys.readouterr().out and (out / "README.md").exists()
    assert runner.main(["publish", "never_ran", "--out", str(tmp_path / "x")]) == 2
    assert "make run PROFILE=never_ran" in capsys.readouterr().err
    with run_lock(runs / ".lock", command="make run PROFILE=fake"):
        with pytest.raises(RunLocked):
            publish("fake", out, build)
