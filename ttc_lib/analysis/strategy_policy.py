"""A compute-optimal policy you can use: policy.json, and ``solve`` for new questions.

``Policy`` is what notebook 06 fits (``compute_optimal.fit_policy``) and saves as policy.json:
thresholds on the *predicted* difficulty score (the mean verifier score of a question's samples,
as notebook 03 / difficulty.py defines it: 0 for an unfinished sample) and, per predicted bin
and budget, the chosen strategy and configuration. ``Policy.load`` validates every field and
names the one at fault (the format's rules: policy_file.py).

``solve`` / ``solve_many`` apply it to questions the policy has never seen:

1. **Probe.** ``policy.probe_samples`` full solutions are sampled from the generator (seed
   ``seed + PROBE_SEED_OFFSET``, so they are never the same samples the strategy draws) and
   scored by the verifier; their mean score is the difficulty estimate, binned with the
   thresholds. The probes' generations, generated tokens and verifier tokens are charged to
   the question's budget — the paper left this cost out.
2. **Choose.** With ``remaining = budget − probe_samples`` generations left, the policy's
   choice for the question's bin at the largest fitted budget ``b <= remaining`` is taken.
3. **Run.** The chosen strategy runs at budget ``b`` via ``search.run_strategy`` (the
   revisions strategy goes through the same registry). ``policy.aggregate`` (how the verifier's
   step scores become a solution score: notebook 02's validated rule, as notebook 03 scored the
   difficulty with it) is the probes' rule and is passed to every strategy that runs with the
   probing verifier; a strategy given its own verifier (``strategy_models``, e.g. the revision
   ORM) keeps that verifier's default ("last") unless ``strategy_kwargs`` says otherwise.

**Probe reuse (stated here, as promised):** the probes are reused as candidates in two cases
only. (a) When the chosen strategy is ``best_of_n``, it is run with *all* ``remaining``
generations and its selection rule is applied to probes + new samples together — exactly
best-of-``budget`` with that rule, since probes and samples come from the same distribution.
(b) When ``remaining`` is below every fitted budget, no strategy runs and the answer is
best-of-N weighted over the probes. Beam, DVTS and revisions never see the probes.

The total ``cost.generations`` never exceeds ``budget`` (checked; a strategy that overspends
raises).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ttc_lib.analysis.strategy_policy_file import FORMAT, VERSION, validate_policy_data
from ttc_lib.models.cost import Cost
from ttc_lib.models.identity import identity_of
from ttc_lib.models.workers import run_tasks
from ttc_lib.search.common import Candidate, SearchResult, config_key, split_total
from ttc_lib.search.selection import aggregate, best_of_n, majority, weighted
from ttc_lib.storage import atomic_write_text, key_digest
from ttc_lib.tasks.grading import extract_answer
from ttc_lib.tasks.problem import content_id
from ttc_lib.tasks.steps import split_steps
from ttc_lib.verifiers.base import Verifier

PROBE_SEED_OFFSET = 7_919  # probes never share a seed with the strategy's own samples
SELECTIONS = {"weighted": weighted, "majority": lambda answers, scores: majority(answers), "naive": best_of_n}


@dataclass(frozen=True)
class Choice:
    strategy: str
    config: dict = field(default_factory=dict)
    fitted_accuracy: float | None = None  # accuracy on the questions it was chosen on (informative)

    @property
    def method(self) -> str:
        """"strategy[config]" as compute_optimal.method_name spells it."""
        key = config_key(self.config)
        return f"{self.strategy}[{key}]" if key != "-" else self.strategy


@dataclass(frozen=True)
class Policy:
    """thresholds: ascending score edges (len = bins − 1); higher_is_easier: bin 1 (easiest) is
    above the top edge; choices: bin -> budget -> Choice for bins 1..len(thresholds)+1."""

    thresholds: tuple[float, ...]
    higher_is_easier: bool
    choices: dict[int, dict[int, Choice]]
    probe_samples: int
    aggregate: str = "last"
    envelope: str = "search"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        d = self.to_dict()
        validate_policy_data(d, "Policy")  # one set of rules for constructed and loaded policies

    @property
    def n_bins(self) -> int:
        return len(self.thresholds) + 1

    def bin_of(self, score: float) -> int:
        """The predicted bin (1 = easiest) of a difficulty score."""
        if not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ValueError(f"difficulty score must be finite, got {score!r}")
        above = sum(score >= t for t in self.thresholds)
        return self.n_bins - above if self.higher_is_easier else above + 1

    def choose(self, bin_: int, budget: float) -> tuple[int, Choice] | None:
        """(fitted budget, choice) at the largest fitted budget <= ``budget``; None if none fits."""
        if bin_ not in self.choices:
            raise ValueError(f"policy has no bin {bin_}; bins are 1..{self.n_bins}")
        fitting = [b for b in self.choices[bin_] if b <= budget]
        return (max(fitting), self.choices[bin_][max(fitting)]) if fitting else None

    def table(self) -> list[dict]:
        """One row per (bin, budget): the chosen method."""
        return [{"bin": b, "budget": n, "method": c.method, "fitted_accuracy": c.fitted_accuracy}
                for b in sorted(self.choices) for n, c in sorted(self.choices[b].items())]

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "envelope": self.envelope,
                "difficulty": {"score": "mean verifier score of the probe samples (0 if unfinished)",
                               "aggregate": self.aggregate, "higher_is_easier": self.higher_is_easier,
                               "thresholds": [float(t) for t in self.thresholds]},
                "probe": {"samples": self.probe_samples},
                "choices": {str(b): {str(n): {"strategy": c.strategy, "config": dict(c.config),
                                              "fitted_accuracy": c.fitted_accuracy}
                                     for n, c in sorted(per.items())} for b, per in sorted(self.choices.items())},
                "meta": self.meta}

    @classmethod
    def from_dict(cls, data: Any, source: str = "policy") -> "Policy":
        validate_policy_data(data, source)
        diff = data["difficulty"]
        choices = {int(b): {int(n): Choice(c["strategy"], dict(c["config"]), c.get("fitted_accuracy"))
                            for n, c in per.items()} for b, per in data["choices"].items()}
        return cls(thresholds=tuple(float(t) for t in diff["thresholds"]), higher_is_easier=diff["higher_is_easier"],
                   choices=choices, probe_samples=data["probe"]["samples"], aggregate=diff["aggregate"],
                   envelope=data["envelope"], meta=dict(data.get("meta") or {}))

    def save(self, path: str | Path) -> Path:
        """Write policy.json as strict JSON (the constructor already refuses non-finite thresholds
        and accuracies; ``allow_nan=False`` makes sure nothing non-finite is ever written)."""
        path = Path(path)
        data = self.to_dict()
        atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Policy":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"missing policy file {path} (run notebook 06_compute_optimal first)") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from None
        return cls.from_dict(data, str(path))


# ------------------------------------------------------------------------------------ solve
@dataclass
class PolicyResult:
    """What ``solve`` did for one question: the answer, its full cost (probes included) and why."""

    question_id: str
    answer: str | None
    cost: Cost
    probe_cost: Cost
    difficulty_score: float
    bin: int
    method: str  # the chosen "strategy[config]", or "probes" when nothing else fit
    strategy_budget: int  # generations given to the chosen strategy (0: none ran)
    budget: int
    candidates: list[Candidate] = field(default_factory=list)

    def to_search_result(self, seed: int = 0) -> SearchResult:
        """As a ``SearchResult`` (strategy "policy") for ``search.common.results_table``."""
        return SearchResult(self.question_id, "policy", {"bin": self.bin, "method": self.method}, self.budget,
                            seed, self.answer, self.candidates, self.cost)


def default_runner(name: str, generator, verifier, problems, budget: int, **kwargs) -> list[SearchResult]:
    """``search.run_strategy``; "revisions" goes to ``search.revisions.revisions`` with the keys
    of its results-table config it does not take (``length``: fixed by budget / chains) dropped."""
    if name == "revisions":
        import inspect

        from ttc_lib.search.revision_chains import revisions

        accepted = set(inspect.signature(revisions).parameters)
        return revisions(generator, verifier, problems, budget, **{k: v for k, v in kwargs.items() if k in accepted})
    from ttc_lib.search import run_strategy

    return run_strategy(name, generator, verifier, problems, budget, **kwargs)


def _solution_score(verifier_scores: Sequence[float], how: str) -> float:
    return aggregate(verifier_scores, how) if len(verifier_scores) else 0.0


def solve(problem, budget: int, *, generator, verifier: Verifier, policy: Policy, **kwargs) -> PolicyResult:
    """Answer one question within ``budget`` generations, probes included (see the module doc)."""
    return solve_many([problem], budget, generator=generator, verifier=verifier, policy=policy, **kwargs)[0]


def solve_many(problems: Sequence, budget: int, *, generator, verifier: Verifier, policy: Policy, seed: int = 0,
               temperature: float = 1.0, max_new_tokens: int = 256, reuse_probes: bool = True,
               runner: Callable | None = None, strategy_models: dict | None = None,
               strategy_kwargs: dict | None = None, progress: bool = False) -> list[PolicyResult]:
    """``solve`` for many questions at once (batched probes, one strategy call per chosen
    configuration); same results as calling ``solve`` on each.

    ``runner`` defaults to ``default_runner``. ``strategy_models`` maps a strategy name to
    the (generator, verifier) it runs with instead of the probing pair (e.g. "revisions": the
    revision model and its ORM); ``strategy_kwargs`` maps a strategy name to extra keyword
    arguments. ``reuse_probes=False`` never reuses probes for best_of_n. The probes' verifier
    tokens are measured in total (``verifier.tokens_scored``) and shared among questions in
    proportion to the length of their scored probe texts (``search.common.split_total``: the
    shares sum exactly to the total)."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < policy.probe_samples:
        raise ValueError(f"budget must be an int >= the policy's {policy.probe_samples} probe samples, got {budget!r}")
    runner = runner or default_runner
    questions = [p.question for p in problems]
    p = policy.probe_samples
    probes = generator.sample(questions, p, temperature=temperature, max_new_tokens=max_new_tokens,
                              seed=seed + PROBE_SEED_OFFSET, progress=progress)
    flat = [(k, s) for k, group in enumerate(probes) for s in group]
    finished = [(k, s) for k, s in flat if s.finish_reason != "length" and split_steps(s.text)]
    read_before = verifier.tokens_scored
    step_scores = verifier.score([questions[k] for k, _ in finished], [s.text for _, s in finished]) if finished else []
    score_of = {id(s): _solution_score(sc, policy.aggregate) for (_, s), sc in zip(finished, step_scores)}
    verifier_read = verifier.tokens_scored - read_before
    results, groups = [], {}
    shares = split_total(verifier_read, [sum(len(s.text) for s in group if id(s) in score_of) for group in probes])
    for k, (problem, group) in enumerate(zip(problems, probes)):
        scores = [score_of.get(id(s), 0.0) for s in group]
        answers = [extract_answer(s.text) if s.finish_reason != "length" else None for s in group]
        probe_cost = Cost(generator.num_params, verifier.num_params, generations=p,
                          generated_tokens=sum(s.num_tokens for s in group),
                          verifier_tokens=shares[k])
        difficulty = float(sum(scores) / p)
        bin_ = policy.bin_of(difficulty)
        probe_candidates = [Candidate(s.text, a, sc) for s, a, sc in zip(group, answers, scores)]
        pick = policy.choose(bin_, budget - p)
        result = PolicyResult(problem.id, weighted(answers, scores), probe_cost, probe_cost, difficulty, bin_,
                              "probes", 0, budget, probe_candidates)
        results.append(result)
        if pick is None:
            continue
        fitted_budget, choice = pick
        reuse = reuse_probes and choice.strategy == "best_of_n"
        run_budget = budget - p if reuse else fitted_budget
        result.method, result.strategy_budget = choice.method, run_budget
        groups.setdefault((choice.method, run_budget, reuse), (choice, []))[1].append(k)
    for (_, run_budget, reuse), (choice, members) in groups.items():
        gen, ver = (strategy_models or {}).get(choice.strategy, (generator, verifier))
        own_verifier = choice.strategy in (strategy_models or {})
        # the policy's rule scores with the policy's verifier; a strategy with its own verifier
        # (revisions and their ORM) keeps that verifier's default rule
        extra = {**({} if own_verifier else {"aggregate": policy.aggregate}),
                 **(strategy_kwargs or {}).get(choice.strategy, {})}
        outs = runner(choice.strategy, gen, ver, [problems[k] for k in members], run_budget, seed=seed,
                      temperature=temperature, max_new_tokens=max_new_tokens, progress=progress,
                      **extra, **choice.config)
        for k, out in zip(members, outs):
            result = results[k]
            if out.cost.generations > run_budget + 1e-9:
                raise RuntimeError(f"strategy {choice.method} spent {out.cost.generations} generations "
                                   f"at budget {run_budget} on question {result.question_id}")
            result.cost = result.probe_cost + out.cost
            if reuse:
                pool = result.candidates + list(out.candidates)
                rule = SELECTIONS[choice.config.get("selection", "weighted")]
                result.answer = rule([c.answer for c in pool], [c.score for c in pool])
                result.candidates = pool
            else:
                result.answer, result.candidates = out.answer, list(out.candidates)
            if result.cost.generations > budget + 1e-9:
                raise RuntimeError(f"question {result.question_id}: spent {result.cost.generations} > budget {budget}")
    return results


