"""Did a change alter the study's numbers? Compare two runs folders stage by stage.

``python -m ttc_lib.pipeline compare RUNS_A RUNS_B --profile ci`` reads every
``<runs>/<profile>/<stage>/summary.json`` present in both and lists each value that differs, by its
path in the summary (``04_search.accuracy.beam[...].16``). Rules: wall-clock values (any key naming
seconds, timing, throughput or a per-second rate) are left out, since they measure the machine, not
the study; strings equal up to the runs folder itself (a path inside it, absolute or relative to it as
summaries store it) count as equal;
NaN equals NaN: a summary is read as ``storage.json_text`` writes it now, so an older one's bare
``NaN`` / ``Infinity`` is the ``null`` plus ``"nulls"`` reason a newer one holds. A stage whose
summary exists on one side only is reported as such.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ttc_lib.storage import json_text

TIMING_KEYS = ("seconds", "timing", "throughput", "per_second")  # a key containing one of these is left out


def _load(path: Path) -> Any:
    return json.loads(json_text(json.loads(path.read_text(), parse_constant=float)))


def _is_timing(key: str) -> bool:
    """A key naming a wall-clock value (a "nulls" pointer such as /throughput/x included)."""
    return any(word in str(key).lower() for word in TIMING_KEYS)


def _walk(a: Any, b: Any, where: str, roots: tuple[str, str], out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if _is_timing(key):
                continue
            if key not in a or key not in b:
                out.append(f"{where}.{key}: only in {'the first' if key in a else 'the second'} run")
            else:
                _walk(a[key], b[key], f"{where}.{key}", roots, out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{where}: {len(a)} vs {len(b)} items")
        for i, (x, y) in enumerate(zip(a, b)):
            _walk(x, y, f"{where}[{i}]", roots, out)
    elif isinstance(a, str) and isinstance(b, str):
        if a.replace(roots[0] + "/", "") != b.replace(roots[1] + "/", ""):  # paths inside a runs folder: relative
            out.append(f"{where}: {a!r} vs {b!r}")
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return
    elif a != b or type(a) is not type(b) and not {type(a), type(b)} <= {int, float}:
        out.append(f"{where}: {a!r} vs {b!r}")


def compare_summaries(first: str | Path, second: str | Path, profile: str) -> dict[str, list[str]]:
    """stage -> the differences between two runs folders' summaries of ``profile`` (empty: identical)."""
    roots = (Path(first) / profile, Path(second) / profile)
    for root in roots:
        if not root.is_dir():
            raise FileNotFoundError(f"no runs of profile {profile!r} under {root.parent} (expected {root})")
    stages = sorted({p.parent.name for root in roots for p in root.glob("*/summary.json")})
    report = {}
    for stage in stages:
        files = [root / stage / "summary.json" for root in roots]
        if not all(f.exists() for f in files):
            report[stage] = [f"summary only in {'the first' if files[0].exists() else 'the second'} run"]
            continue
        out: list[str] = []
        _walk(_load(files[0]), _load(files[1]), stage, (str(roots[0].parent), str(roots[1].parent)), out)
        report[stage] = out
    return report
