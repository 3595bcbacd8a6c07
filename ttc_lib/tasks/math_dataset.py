"""MATH / MATH-500 loaders: JSONL files or Hugging Face datasets -> Problem records.

Row fields (MATH-500 format), all five required: ``problem`` (non-empty str), ``solution``
(str, may be empty), ``answer`` (str or int, non-empty), ``level`` (int, or "Level 3" -> 3;
"Level ?" -> 0) and ``unique_id`` (non-empty str or int). Other fields are ignored. A bad row is
an error naming the file (or dataset), the 1-based line (or row) number and the field; two
rows with one unique_id are an error naming both.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

from ttc_lib.tasks.problem import Problem

_LEVEL_RE = re.compile(r"(?:level\s*)?(\d+)", re.IGNORECASE | re.ASCII)


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
            raise ValueError(f"{where}: missing field '{name}'")
        return None
    value = row[name]
    if isinstance(value, int) and not isinstance(value, bool) and name in ("answer", "unique_id"):
        return str(value)  # numeric answers / ids in some exports
    if not isinstance(value, str):
        raise ValueError(f"{where}: field '{name}' must be a string, got {type(value).__name__}")
    return value


def row_to_problem(row: Any, where: str) -> Problem:
    """One MATH-format row -> Problem; ``where`` ("file.jsonl:12") prefixes every error."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    question = _text_field(row, "problem", where, required=True)
    if not question.strip():
        raise ValueError(f"{where}: field 'problem' is empty")
    solution = _text_field(row, "solution", where, required=True)
    answer = _text_field(row, "answer", where, required=True)
    if not answer.strip():
        raise ValueError(f"{where}: field 'answer' is empty")
    pid = _text_field(row, "unique_id", where, required=True)
    if not pid.strip():
        raise ValueError(f"{where}: field 'unique_id' is empty")
    if "level" not in row:
        raise ValueError(f"{where}: missing field 'level'")
    return Problem(id=pid, question=question, answer=answer.strip(), solution=solution,
                   level=_level(row["level"], where))


def rows_to_problems(rows: Iterable[tuple[int, Any]], source: str, unit: str = "line") -> list[Problem]:
    """Convert numbered rows (1-based ``n``, row) from ``source``; duplicate ids are an error.
    """
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for n, row in rows:
        problem = row_to_problem(row, f"{source}: {unit} {n}")
        if problem.id in seen:
            raise ValueError(f"{source}: duplicate unique_id {problem.id!r} on {unit}s "
                             f"{seen[problem.id]} and {n}")
        seen[problem.id] = n
        problems.append(problem)
    return problems


def load_jsonl(path: str | os.PathLike) -> list[Problem]:
    """Problems from a MATH-format JSONL file (one JSON object a line; blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MATH jsonl file not found: {path}")

    def rows():
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}: line {n}: malformed JSON ({e.msg} at column "
                                     f"{e.colno})") from None

    return rows_to_problems(rows(), str(path), unit="line")


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