def evaluate_policy(problems: Sequence, budgets: Sequence[int], *, cache_path, chunk_size: int = 16,
                    seed: int = 0, progress: bool = True, workers: int = 1, **solve_kwargs):
    """``solve_many`` on ``problems`` at each total budget, graded against each problem's answer;
    cached (an interrupted run resumes) in a storage.ResultCache at ``cache_path`` per budget, seed,
    question content (text, reference answer), fitted policy, settings and the ``identity`` of
    every model (generator, verifier, ``strategy_models``): retrained models solve again. One row
    per (budget, question): answer, correct, bin, method, difficulty score, strategy budget and
    the full cost (probes included). ``workers`` > 1 (or ``executor: ray``) solves the (budget, chunk)
    pieces side by side (``models.workers``: the same pieces, each cached as it arrives)."""
    import pandas as pd
    from tqdm.auto import tqdm

    from ttc_lib.storage import ResultCache

    cache = ResultCache(cache_path)
    fitted = {k: v for k, v in solve_kwargs["policy"].to_dict().items() if k != "meta"}
    settings = {k: v for k, v in solve_kwargs.items() if isinstance(v, (int, float, str, bool))}
    runner = solve_kwargs.get("runner")
    runner = runner and f"{getattr(runner, '__module__', '')}.{getattr(runner, '__qualname__', type(runner).__qualname__)}"
    strategy_models = solve_kwargs.get("strategy_models") or {}
    models = {name: [identity_of(m) for m in pair] for name, pair in strategy_models.items()}
    models.update(generator=identity_of(solve_kwargs["generator"]), verifier=identity_of(solve_kwargs["verifier"]))
    digest = key_digest(fitted, settings, models, solve_kwargs.get("strategy_kwargs") or {}, runner)
    key = lambda budget, p: f"{budget}|{seed}|{p.id}|{content_id(p)}|{digest}"  # noqa: E731 (a refitted policy: re-run)
    jobs = [(b, [p for p in problems[i:i + chunk_size] if key(b, p) not in cache])
            for b in budgets for i in range(0, len(problems), chunk_size)]
    jobs = [j for j in jobs if j[1]]
    held = {k: v for k, v in solve_kwargs.items() if k in ("generator", "verifier", "strategy_models")}
    options = {k: v for k, v in solve_kwargs.items() if k not in held}
    tasks = [{"problems": chunk, "budget": budget, "seed": seed, "options": options} for budget, chunk in jobs]
    for i, rows in tqdm(run_tasks(_solve_chunk, tasks, held, workers), total=len(tasks),
                        desc="solve (budget, chunk)", disable=not progress):
        cache.put_many((key(jobs[i][0], p), row) for p, row in zip(jobs[i][1], rows))
    rows = [cache.get(key(b, p)) for b in budgets for p in problems]
    cache.close()
    return pd.DataFrame(rows)


def _solve_chunk(generator, verifier: Verifier, problems: Sequence, budget: int, seed: int, options: dict,
                 strategy_models: dict | None = None) -> list[dict]:
    """One (budget, chunk) of ``evaluate_policy`` (a task of ``models.workers.run_tasks``): its rows."""
    from ttc_lib.tasks.grading import grade_answer

    out = solve_many(problems, budget, seed=seed, generator=generator, verifier=verifier,
                     strategy_models=strategy_models, **options)
    return [{"question_id": p.id, "budget": budget, "answer": r.answer,
             "correct": bool(r.answer is not None and grade_answer(r.answer, p.answer)), "bin": r.bin,
             "difficulty_score": r.difficulty_score, "method": r.method, "strategy_budget": r.strategy_budget,
             "probe_generations": r.probe_cost.generations, "probe_flops": r.probe_cost.total_flops,
             **r.cost.to_row()} for p, r in zip(problems, out)]
