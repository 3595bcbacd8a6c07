"""The range a notebook parameter declares next to its type, read from the parameters cell.

The tag opens the parameter's comment: ``n_test: int = 80  # [0..] test problems ...``. Its grammar
is in the docstring of ``ttc_lib.pipeline.runner``, which checks every value against it before any
kernel starts. ``notebook_ranges`` parses the tags of a notebook; ``Range.violation`` says why a
value is out of range (its type is checked by the runner first); ``combination_problem`` holds the
few rules that tie parameters of one notebook together.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttc_lib.pipeline.runs import notebook_parameters, parameters_source

ELEMENTS: dict[str, tuple[type, ...]] = {"ints": (int,), "numbers": (int, float), "strs": (str,), "dicts": (dict,)}
_TAG = re.compile(r"#\s*\[([^\]]*)\]")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_BOUNDS = re.compile(rf"({_NUMBER})?\s*\.\.\s*({_NUMBER})?")
_STRICT = re.compile(rf"([<>])\s*({_NUMBER})")
_CHOICES = re.compile(r"in\s*\{(.*)\}")


def _number(text: str) -> int | float:
    return int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Range:
    """A parsed tag; ``text`` is the tag as written, without its brackets."""

    text: str
    low: int | float | None = None
    high: int | float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    non_empty: bool = False
    element: str | None = None  # a key of ELEMENTS: what every element of a list is

    def violation(self, value: Any) -> str | None:
        """Why ``value`` is out of range ("must be >= 1", "element -1 must be >= 1"), or None."""
        if self.non_empty and len(value) == 0:
            return "must not be empty"
        if not isinstance(value, list):
            return self._item_violation(value)
        for item in value:
            if self.element and not (isinstance(item, ELEMENTS[self.element]) and not isinstance(item, bool)):
                return f"element {item!r} is not one of the {self.element}"
            why = self._item_violation(item)
            if why:
                return f"element {item!r} {why}"
        return None

    def _item_violation(self, item: Any) -> str | None:
        if self.choices is not None and item not in self.choices:
            return f"must be one of {list(self.choices)}"
        if self.low is not None and not (_is_number(item) and (item > self.low if self.low_open else item >= self.low)):
            return f"must be {'>' if self.low_open else '>='} {self.low}"
        if self.high is not None and not (_is_number(item) and (item < self.high if self.high_open else item <= self.high)):
            return f"must be {'<' if self.high_open else '<='} {self.high}"
        return None


def parse_range(text: str, annotation: str) -> Range:
    """The Range of tag ``text`` (without brackets) for a parameter annotated ``annotation``; a
    ValueError says what cannot be read or does not fit the type."""
    kind = annotation.split("[")[0]
    found: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(";")):
        word, _, rest = part.partition(" ")
        if word in ELEMENTS:
            if kind != "list":
                raise ValueError(f"{word!r} is for list parameters, not {annotation}")
            found["element"], part = word, rest.strip()
            if not part:
                continue
        if part == "non-empty":
            if kind not in ("list", "str", "dict"):
                raise ValueError(f"'non-empty' is for lists, strings and dicts, not {annotation}")
            found["non_empty"] = True
        elif (bounds := _BOUNDS.fullmatch(part)) and (bounds[1] or bounds[2]):
            found.update({k: _number(v) for k, v in (("low", bounds[1]), ("high", bounds[2])) if v})
        elif strict := _STRICT.fullmatch(part):
            side = "low" if strict[1] == ">" else "high"
            found.update({side: _number(strict[2]), f"{side}_open": True})
        elif choices := _CHOICES.fullmatch(part):
            found["choices"] = tuple(c.strip().strip("'\"") for c in choices[1].split(","))
        else:
            raise ValueError(f"cannot read {part!r} (expected a..b, a.., ..b, > a, < b, in {{x, y}}, non-empty, "
                             f"or ints/numbers/strs/dicts before one of them)")
    element = found.get("element")
    numeric = kind in ("int", "float") or element in ("ints", "numbers")
    if ("low" in found or "high" in found) and not numeric:
        raise ValueError(f"a numeric bound needs an int or float parameter, or a list of ints or numbers; "
                         f"this is {annotation}{' of ' + element if element else ''}")
    if "choices" in found and not (kind == "str" or element == "strs"):
        raise ValueError(f"'in {{...}}' needs a str parameter or a list of strs; this is {annotation}")
    return Range(text.strip(), **found)


def declared_ranges(source: str, annotations: dict[str, str], where: str = "parameters cell") -> dict[str, Range]:
    """name -> Range of every parameter of the parameters cell ``source`` whose comment (on the
    line that ends its value) opens with a tag; ``annotations``: name -> annotation."""
    comments = {t.start[0]: t.string for t in tokenize.generate_tokens(io.StringIO(source).readline)
                if t.type == tokenize.COMMENT}
    ranges = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            tag = _TAG.match(comments.get(node.end_lineno, ""))
            if tag:
                name = node.target.id
                try:
                    ranges[name] = parse_range(tag[1], annotations[name])
                except ValueError as err:
                    raise ValueError(f"{where}: parameter {name!r}, range [{tag[1]}]: {err}") from None
    return ranges


def notebook_ranges(path: str | Path) -> dict[str, Range]:
    """name -> Range of the parameters of notebook ``path`` that declare one."""
    annotations = {name: annotation for name, (annotation, _) in notebook_parameters(path).items()}
    return declared_ranges(parameters_source(path), annotations, str(path))


def combination_problem(stage: str, values: dict[str, Any]) -> str | None:
    """What is wrong between parameters of notebook ``stage`` (``values``: all of them, its defaults
    filling in what is not given) that a range alone cannot say, or None: each rule stands for an
    error the notebook would otherwise raise minutes in, or a bare StopIteration."""
    if stage == "00_data" and values["source"] == "arithmetic":
        lowest, highest, n_test = values["min_ops"], values["max_ops"], values["n_test"]
        easy = len(range(lowest, min(highest, 2) + 1))  # levels of fewer than 3 operations
        if highest < lowest:
            return f"max_ops = {highest} is below min_ops = {lowest}"
        if n_test == 0:
            return "n_test = 0 means all of your own data (source=<file>); the arithmetic world needs n_test >= 1"
        if highest < 3 or n_test <= easy:
            return (f"it shows a wrong step in a test problem of 3 or more operations: needs max_ops >= 3 and "
                    f"n_test >= {easy + 1} (test problems fill the easiest levels first); got max_ops = {highest}, "
                    f"n_test = {n_test}")
    if stage == "06_compute_optimal":
        below = [b for b in values["solve_budgets"] if b < values["probe_samples"]]
        if below:
            return (f"solve_budgets {below} are below probe_samples = {values['probe_samples']}: solve() spends "
                    f"that many generations on its probes first")
    return None
