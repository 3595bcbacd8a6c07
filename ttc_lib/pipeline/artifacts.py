"""What a finished stage holds, so a later stage can tell whether it still reads what was made.

Rules
- A stage's *artifacts* are the files under its folder except its ``manifest.json`` and
  ``summary.json``, hidden files and folders (temporaries, resume state) and resume caches (any
  path with a part containing "cache": ``pool_cache.jsonl``, ``label_cache/``, ``cache/``): caches
  only speed a rerun up, every result they hold is also written as an artifact.
- When a stage finishes, its manifest records every artifact's sha256 (``artifacts``), the
  summary's, and a ``digest`` of all of them together with the digests of the stages it read.
- A stage that reads an earlier one checks, before it runs, that (a) the earlier stage's files
  are still those it recorded and (b) the stages *that* stage read are still the ones it read;
  else ``StaleStage`` says which stage to rerun. It records each input stage's digest in its own
  manifest (``inputs``), which is what (b) compares against later.
- Paths inside summaries are stored relative to the runs folder (``ci/01_train_generator/policy``)
  so a runs folder can be moved; ``paths_from_runs_folder`` turns them back when a summary is read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

HASH_BLOCK = 1 << 20  # bytes read at a time when hashing a file


class StaleStage(RuntimeError):
    """An earlier stage changed since it finished, or since a stage after it read it: rerun it."""


def is_artifact(rel: Path) -> bool:
    """Whether a path relative to a stage folder is one of its artifacts (module rules)."""
    if rel.name in ("manifest.json", "summary.json") and len(rel.parts) == 1:
        return False
    return not any(part.startswith(".") or "cache" in part for part in rel.parts)


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_hashes(folder: Path) -> dict[str, str]:
    """relative path (posix) -> sha256 of every artifact under ``folder``."""
    if not folder.is_dir():
        return {}
    return {rel.as_posix(): file_hash(folder / rel)
            for rel in sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
            if is_artifact(rel)}


def stage_digest(artifacts: dict[str, str], summary_hash: str, inputs: dict[str, str]) -> str:
    """One hash of what a stage made (its artifacts and summary) and of what it read (``inputs``)."""
    text = json.dumps([artifacts, summary_hash, inputs], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_upstream(name: str, folder: Path, manifest: dict, current_digests: dict[str, str],
                   make_hint: str) -> None:
    """Raise ``StaleStage`` unless stage ``name`` (its ``folder`` and finished ``manifest``) is still
    what it recorded, and every stage it read still has the digest it read (``current_digests``:
    stage -> digest now). ``make_hint`` formats the rerun command for a stage name."""
    recorded = manifest.get("artifacts")
    if recorded is None:
        raise StaleStage(f"{name} has no record of its files (made by an older ttc, or unfinished): "
                         f"rerun {name} ({make_hint.format(name)})")
    now = artifact_hashes(folder)
    changed = sorted(k for k in recorded if k in now and now[k] != recorded[k])
    missing, added = sorted(set(recorded) - set(now)), sorted(set(now) - set(recorded))
    if changed or missing or added:
        what = "; ".join(f"{label}: {', '.join(files[:5])}{' …' if len(files) > 5 else ''}"
                         for label, files in (("changed", changed), ("missing", missing), ("new", added)) if files)
        raise StaleStage(f"{name}'s files changed after it finished ({what}): rerun {name} "
                         f"({make_hint.format(name)})")
    for upstream, digest in (manifest.get("inputs") or {}).items():
        if current_digests.get(upstream) != digest:
            raise StaleStage(f"{name} was made from an earlier {upstream}, which has been rerun or changed since: "
                             f"rerun {name} and the stages after it ({make_hint.format(name)})")


def paths_in_runs_folder(obj: Any, root: Path) -> Any:
    """``obj`` with every string that is an absolute path inside ``root`` made relative to it."""
    prefix = str(root).rstrip("/") + "/"
    if isinstance(obj, dict):
        return {k: paths_in_runs_folder(v, root) for k, v in obj.items()}
    if isinstance(obj, list):
        return [paths_in_runs_folder(v, root) for v in obj]
    if isinstance(obj, str) and obj.startswith(prefix):
        return obj[len(prefix):]
    return obj


def paths_from_runs_folder(obj: Any, root: Path, profile: str, stages: list[str]) -> Any:
    """Inverse of ``paths_in_runs_folder`` for a summary of ``profile``: a string that reads
    ``<profile>/<a stage>/…`` becomes a path under ``root``."""
    if isinstance(obj, dict):
        return {k: paths_from_runs_folder(v, root, profile, stages) for k, v in obj.items()}
    if isinstance(obj, list):
        return [paths_from_runs_folder(v, root, profile, stages) for v in obj]
    if isinstance(obj, str):
        parts = obj.split("/")
        if len(parts) >= 2 and parts[0] == profile and parts[1] in stages:
            return str(root / obj)
    return obj


def inconsistent_stages(profile_dir: Path, stages: list[str]) -> list[str]:
    """The stage folders under ``profile_dir`` that are neither complete and consistent (a summary
    beside exactly the files its manifest records, made from the digests its inputs have now) nor
    visibly unfinished (no summary), each with why; empty when every folder is one or the other.
    What a kill at any point must leave (tests/test_kill_resume.py, experiments/kill_matrix.py)."""
    wrong, digests = [], {}
    for stage in stages:
        folder = profile_dir / stage
        if not (folder / "summary.json").exists():
            continue  # visibly unfinished: no later stage reads it
        manifest = json.loads((folder / "manifest.json").read_text())
        digests[stage] = manifest.get("digest")
        try:
            check_upstream(stage, folder, manifest, digests, "rerun {}")
        except StaleStage as err:
            wrong.append(str(err))
    return wrong
