"""policy.json round trip and validation; solve() charges its probes and never exceeds its budget."""

from __future__ import annotations

import json
import zlib

import pandas as pd
import pytest

from ttc_lib.analysis.strategy_policy import Choice, Policy, PolicyResult, solve, solve_many
from ttc_lib.generation.generator import Generator
from ttc_lib.models.cost import Cost
from ttc_lib.search.common import Candidate, SearchResult
from ttc_lib.tasks.grading import extract_answer
from ttc_lib.tasks.problem import Problem
from ttc_lib.tasks.steps import split_steps


def make_policy(**overrides) -> Policy:
    values = dict(thresholds=(0.3, 0.6), higher_is_easier=True, probe_samples=2, envelope="search",
                  choices={1: {2: Choice("best_of_n", {"selection": "weighted"}, 0.9), 8: Choice("beam", {"width": 2})},
                           2: {2: Choice("beam", {"lookahead": 0, "width": 2}), 4: Choice("dvts", {"width": 2})},
                           3: {4: Choice("best_of_n", {"selection": "majority"}, 0.1)}},
                  meta={"questions": 12})
    values.update(overrides)
    return Policy(**values)


def test_round_trip_through_policy_json(tmp_path):
    policy = make_policy()
    path = policy.save(tmp_path / "policy.json")
    loaded = Policy.load(path)
    assert loaded == policy
    assert loaded.choices[2][4].config == {"width": 2} and loaded.choices[1][2].fitted_accuracy == 0.9
    assert loaded.table() == policy.table()
    assert json.loads(path.read_text())["choices"]["3"]["4"]["strategy"] == "best_of_n"


def test_policy_json_is_strict_json(tmp_path):
    with pytest.raises(ValueError, match="fitted_accuracy"):  # NaN never reaches policy.json
        make_policy(choices={1: {2: Choice("beam", {"width": 2}, float("nan"))}, 2: {2: Choice("beam")},
                             3: {2: Choice("dvts", {"width": 2})}})
    path = make_policy().save(tmp_path / "policy.json")
    json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in policy.json"))


def test_bins_and_choices():
    policy = make_policy()
    assert [policy.bin_of(s) for s in (0.9, 0.6, 0.59, 0.3, 0.0)] == [1, 1, 2, 2, 3]
    assert make_policy(higher_is_easier=False).bin_of(0.9) == 3
    assert policy.choose(1, 7) == (2, policy.choices[1][2])
    assert policy.choose(1, 8) == (8, policy.choices[1][8])
    assert policy.choose(3, 3) is None
    with pytest.raises(ValueError, match="no bin 4"):
        policy.choose(4, 8)


def _mutate(data, path, value):
    *parents, last = path
    for key in parents:
        data = data[key]
    if value is KeyError:
        del data[last]
    else:
        data[last] = value


@pytest.mark.parametrize("path, value, field", [
    (("format",), KeyError, "'format' is missing"),
    (("version",), 2, "'version'"),
    (("envelope",), "", "'envelope'"),
    (("difficulty", "thresholds"), [0.6, 0.3], "'difficulty.thresholds' must be ascending"),
    (("difficulty", "thresholds"), ["a", 0.3], "'difficulty.thresholds'"),
    (("difficulty", "higher_is_easier"), "yes", "'difficulty.higher_is_easier'"),
    (("difficulty", "aggregate"), "mean", "'difficulty.aggregate'"),
    (("probe", "samples"), 0, "'probe.samples'"),
    (("choices", "3"), KeyError, "'choices' must have exactly the bins"),
    (("choices", "2", "2", "strategy"), "", "'choices.2.2.strategy'"),
    (("choices", "1", "x"), {"strategy": "beam", "config": {}}, "'choices.1.x' key must be a positive integer"),
    (("choices", "1", "8", "config"), [2], "'choices.1.8.config'"),
    (("choices", "1", "2", "fitted_accuracy"), 1.5, "'choices.1.2.fitted_accuracy'"),
    (("choices", "2"), {}, "'choices.2' must be a non-empty object"),
])
def test_validation_names_the_field(tmp_path, path, value, field):
    data = make_policy().to_dict()
    _mutate(data, path, value)
    file = tmp_path / "policy.json"
    file.write_text(json.dumps(data))
    with pytest.raises(ValueError) as err:
        Policy.load(file)
    assert field in str(err.value) and str(file) in str(err.value)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="06_compute_optimal"):
        Policy.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Policy.load(bad)


def test_constructor_validates_too():
    with pytest.raises(ValueError, match="choices"):
        make_policy(choices={1: {2: Choice("beam")}})  # thresholds define 3 bins


# ---------------------------------------------------------------------------------- solve
class HashVerifier:
    """Scores each step by a hash of the solution text (deterministic, spread over [0, 1])."""

    name, num_params, identity = "hash", 1234, "hash-verifier"

    def __init__(self):
        self.tokens_scored = 0

    def score(self, questions, solutions):
        self.tokens_scored += sum(len(q) + len(s) for q, s in zip(questions, solutions))
        return [[(zlib.crc32(s.encode()) % 1000) / 1000.0] * len(split_steps(s)) for s in solutions]


