"""Sequential revisions: chains of revisions, run in parallel, with hierarchical or majority selection.

Rules
- A budget N is split into ``chains`` × ``length`` = N generations (refused unless chains divides
  N). Step 0 of a chain answers the bare question; step t > 0 revises, conditioned on the chain's
  last ``max_context`` (4) attempts (prompts.revision_question); chains may be longer than 4.
- Sampling: step t of every chain uses the generator seed ``step_seed(seed, t)``; chains whose
  prompts coincide (all of them at step 0) take distinct sample indices of that prompt in chain
  order. So chain c, step t depends only on (seed, the question, c, t) — not on the other
  questions, and not on how many chains or steps were asked for: a run with fewer chains or a
  shorter length is an exact prefix of a larger one. ``sweep`` uses that to run every
  (chains, length) of a budget grid once, on the "staircase" of chains the grid needs, and
  derives each configuration's result by slicing; ``revisions`` gives the same results alone.
- Selection: ``majority`` over all answers of all chains; ``hierarchical`` = best-of-N weighted
  within each chain (verifier score of every attempt: its step scores aggregated with the
  verifier's rule, "last" by default, notebook 02's validated rule for the plain PRM), then best-of-N
  weighted across the chain winners, a winner weighing the best score among its chain's
  attempts with that answer. A truncated attempt has no answer and never wins (selection.py).
- Cost (compute.Cost): generations = attempts made (= chains × length); generated tokens as
  sampled; prompt_tokens = every attempt's prompt (question + re-read context) as tokenised;
  verifier tokens = the tokens the verifier read for the attempts selected over (hierarchical
  only; majority uses no verifier).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

import pandas as pd
from tqdm.auto import tqdm

from ttc_lib.models.cost import Cost
from ttc_lib.models.identity import identity_of
from ttc_lib.models.workers import forget_history, run_tasks
from ttc_lib.revisions.data import MAX_CONTEXT
from ttc_lib.search.common import Candidate, SearchResult
from ttc_lib.search.selection import aggregate, group_answers, majority, weighted
from ttc_lib.storage import key_digest
from ttc_lib.tasks.grading import extract_answer, grade_answer
from ttc_lib.tasks.problem import content_id
from ttc_lib.tasks.prompts import format_prompt, model_prompt, revision_question
from ttc_lib.tasks.steps import split_steps
from ttc_lib.verifiers.base import Verifier

SELECTIONS = ("hierarchical", "majority")
STEP_SEED_STRIDE = 1_000_003  # step_seed(seed, t) distinct for every seed and t < this


@dataclass(frozen=True)
class Attempt:
    text: str
    answer: str | None  # None when truncated or without \\boxed{}
    finished: bool
    generated_tokens: int
    prompt_tokens: int
    context: tuple[str, ...]  # the attempts it was conditioned on (oldest first)


def step_seed(seed: int, step: int) -> int:
    return seed * STEP_SEED_STRIDE + step


def split_budget(budget: int, chains: int) -> int:
    """The chain length of ``budget`` generations in ``chains`` chains; refuses a non-divisor."""
    if not isinstance(budget, int) or not isinstance(chains, int) or budget < 1 or chains < 1:
        raise ValueError(f"budget and chains must be positive ints, got budget={budget!r}, chains={chains!r}")
    if budget % chains:
        raise ValueError(f"revisions: chains={chains} does not divide budget={budget}")
    return budget // chains


def ratio_grid(budget: int) -> list[tuple[int, int]]:
    """(chains, length) for every split of ``budget``, fully parallel first; for N=16 the paper's
    sequential:parallel ratios 1:16, 1:4, 1:1, 4:1, 16:1."""
    return [(budget // length, length) for length in range(1, budget + 1) if budget % length == 0]


def staircase(configs: Sequence[tuple[int, int]]) -> list[int]:
    """Length of each chain a set of (chains, length) configurations needs, chain 0 first."""
    most = max(c for c, _ in configs)
    return [max(length for c, length in configs if c > chain) for chain in range(most)]


def run_chains(generator, problems, lengths: Sequence[int], *, seed: int = 0, temperature: float = 1.0,
               max_new_tokens: int = 256, max_context: int = MAX_CONTEXT,
               progress: bool = True) -> list[list[list[Attempt]]]:
    """Attempts [problem][chain][step]; chain c gets ``lengths[c]`` steps (see the module rules)."""
    if max_context < 0 or any(n < 1 for n in lengths) or not lengths:
        raise ValueError(f"need max_context >= 0 and chain lengths >= 1, got {max_context}, {list(lengths)}")
    chains: list[list[list[Attempt]]] = [[[] for _ in lengths] for _ in problems]
    n_prompt: dict[str, int] = {}
    for t in tqdm(range(max(lengths)), desc="revision steps", **({} if progress else {"disable": True})):
        prompts: dict[str, list[tuple[int, int, tuple[str, ...]]]] = {}  # question text -> chains, in order
        for p, problem in enumerate(problems):
            for c, n in enumerate(lengths):
                if n > t:
                    context = tuple(a.text for a in chains[p][c][-max_context:]) if max_context else ()
                    prompts.setdefault(revision_question(problem.question, context), []).append((p, c, context))
        by_count: dict[int, list[str]] = {}
        for text, members in prompts.items():
            by_count.setdefault(len(members), []).append(text)
        for n, texts in sorted(by_count.items()):
            samples = generator.sample(texts, n, temperature=temperature, max_new_tokens=max_new_tokens,
                                       seed=step_seed(seed, t), progress=False)
            for text, group in zip(texts, samples):
                if text not in n_prompt:
                    prompt = model_prompt(generator, text)
                    n_prompt[text] = len(generator.tokenizer(prompt)["input_ids"])
                for (p, c, context), s in zip(prompts[text], group):
                    finished = s.finish_reason != "length"
                    chains[p][c].append(Attempt(s.text, extract_answer(s.text) if finished else None, finished,
                                                s.num_tokens, n_prompt[text], context))
    return chains


def scored_tokens(verifier: Verifier, questions: Sequence[str], solutions: Sequence[str]) -> list[int]:
    """Tokens the verifier reads per solution: exact from its tokenizer when it has one."""
    tok = getattr(verifier, "tokenizer", None) or getattr(getattr(verifier, "backbone", None), "tokenizer", None)
    style = getattr(verifier, "prompt_style", None) or getattr(getattr(verifier, "backbone", None), "prompt_style",
                                                                 "plain")
    if tok is None:  # a verifier without a tokenizer: characters as a stand-in
        return [len(format_prompt(q)) + len(s) for q, s in zip(questions, solutions)]
    prompts = tok([format_prompt(q, style, tok) for q in questions])["input_ids"]
    sols = tok(list(solutions), add_special_tokens=False)["input_ids"]
    return [len(a) + len(b) for a, b in zip(prompts, sols)]


def score_chains(verifier: Verifier, problems, chains: list[list[list[Attempt]]], *, with_context: bool = True,
                 progress: bool = False, how: str = "last") -> list[list[list[tuple[float, int]]]]:
    """(score, verifier tokens) per attempt: ``aggregate`` (``how``) of the attempt's step scores, read
    after its context (``with_context``, a revision-aware ORM) or after the bare question.
    Attempts with no step score 0 and cost nothing."""
    qs, sols, where = [], [], []
    for p, problem in enumerate(problems):
        for c, chain in enumerate(chains[p]):
            for t, a in enumerate(chain):
                if split_steps(a.text):
                    qs.append(revision_question(problem.question, a.context) if with_context else problem.question)
                    sols.append(a.text)
                    where.append((p, c, t))
    out = [[[(0.0, 0)] * len(chain) for chain in per] for per in chains]
    if qs:
        scores = verifier.score(qs, sols, progress=progress) if _takes_progress(verifier) else verifier.score(qs, sols)
        for (p, c, t), s, n in zip(where, scores, scored_tokens(verifier, qs, sols)):
            out[p][c][t] = (aggregate(s, how) if s else 0.0, n)
    return out


def _takes_progress(verifier: Verifier) -> bool:
    import inspect

    try:
        return "progress" in inspect.signature(verifier.score).parameters
    except (TypeError, ValueError):
        return False


def attempts_frame(problems, chains, scored: dict[str, list] | None = None, seed: int = 0) -> pd.DataFrame:
    """One row per attempt: question_id, seed, chain, step, text, answer, finished, correct, tokens,
    context (JSON list), and per verifier name ``score[name]`` / ``verifier_tokens[name]``."""
    rows = []
    for p, problem in enumerate(problems):
        for c, chain in enumerate(chains[p]):
            for t, a in enumerate(chain):
                row = {"question_id": problem.id, "seed": seed, "chain": c, "step": t, "text": a.text,
                       "answer": a.answer, "finished": a.finished,
                       "correct": bool(a.answer is not None and grade_answer(a.answer, problem.answer)),
                       "generated_tokens": a.generated_tokens, "prompt_tokens": a.prompt_tokens,
                       "context": json.dumps(list(a.context))}
                for name, values in (scored or {}).items():
                    row[f"score[{name}]"], row[f"verifier_tokens[{name}]"] = values[p][c][t]
                rows.append(row)
    return pd.DataFrame(rows)


def hierarchical(chain_answers: Sequence[Sequence[str | None]], chain_scores: Sequence[Sequence[float]]) -> str | None:
    """Best-of-N weighted within each chain, then across the chain winners (module rules)."""
    winners, weights = [], []
    for answers, scores in zip(chain_answers, chain_scores):
        answers, scores = list(answers), list(scores)
        best = weighted(answers, scores)
        if best is None:
            continue
        groups = group_answers(answers)
        g = groups[answers.index(best)]
        winners.append(best)
        weights.append(max(s for s, gi in zip(scores, groups) if gi == g))
    return weighted(winners, weights) if winners else None


def results_from_frame(frame: pd.DataFrame, problems, chains: int, length: int, *, selection: str,
                       verifier: str | None = None, generator_params: int = 0, verifier_params: int = 0,
                       budget: int | None = None, extra_config: dict | None = None) -> list[SearchResult]:
    """SearchResults of the (chains, length) configuration from an attempts frame (one seed), by
    slicing chains < ``chains`` and steps < ``length``; one per problem, in problem order."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    if selection == "hierarchical" and verifier is None:
        raise ValueError("hierarchical selection needs the name of the verifier's score column")
    part = frame[(frame.chain < chains) & (frame.step < length)].sort_values(["question_id", "chain", "step"])
    groups = dict(tuple(part.groupby("question_id", sort=False)))
    out = []
    for problem in problems:
        g = groups.get(problem.id)
        if g is None or len(g) != chains * length:
            raise ValueError(f"attempts of question {problem.id} do not cover chains={chains} x length={length}")
        answers = [a if isinstance(a, str) else None for a in g.answer]
        scores = g[f"score[{verifier}]"].tolist() if verifier else [0.0] * len(g)
        if selection == "majority":
            answer, vtokens, vparams = majority(answers), 0, 0
        else:
            per_chain = [(list(range(i, i + length))) for i in range(0, len(g), length)]
            answer = hierarchical([[answers[i] for i in idx] for idx in per_chain],
                                  [[scores[i] for i in idx] for idx in per_chain])
            vtokens, vparams = int(g[f"verifier_tokens[{verifier}]"].sum()), verifier_params
        cost = Cost(generator_params, vparams, generations=float(len(g)),
                    generated_tokens=int(g.generated_tokens.sum()), prompt_tokens=int(g.prompt_tokens.sum()),
                    verifier_tokens=vtokens)
        out.append(SearchResult(problem.id, "revisions",
                                {"chains": chains, "length": length, "selection": selection, **(extra_config or {})},
                                budget or chains * length, int(g.seed.iloc[0]), answer,
                                [Candidate(t, a, float(s)) for t, a, s in zip(g.text, answers, scores)], cost))
    return out


