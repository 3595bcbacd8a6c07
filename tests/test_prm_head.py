"""Trained-head PRM: per-step scores at step ends, batching, masking, training, split, save/load, cache."""

from __future__ import annotations

import math
import pickle
import random

import pytest
import torch

from ttc_lib.analysis.auroc import within_question_auroc
from ttc_lib.models.ray_workers import rebuilt, shippable
from ttc_lib.tasks.steps import join_steps, split_steps
from ttc_lib.verifiers import head_prm as prm_head, head_prm_training
from ttc_lib.verifiers.base import LabelledSolution, Verifier
from ttc_lib.verifiers.head_prm import HeadPRM
from ttc_lib.verifiers.head_prm_data import split_by_question
from ttc_lib.verifiers.head_prm_training import HeadTrainConfig, step_bce, train_head_prm, validation_loss
from ttc_lib.verifiers.kinds import load_verifier

Q = "Start with 23. Add 7, multiply by 3, subtract 15. What is the result?"
SOL = "23+7=30\n30*3=90\n90-15=75\n\\boxed{75}"
FAST = {"num_threads": 1}  # tiny models: one thread is fastest (2 threads were ~5x slower on the shared box)


@pytest.fixture(scope="module")
def prm(tiny_checkpoint):
    return HeadPRM.from_backbone(tiny_checkpoint, seed=1)


def marker_data(n_questions: int, per_question: int = 6, seed: int = 0) -> list[LabelledSolution]:
    """Steps ending in '!' are wrong (0), the others right (1): learnable from the step end alone."""
    rng, items = random.Random(seed), []
    for q in range(n_questions):
        a = rng.randint(10, 60)
        question = f"Start with {a}. Add {q % 9 + 1}. What is the result?"
        for _ in range(per_question):
            steps, labels = [], []
            for k in range(rng.randint(2, 4)):
                bad = rng.random() < 0.4
                steps.append(f"{a + k}+{k + 1}={a + 2 * k + 1}" + ("!" if bad else ""))
                labels.append(0.0 if bad else 1.0)
            items.append(LabelledSolution(f"q{q}", question, join_steps(steps), tuple(labels)))
    return items


def test_one_score_per_step_in_unit_interval(prm):
    sols = [SOL, "  4*5=20 \n\n\\boxed{20}\n", "", "only one step"]
    scores = prm.score([Q] * 4, sols)
    assert [len(s) for s in scores] == [len(split_steps(s)) for s in sols] == [4, 2, 0, 1]
    assert all(0 < x < 1 for row in scores for x in row)
    assert isinstance(prm, Verifier) and prm.tokens_scored > 0
    assert prm.num_params == sum(p.numel() for p in prm.body.parameters()) + 33  # head: 32 weights + bias


def test_head_read_at_last_token_of_each_step(prm):
    (ids, pos), = prm.encode([Q], ["  4*5=20 \n\n\\boxed{20}\n"])
    toks = [prm.tokenizer.decode([ids[p]]) for p in pos]
    assert toks[0].endswith("0") and toks[1].endswith("}")
    assert prm.tokenizer.decode(ids[pos[0] + 1:pos[0] + 2]).strip() == ""  # next token: the delimiter


def test_scores_independent_of_batch_and_padding(prm, monkeypatch):
    short = "4*5=20\n\\boxed{20}"
    long1 = SOL + "\n" + "\n".join(f"{i}+1={i + 1}" for i in range(20))
    alone = prm.score([Q], [short])[0]
    for side in ("right", "left"):
        monkeypatch.setattr(prm_head, "PADDING_SIDE", side)
        batched = prm.score([Q, Q, "Start with 4. Multiply by 5."], [long1, short, SOL])
        assert batched[1] == pytest.approx(alone, abs=1e-5), side


def test_causal_text_after_step_k_does_not_change_earlier_scores(prm):
    base = prm.score([Q], [SOL])[0]
    changed = prm.score([Q], ["23+7=30\n30*3=90\n12-1=11 something else\n\\boxed{3}"])[0]
    assert changed[:2] == pytest.approx(base[:2], abs=1e-6)
    other_step2 = prm.score([Q], ["23+7=30\n30*3=91\n90-15=75\n\\boxed{75}"])[0]
    assert other_step2[0] == pytest.approx(base[0], abs=1e-6) and other_step2[1] != pytest.approx(base[1], abs=1e-6)


def test_bce_masks_none_labels():
    logits = torch.tensor([0.3, -2.0, 5.0], requires_grad=True)
    targets = torch.tensor([math.nan, 0.25, math.nan])  # only step 2 supervised (soft label)
    loss = step_bce(logits, targets)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor([-2.0]), torch.tensor([0.25]))
    assert loss.item() == pytest.approx(float(expected))
    loss.backward()
    assert logits.grad[0] == 0 and logits.grad[2] == 0 and logits.grad[1] != 0
    assert step_bce(logits, torch.full((3,), math.nan)).item() == 0.0


def test_validation_split_is_by_question():
    items = marker_data(20, per_question=3)
    fit, val = split_by_question(items, 0.25, seed=3)
    assert {i.question_id for i in fit}.isdisjoint({i.question_id for i in val})
    assert len({i.question_id for i in val}) == 5 and len(fit) + len(val) == len(items)
    assert split_by_question(items, 0.25, seed=3) == (fit, val)


