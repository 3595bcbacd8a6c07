"""MATH / MATH-500 loaders: JSONL files or Hugging Face datasets -> Problem records.

Row fields (MATH-500 format), all five required: ``problem`` (non-empty str), ``solution``
(str, may be empty), ``answer`` (str or int, non-empty), ``level`` (int, or "Level 3" -> 3;
"Level ?" -> 0) and ``unique_id`` (non-empty str or int). Other fields are ignored.

Every failure is a ValueError that names where (``<path>:<line>`` for a file, 1-based physical
lines; ``<dataset>: row <n>`` for a dataset) and what to do:
* a line that is not UTF-8: the line, the byte's column and its offset in the file ("save the
  file as UTF-8"); a UTF-8 byte-order mark at the start of the file is accepted;
* a line that is not JSON: the line and the character column of the error (the line end is not
  part of the text parsed, so a cut-off line names its last column, not column 1 of a next line);
* a row that is not an object, a missing, mistyped or empty field: the field and the fields the
  row has;
* a reference answer that cannot be graded: braces ``{``/``}`` (escaped ``\\{``/``\\}`` not
  counted) that do not balance, or a ``\\boxed``/``\\fbox`` in it that is unclosed or empty;
* a solution whose last ``\\boxed{`` is never closed (its final answer cannot be read; training
  on it teaches cut-off answers);
* two rows with one unique_id: both lines;
* no rows at all (an empty file, or only blank lines): "no problems in <path>" (``load_jsonl(...,
  allow_empty=True)`` returns [] instead: a stage's own empty training split).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

from ttc_lib.tasks.grading import extract_answer
from ttc_lib.tasks.problem import Problem

_LEVEL_RE = re.compile(r"(?:level\s*)?(\d+)", re.IGNORECASE | re.ASCII)
_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")  # as grading.extract_answer reads them
FIELDS = ("problem", "solution", "answer", "level", "unique_id")


def _fields_note(row: dict) -> str:
    return f"the row has {sorted(map(str, row))}; every row needs {list(FIELDS)}"


def _brace_error(text: str) -> str | None:
    """Why the braces of ``text`` do not balance (escaped ``\\{``/``\\}`` are text), or None."""
    depth, k = 0, 0
    while k < len(text):
        if text[k] == "\\":
            k += 2
            continue
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
            if depth < 0:
                return f"the '}}' at character {k + 1} closes no '{{'"
        k += 1
    return f"{depth} '{{' never closed" if depth else None


def _last_box_unclosed(text: str) -> bool:
    """Whether the last ``\\boxed{``/``\\fbox{`` of ``text`` is never closed."""
    starts = [m.end() for m in _BOX_RE.finditer(text)]
    if not starts:
        return False
    rest = text[starts[-1]:].lstrip(" \t")
    if not rest.startswith("{"):
        return False  # "\\boxed 5": no braces to close
    depth, k = 0, 0
    while k < len(rest):
        if rest[k] == "\\":
            k += 2
            continue
        depth += {"{": 1, "}": -1}.get(rest[k], 0)
        if depth == 0:
            return False
        k += 1
    return True


def _check_answer(answer: str, where: str) -> None:
    why = _brace_error(answer)
    if why is None and _BOX_RE.search(answer) and extract_answer(answer) is None:
        why = "its \\boxed is empty or unclosed"
    if why:
        raise ValueError(f"{where}: field 'answer' {answer!r} cannot be graded: {why}; write the final answer "
                         "as it would appear inside \\boxed{}, with balanced braces")


def _level(value: Any, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"{where}: field 'level' must be an int or a string like 'Level 3', "
                         f"got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        m = _LEVEL_RE.fullmatch(value.strip())
        return int(m.group(1)) if m else 0  # "Level ?" and other unknown labels
    raise ValueError(f"{where}: field 'level' must be an int or a string like 'Level 3', "
                     f"got {type(value).__name__}")


def _text_field(row: dict, name: str, where: str, required: bool) -> str | None:
    if name not in row or row[name] is None:
        if required:
            raise ValueError(f"{where}: missing field '{name}' ({_fields_note(row)})")
        return None
    value = row[name]
    if isinstance(value, int) and not isinstance(value, bool) and name in ("answer", "unique_id"):
        return str(value)  # numeric answers / ids in some exports
    if not isinstance(value, str):
        raise ValueError(f"{where}: field '{name}' must be a string, got {type(value).__name__} "
                         f"({_fields_note(row)})")
    return value


def row_to_problem(row: Any, where: str) -> Problem:
    """One MATH-format row -> Problem; ``where`` ("file.jsonl:12") prefixes every error."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object with fields {list(FIELDS)}, got {type(row).__name__}")
    question = _text_field(row, "problem", where, required=True)
    if not question.strip():
        raise ValueError(f"{where}: field 'problem' is empty; give the question or remove the row")
    solution = _text_field(row, "solution", where, required=True)
    if _last_box_unclosed(solution):
        raise ValueError(f"{where}: field 'solution': its last \\boxed{{ is never closed (...{solution[-40:]!r}): its "
                         "final answer cannot be read; close the box or remove the row")
    answer = _text_field(row, "answer", where, required=True)
    if not answer.strip():
        raise ValueError(f"{where}: field 'answer' is empty; give the reference answer or remove the row")
    _check_answer(answer.strip(), where)
    pid = _text_field(row, "unique_id", where, required=True)
    if not pid.strip():
        raise ValueError(f"{where}: field 'unique_id' is empty; give every row a distinct id")
    if "level" not in row:
        raise ValueError(f"{where}: missing field 'level' ({_fields_note(row)})")
    return Problem(id=pid, question=question, answer=answer.strip(), solution=solution,
                   level=_level(row["level"], where))


def rows_to_problems(rows: Iterable[tuple[int, Any]], source: str, unit: str = "line",
                     allow_empty: bool = False) -> list[Problem]:
    """Convert numbered rows (1-based ``n``, row) from ``source``: a file's rows are named
    ``<source>:<n>``, other units ``<source>: <unit> <n>``. Duplicate ids are an error, and so is
    no row at all unless ``allow_empty``."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for n, row in rows:
        where = f"{source}:{n}" if unit == "line" else f"{source}: {unit} {n}"
        problem = row_to_problem(row, where)
        if problem.id in seen:
            raise ValueError(f"{where}: duplicate unique_id {problem.id!r}, already on {unit} {seen[problem.id]}; "
                             "give every row a distinct id")
        seen[problem.id] = n
        problems.append(problem)
    if not problems and not allow_empty:
        raise ValueError(f"no problems in {source}: it has no rows; give a file or dataset with at least one "
                         f"row of fields {list(FIELDS)}")
    return problems


def load_jsonl(path: str | os.PathLike, *, allow_empty: bool = False) -> list[Problem]:
    """Problems from a MATH-format JSONL file (one JSON object a line; blank lines skipped).

    The file is read as bytes and decoded line by line (lines end at \\n, \\r\\n or \\r, as in
    text mode), so every error names ``<path>:<line>`` (module docstring). A file with no rows is
    an error unless ``allow_empty`` (then [])."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MATH jsonl file not found: {path}")

    def rows():
        offset = 0
        for n, raw in enumerate(path.read_bytes().splitlines(keepends=True), start=1):
            bom = 3 if n == 1 and raw.startswith(b"\xef\xbb\xbf") else 0
            try:
                line = raw[bom:].decode("utf-8")
            except UnicodeDecodeError as e:
                at = bom + e.start
                raise ValueError(f"{path}:{n}: not UTF-8: byte 0x{raw[at]:02x} at byte {at + 1} of the line "
                                 f"(offset {offset + at} in the file); save the file as UTF-8") from None
            offset += len(raw)
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: malformed JSON: {e.msg} at column {e.pos + 1} "
                                 f"(near {line[max(0, e.pos - 20):e.pos + 20]!r}); each line must be one "
                                 "JSON object") from None

    return rows_to_problems(rows(), str(path), unit="line", allow_empty=allow_empty)


