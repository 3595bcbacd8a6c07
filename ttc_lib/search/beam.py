"""Beam search guided by a PRM, with optional lookahead (the paper's Section 5.1, Figure 2).

Rules
-----
* Budget = generations (the paper's unit). Beams N = budget // (k+1) for lookahead k (each beam's
  k rollout steps cost k more generations: cost.generations = N·(k+1) <= budget); k=0 is plain
  beam search with N = budget. A budget below k+1 is an error (no beam fits).
* Width M = ``width`` (an int, or "sqrt" for round(√N), the paper's two settings), capped at N.
  Each round keeps S = N // M survivors and expands each into M children.
* Slots: a beam that finishes (its step holds the answer, or EOS) leaves the search as a final
  candidate and keeps its slot, so finished + live beams never exceed N and the search ends with
  at most N candidates (a peer's beam search ended with more than N). With R = N - finished slots
  left, a round keeps k = min(S, open children, ceil(R / M)) survivors, the best by score (ties:
  the earlier child), and gives each M children except the last, which gets R - (k-1)·M if that
  is fewer. Round 0 draws N first steps from the bare prompt.
* A child whose step was cut off, or whose solution passed ``max_new_tokens``, is dropped (never a
  candidate); after ``max_rounds`` rounds (40, the paper's) beams still open are dropped too. A
  round is one step of the generator's step contract (common.py), so the cap counts steps: under
  ``blank_line`` a paragraph with display math is one round, not one per line.
* Scores: ``selection.aggregate`` of each child's step scores (of its greedy rollout with
  lookahead) with the ``aggregate`` rule, via common.expand_and_score: by default the last
  step's score, the paper's choice; notebook 04 passes notebook 02's validated rule, for ranking
  prefixes and final candidates alike (common.py says why). The answer is weighted best-of-N over
  the finished candidates (selection.weighted: the answer whose candidates' scores sum highest),
  as in the paper.
* Identical prefixes kept twice in one tree draw different samples (a distinct stream each).
* Every question's tree advances in the same rounds: one sample_steps and one verifier call per
  round for all questions together.

``tree_search`` runs any set of such trees; DVTS (dvts.py) is N/M trees of one slot group each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from tqdm.auto import tqdm

from ttc_lib.models.cost import Cost
from ttc_lib.search.common import Candidate, SearchResult, expand_and_score, final_candidate
from ttc_lib.search.selection import weighted
from ttc_lib.tasks.problem import Problem
from ttc_lib.verifiers.base import Verifier

MAX_ROUNDS = 40  # the paper's cap on beam expansion rounds
STREAM_STRIDE = 1 << 16  # stream of a prefix = tree stream * STREAM_STRIDE + duplicate index


@dataclass
class Tree:
    """One independently searched tree: all of a question's beams, or one DVTS subtree."""

    question: int  # index into the problems
    slots: int  # most candidates (finished + live) it may hold: its share of the budget
    keep: int  # survivors per round (N // M for beam search, 1 for a DVTS subtree)
    width: int  # children per survivor (M)
    stream: int = 0  # sampling stream: trees with different streams never share samples
    frontier: list[tuple[str, int, int]] = field(default_factory=list)  # (prefix, path tokens, children)
    finished: list[Candidate] = field(default_factory=list)
    survivors: list[int] = field(default_factory=list)  # prefixes expanded in each round

    def __post_init__(self) -> None:
        if not 1 <= self.width <= self.slots or not 1 <= self.keep or self.keep * self.width > self.slots:
            raise ValueError(f"tree needs 1 <= width <= slots and keep*width <= slots, got slots={self.slots}, "
                             f"keep={self.keep}, width={self.width}")
        if not self.frontier and not self.finished:
            self.frontier = [("", 0, self.slots)]  # round 0: `slots` first steps from the bare prompt

    def advance(self, children: Sequence) -> None:
        """Take one round's scored children; choose the next frontier (module rules)."""
        open_ = []
        for ch in children:
            if ch.status == "final":
                self.finished.append(final_candidate(ch))
            elif ch.status == "open":
                open_.append(ch)
        room = self.slots - len(self.finished)
        if room <= 0 or not open_:
            self.frontier = []
            return
        k = min(self.keep, len(open_), math.ceil(room / self.width))
        best = sorted(range(len(open_)), key=lambda j: (-open_[j].score, j))[:k]
        counts = [self.width] * k
        counts[-1] = min(self.width, room - (k - 1) * self.width)
        self.frontier = [(open_[j].text, open_[j].tokens, c) for j, c in zip(best, counts)]