def revisions(generator, verifier: Verifier | None, problems, budget: int, *, seed: int = 0, temperature: float = 1.0,
              max_new_tokens: int = 256, progress: bool = True, aggregate: str = "last", chains: int,
              selection: str, max_context: int = MAX_CONTEXT, verifier_context: bool = True) -> list[SearchResult]:
    """``chains`` revision chains of length budget // chains per problem, then ``selection``
    ("hierarchical" with ``verifier``, read with each attempt's context when ``verifier_context``,
    or "majority"); one SearchResult per problem."""
    length = split_budget(budget, chains)
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    problems = list(problems)
    attempts = run_chains(generator, problems, [length] * chains, seed=seed, temperature=temperature,
                          max_new_tokens=max_new_tokens, max_context=max_context, progress=progress)
    scored = None
    if selection == "hierarchical":
        scored = {"v": score_chains(verifier, problems, attempts, with_context=verifier_context, how=aggregate)}
    frame = attempts_frame(problems, attempts, scored, seed=seed)
    return results_from_frame(frame, problems, chains, length, selection=selection,
                              verifier="v" if scored else None, generator_params=generator.num_params,
                              verifier_params=getattr(verifier, "num_params", 0), budget=budget)


def sweep(generator, problems, budgets: Sequence[int], *, seeds: Sequence[int], verifiers: dict,
          temperature: float = 1.0, max_new_tokens: int = 256, max_context: int = MAX_CONTEXT,
          cache_path=None, chunk_size: int = 16, lengths: Sequence[int] | None = None,
          progress: bool = True, workers: int = 1) -> pd.DataFrame:
    """Attempts of every (chains, length) in ``ratio_grid`` of each budget, for every seed: the
    staircase of chains (or chains of the ``lengths`` given) runs once per (seed, question) and
    each verifier in ``verifiers`` (name -> (verifier, with_context) or (verifier, with_context,
    aggregate rule), "last" when left out) scores every attempt.
    Cached per chunk of questions (storage.ResultCache at ``cache_path``): an interrupted sweep
    resumes. A question's key holds the seed, its content (text, reference answer), these settings
    and the ``identity`` of the generator and of each verifier: a model retrained at the same path
    runs again. ``workers`` > 1 runs the (seed, chunk) pieces in that many single-thread processes
    (``models.workers``): the same rows, sooner; each piece is cached as it arrives."""
    from ttc_lib.storage import ResultCache

    lengths = list(lengths) if lengths else staircase([cfg for n in budgets for cfg in ratio_grid(n)])
    problems = list(problems)
    cache = ResultCache(cache_path) if cache_path else None
    rules = {name: v[2] if len(v) > 2 else "last" for name, v in verifiers.items()}
    settings = None if cache is None else [identity_of(generator), lengths, temperature, max_new_tokens, max_context,
                                           [[n, identity_of(v[0]), bool(v[1]), rules[n]] for n, v in verifiers.items()]]
    key = lambda s, p: f"{s}|{p.id}|{key_digest(settings, content_id(p))}"  # noqa: E731
    pieces = [(s, problems[i:i + chunk_size]) for s in seeds for i in range(0, len(problems), chunk_size)]
    frames = [pd.DataFrame(cache.get(key(s, p))) for s, chunk in pieces for p in chunk
              if cache is not None and key(s, p) in cache]
    tasks = [{"problems": todo, "seed": s} for s, chunk in pieces
             if (todo := [p for p in chunk if cache is None or key(s, p) not in cache])]
    settings_of_task = dict(lengths=lengths, temperature=temperature, max_new_tokens=max_new_tokens,
                            max_context=max_context, rules=rules)
    done = run_tasks(_sweep_piece, [{**t, **settings_of_task} for t in tasks],
                     {"generator": generator, "verifiers": verifiers}, workers)
    for i, frame in tqdm(done, total=len(tasks), desc="revision sweep (seed, chunk)",
                         **({} if progress else {"disable": True})):
        if cache is not None:
            cache.put_many((key(tasks[i]["seed"], p), part.to_dict(orient="list"))
                           for p, (_, part) in zip(tasks[i]["problems"], frame.groupby("question_id", sort=False)))
        frames.append(frame)
    if cache is not None:
        cache.close()
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["seed", "question_id", "chain", "step"], kind="stable").reset_index(drop=True)


