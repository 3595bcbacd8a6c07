"""Caches keyed by what they read: the identities of the models a result depends on, its settings,
its seed and the question's content (text and reference answer), never a tag passed by the caller.

A policy retrained in place (same path, other weights and training fingerprint) misses every cache;
a changed verifier misses the pool's scores but not the policy's samples; an edited reference
answer (same question id) is graded again. The policy is the session's tiny trained one (it writes
finished multi-step solutions, so the verifier has work), copied to a folder of the test's own.
"""

from __future__ import annotations

import dataclasses
import shutil

import pandas as pd
import pytest
import torch

from ttc_lib.analysis.strategy_policy import Choice, Policy, evaluate_policy
from ttc_lib.generation.generator import Generator
from ttc_lib.generation.pass_at_1 import greedy_answers
from ttc_lib.models.checkpoints import load_checkpoint, save_checkpoint
from ttc_lib.models.identity import identity_of
from ttc_lib.revisions.data import sample_answers
from ttc_lib.search import revision_chains as rv
from ttc_lib.search.grid import grid, run_jobs
from ttc_lib.search.pool import sample_pool
from ttc_lib.storage import ResultCache
from ttc_lib.tasks.grading import grade_answer
from ttc_lib.verifiers.hash_verifier import HashVerifier
from ttc_lib.verifiers.labelling import LabelConfig, label_solutions

MAX_NEW = 40
POLICY = Policy(thresholds=(0.5,), higher_is_easier=True, probe_samples=1,
                choices={1: {2: Choice("best_of_n", {"selection": "weighted"})},
                         2: {2: Choice("best_of_n", {"selection": "majority"})}})


def load(path) -> Generator:
    """The policy at ``path``, with every sampling call recorded in ``.calls``."""
    gen = Generator.from_pretrained(path, device="cpu")
    gen.calls = []
    for method in ("sample", "sample_steps"):
        def counted(questions, *args, _call=getattr(gen, method), **kwargs):
            gen.calls.append(len(questions))
            return _call(questions, *args, **kwargs)
        setattr(gen, method, counted)
    return gen


def retrain_in_place(path, seed: int = 1) -> None:
    """Notebook 01 run again with another recipe: other weights and fingerprint at the same path."""
    model, tokenizer, config = load_checkpoint(path)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    save_checkpoint(model, tokenizer, path, {**config, "training": {"fingerprint": f"retrained-{seed}"}})


@pytest.fixture
def policy(trained_policy, tmp_path, one_thread):
    source, problems = trained_policy
    path = tmp_path / "policy"
    shutil.copytree(source, path)
    return path, list(problems)


def cache_users(folder, verifier):
    """Every cache of the project, each run as its notebook runs it: name -> fn(generator, problems)
    returning its result table."""
    def pool(gen, problems):
        cache = ResultCache(folder / "pool.jsonl")
        try:
            return sample_pool(gen, verifier, problems, 3, max_new_tokens=MAX_NEW, cache=cache, progress=False)
        finally:
            cache.close()

    def search(gen, problems):
        cache = ResultCache(folder / "search.jsonl")
        try:
            jobs, _ = grid([{"strategy": "best_of_n"}], [2], [0])
            return run_jobs(jobs, gen, verifier, problems, max_new_tokens=MAX_NEW, cache=cache, progress=False)
        finally:
            cache.close()

    return {
        "pool": pool,
        "search": search,
        "revision chains": lambda gen, problems: rv.sweep(
            gen, problems, [2], seeds=[0], verifiers={"v": (verifier, False)}, max_new_tokens=MAX_NEW,
            cache_path=folder / "sweep.jsonl", progress=False),
        "revision data": lambda gen, problems: sample_answers(
            gen, problems, 2, temperature=1.0, max_new_tokens=MAX_NEW, cache_path=folder / "answers.jsonl",
            progress=False),
        "solve": lambda gen, problems: evaluate_policy(
            problems, [3], cache_path=folder / "solve.jsonl", progress=False, generator=gen, verifier=verifier,
            policy=POLICY, max_new_tokens=MAX_NEW),
        "greedy": lambda gen, problems: greedy_answers(
            gen, problems, max_new_tokens=MAX_NEW, cache_path=folder / "greedy.jsonl", progress=False),
        "labels": lambda gen, problems: label_solutions(
            gen, problems, LabelConfig(samples_per_question=2, rollouts_per_step=1, max_new_tokens=MAX_NEW),
            folder / "labels", progress=False),
    }


