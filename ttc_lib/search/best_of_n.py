"""Best-of-N: N independent full samples per question, scored, one answer selected.

Rules
-----
* ``best_of_n`` draws N = budget full solutions per question (one Generator.sample call for all
  questions), scores every finished one with the verifier (``selection.aggregate`` of its step
  scores with the ``aggregate`` rule: "last" by default, the paper's best; notebooks pass
  notebook 02's validated rule) and selects with selection.py: "weighted" (answer with the largest score sum, the
  paper's choice), "naive" (the single best-scored candidate) or "majority" (no verifier needed:
  nothing is scored and no verifier tokens are charged). A sample cut off by max_new_tokens is a
  candidate with no answer and score 0 (it can never win) and is not scored.
* Cost: generations = N; generated tokens of all N samples; prompt tokens = the question prompt
  once (the generator prefills it once); verifier tokens read for this question.
* ``from_pool`` evaluates best-of-N at a budget from notebook 03's sample pool instead of
  sampling again (sound for best-of-N only: its samples are independent): per question and subset, a uniform
  random ``budget``-subset of its samples, drawn from a stream keyed by (seed, question id) so a
  question's subsets do not depend on the other questions in the pool, and nested across budgets
  (the first ``budget`` of one permutation per subset: common random numbers). The cost of a
  subset is the sum of its samples' tokens; generations = budget.
"""

from __future__ import annotations

import zlib
from typing import Any, Callable

import numpy as np
import pandas as pd

from ttc_lib.models.cost import Cost
from ttc_lib.search import selection as sel
from ttc_lib.search.common import Candidate, SearchResult, score_texts
from ttc_lib.tasks.grading import extract_answer
from ttc_lib.tasks.problem import Problem
from ttc_lib.tasks.prompts import model_prompt
from ttc_lib.verifiers.base import Verifier

# selection name -> fn(answers, scores) -> answer; all of them selection.py's own rules
SELECTIONS: dict[str, Callable[[list, list], str | None]] = {
    "weighted": sel.weighted,
    "naive": sel.best_of_n,
    "majority": lambda answers, scores: sel.majority(answers),
}
POOL_COLUMNS = ("question_id", "sample", "text", "answer", "generated_tokens", "prompt_tokens",
                "verifier_tokens", "score")


def _check_selection(selection: str) -> None:
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; known: {sorted(SELECTIONS)}")


def best_of_n(generator: Any, verifier: Verifier | None, problems: list[Problem], budget: int, *, seed: int = 0,
              temperature: float = 1.0, max_new_tokens: int = 256, progress: bool = True,
              aggregate: str = "last", selection: str = "weighted") -> list[SearchResult]:
    """Best-of-N with ``budget`` samples per problem (module rules); one result per problem."""
    _check_selection(selection)
    if not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive int, got {budget!r}")
    if verifier is None and selection != "majority":
        raise ValueError(f"selection={selection!r} needs a verifier (only 'majority' works without one)")
    questions = [p.question for p in problems]
    samples = generator.sample(questions, budget, temperature=temperature, max_new_tokens=max_new_tokens,
                               seed=seed, progress=progress)
    done = [(q, j) for q, row in enumerate(samples) for j, s in enumerate(row) if s.finish_reason != "length"]
    scores: dict[tuple[int, int], float] = {}
    ver_tok = [0] * len(problems)
    if selection != "majority" and done:
        got, ver_tok = score_texts(verifier, [questions[q] for q, _ in done],
                                   [samples[q][j].text for q, j in done], [q for q, _ in done], len(problems),
                                   how=aggregate)
        scores = dict(zip(done, got))
    prompt_texts = [model_prompt(generator, q) for q in questions]
    prompts = generator.tokenizer(prompt_texts)["input_ids"] if questions else []
    vp = int(getattr(verifier, "num_params", 0)) if selection != "majority" else 0
    out = []
    for q, (p, row) in enumerate(zip(problems, samples)):
        cands = [Candidate(s.text, extract_answer(s.text) if s.finish_reason != "length" else None,
                           scores.get((q, j), 0.0)) for j, s in enumerate(row)]
        answer = SELECTIONS[selection]([c.answer for c in cands], [c.score for c in cands])
        cost = Cost(int(generator.num_params), vp, budget, sum(s.num_tokens for s in row), len(prompts[q]), ver_tok[q])
        out.append(SearchResult(p.id, "best_of_n", {"selection": selection}, budget, seed, answer, cands, cost))
    return out


def from_pool(pool: pd.DataFrame, budget: int, n_subsets: int, seed: int, selection: str,
              generator_params: int, verifier_params: int) -> list[SearchResult]:
    """Best-of-N at ``budget`` from random subsets of the 03 pool: one result per (question,
    subset), in pool question order, subset index in ``seed`` (= seed*1000 + subset)."""
    _check_selection(selection)
    missing = [c for c in POOL_COLUMNS if c not in pool.columns]
    if missing:
        raise ValueError(f"pool is missing column(s) {missing}; it has {list(pool.columns)}")
    if not isinstance(budget, int) or budget < 1 or not isinstance(n_subsets, int) or not 1 <= n_subsets <= 1000:
        raise ValueError(f"need budget >= 1 and 1 <= n_subsets <= 1000, got budget={budget!r}, n_subsets={n_subsets!r}")
    vp = verifier_params if selection != "majority" else 0
    out = []
    for qid, rows in pool.sort_values(["question_id", "sample"], kind="stable").groupby("question_id", sort=False):
        if len(rows) < budget:
            raise ValueError(f"pool has {len(rows)} samples for question {qid!r}, fewer than budget {budget}")
        answers = [None if pd.isna(a) else str(a) for a in rows["answer"]]
        scores = rows["score"].astype(float).fillna(0.0).to_numpy()
        texts = rows["text"].tolist()
        tokens = rows[["generated_tokens", "prompt_tokens", "verifier_tokens"]].to_numpy(dtype=np.int64)
        rng = np.random.default_rng([seed, zlib.crc32(str(qid).encode("utf-8"))])
        for subset in range(n_subsets):
            pick = np.sort(rng.permutation(len(rows))[:budget])  # sorted: selection's tie-break is sample order
            cands = [Candidate(texts[i], answers[i], float(scores[i])) for i in pick]
            answer = SELECTIONS[selection]([c.answer for c in cands], [c.score for c in cands])
            g, pr, v = (int(x) for x in tokens[pick].sum(axis=0))
            cost = Cost(generator_params, vp, budget, g, pr, v if selection != "majority" else 0)
            out.append(SearchResult(str(qid), "best_of_n", {"selection": selection}, budget, seed * 1000 + subset,
                                    answer, cands, cost))
    return out