def _sweep_piece(generator, verifiers: dict, problems, seed: int, lengths: list[int], temperature: float,
                 max_new_tokens: int, max_context: int, rules: dict) -> pd.DataFrame:
    # one (seed, chunk) of a sweep: a task of models.workers.run_tasks, from the generator's fresh state
    forget_history(generator)
    attempts = run_chains(generator, problems, lengths, seed=seed, temperature=temperature,
                          max_new_tokens=max_new_tokens, max_context=max_context, progress=False)
    scored = {name: score_chains(v[0], problems, attempts, with_context=v[1], how=rules[name])
              for name, v in verifiers.items()}
    return attempts_frame(problems, attempts, scored, seed=seed)


def sweep_results(frame: pd.DataFrame, problems, budgets: Sequence[int], selections: Sequence[dict], *,
                  generator_params: int, verifier_params: dict[str, int] | None = None) -> list[SearchResult]:
    """SearchResults of every seed x budget x ratio x selection from a ``sweep`` frame. Each entry of
    ``selections``: {"selection": ..., "verifier": score column name or None, "config": extra config}."""
    out = []
    for s, part in frame.groupby("seed", sort=True):
        for n in budgets:
            for chains, length in ratio_grid(n):
                for sel in selections:
                    v = sel.get("verifier")
                    out += results_from_frame(part, problems, chains, length, selection=sel["selection"], verifier=v,
                                              generator_params=generator_params,
                                              verifier_params=(verifier_params or {}).get(v, 0), budget=n,
                                              extra_config=sel.get("config"))
    return out
