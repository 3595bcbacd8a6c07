"""What every search strategy shares: its result type, the results-table schema, and the one
expand-and-score step.

Every strategy (best_of_n, beam with lookahead, dvts, revisions) returns one ``SearchResult``
per question, carrying the ``compute.Cost`` it spent. ``results_table`` flattens them into the
long table notebooks 04/05 save and notebook 06 fits policies from, one row per
(strategy, config, budget, seed, question).

Expand-and-score (``expand_and_score``), shared by beam, lookahead and DVTS
---------------------------------------------------------------------------
* Steps are those of the generator's step contract (``steps.contract_of(generator)``): a round
  adds one step of it, whatever lines that step spans. A partial solution is text in the
  contract's ``join`` form ("" = no step yet). Each (question, prefix) gets ``counts[i]`` next
  steps from ``Generator.sample_steps`` (one call per distinct count, all questions batched);
  ``streams`` give prompts with the same text different samples (duplicate beams, DVTS subtrees).
* A child is "final" when its step ended the solution (answer step, EOS or a stop string), "cut"
  when the step ran out of tokens or the solution's generated tokens exceed ``max_new_tokens`` (a
  cut text is never a solution and is not scored), else "open".
* lookahead k > 0: every distinct open child is rolled out k more steps at temperature 0 (stopping
  at a final or cut step, whose cut text is dropped); the verifier scores the rolled-out text and
  the child keeps that score, not the rollout (the paper's lookahead search).
* A child's score is ``selection.aggregate(step scores of the scored text, aggregate)``: with
  ``aggregate="last"`` (the default) the verifier's score of the prefix's LAST step, the paper's
  choice for PRM search. Notebooks pass the aggregation notebook 02 validated (``aggregation.py``)
  and it applies to prefixes too, on purpose: it is the verifier's validated way of judging a
  (partial) solution, and a verifier whose step scores judge steps locally (our likelihood PRM)
  needs ``prod``/``min`` to see an earlier wrong step when ranking prefixes; one rule also keeps a
  finished beam's score (its final selection weight) the same as best-of-N's for that text.
  Prefixes ranked in one round have equally many rounds of steps, so ``prod``'s bias against
  longer texts mostly cancels there. Each distinct (question, text) is scored once per call.
* Cost, per prefix: generated tokens (steps and rollouts, each distinct rollout charged once),
  prompt tokens (each distinct prompt as one plain prefill would read it), verifier tokens.
  The verifier is called once per round for all questions; its own counter
  (``verifier.tokens_scored``, before/after) is exact in total and split over the texts it read in
  proportion to their characters (largest remainders, so the parts sum to the total).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import pandas as pd

from ttc_lib.models.cost import Cost
from ttc_lib.search.selection import aggregate
from ttc_lib.tasks.grading import extract_answer, grade_answer
from ttc_lib.tasks.prompts import model_prompt
from ttc_lib.tasks.steps import contract_of
from ttc_lib.verifiers.base import Verifier

# Columns of the results tables (04_search/results.parquet, 05_revisions/results.parquet).
RESULT_COLUMNS = ["strategy", "config", "budget", "seed", "question_id", "answer", "correct",
                  "generations", "generated_tokens", "prompt_tokens", "verifier_tokens",
                  "generator_flops", "verifier_flops", "total_flops"]


@dataclass(frozen=True)
class Candidate:
    """A finished (or abandoned) solution a strategy ends with."""

    text: str
    answer: str | None  # grading.extract_answer(text)
    score: float  # the verifier's solution score (aggregate of its step scores); 0 if unscored


@dataclass
class SearchResult:
    question_id: str
    strategy: str  # registry name, e.g. "best_of_n", "beam", "dvts", "revisions"
    config: dict  # hyper-parameters that distinguish runs of one strategy, e.g. {"width": 4}
    budget: int  # the N (generations) the strategy was given; cost.generations <= budget
    seed: int
    answer: str | None  # the selected final answer
    candidates: list[Candidate] = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)
    # what the search did, for tests and diagnostics (beams, width, per-round survivors, ...);
    # not part of the results table
    info: dict = field(default_factory=dict)


def config_key(config: dict) -> str:
    """Canonical text of a config ("lookahead=1,width=4"): one column value per configuration."""
    return ",".join(f"{k}={config[k]}" for k in sorted(config)) or "-"


def results_table(results: Sequence[SearchResult], references: dict[str, str]) -> pd.DataFrame:
    """One row per result with RESULT_COLUMNS; ``correct`` graded against ``references``
    (question_id -> reference answer)."""
    rows = []
    for r in results:
        if r.question_id not in references:
            raise KeyError(f"results_table: no reference answer for question {r.question_id!r}")
        correct = r.answer is not None and grade_answer(r.answer, references[r.question_id])
        rows.append({"strategy": r.strategy, "config": config_key(r.config), "budget": r.budget, "seed": r.seed,
                     "question_id": r.question_id, "answer": r.answer, "correct": bool(correct), **r.cost.to_row()})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def result_to_dict(r: SearchResult) -> dict:
    """JSON-ready form of a result (for runs.ResultCache); ``result_from_dict`` inverts it."""
    return {"question_id": r.question_id, "strategy": r.strategy, "config": dict(r.config), "budget": r.budget,
            "seed": r.seed, "answer": r.answer, "candidates": [asdict(c) for c in r.candidates],
            "cost": asdict(r.cost), "info": r.info}


def result_from_dict(d: dict) -> SearchResult:
    return SearchResult(d["question_id"], d["strategy"], dict(d["config"]), int(d["budget"]), d["seed"],
                        d["answer"], [Candidate(**c) for c in d["candidates"]], Cost(**d["cost"]),
                        dict(d.get("info", {})))


# ---- the shared expand-and-score step ----------------------------------------------------------

@dataclass(frozen=True)
class Child:
    """One sampled next step of a prefix: the partial solution it makes, and its score."""

    text: str  # parent steps + the new step (the step contract's join form)
    status: str  # "open" | "final" | "cut" (module rules)
    score: float  # aggregate of the scored text's step scores (the rollout with lookahead); 0 if cut
    tokens: int  # generated tokens of this solution so far (the path from the root, rollouts excluded)


@dataclass
class Expansion:
    children: list[list[Child]]  # per prefix, its counts[i] children in sample order
    costs: list[Cost]  # per prefix, what expanding and scoring it cost (generations left 0)


def split_total(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` as integers that sum exactly to it (the one
    splitter of measured token totals: verifier tokens over texts, samples or questions).

    Largest remainder: each part is floor(total * w / sum(w)), and the units left over go one
    each to the largest fractional remainders, ties to the earlier weight ([1, 1, 1] splits 10
    as [4, 3, 3]). All-zero weights split evenly by the same rule. Raises on a negative total or
    weight, and on a positive total over no weights (those tokens would vanish)."""
    weights = list(weights)
    if total < 0 or any(x < 0 for x in weights):
        raise ValueError(f"split_total needs total >= 0 and weights >= 0, got {total}, {weights}")
    if not weights:
        if total:
            raise ValueError(f"cannot split {total} over no weights")
        return []
    w = sum(weights)
    if w <= 0:
        weights, w = [1.0] * len(weights), float(len(weights))
    raw = [total * x / w for x in weights]
    out = [math.floor(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: (out[i] - raw[i], i))[:total - sum(out)]:
        out[i] += 1  # largest remainders first, ties to the earlier text
    return out


def score_texts(verifier: Verifier, questions: Sequence[str], texts: Sequence[str],
                owners: Sequence[int], n_owners: int, how: str = "last") -> tuple[list[float], list[int]]:
    """``selection.aggregate(step scores, how)`` per text (0.0 for a text without steps), and the
    verifier tokens each owner (e.g. question or prefix index) caused. Each distinct (question,
    text) is scored once."""
    aggregate([0.5], how)  # an unknown rule fails before the verifier runs
    unique: dict[tuple[str, str], int] = {}
    for q, t in zip(questions, texts):
        unique.setdefault((q, t), len(unique))
    pairs = list(unique)
    tokens = [0] * n_owners
    if not pairs:
        return [], tokens
    before = verifier.tokens_scored
    per_step = verifier.score([q for q, _ in pairs], [t for _, t in pairs])
    spent = verifier.tokens_scored - before
    scores = [aggregate(s, how) if len(s) else 0.0 for s in per_step]
    first_owner: dict[int, int] = {}
    for (q, t), o in zip(zip(questions, texts), owners):
        first_owner.setdefault(unique[q, t], o)  # a text read once is charged to its first owner
    for j, part in enumerate(split_total(spent, [len(q) + len(t) + 1 for q, t in pairs])):
        tokens[first_owner[j]] += part
    return [scores[unique[q, t]] for q, t in zip(questions, texts)], tokens


def _prompt_tokens(generator: Any, questions: Sequence[str], prefixes: Sequence[str]) -> list[int]:
    """Token count of each prompt as the generator reads it (question prompt + prefix)."""
    texts = [model_prompt(generator, q) + p for q, p in zip(questions, prefixes)]
    return [len(ids) for ids in generator.tokenizer(texts)["input_ids"]] if texts else []


def expand_and_score(generator: Any, verifier: Verifier, questions: Sequence[str], prefixes: Sequence[str],
                     counts: Sequence[int], *, path_tokens: Sequence[int] | None = None,
                     streams: Sequence[int] | None = None, seed: int = 0, temperature: float = 1.0,
                     lookahead: int = 0, max_new_tokens: int = 256, aggregate: str = "last") -> Expansion:
    """Sample ``counts[i]`` next steps of each (question, prefix), roll them out ``lookahead`` steps
    greedily, score them, and charge each prefix what it cost (module rules).

    ``path_tokens[i]``: tokens already generated on prefix i's path (its children are cut once the
    path exceeds ``max_new_tokens``, the length cap of a full sample). ``aggregate``: how a scored
    text's step scores become its score (module rules)."""
    n = len(prefixes)
    if not len(questions) == len(counts) == n:
        raise ValueError(f"{len(questions)} questions, {n} prefixes and {len(counts)} counts: need one each")
    if any(c < 1 for c in counts) or lookahead < 0:
        raise ValueError(f"counts must be >= 1 and lookahead >= 0, got counts={list(counts)}, lookahead={lookahead}")
    path_tokens = [0] * n if path_tokens is None else list(path_tokens)
    streams = [0] * n if streams is None else [int(s) for s in streams]
    gen_tok, prompt_tok = [0] * n, [0] * n
    steps = contract_of(generator)  # what a step is: the generator's contract (module rules)
    contexts = [steps.prefix_text(steps.split(p)) for p in prefixes]  # every step closed by the delimiter

    # 1. next steps: one sample_steps call per distinct count, every question in it
    samples: list[list] = [[] for _ in range(n)]
    for c in sorted(set(counts)):
        idx = [i for i in range(n) if counts[i] == c]
        room = max(1, max_new_tokens - min(path_tokens[i] for i in idx))
        got = generator.sample_steps([questions[i] for i in idx], [contexts[i] for i in idx], c,
                                     temperature=temperature, max_new_tokens=room, seed=seed, progress=False,
                                     streams=[streams[i] for i in idx])
        for i, g in zip(idx, got):
            samples[i] = g
    seen: set[tuple[str, str, int]] = set()
    for i, t in enumerate(_prompt_tokens(generator, questions, contexts)):
        if (questions[i], contexts[i], streams[i]) not in seen:  # the generator prefills it once
            seen.add((questions[i], contexts[i], streams[i]))
            prompt_tok[i] += t
    children: list[list[tuple[str, str, int]]] = []  # (text, status, path tokens)
    for i, row in enumerate(samples):
        kids = []
        for s in row:
            gen_tok[i] += s.num_tokens
            text = steps.join(steps.split(prefixes[i]) + [s.text]) if s.text else prefixes[i]
            tokens = path_tokens[i] + s.num_tokens
            status = "cut" if s.finish_reason == "length" or tokens > max_new_tokens else \
                "final" if s.finish_reason in ("end", "stop") else "open"
            kids.append((text, status, tokens))
        children.append(kids)

    # 2. lookahead: each distinct open child rolled out greedily, charged to its first parent
    scored_text = {(i, j): kid[0] for i, kids in enumerate(children) for j, kid in enumerate(kids)}
    if lookahead:
        owner: dict[tuple[str, str], int] = {}
        for i, kids in enumerate(children):
            for text, status, _ in kids:
                if status == "open":
                    owner.setdefault((questions[i], text), i)
        rollout = {key: (steps.split(key[1]), True) for key in owner}  # steps, still rolling
        for _ in range(lookahead):
            live = [key for key, (_, going) in rollout.items() if going]
            if not live:
                break
            ctx = [steps.prefix_text(rollout[key][0]) for key in live]
            got = generator.sample_steps([q for q, _ in live], ctx, 1, temperature=0.0,
                                         max_new_tokens=max_new_tokens, seed=seed, progress=False)
            for key, c, t, (s,) in zip(live, ctx, _prompt_tokens(generator, [q for q, _ in live], ctx), got):
                gen_tok[owner[key]] += s.num_tokens
                prompt_tok[owner[key]] += t
                steps_so_far = rollout[key][0]
                if s.finish_reason == "length":  # a cut step is no evidence: score what came before
                    rollout[key] = (steps_so_far, False)
                else:
                    rollout[key] = (steps_so_far + ([s.text] if s.text else []), s.finish_reason == "step")
        for (i, j), text in list(scored_text.items()):
            if children[i][j][1] == "open":
                scored_text[i, j] = steps.join(rollout[questions[i], text][0])

    # 3. score every uncut child (its rollout with lookahead) in one verifier call
    keys = [(i, j) for (i, j) in scored_text if children[i][j][1] != "cut"]
    scores, ver_tok = score_texts(verifier, [questions[i] for i, _ in keys], [scored_text[k] for k in keys],
                                  [i for i, _ in keys], n, how=aggregate)
    score_of = dict(zip(keys, scores))
    out = [[Child(text, status, score_of.get((i, j), 0.0), tokens) for j, (text, status, tokens) in enumerate(kids)]
           for i, kids in enumerate(children)]
    gp, vp = int(generator.num_params), int(getattr(verifier, "num_params", 0))
    costs = [Cost(gp, vp, 0, gen_tok[i], prompt_tok[i], ver_tok[i]) for i in range(n)]
    return Expansion(out, costs)


def final_candidate(child: Child) -> Candidate:
    """A finished child as a search result candidate."""
    return Candidate(child.text, extract_answer(child.text), child.score)