def sampling_runner(overspend: int = 0):
    """A best-of-N-like strategy for any name: samples budget solutions, picks the first answer."""
    calls = []

    def run(name, generator, verifier, problems, budget, *, seed=0, temperature=1.0, max_new_tokens=256,
            progress=False, **config):
        calls.append((name, budget, len(problems), config))
        samples = generator.sample([p.question for p in problems], budget, temperature=temperature,
                                   max_new_tokens=max_new_tokens, seed=seed, progress=False)
        out = []
        for p, group in zip(problems, samples):
            cands = [Candidate(s.text, extract_answer(s.text), 0.5) for s in group]
            cost = Cost(generator.num_params, verifier.num_params, generations=budget + overspend,
                        generated_tokens=sum(s.num_tokens for s in group), verifier_tokens=7 * budget)
            out.append(SearchResult(p.id, name, config, budget, seed, cands[0].answer, cands, cost))
        return out

    run.calls = calls
    return run


@pytest.fixture(scope="module")
def generator(tiny_checkpoint):
    return Generator.from_pretrained(tiny_checkpoint, device="cpu")


PROBLEMS = [Problem(f"p{i}", f"Start with {10 + i}. Add {i}. What is the result?", str(10 + 2 * i), "", 1)
            for i in range(6)]


@pytest.mark.parametrize("budget", [2, 3, 4, 5, 9, 13])
def test_solve_never_exceeds_its_budget_and_charges_the_probes(generator, budget):
    verifier, runner = HashVerifier(), sampling_runner()
    policy = make_policy()
    results = solve_many(PROBLEMS, budget, generator=generator, verifier=verifier, policy=policy, seed=1,
                         max_new_tokens=12, runner=runner)
    assert len(results) == len(PROBLEMS)
    for r in results:
        assert isinstance(r, PolicyResult)
        assert r.cost.generations <= budget
        assert r.probe_cost.generations == policy.probe_samples and r.probe_cost.generated_tokens > 0
        assert r.cost.generations >= r.probe_cost.generations
        assert r.cost.generated_tokens >= r.probe_cost.generated_tokens
        assert r.bin == policy.bin_of(r.difficulty_score)
        if r.method.startswith("best_of_n"):  # probes reused: exactly best-of-budget
            assert r.cost.generations == budget and len(r.candidates) == budget
        elif r.method == "probes":  # nothing fitted fits the remaining budget
            assert policy.choose(r.bin, budget - 2) is None and r.cost.generations == 2
        else:
            assert r.strategy_budget == policy.choose(r.bin, budget - 2)[0]
    assert sum(r.probe_cost.verifier_tokens for r in results) == verifier.tokens_scored
    assert sum(n for _, _, n, _ in runner.calls) <= len(PROBLEMS)  # each question in at most one batched call


def test_solve_passes_the_policys_aggregation_rule_to_every_strategy(generator):
    runner = sampling_runner()
    solve_many(PROBLEMS, 9, generator=generator, verifier=HashVerifier(), policy=make_policy(aggregate="prod"),
               seed=1, max_new_tokens=12, runner=runner)
    assert runner.calls and all(config["aggregate"] == "prod" for *_, config in runner.calls)


def test_solve_spreads_questions_over_bins_and_matches_solve_many(generator):
    policy = make_policy()
    many = solve_many(PROBLEMS, 9, generator=generator, verifier=HashVerifier(), policy=policy, seed=1,
                      max_new_tokens=12, runner=sampling_runner())
    one = solve(PROBLEMS[3], 9, generator=generator, verifier=HashVerifier(), policy=policy, seed=1,
                max_new_tokens=12, runner=sampling_runner())
    assert one.difficulty_score == pytest.approx(many[3].difficulty_score)
    assert (one.bin, one.method, one.cost.generations) == (many[3].bin, many[3].method, many[3].cost.generations)


def test_probes_use_their_own_seed(generator):
    """Probes must not be the samples the strategy draws with the same seed."""
    policy = make_policy(choices={b: {2: Choice("best_of_n", {"selection": "weighted"})} for b in (1, 2, 3)})
    r = solve(PROBLEMS[0], 4, generator=generator, verifier=HashVerifier(), policy=policy, seed=5,
              max_new_tokens=12, runner=sampling_runner())
    texts = [c.text for c in r.candidates]
    assert len(texts) == 4 and texts[:2] != texts[2:]


def test_no_probe_reuse_runs_the_fitted_budget(generator):
    policy = make_policy(choices={b: {2: Choice("best_of_n", {"selection": "weighted"})} for b in (1, 2, 3)})
    r = solve(PROBLEMS[0], 7, generator=generator, verifier=HashVerifier(), policy=policy, max_new_tokens=12,
              runner=sampling_runner(), reuse_probes=False)
    assert r.strategy_budget == 2 and r.cost.generations == 4


