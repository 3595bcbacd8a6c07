"""Problem sources, all producing ``Problem`` records; ``load_problems`` picks one by name.

Sources:
* ``"arithmetic"``: the synthetic world. Options: the ArithmeticWorld knobs (max_value,
  addsub_max, mul_max, min_ops, max_ops), ``n_train``, ``n_test``, ``seed`` and
  ``split`` ("train" or "test", default "test"). Both splits are always drawn together, so
  pass the same n_train/n_test/seed for both to get the same disjoint pair.
* a path ending in ``.jsonl``: a MATH-format file (no options).
* anything else: a Hugging Face dataset, a local directory or a hub id ("owner/name").
  Options: ``split`` (default "test"), ``cache_dir``.

Owns: problem, arithmetic (the synthetic world and its first-wrong-step oracle), slips (its attempts
with slips, for revision rows), math_dataset,
store, steps (the step contract), prompts, grading. May import: ``ttc_lib.storage`` only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from ttc_lib.tasks.arithmetic import ArithmeticWorld, first_wrong_step, make_splits, step_labels
from ttc_lib.tasks.math_dataset import load_hf_dataset, load_jsonl
from ttc_lib.tasks.problem import Problem

__all__ = ["Problem", "ArithmeticWorld", "make_splits", "first_wrong_step", "step_labels",
           "load_jsonl", "load_hf_dataset", "load_problems", "LOADERS"]

_WORLD_KNOBS = {f.name for f in dataclasses.fields(ArithmeticWorld)}


def _check_options(source: str, options: dict, allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"load_problems({source!r}): unknown option(s) {unknown}; "
                         f"allowed: {sorted(allowed)}")


def _load_arithmetic(**options: Any) -> list[Problem]:
    _check_options("arithmetic", options, _WORLD_KNOBS | {"n_train", "n_test", "seed", "split"})
    split = options.pop("split", "test")
    if split not in ("train", "test"):
        raise ValueError(f"load_problems('arithmetic'): split must be 'train' or 'test', got {split!r}")
    n_train, n_test = options.pop("n_train", 0), options.pop("n_test", 500)
    seed = options.pop("seed", 0)
    if split == "train" and not n_train:
        raise ValueError("load_problems('arithmetic', split='train') needs n_train > 0")
    train, test = make_splits(ArithmeticWorld(**options), n_train=n_train, n_test=n_test, seed=seed)
    return train if split == "train" else test


# Named sources; a path or a dataset id is recognised by load_problems itself.
LOADERS: dict[str, Callable[..., list[Problem]]] = {"arithmetic": _load_arithmetic}


def load_problems(source: str, **options: Any) -> list[Problem]:
    """Problems from a named source, a MATH-format .jsonl file, or a Hugging Face dataset."""
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"load_problems: source must be a non-empty string, got {source!r}")
    if source in LOADERS:
        return LOADERS[source](**options)
    if source.endswith(".jsonl"):
        _check_options(source, options, set())
        return load_jsonl(source)
    if Path(source).exists() or "/" in source:
        _check_options(source, options, {"split", "cache_dir"})
        return load_hf_dataset(source, **options)
    raise ValueError(f"unknown problem source {source!r}: use one of {sorted(LOADERS)}, a path "
                     "to a .jsonl file, a local dataset directory, or a hub id like "
                     "'HuggingFaceH4/MATH-500'")
