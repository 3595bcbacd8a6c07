"""MATH-format loaders (JSONL, Hugging Face datasets on disk) and the load_problems entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ttc_lib.tasks import load_hf_dataset, load_jsonl, load_problems
from ttc_lib.tasks.grading import extract_answer, grade_answer
from ttc_lib.tasks.math_dataset import row_to_problem

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "math_fixture.jsonl"
GOOD = {"problem": "What is $1+1$?", "solution": "$1+1=\\boxed{2}$", "answer": "2",
        "level": 1, "unique_id": "test/algebra/1.json"}


def write_rows(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_fixture_loads():
    problems = load_jsonl(FIXTURE)
    assert len(problems) == 8
    assert len({p.id for p in problems}) == 8
    assert [p.level for p in problems] == [2, 2, 1, 2, 2, 3, 1, 0]  # int, "Level 1", "Level ?"
    for p in problems:
        assert grade_answer(extract_answer(p.solution), p.answer), p.id
    answers = {p.answer for p in problems}
    assert {"91", "\\frac{1}{6}", "6\\sqrt{2}", "25\\pi", "(2,5)", "[3,\\infty)",
            "\\text{Friday}", "65^\\circ"} == answers


def test_blank_lines_skipped_line_numbers_physical(tmp_path):
    path = write_rows(tmp_path / "m.jsonl", [GOOD, "", "   ", dict(GOOD, unique_id="b", level="x")])
    problems = load_jsonl(path)
    assert [p.id for p in problems] == ["test/algebra/1.json", "b"]
    assert problems[1].level == 0
    bad = write_rows(tmp_path / "n.jsonl", [GOOD, "", "{oops"])
    with pytest.raises(ValueError, match=r"n\.jsonl: line 3: malformed JSON"):
        load_jsonl(bad)


@pytest.mark.parametrize("row,field", [
    ({k: v for k, v in GOOD.items() if k != "problem"}, "problem"),
    (dict(GOOD, problem=["a"]), "problem"),
    (dict(GOOD, problem="  "), "problem"),
    (dict(GOOD, answer={"a": 1}), "answer"),
    (dict(GOOD, answer=True), "answer"),
    (dict(GOOD, answer="  "), "answer"),
    ({k: v for k, v in GOOD.items() if k != "answer"} | {"solution": "no box"}, "answer"),
    (dict(GOOD, solution=3), "solution"),
    (dict(GOOD, level=[3]), "level"),
    (dict(GOOD, level=True), "level"),
    (dict(GOOD, unique_id=["x"]), "unique_id"),
])
def test_bad_field_names_file_line_field(tmp_path, row, field):
    path = write_rows(tmp_path / "bad.jsonl", [dict(GOOD, unique_id="ok"), row])
    with pytest.raises(ValueError) as err:
        load_jsonl(path)
    msg = str(err.value)
    assert "bad.jsonl" in msg and "line 2" in msg and f"'{field}'" in msg, msg


def test_non_object_line(tmp_path):
    path = write_rows(tmp_path / "arr.jsonl", ["[1, 2]"])
    with pytest.raises(ValueError, match=r"arr\.jsonl: line 1: expected a JSON object"):
        load_jsonl(path)


def test_duplicate_unique_id_names_both_lines(tmp_path):
    path = write_rows(tmp_path / "dup.jsonl", [GOOD, dict(GOOD, unique_id="z"), GOOD])
    with pytest.raises(ValueError, match=r"dup\.jsonl: duplicate unique_id .* lines 1 and 3"):
        load_jsonl(path)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_jsonl(tmp_path / "nope.jsonl")


@pytest.mark.parametrize("level,expected", [
    (3, 3), ("Level 3", 3), ("level 5", 5), ("4", 4), ("Level ?", 0), ("?", 0), (None, 0), (2.0, 2),
])
def test_level_forms(level, expected):
    assert row_to_problem(dict(GOOD, level=level), "mem").level == expected


def test_rows_without_the_math500_fields_are_rejected():
    # original MATH rows lack answer/unique_id: the schema is MATH-500's, all five fields
    row = {"problem": "Compute $\\dbinom{5}{2}$.", "level": "Level 2", "type": "Counting",
           "solution": "$\\dbinom{5}{2}=\\frac{5\\cdot 4}{2}=\\boxed{10}$."}
    with pytest.raises(ValueError, match=r"mem: row 4: missing field 'answer'"):
        row_to_problem(row, "mem: row 4")
    assert row_to_problem(dict(GOOD, answer=7), "mem").answer == "7"


# ---- Hugging Face datasets, local only ------------------------------------------------------

ROWS = [dict(GOOD, unique_id=f"id{i}", answer=str(i)) for i in range(3)]


def test_hf_save_to_disk_dataset_and_dict(tmp_path):
    import datasets

    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    assert [p.answer for p in load_hf_dataset(str(tmp_path / "ds"))] == ["0", "1", "2"]
    datasets.DatasetDict({"test": datasets.Dataset.from_list(ROWS[:2]),
                          "train": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(tmp_path / "dd"))
    assert len(load_hf_dataset(str(tmp_path / "dd"), split="test")) == 2
    assert len(load_problems(str(tmp_path / "dd"), split="train")) == 3
    with pytest.raises(ValueError, match=r"dd.*no split 'validation'"):
        load_hf_dataset(str(tmp_path / "dd"), split="validation")


def test_hf_json_folder_and_bad_row(tmp_path):
    folder = tmp_path / "math500"
    folder.mkdir()
    write_rows(folder / "test.jsonl", ROWS)
    problems = load_hf_dataset(str(folder), split="test", cache_dir=str(tmp_path / "cache"))
    assert [p.id for p in problems] == ["id0", "id1", "id2"]
    write_rows(folder / "test.jsonl", ROWS + [dict(GOOD, unique_id="id9", answer="")])
    with pytest.raises(ValueError, match=r"math500.*row 4: field 'answer' is empty"):
        load_hf_dataset(str(folder), split="test", cache_dir=str(tmp_path / "cache2"))


def test_hf_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="could not load dataset"):
        load_hf_dataset(str(tmp_path / "not-here" / "x"), cache_dir=str(tmp_path / "c"))


# ---- load_problems --------------------------------------------------------------------------

def test_load_problems_sources(tmp_path):
    test = load_problems("arithmetic", n_train=50, n_test=16, seed=3, max_ops=4)
    train = load_problems("arithmetic", split="train", n_train=50, n_test=16, seed=3, max_ops=4)
    assert len(test) == 16 and len(train) == 50
    assert not {p.question for p in test} & {p.question for p in train}
    assert {p.level for p in test} == {1, 2, 3, 4}
    assert len(load_problems(str(FIXTURE))) == 8


@pytest.mark.parametrize("source,options,match", [
    ("nonsense", {}, "unknown problem source"),
    ("", {}, "non-empty string"),
    ("arithmetic", {"max_vlaue": 5}, "max_vlaue"),
    ("arithmetic", {"split": "dev"}, "split"),
    ("arithmetic", {"split": "train"}, "n_train"),
    ("arithmetic", {"max_value": 0}, "max_value"),
    ("x.jsonl", {"split": "test"}, "unknown option"),
])
def test_load_problems_errors(source, options, match):
    with pytest.raises(ValueError, match=match):
        load_problems(source, **options)


def test_world_round_trips_through_jsonl(tmp_path):
    """tasks.store writes the schema load_jsonl reads: the synthetic world survives a file."""
    from ttc_lib.tasks import ArithmeticWorld, first_wrong_step, make_splits
    from ttc_lib.tasks.store import save_jsonl

    train, test = make_splits(ArithmeticWorld(), n_train=20, n_test=8, seed=0)
    save_jsonl(tmp_path / "world.jsonl", train + test)
    back = load_jsonl(tmp_path / "world.jsonl")
    assert back == train + test
    assert all(first_wrong_step(p, p.solution) is None for p in back)
