"""The table of verifier kinds: which loader restores a saved verifier folder.

Every saved verifier is a folder whose ``verifier_config.json`` names its ``kind``;
``load_verifier(path)`` looks the kind up in ``KINDS`` and calls its loader. A new kind is one
line here (and a loader ``fn(path, device) -> Verifier`` in its own module).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ttc_lib.models.ray_workers import reloadable
from ttc_lib.verifiers.base import VERIFIER_CONFIG, Verifier, read_verifier_config
from ttc_lib.verifiers.external_prm import EXTERNAL_KIND, load_external_verifier
from ttc_lib.verifiers.head_prm import KIND as HEAD_KIND, load_head_prm
from ttc_lib.verifiers.likelihood_prm import KIND as LIKELIHOOD_KIND, load_likelihood_prm

KINDS: dict[str, Callable[[Path, str], Verifier]] = {  # kind -> loader(path, device)
    HEAD_KIND: load_head_prm,  # trained-head PRM / ORM
    LIKELIHOOD_KIND: load_likelihood_prm,  # likelihood PRM of a backbone, calibrated on labels
    EXTERNAL_KIND: load_external_verifier,  # your PRM (Math-Shepherd / Qwen2.5-Math-PRM layout)
}


def load_verifier(path: str | Path, device: str = "cpu") -> Verifier:
    """Reload a saved verifier of any kind in ``KINDS`` from its folder; its ``reload_call`` loads it
    again (e.g. in a Ray worker, models.ray_workers)."""
    config = read_verifier_config(path)
    kind = config.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{Path(path) / VERIFIER_CONFIG}: unknown verifier kind {kind!r}; known: {sorted(KINDS)}")
    return reloadable(KINDS[kind](Path(path), device), load_verifier, str(path), device)