def test_a_policy_retrained_in_place_misses_every_cache(policy, tmp_path):
    path, problems = policy
    users = cache_users(tmp_path, HashVerifier())
    first = load(path)
    for name, run in users.items():
        run(first, problems)
        assert first.calls, f"{name}: nothing was sampled"
        first.calls.clear()
        run(first, problems)
        assert first.calls == [], f"{name}: the same policy again must be served from the cache"
    retrain_in_place(path)
    second = load(path)
    assert identity_of(second) != identity_of(first)
    served_old = []
    for name, run in users.items():
        run(second, problems)
        served_old += [] if second.calls else [name]
        second.calls.clear()
    assert served_old == [], f"the policy retrained in place was served the old policy's results by {served_old}"
    fresh = sample_pool(second, HashVerifier(), problems, 3, max_new_tokens=MAX_NEW, progress=False)
    pd.testing.assert_frame_equal(users["pool"](second, problems), fresh)  # its own samples, not the old ones


def test_a_changed_verifier_misses_the_pool_scores_but_not_the_samples(policy, tmp_path):
    path, problems = policy
    gen, cache = load(path), tmp_path / "pool.jsonl"
    run = lambda verifier: sample_pool(gen, verifier, problems, 4, max_new_tokens=MAX_NEW,  # noqa: E731
                                       cache=ResultCache(cache), progress=False)
    old = HashVerifier("hash-1")
    first = run(old)
    assert gen.calls and old.calls == 1
    gen.calls.clear()
    new = HashVerifier("hash-2", salt="retrained")  # same name, another verifier
    again = run(new)
    assert gen.calls == []  # the policy's samples came from the cache
    assert new.calls == 1  # and the new verifier scored them
    assert again.text.tolist() == first.text.tolist() and (again.score != first.score).any()
    fresh = sample_pool(gen, HashVerifier("hash-2", salt="retrained"), problems, 4, max_new_tokens=MAX_NEW,
                        progress=False)
    pd.testing.assert_frame_equal(again, fresh)
    gen.calls.clear()
    run(old)
    assert gen.calls == [] and old.calls == 1  # both verifiers' scores stay cached side by side


def test_an_edited_reference_answer_is_graded_again(policy, tmp_path):
    path, problems = policy
    gen, served_old = load(path), []
    for name, run in cache_users(tmp_path, HashVerifier()).items():
        if name in ("labels",):  # labels keep answers, not grades: graded on reading (test_labelling)
            continue
        table = run(gen, problems)
        qid_col = "problem_id" if "problem_id" in table else "question_id"
        rows = table[table.answer.map(lambda a: isinstance(a, str))]
        assert len(rows), f"{name}: no answer to grade"
        row = rows.iloc[0]
        problem = next(p for p in problems if p.id == row[qid_col])
        flipped = row.answer if not grade_answer(row.answer, problem.answer) else f"{problem.answer}0"
        edited = [dataclasses.replace(p, answer=flipped) if p.id == problem.id else p for p in problems]
        again = run(gen, edited)
        match = again[(again[qid_col] == problem.id) & (again.answer == row.answer)]
        assert len(match), f"{name}: the edited question's answers changed"
        expected = grade_answer(row.answer, flipped)
        assert expected != bool(row.correct)
        served_old += [] if (match.correct == expected).all() else [name]
    assert served_old == [], f"the old grade of an edited answer was served by {served_old}"


def test_every_verifier_kind_has_an_identity_that_follows_what_decides_its_scores(policy, tmp_path):
    from ttc_lib.verifiers.base import Verifier
    from ttc_lib.verifiers.head_prm import HeadPRM, save_head_prm
    from ttc_lib.verifiers.kinds import load_verifier
    from ttc_lib.verifiers.likelihood_prm import LikelihoodPRM

    path, _ = policy
    backbone = Generator.from_pretrained(path, device="cpu")
    likelihood = LikelihoodPRM(backbone, [1.0, 0.5, 0.0], -1.0, path)
    assert isinstance(likelihood, Verifier)
    assert load_verifier(likelihood.save(tmp_path / "likelihood")).identity == likelihood.identity  # saved = in memory
    assert LikelihoodPRM(backbone, [1.0, 0.6, 0.0], -1.0, path).identity != likelihood.identity  # refitted
    head = HeadPRM.from_backbone(path)
    assert isinstance(head, Verifier) and head.identity.startswith("weights:")  # no fingerprint: its weights
    save_head_prm(head, tmp_path / "head", {"frozen": False, "fingerprint": "head-1"}, path, {})
    assert load_verifier(tmp_path / "head").identity == "head-1"  # a trained head: its training fingerprint
    retrain_in_place(path)
    retrained = Generator.from_pretrained(path, device="cpu")
    assert retrained.identity != backbone.identity
    assert LikelihoodPRM(retrained, [1.0, 0.5, 0.0], -1.0, path).identity != likelihood.identity  # another backbone
    in_memory = lambda gen: Generator(gen.model, gen.tokenizer, device="cpu").identity  # noqa: E731 (no path)
    assert in_memory(backbone).startswith("weights:") and in_memory(backbone) == in_memory(backbone)
    assert in_memory(retrained) != in_memory(backbone)
