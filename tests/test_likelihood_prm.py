"""Likelihood PRM: features by hand, calibration signs, one score per step, save -> load_verifier."""

from __future__ import annotations

import numpy as np
import pytest

from ttc_lib.generation.generator import Generator, TokenLogprobs
from ttc_lib.tasks.steps import split_steps
from ttc_lib.verifiers.base import LabelledSolution, Verifier
from ttc_lib.verifiers.kinds import load_verifier
from ttc_lib.verifiers.likelihood_prm import (
    FEATURES,
    LOGPROB_FLOOR,
    LikelihoodPRM,
    fit_likelihood_prm,
    fit_logistic,
    step_features,
)

pytestmark = pytest.mark.filterwarnings("error::FutureWarning")  # no deprecated transformers calls

QUESTION = "Start with 23. Add 7, multiply by 3. What is the result?"
SOLUTION = "23+7=30\n30*3=90\n\\boxed{90}"  # steps span [0,7) [8,15) [16,26); "\n" at 7 and 15


def test_step_features_by_hand_synthetic():
    # tokens: "23+7=30" | "\n" | "30*3=" | "90\n" | "\boxed{90}"
    tl = TokenLogprobs((1, 2, 3, 4, 5), (-0.5, -3.0, -0.1, -0.2, -50.0), (7, 8, 13, 16, 26))
    f = step_features(SOLUTION, tl)
    assert f.shape == (3, len(FEATURES)) and FEATURES == ("step_min", "running_min", "step_mean")
    np.testing.assert_allclose(f[0], [-3.0, -3.0, -1.75])  # the delimiter closing step 0 is charged to it
    np.testing.assert_allclose(f[1], [-0.2, -3.0, -0.15])
    np.testing.assert_allclose(f[2], [LOGPROB_FLOOR, LOGPROB_FLOOR, LOGPROB_FLOOR])
    # a token spanning steps counts for both; a step with no token has no evidence against it
    both = step_features("ab\ncd", TokenLogprobs((1,), (-2.0,), (5,)))
    np.testing.assert_allclose(both, [[-2, -2, -2], [-2, -2, -2]])
    empty = step_features("ab\ncd", TokenLogprobs((1,), (-2.0,), (2,)))
    np.testing.assert_allclose(empty, [[-2, -2, -2], [0, -2, 0]])
    assert step_features("", TokenLogprobs((), (), ())).shape == (0, 3)
    assert step_features("x\n\ny", TokenLogprobs((), (), ())).tolist() == [[0, 0, 0], [0, 0, 0]]


def test_fit_logistic_recovers_sign():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] - 0.5 * x[:, 2] > 0).astype(float)  # separable: + on feature 0, - on feature 2
    coef, _ = fit_logistic(x, y, monotone=False)
    assert coef[0] > 1 and coef[2] < -0.5 and abs(coef[1]) < abs(coef[0]) / 4
    mono, b = fit_logistic(x, y, monotone=True)
    assert (mono >= 0).all() and mono[0] > 1 and mono[2] == 0
    p = 1 / (1 + np.exp(-(x @ mono + b)))
    assert ((p > 0.5) == (x[:, 0] > 0)).mean() > 0.8
    shifted, _ = fit_logistic(x * 10 + 3, y, monotone=False)  # standardisation: raw units, same signs
    assert np.sign(shifted).tolist() == np.sign(coef).tolist()
    soft, _ = fit_logistic(x[:, :1], 1 / (1 + np.exp(-2 * x[:, 0])), l2=0, monotone=False)  # soft targets
    assert soft[0] == pytest.approx(2.0, rel=0.05)
    with pytest.raises(ValueError, match="targets"):
        fit_logistic(x, y + 1)


@pytest.fixture(scope="module")
def backbone(tiny_checkpoint):
    return Generator.from_pretrained(tiny_checkpoint, device="cpu")


def test_features_match_token_logprobs_by_hand(backbone, tiny_checkpoint):
    prm = LikelihoodPRM(backbone, [1.0, 1.0, 0.0], 0.5, tiny_checkpoint)
    (tl,) = backbone.token_logprobs([QUESTION], [SOLUTION])
    spans = {0: (0, 8), 1: (8, 16), 2: (16, 26)}  # a step owns its text and its closing delimiter
    start, by_step = 0, {0: [], 1: [], 2: []}
    for lp, end in zip(tl.logprobs, tl.end_offsets):
        for j, (a, b) in spans.items():
            if start < b and end > a:
                by_step[j].append(max(lp, LOGPROB_FLOOR))
        start = end
    expect, running = [], 0.0
    for j in range(3):
        running = min(running, min(by_step[j]))
        expect.append([min(by_step[j]), running, np.mean(by_step[j])])
    (got,) = prm.features([QUESTION], [SOLUTION])
    np.testing.assert_allclose(got, expect, rtol=1e-6)
    (scores,) = prm.score([QUESTION], [SOLUTION])
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-(np.array(expect) @ [1, 1, 0] + 0.5))), rtol=1e-6)


def test_fit_score_save_load(backbone, tiny_checkpoint, tmp_path):
    good = ["23+7=30\n30*3=90\n\\boxed{90}", "23+7=30\n30*3=90\n\\boxed{90}"]
    bad = ["23+7=31\n31*3=93\n\\boxed{93}", "23+7=30\n30*3=91\n\\boxed{91}"]
    train = [LabelledSolution(f"q{i}", QUESTION, s, (1.0, 1.0, 1.0)) for i, s in enumerate(good)]
    train += [LabelledSolution("q9", QUESTION, bad[0], (0.0, 0.0, 0.0)),
              LabelledSolution("q9", QUESTION, bad[1], (1.0, None, 0.0))]
    prm = fit_likelihood_prm(tiny_checkpoint, train, backbone=backbone)
    assert isinstance(prm, Verifier) and prm.num_params == backbone.num_params and prm.tokens_scored == 0
    assert prm.fit_info["steps"] == 11 and (prm.coef >= 0).all()
    solutions = good + bad + ["", "only one step \\boxed{3}", "\n\n"]
    questions = [QUESTION] * len(solutions)
    scores = prm.score(questions, solutions)
    assert [len(s) for s in scores] == [len(split_steps(s)) for s in solutions]
    assert all(0 <= v <= 1 for row in scores for v in row)
    assert prm.tokens_scored > 0
    folder = prm.save(tmp_path / "verifier")
    again = load_verifier(folder)
    assert type(again) is LikelihoodPRM and again.tokens_scored == 0
    assert again.score(questions, solutions) == scores
    before = again.tokens_scored
    again.score([QUESTION], [SOLUTION])
    assert again.tokens_scored > before


def test_monotone_scores_fall_with_likelihood(backbone, tmp_path):
    prm = LikelihoodPRM(backbone, [0.3, 0.5, 0.2], 1.0)
    grid = np.array([[-0.1, -0.1, -0.05], [-2.0, -2.0, -0.5], [-15.0, -15.0, -3.0]])
    s = prm.score_features(grid)
    assert s[0] > s[1] > s[2] and s[2] < 0.01
    target = tmp_path / "never-written"
    with pytest.raises(ValueError, match="no backbone_path"):
        prm.save(target)
    assert not target.exists()
