"""Diverse verifier tree search (DVTS; Beeching et al. 2024, the open reproduction of the paper).

Beam search at large N lets a few high-scoring prefixes take over every beam (the paper's
over-optimisation on easy questions). DVTS splits the budget into independent subtrees so the
search keeps N/M different lines of reasoning.

Rules
-----
* Budget N generations, width M (int, capped at N): T = N // M subtrees of M slots each
  (cost.generations = T·M <= N). Each subtree is a beam search with M slots that keeps ONE
  survivor per round and expands it into M children (beam.Tree with keep=1), with beam.py's slot
  rules: finished children are candidates and keep their slot, cut children are dropped, at most
  ``max_rounds`` rounds; round 0 draws M first steps from the bare prompt.
* Independence: subtree j samples from its own stream j (Generator ``streams``), scores are
  per text, and its choices read only its own children, so subtree j's candidates do not depend
  on how many other subtrees run. All subtrees of all questions still share one sample_steps and
  one verifier call per round.
* The answer is weighted best-of-N over the finished candidates of all subtrees, listed subtree
  by subtree (``info["tree_sizes"]`` says how many each gave).
"""

from __future__ import annotations

from typing import Any

from ttc_lib.search.beam import MAX_ROUNDS, Tree, tree_search
from ttc_lib.search.common import SearchResult
from ttc_lib.search.selection import weighted
from ttc_lib.tasks.problem import Problem
from ttc_lib.verifiers.base import Verifier


def dvts(generator: Any, verifier: Verifier, problems: list[Problem], budget: int, *, seed: int = 0,
         temperature: float = 1.0, max_new_tokens: int = 256, progress: bool = True, aggregate: str = "last",
         width: int = 4, max_rounds: int = MAX_ROUNDS) -> list[SearchResult]:
    """DVTS on every problem; one result each (module rules; ``aggregate`` scores as in beam.py)."""
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ValueError(f"width must be a positive int, got {width!r}")
    if not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive int, got {budget!r}")
    if not isinstance(max_rounds, int) or max_rounds < 1:
        raise ValueError(f"max_rounds must be an int >= 1, got {max_rounds!r}")
    if verifier is None:
        raise ValueError("dvts needs a verifier to choose each subtree's best child")
    m = min(width, budget)
    n_trees = budget // m
    trees = [Tree(q, m, 1, m, stream=j) for q in range(len(problems)) for j in range(n_trees)]
    costs = tree_search(generator, verifier, problems, trees, seed=seed, temperature=temperature,
                        max_new_tokens=max_new_tokens, lookahead=0, max_rounds=max_rounds, progress=progress,
                        desc=f"dvts N={budget} M={m}", aggregate=aggregate)
    config = {"width": width, **({"max_rounds": max_rounds} if max_rounds != MAX_ROUNDS else {})}
    out = []
    for q, (p, cost) in enumerate(zip(problems, costs)):
        mine = trees[q * n_trees:(q + 1) * n_trees]
        candidates = [c for t in mine for c in t.finished]
        cost.generations = n_trees * m
        answer = weighted([c.answer for c in candidates], [c.score for c in candidates]) if candidates else None
        out.append(SearchResult(p.id, "dvts", config, budget, seed, answer, candidates, cost,
                                {"subtrees": n_trees, "width": m, "tree_sizes": [len(t.finished) for t in mine],
                                 "survivors": [list(t.survivors) for t in mine]}))
    return out
