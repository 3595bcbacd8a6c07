"""What a model is, for the keys of caches that hold its work: ``model_identity`` (cheap: the
training fingerprint, a verifier's fingerprint or config, a file stamp, a hub id), computed once
when a Generator or verifier is loaded and kept as its ``identity``; ``identity_of`` reads it for
a cache key.

Why: every stage resumes from caches, and a path outlives retraining — a key naming a model by its
path would serve a retrained model the results of the model that lived there before.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ttc_lib.models.checkpoints import read_ttc_config

VERIFIER_CONFIG = "verifier_config.json"  # a saved verifier folder's config (verifiers.base writes it)
REFERENCE_KEYS = ("backbone", "backbone_relative", "source")  # where a saved verifier names the model it reads


def model_identity(path_or_id: str | Path) -> str:
    """What a model is, as a short string for the cache keys of work it did (samples, scores, chains).

    Stages resume from caches; a key that names a model by its path would serve a retrained
    model's results from the model that lived there before, so keys carry this identity instead:

    - a ttc checkpoint: the training fingerprint in its ttc_config.json (training.py,
      revision_training: a hash of everything that decides the weights, parent included), so the
      same recipe keeps its caches and any change to data, config or parent changes it;
    - a saved verifier with a fingerprint (trained head PRM/ORM: backbone, data, config): it;
    - another saved verifier (likelihood PRM, external PRM): a hash of its verifier_config.json
      (coefficients; the paths in it left out) and of the identity of the model it reads;
    - any other local folder (your own checkpoint): a hash of its files' relative names, sizes
      and modification times (rewriting it changes it; reading it does not);
    - anything else (a hub id): the string itself.

    Cheap: no weights are read.
    """
    local = Path(path_or_id).expanduser()
    if not local.is_dir():
        return str(path_or_id)
    config_file = local / VERIFIER_CONFIG
    if not config_file.exists():  # a checkpoint
        fingerprint = (read_ttc_config(local).get("training") or {}).get("fingerprint")
        return str(fingerprint) if fingerprint else _files_stamp(local)
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"verifier {local}: {config_file} is corrupt ({err})") from None
    if config.get("fingerprint"):
        return str(config["fingerprint"])
    # the model it reads, found as its loader finds it (the relative path first)
    rel, named = config.get("backbone_relative"), config.get("backbone") or config.get("source")
    reads = local / rel if rel and (local / rel).exists() else named
    own = {k: v for k, v in config.items() if k not in REFERENCE_KEYS}
    digest = hashlib.sha256(json.dumps(own, sort_keys=True, default=str).encode())
    digest.update(_files_stamp(local, skip={VERIFIER_CONFIG}).encode())  # rewritten on every save
    if reads:
        digest.update(model_identity(reads).encode())
    return digest.hexdigest()[:16]


def _files_stamp(folder: Path, skip: set[str] = frozenset()) -> str:
    """Hash of (relative name, size, mtime_ns) of every file under ``folder`` (hidden temporaries
    and ``skip`` left out): changes when a file is written, without reading any of them."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = file.relative_to(folder)
        if str(rel) in skip or any(part.startswith(".") for part in rel.parts):
            continue
        stat = file.stat()
        digest.update(f"{rel.as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def weights_identity(*modules: Any) -> str:
    """The identity of models held in memory without a path: a hash of their weights (state_dict
    names and values). Reads every weight: the objects that use it compute it once and keep it."""
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().float().numpy().tobytes())
    return f"weights:{digest.hexdigest()[:16]}"


def identity_of(model: Any) -> str | None:
    """``model.identity`` (Generator and every verifier kind carry one) for a cache key; None for
    no model. Caches key their results by it, never by a path or a name passed by the caller."""
    if model is None:
        return None
    identity = getattr(model, "identity", None)
    if not isinstance(identity, str) or not identity:
        raise TypeError(f"{type(model).__name__} has no identity (a non-empty str): the caches key results by "
                        "the identities of the models that made them (Generator and the verifiers have one)")
    return identity
