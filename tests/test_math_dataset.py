"""MATH-format loaders (JSONL, Hugging Face datasets on disk) and the load_problems entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ttc_lib.tasks import load_hf_dataset, load_jsonl, load_problems
from ttc_lib.tasks.grading import extract_answer, grade_answer
from ttc_lib.tasks.math_dataset import row_to_problem, rows_to_problems

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
    with pytest.raises(ValueError, match=r"n\.jsonl:3: malformed JSON"):
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
    assert "bad.jsonl:2:" in msg and f"'{field}'" in msg, msg


# ---- every failure names the file and the line, and what to do ------------------------------

def write_bytes(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def good_line(i: int) -> bytes:
    return json.dumps(dict(GOOD, unique_id=f"id{i}")).encode()


def test_non_utf8_byte_names_line_and_offset(tmp_path):
    lines = [good_line(i) for i in range(4)]
    lines[2] = lines[2].replace(b"1+1", b"1\xe9+1", 1)  # latin-1 "e acute" on line 3
    path = write_bytes(tmp_path / "latin.jsonl", lines)
    column = lines[2].index(b"\xe9") + 1
    offset = len(lines[0]) + len(lines[1]) + 2 + column - 1
    with pytest.raises(ValueError, match=rf"latin\.jsonl:3: not UTF-8: byte 0xe9 at byte {column} of the line "
                                         rf"\(offset {offset} in the file\); save the file as UTF-8"):
        load_jsonl(path)


def test_invalid_json_names_its_line_and_column(tmp_path):
    cut = good_line(1)[:-1]  # the closing brace lost: the error is at the end of line 2
    path = write_bytes(tmp_path / "cut.jsonl", [good_line(0), cut, good_line(2)])
    with pytest.raises(ValueError, match=rf"cut\.jsonl:2: malformed JSON: .* at column {len(cut) + 1} "):
        load_jsonl(path)
    comma = good_line(1).replace(b'", "answer"', b'" "answer"')  # a missing comma inside the line
    path = write_bytes(tmp_path / "comma.jsonl", [good_line(0), comma])
    column = comma.index(b'" "answer"') + 3  # 1-based, at the quote that should have followed a comma
    with pytest.raises(ValueError, match=rf"comma\.jsonl:2: malformed JSON: Expecting ',' delimiter at column {column} "):
        load_jsonl(path)


@pytest.mark.parametrize("content", [b"", b"\n  \n\n"])
def test_a_file_without_rows_is_an_error(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"no problems in .*empty\.jsonl"):
        load_jsonl(path)
    with pytest.raises(ValueError, match=r"no problems in .*empty\.jsonl"):
        load_problems(str(path))
    assert load_jsonl(path, allow_empty=True) == []  # a stage's own empty training split


def test_missing_solution_names_the_field_and_the_fields_present(tmp_path):
    row = {k: v for k, v in GOOD.items() if k != "solution"}
    path = write_rows(tmp_path / "nosol.jsonl", [dict(GOOD, unique_id="x"), row])
    with pytest.raises(ValueError, match=r"nosol\.jsonl:2: missing field 'solution' \(the row has "
                                         r"\['answer', 'level', 'problem', 'unique_id'\]"):
        load_jsonl(path)


@pytest.mark.parametrize("answer,why", [
    ("\\boxed{5", "1 '{' never closed"),
    ("\\frac{1}{2", "1 '{' never closed"),
    ("5}", "the '}' at character 2 closes no '{'"),
    ("\\boxed{}", "empty or unclosed"),
    ("\\boxed", "empty or unclosed"),
])
def test_reference_answer_that_cannot_be_graded(tmp_path, answer, why):
    path = write_rows(tmp_path / "ans.jsonl", [dict(GOOD, unique_id="x"), dict(GOOD, answer=answer)])
    with pytest.raises(ValueError) as err:
        load_jsonl(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:2: field 'answer' ") and why in msg and "balanced braces" in msg, msg


def test_solution_whose_last_box_is_unclosed(tmp_path):
    path = write_rows(tmp_path / "sol.jsonl", [dict(GOOD, solution="So $1+1=\\boxed{2$.")])
    with pytest.raises(ValueError, match=r"sol\.jsonl:1: field 'solution': its last \\boxed\{ is never closed"):
        load_jsonl(path)


@pytest.mark.parametrize("answer,solution", [
    ("\\{1,2\\}", "The set is $\\boxed{\\{1,2\\}}$."),  # escaped braces are text
    ("\\boxed{2}", "$\\boxed 2$"),  # a boxed reference; a brace-less box
    ("\\frac{1}{2}", "No box at all."),
    ("2", ""),
])
def test_answers_and_solutions_that_stay_valid(tmp_path, answer, solution):
    path = write_rows(tmp_path / "ok.jsonl", [dict(GOOD, answer=answer, solution=solution)])
    (p,) = load_jsonl(path)
    assert grade_answer(extract_answer(f"\\boxed{{{p.answer}}}") or p.answer, p.answer)


def test_bom_and_crlf_files_load(tmp_path):
    path = tmp_path / "win.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + good_line(0) + b"\r\n" + good_line(1) + b"\r\n\r\n")
    assert [p.id for p in load_jsonl(path)] == ["id0", "id1"]
    bad = tmp_path / "winbad.jsonl"
    bad.write_bytes(b"\xef\xbb\xbf" + good_line(0).replace(b"1+1", b"\xff", 1) + b"\r\n")
    with pytest.raises(ValueError, match=rf"winbad\.jsonl:1: not UTF-8: byte 0xff at byte "
                                         rf"{3 + good_line(0).index(b'1+1') + 1} of the line"):
        load_jsonl(bad)


def test_non_object_line(tmp_path):
    path = write_rows(tmp_path / "arr.jsonl", ["[1, 2]"])
    with pytest.raises(ValueError, match=r"arr\.jsonl:1: expected a JSON object"):
        load_jsonl(path)


def test_duplicate_unique_id_names_both_lines(tmp_path):
    path = write_rows(tmp_path / "dup.jsonl", [GOOD, dict(GOOD, unique_id="z"), GOOD])
    with pytest.raises(ValueError, match=r"dup\.jsonl:3: duplicate unique_id .* already on line 1"):
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
    with pytest.raises(ValueError, match=r"no problems in dataset 'x'"):  # the rows of a dataset, none here
        rows_to_problems([], "dataset 'x'", unit="row")


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