def tree_search(generator: Any, verifier: Verifier, problems: list[Problem], trees: list[Tree], *, seed: int,
                temperature: float, max_new_tokens: int, lookahead: int, max_rounds: int = MAX_ROUNDS,
                progress: bool = True, desc: str = "search", aggregate: str = "last") -> list[Cost]:
    """Advance every tree round by round until none is open; returns the cost per problem
    (generations left 0: the strategy sets them from its structure)."""
    costs = [Cost(int(generator.num_params), int(getattr(verifier, "num_params", 0))) for _ in problems]
    bar = tqdm(total=max_rounds, desc=desc, unit="round", **({} if progress else {"disable": True}))
    for _ in range(max_rounds):
        jobs = [(t, prefix, tokens, count) for t in trees for prefix, tokens, count in t.frontier]
        if not jobs:
            break
        streams, seen = [], {}
        for t, prefix, _, _ in jobs:  # duplicates of one prefix in one tree: a fresh stream each
            dup = seen[id(t), prefix] = seen.get((id(t), prefix), -1) + 1
            streams.append(t.stream * STREAM_STRIDE + dup)
        exp = expand_and_score(generator, verifier, [problems[t.question].question for t, *_ in jobs],
                               [p for _, p, _, _ in jobs], [c for *_, c in jobs],
                               path_tokens=[tok for _, _, tok, _ in jobs], streams=streams, seed=seed,
                               temperature=temperature, lookahead=lookahead, max_new_tokens=max_new_tokens,
                               aggregate=aggregate)
        per_tree: dict[int, list] = {}
        for (t, *_), kids, cost in zip(jobs, exp.children, exp.costs):
            per_tree.setdefault(id(t), []).extend(kids)
            costs[t.question] = costs[t.question] + cost
        for t in trees:
            if id(t) in per_tree:
                t.survivors.append(len(t.frontier))
                t.advance(per_tree[id(t)])
        bar.update(1)
    bar.close()
    return costs


def resolve_width(width: int | str, beams: int) -> int:
    """M from the config: an int, or "sqrt" (round(√N)); capped at the number of beams."""
    if width == "sqrt":
        m = max(1, round(math.sqrt(beams)))
    elif isinstance(width, int) and not isinstance(width, bool) and width >= 1:
        m = width
    else:
        raise ValueError(f"width must be a positive int or 'sqrt', got {width!r}")
    return min(m, beams)


def beam(generator: Any, verifier: Verifier, problems: list[Problem], budget: int, *, seed: int = 0,
         temperature: float = 1.0, max_new_tokens: int = 256, progress: bool = True, aggregate: str = "last",
         width: int | str = 4, lookahead: int = 0, max_rounds: int = MAX_ROUNDS) -> list[SearchResult]:
    """Beam search (lookahead search when ``lookahead`` > 0) on every problem; one result each;
    ``aggregate``: how step scores become a prefix's / candidate's score (module rules)."""
    if not isinstance(lookahead, int) or lookahead < 0:
        raise ValueError(f"lookahead must be an int >= 0, got {lookahead!r}")
    if not isinstance(max_rounds, int) or max_rounds < 1:
        raise ValueError(f"max_rounds must be an int >= 1, got {max_rounds!r}")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise ValueError(f"budget must be a positive int, got {budget!r}")
    if verifier is None:
        raise ValueError("beam search needs a verifier to rank its beams")
    beams = budget // (lookahead + 1)
    if beams < 1:
        raise ValueError(f"beam: budget {budget} is below lookahead+1 = {lookahead + 1} generations: "
                         f"no beam fits (lookahead k costs k+1 generations per beam)")
    m = resolve_width(width, beams)
    trees = [Tree(q, beams, beams // m, m) for q in range(len(problems))]
    costs = tree_search(generator, verifier, problems, trees, seed=seed, temperature=temperature,
                        max_new_tokens=max_new_tokens, lookahead=lookahead, max_rounds=max_rounds,
                        progress=progress, desc=f"beam N={beams} M={m} k={lookahead}", aggregate=aggregate)
    config = {"width": width, "lookahead": lookahead, **({"max_rounds": max_rounds} if max_rounds != MAX_ROUNDS else {})}
    out = []
    for p, t, cost in zip(problems, trees, costs):
        cost.generations = beams * (lookahead + 1)
        answer = weighted([c.answer for c in t.finished], [c.score for c in t.finished]) if t.finished else None
        out.append(SearchResult(p.id, "beam", config, budget, seed, answer, list(t.finished), cost,
                                {"beams": beams, "width": m, "survivors": list(t.survivors)}))
    return out