def load_hf_dataset(name: str, split: str = "test", cache_dir: str | None = None) -> list[Problem]:
    """Problems from a Hugging Face dataset: a hub id, or a local directory.

    A directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` is read with
    ``load_from_disk`` (``split`` picks from a DatasetDict); any other directory, a data file
    or a hub id goes through ``load_dataset(name, split=split)``, which reads a local folder of
    json/jsonl/parquet files without the network (a hub id needs the hub or its cache).
    """
    import datasets

    source = f"dataset {name!r} (split {split!r})"
    local = Path(name)
    try:
        if local.is_dir() and ((local / "dataset_info.json").is_file()
                               or (local / "dataset_dict.json").is_file()):
            ds = datasets.load_from_disk(str(local))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise ValueError(f"{source}: no split {split!r}; it has {sorted(ds)}")
                ds = ds[split]
        elif local.is_file():
            kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
            if local.suffix not in kind:
                raise ValueError(f"{source}: cannot read a {local.suffix!r} file")
            ds = datasets.load_dataset(kind[local.suffix], data_files=str(local), split="train",
                                       cache_dir=cache_dir)
        else:
            ds = datasets.load_dataset(name, split=split, cache_dir=cache_dir)
    except ValueError as e:
        if str(e).startswith(source):
            raise
        raise ValueError(f"{source}: could not load: {e}") from e
    except Exception as e:  # hub unreachable, unknown dataset, corrupt files...
        raise ValueError(f"could not load {source}: {type(e).__name__}: {e}") from e
    return rows_to_problems(((i + 1, dict(row)) for i, row in enumerate(ds)), source, unit="row")
