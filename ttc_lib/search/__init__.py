"""Search strategies over one Generator and one verifier, all returning common.SearchResult.

Every strategy has the signature ``fn(generator, verifier, problems, budget, *, seed=0,
temperature=1.0, max_new_tokens=256, progress=True, aggregate="last", **config) -> list[SearchResult]`` (one
result per problem, same order, batched across problems inside); ``budget`` is in generations.
Configs: best_of_n(selection="weighted"|"majority"|"naive"), beam(width=M or "sqrt",
lookahead=k, max_rounds), dvts(width=M, max_rounds), revisions(chains=C, selection="hierarchical"|"majority",
max_context, verifier_context) — run it with the revision model as the generator (search/revisions.py).

Owns: common (the shared expand-and-score step, ``SearchResult``), one file per strategy
(best_of_n, beam, dvts, revision_chains), selection (answer selection), pool (the sample pool),
grid (the job grid); its long loops run through ``models.workers`` (local processes or Ray). May import: ``storage``, ``tasks``, ``models``, ``generation``,
``verifiers``, ``revisions``.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

# imported under other names so that ttc_lib.search.beam etc. stay the modules
from ttc_lib.search.beam import beam as _beam
from ttc_lib.search.best_of_n import best_of_n as _best_of_n
from ttc_lib.search.common import Candidate, SearchResult, config_key, results_table
from ttc_lib.search.dvts import dvts as _dvts
from ttc_lib.search.revision_chains import revisions as _revisions
from ttc_lib.tasks.problem import Problem
from ttc_lib.verifiers.base import Verifier

STRATEGIES: dict[str, Callable[..., list[SearchResult]]] = {"best_of_n": _best_of_n, "beam": _beam, "dvts": _dvts,
                                                             "revisions": _revisions}
# every strategy takes these; "aggregate" (how step scores become a solution score, aggregation.py)
# is not part of a result's config: a run holds one rule for all its strategies
COMMON_KEYS = ("seed", "temperature", "max_new_tokens", "progress", "aggregate")


def config_keys(name: str) -> list[str]:
    """The config keys strategy ``name`` accepts (beyond the common keyword arguments)."""
    fn = _strategy(name)
    return [p.name for p in inspect.signature(fn).parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.name not in COMMON_KEYS]


def _strategy(name: str) -> Callable[..., list[SearchResult]]:
    if name not in STRATEGIES:
        raise ValueError(f"unknown search strategy {name!r}; known: {sorted(STRATEGIES)}")
    return STRATEGIES[name]


def run_strategy(name: str, generator: Any, verifier: Verifier | None, problems: list[Problem], budget: int,
                 **kwargs: Any) -> list[SearchResult]:
    """Run strategy ``name``; ``kwargs`` are the common keyword arguments and its config keys."""
    fn = _strategy(name)
    unknown = sorted(set(kwargs) - set(COMMON_KEYS) - set(config_keys(name)))
    if unknown:
        raise ValueError(f"strategy {name!r} got unknown config key(s) {unknown}; "
                         f"it accepts {config_keys(name)} and {list(COMMON_KEYS)}")
    return fn(generator, verifier, problems, budget, **kwargs)


__all__ = ["STRATEGIES", "run_strategy", "config_keys", "SearchResult", "Candidate", "results_table", "config_key"]