def test_bad_config_and_bad_items_name_the_field(tiny_checkpoint, tmp_path):
    for field, value in (("lr", -1.0), ("batch_size", 0), ("val_fraction", 1.5), ("freeze_backbone", "yes"),
                         ("device", "tpu")):
        with pytest.raises(ValueError, match=field):
            HeadTrainConfig(**{field: value})
    bad = [LabelledSolution("q", Q, SOL, (1.0, 1.0))]
    with pytest.raises(ValueError, match="2 labels for 4 steps"):
        train_head_prm(tiny_checkpoint, bad, HeadTrainConfig(), tmp_path / "v", progress=False)


def test_training_learns_marker_and_saves_loads_and_caches(tiny_checkpoint, tmp_path, monkeypatch):
    train, test = marker_data(40), marker_data(12, seed=1)
    cfg = HeadTrainConfig(lr=3e-3, batch_size=32, max_epochs=6, patience=6, val_fraction=0.2, **FAST)
    out = tmp_path / "prm"
    prm, record = train_head_prm(tiny_checkpoint, train, cfg, out, name="prm", progress=False)
    scores = prm.score([t.question for t in test], [t.solution for t in test])
    flat = [s for row in scores for s in row]
    labels = [y for t in test for y in t.labels]
    groups = [t.question_id for t in test for _ in t.labels]
    assert within_question_auroc(flat, labels, groups) > 0.9
    assert set(record["val_question_ids"]).isdisjoint({t.question_id for t in train} - set(record["val_question_ids"]))
    assert len(record["val_question_ids"]) == 8 and record["tokens"] > 0 and record["training_flops"] > 0
    assert record["best_epoch"] == 1 + min(range(len(record["val_loss_curve"])),
                                           key=record["val_loss_curve"].__getitem__)
    # save -> load_verifier -> identical scores, fine-tuned backbone saved inside the folder
    loaded = load_verifier(out)
    assert (out / "backbone" / "model.safetensors").exists() and loaded.name == "prm"
    reloaded = loaded.score([t.question for t in test], [t.solution for t in test])
    assert [s for row in reloaded for s in row] == pytest.approx(flat, abs=1e-6)
    sent = pickle.dumps(shippable({"verifier": loaded}))  # how a Ray worker gets it: its path, not its weights
    twin = rebuilt(pickle.loads(sent))["verifier"]
    assert len(sent) < 2_000 and twin is not loaded and twin.identity == loaded.identity
    assert twin.score([Q], [SOL]) == loaded.score([Q], [SOL])
    # same inputs: returned from the folder without training
    monkeypatch.setattr(head_prm_training, "fit_head", lambda *a, **k: pytest.fail("retrained instead of using the cache"))
    again, record2 = train_head_prm(tiny_checkpoint, train, cfg, out, name="prm", progress=False)
    assert record2 == record and again.score([Q], [SOL])[0] == pytest.approx(loaded.score([Q], [SOL])[0])


def test_orm_labels_and_early_stopping_restores_best(tiny_checkpoint, tmp_path):
    rng = random.Random(5)  # noise labels, last step only (ORM): validation loss must turn up
    items = [LabelledSolution(t.question_id, t.question, t.solution,
                              (None,) * (len(t.labels) - 1) + (float(rng.random() < 0.5),)) for t in marker_data(30)]
    cfg = HeadTrainConfig(lr=1e-2, batch_size=8, max_epochs=8, patience=2, val_fraction=0.3, seed=2, **FAST)
    prm, record = train_head_prm(tiny_checkpoint, items, cfg, tmp_path / "orm", progress=False)
    curve = record["val_loss_curve"]
    assert record["labelled_steps"] == record["solutions"]  # one label per solution
    assert record["best_epoch"] < record["epochs_run"] <= 8 and record["epochs_run"] - record["best_epoch"] == 2
    _, val = split_by_question(items, 0.3, seed=2)
    assert validation_loss(prm, val) == pytest.approx(min(curve), abs=1e-5) == pytest.approx(record["best_val_loss"])


def test_frozen_backbone_trains_head_only(tiny_checkpoint, tmp_path):
    train = marker_data(20)
    cfg = HeadTrainConfig(lr=3e-2, batch_size=32, max_epochs=4, freeze_backbone=True, val_fraction=0.1, **FAST)
    before = {k: v.clone() for k, v in HeadPRM.from_backbone(tiny_checkpoint).body.state_dict().items()}
    prm, record = train_head_prm(tiny_checkpoint, train, cfg, tmp_path / "frozen", progress=False)
    assert all(torch.equal(before[k], v) for k, v in prm.body.state_dict().items())
    assert record["trainable_params"] == 33 and not (tmp_path / "frozen" / "backbone").exists()
    assert load_verifier(tmp_path / "frozen").score([Q], [SOL])[0] == pytest.approx(prm.score([Q], [SOL])[0], abs=1e-6)
    twin, record2 = train_head_prm(tiny_checkpoint, train, cfg, tmp_path / "frozen2", progress=False)  # one seed
    assert record2["val_loss_curve"] == record["val_loss_curve"] and twin.score([Q], [SOL]) == prm.score([Q], [SOL])
