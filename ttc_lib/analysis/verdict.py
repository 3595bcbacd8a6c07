"""The verdict rule: does a measured interval lie on the paper's side of a threshold?

Rules
-----
* A claim is "the quantity is ``side`` ``threshold``" (``side`` is ``">"`` or ``"<"``), e.g. the
  accuracy difference beam − best-of-N at N = 4 is > 0, or an efficiency ratio is > 1.
* ``reproduces`` when the whole interval lies on the paper's side (``ci_low > threshold`` for
  ``">"``); ``contradicts`` when the whole interval lies on the other side (``ci_high < threshold``
  for ``">"``); ``inconclusive`` otherwise — an interval touching the threshold decides nothing.
* ``not measured`` when the interval is missing or its ends are None/NaN (the stage did not run the
  comparison, or it is undefined: the reason travels with it).
"""

from __future__ import annotations

import math
from typing import Mapping

SIDES = (">", "<")
VERDICTS = ("reproduces", "contradicts", "inconclusive", "not measured")


def verdict(estimate: Mapping | None, side: str, threshold: float = 0.0) -> str:
    """One of ``VERDICTS`` for an interval dict (``ci_low``, ``ci_high``) and the paper's side."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or math.isnan(threshold):
        raise ValueError(f"threshold must be a number, got {threshold!r}")
    if not estimate:
        return "not measured"
    low, high = estimate.get("ci_low"), estimate.get("ci_high")
    if low is None or high is None or math.isnan(float(low)) or math.isnan(float(high)):
        return "not measured"
    if float(low) > float(high):
        raise ValueError(f"an interval needs ci_low <= ci_high, got [{low}, {high}]")
    above, below = float(low) > threshold, float(high) < threshold
    if side == ">":
        return "reproduces" if above else "contradicts" if below else "inconclusive"
    return "reproduces" if below else "contradicts" if above else "inconclusive"


def verdict_line(what: str, estimate: Mapping | None, side: str, threshold: float = 0.0, digits: int = 3) -> str:
    """"<what>: 0.062 [0.031, 0.094] (500 questions) — paper: > 0 — reproduces" (for notebook cells)."""
    result = verdict(estimate, side, threshold)
    if result == "not measured":
        reason = (estimate or {}).get("reason", "no interval")
        return f"{what}: not measured ({reason}) — paper: {side} {threshold:g}"
    n = estimate.get("n_questions")
    where = f" ({int(n)} questions)" if n is not None else ""
    return (f"{what}: {float(estimate['estimate']):.{digits}f} [{float(estimate['ci_low']):.{digits}f}, "
            f"{float(estimate['ci_high']):.{digits}f}]{where} — paper: {side} {threshold:g} — {result}")