def test_overspending_strategy_is_caught(generator):
    with pytest.raises(RuntimeError, match="spent"):
        solve(PROBLEMS[0], 9, generator=generator, verifier=HashVerifier(), policy=make_policy(),
              max_new_tokens=12, runner=sampling_runner(overspend=1))


def test_budget_below_the_probes_is_refused(generator):
    with pytest.raises(ValueError, match="probe"):
        solve(PROBLEMS[0], 1, generator=generator, verifier=HashVerifier(), policy=make_policy(), runner=sampling_runner())


def test_evaluate_policy_grades_caches_and_resumes(generator, tmp_path):
    from ttc_lib.analysis.strategy_policy import evaluate_policy

    runner = sampling_runner()
    kwargs = dict(generator=generator, verifier=HashVerifier(), policy=make_policy(), max_new_tokens=12, runner=runner)
    first = evaluate_policy(PROBLEMS[:3], [3, 6], cache_path=tmp_path / "c.jsonl", chunk_size=2, progress=False, **kwargs)
    assert len(first) == 6 and set(first.budget) == {3, 6} and (first.generations <= first.budget).all()
    assert first.correct.dtype == bool and (first.probe_generations == 2).all()
    calls = len(runner.calls)
    assert calls > 0
    again = evaluate_policy(PROBLEMS[:3], [3, 6], cache_path=tmp_path / "c.jsonl", chunk_size=2, progress=False, **kwargs)
    assert len(runner.calls) == calls  # everything came from the cache
    assert again.equals(first)
    refit = dict(kwargs, policy=make_policy(probe_samples=1))
    evaluate_policy(PROBLEMS[:1], [6], cache_path=tmp_path / "c.jsonl", progress=False, **refit)
    assert len(runner.calls) > calls  # a different policy is not served from the cache


@pytest.mark.parametrize("chosen", [Choice("best_of_n", {"selection": "weighted"}),
                                    Choice("beam", {"width": 2, "lookahead": 0}),
                                    Choice("dvts", {"width": 2})])
def test_solve_runs_the_real_strategies_within_budget(generator, chosen):
    """Through search.run_strategy (the default runner): every strategy stays within the total budget."""
    policy = make_policy(choices={b: {4: chosen} for b in (1, 2, 3)})
    results = solve_many(PROBLEMS[:3], 7, generator=generator, verifier=HashVerifier(), policy=policy,
                         max_new_tokens=12, seed=2)
    for r in results:
        assert r.method == chosen.method
        if chosen.strategy == "best_of_n":  # probes reused: the remaining 5 generations all spent
            assert r.strategy_budget == 5 and r.cost.generations == 7 and len(r.candidates) == 7
        else:  # the fitted budget 4 <= the remaining 5
            assert r.strategy_budget == 4 and policy.probe_samples < r.cost.generations <= 6
        assert r.cost.verifier_tokens >= r.probe_cost.verifier_tokens


def test_evaluate_policy_cache_is_keyed_by_the_models_identities(generator, tmp_path):
    from ttc_lib.analysis.strategy_policy import evaluate_policy

    runner, verifier = sampling_runner(), HashVerifier()
    kwargs = dict(verifier=verifier, policy=make_policy(), max_new_tokens=12, runner=runner)
    run = lambda gen: evaluate_policy(PROBLEMS[:3], [6], cache_path=tmp_path / "c.jsonl", progress=False,  # noqa: E731
                                      generator=gen, **kwargs)
    run(generator)
    calls = len(runner.calls)
    assert calls > 0
    run(generator)
    assert len(runner.calls) == calls  # same models: from the cache
    run(Generator(generator.model, generator.tokenizer, device="cpu", identity="retrained"))
    assert len(runner.calls) > calls  # a policy model retrained at the same path is solved with again
    calls = len(runner.calls)
    verifier.identity = "retrained-verifier"
    run(generator)
    assert len(runner.calls) > calls  # so is a retrained verifier


def test_evaluate_policy_rows_do_not_depend_on_the_number_of_workers(generator, tmp_path):
    from ttc_lib.analysis.strategy_policy import evaluate_policy

    policy = make_policy(choices={b: {4: Choice("beam", {"width": 2, "lookahead": 0})} for b in (1, 2, 3)})
    one, two = (evaluate_policy(PROBLEMS[:4], [6], cache_path=tmp_path / f"w{w}.jsonl", chunk_size=2, progress=False,
                                workers=w, generator=generator, verifier=HashVerifier(), policy=policy,
                                max_new_tokens=12, seed=1) for w in (1, 2))  # 2: the two chunks in two processes
    pd.testing.assert_frame_equal(one, two)
    assert set(two.method) == {"beam[lookahead=0,width=2]"}
