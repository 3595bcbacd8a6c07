"""The policy.json format (what notebook 06 writes and ``policy.Policy.load`` reads) and its rules.

Rules, checked up front by ``validate_policy_data`` (the first broken one is named):
- an object with ``format`` = FORMAT, ``version`` = VERSION, a non-empty ``envelope`` string;
- ``difficulty``: ``aggregate`` in last/min/prod, ``higher_is_easier`` a bool, ``thresholds`` a
  non-empty ascending list of finite numbers (k thresholds define k + 1 bins);
- ``probe.samples``: an int >= 1;
- ``choices``: exactly the bins "1".."k+1", each a non-empty object from a positive integer budget
  to {``strategy``: non-empty string, ``config``: object, ``fitted_accuracy``: null or in [0, 1]}.
"""

from __future__ import annotations

import math
from typing import Any

FORMAT, VERSION = "ttc-compute-optimal-policy", 1


def _fail(source: str, name: str, problem: str) -> None:
    raise ValueError(f"{source}: field '{name}' {problem}")


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _positive_int_key(text: Any) -> bool:
    return isinstance(text, str) and text.isdigit() and int(text) >= 1


def validate_policy_data(data: Any, source: str = "policy") -> None:
    """Every rule of policy.json (module docstring); a ValueError names ``source`` and the field
    at fault by its dotted path (e.g. 'choices.2.16.strategy')."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: a policy must be a JSON object, got {type(data).__name__}")
    for name in ("format", "version", "envelope", "difficulty", "probe", "choices"):
        if name not in data:
            _fail(source, name, "is missing")
    if data["format"] != FORMAT:
        _fail(source, "format", f"must be {FORMAT!r}, got {data['format']!r}")
    if data["version"] != VERSION:
        _fail(source, "version", f"must be {VERSION}, got {data['version']!r}")
    if not isinstance(data["envelope"], str) or not data["envelope"]:
        _fail(source, "envelope", "must be a non-empty string")
    diff = data["difficulty"]
    if not isinstance(diff, dict):
        _fail(source, "difficulty", "must be an object")
    for name in ("aggregate", "higher_is_easier", "thresholds"):
        if name not in diff:
            _fail(source, f"difficulty.{name}", "is missing")
    if diff["aggregate"] not in ("last", "min", "prod"):
        _fail(source, "difficulty.aggregate", f"must be 'last', 'min' or 'prod', got {diff['aggregate']!r}")
    if not isinstance(diff["higher_is_easier"], bool):
        _fail(source, "difficulty.higher_is_easier", "must be true or false")
    edges = diff["thresholds"]
    if not isinstance(edges, list) or not edges or not all(_number(t) for t in edges):
        _fail(source, "difficulty.thresholds", "must be a non-empty list of finite numbers")
    if any(b < a for a, b in zip(edges, edges[1:])):
        _fail(source, "difficulty.thresholds", f"must be ascending, got {edges}")
    probe = data["probe"]
    if not isinstance(probe, dict) or "samples" not in probe:
        _fail(source, "probe.samples", "is missing")
    if not isinstance(probe["samples"], int) or isinstance(probe["samples"], bool) or probe["samples"] < 1:
        _fail(source, "probe.samples", f"must be an int >= 1, got {probe['samples']!r}")
    choices = data["choices"]
    if not isinstance(choices, dict):
        _fail(source, "choices", "must be an object bin -> budget -> choice")
    expected = {str(b) for b in range(1, len(edges) + 2)}
    if set(choices) != expected:
        _fail(source, "choices", f"must have exactly the bins {sorted(expected, key=int)} "
                                 f"(thresholds define {len(edges) + 1}), got {sorted(choices)}")
    for b, per in choices.items():
        if not isinstance(per, dict) or not per:
            _fail(source, f"choices.{b}", "must be a non-empty object budget -> choice")
        for n, c in per.items():
            where = f"choices.{b}.{n}"
            if not _positive_int_key(n):
                _fail(source, where, "key must be a positive integer budget")
            if not isinstance(c, dict):
                _fail(source, where, "must be an object")
            if not isinstance(c.get("strategy"), str) or not c.get("strategy"):
                _fail(source, f"{where}.strategy", "must be a non-empty string")
            if not isinstance(c.get("config", None), dict):
                _fail(source, f"{where}.config", "must be an object")
            acc = c.get("fitted_accuracy")
            if acc is not None and not (_number(acc) and 0 <= acc <= 1):
                _fail(source, f"{where}.fitted_accuracy", f"must be null or in [0, 1], got {acc!r}")
