"""Likelihood PRM: how probable a STRONGER model finds each step of the policy's solution.

Why: a scalar PRM head on a ~1M backbone tends to learn question difficulty, not step correctness
(see head_prm). What works better is reading the token probabilities a stronger model (the
policy's architecture trained longer) gives to the policy's steps, calibrated by a tiny logistic
regression on Monte-Carlo labels: the backbone must know more than the policy. Notebook 02 measures
both kinds side by side, by the same-step AUROC that position cannot game (the cpu reference run:
docs/results/cpu/README.md, section 02; the trained head's data curve: docs/verifiers.md).

Rules
-----
* One ``Generator.token_logprobs`` pass per solution (batched): log p(token | prompt, earlier
  tokens) for every token of the solution text, with each token's end offset.
* Steps are those of the backbone Generator's step contract (its ``step_contract``, saved with
  the verifier when it is not the world's "newline").
* Tokens -> steps (the contract's ``spans``): step j owns the characters from
  the start of its text up to the start of step j+1's text (step 0 from offset 0, the last step to
  the end), so the delimiter closing step j is charged to step j: a step ended too early
  ("51-2=4" + delimiter) shows up as an unlikely delimiter. Token t covers [end[t-1], end[t])
  (at least one character) and counts for every step whose span it overlaps.
* Features per step, log-probs floored at LOGPROB_FLOOR: ``step_min`` (least likely token of the
  step), ``running_min`` (least likely token of the solution so far), ``step_mean``. A step with
  no token gets step_min = step_mean = 0 (no evidence against it); running_min carries over.
* Score = sigmoid(coef . features + intercept), in (0, 1). The fit is an L2 logistic regression
  (Newton's method in numpy, soft targets allowed, features standardised internally, steps whose
  label is None skipped). ``monotone=True`` (default) keeps every coefficient >= 0 (active set),
  so a step the backbone finds less likely never scores higher.
* Empty solutions score ``[]``. ``tokens_scored`` adds prompt + solution tokens of every forward.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from ttc_lib.generation.generator import Generator, TokenLogprobs
from ttc_lib.storage import key_digest
from ttc_lib.tasks.prompts import model_prompt
from ttc_lib.tasks.steps import LINES, StepContract, contract_of
from ttc_lib.verifiers.base import LabelledSolution, read_verifier_config, save_verifier_config

FEATURES = ("step_min", "running_min", "step_mean")  # per-step features, in coefficient order
LOGPROB_FLOOR = -20.0  # log-probs below this are clipped (one absurd token should not dominate the fit)
L2 = 1e-3  # ridge penalty on the standardised coefficients (the intercept is not penalised)
NEWTON_STEPS = 100  # max Newton iterations per fit (converges in ~10)
SCORE_CHUNK = 1024  # solutions per token_logprobs call (progress granularity; the call batches itself)
KIND = "likelihood_prm"


def step_features(solution: str, logprobs: TokenLogprobs, contract: StepContract = LINES) -> np.ndarray:
    """(n_steps, len(FEATURES)) features of one solution from its token log-probs (module rules)."""
    spans = contract.spans(solution)
    out = np.zeros((len(spans), len(FEATURES)))
    if not spans:
        return out
    starts, ends = [a for a, _ in spans], [b for _, b in spans]
    lo_step = np.array([0] + starts[1:], dtype=float)  # step j spans [lo_step[j], hi_step[j])
    hi_step = np.array(starts[1:] + [math.inf], dtype=float)
    tok_end = np.asarray(logprobs.end_offsets, dtype=float)
    lp = np.maximum(np.asarray(logprobs.logprobs, dtype=float), LOGPROB_FLOOR)
    if len(tok_end) != len(lp):
        raise ValueError(f"TokenLogprobs has {len(lp)} log-probs but {len(tok_end)} offsets")
    tok_lo = np.minimum(np.r_[0.0, tok_end[:-1]], np.maximum(tok_end - 1, 0)) if len(lp) else tok_end
    tok_hi = np.maximum(tok_end, tok_lo + 1)
    member = (tok_lo[:, None] < hi_step[None, :]) & (tok_hi[:, None] > lo_step[None, :])  # (tokens, steps)
    running = 0.0
    for j in range(len(ends)):
        vals = lp[member[:, j]]
        step_min, step_mean = (float(vals.min()), float(vals.mean())) if len(vals) else (0.0, 0.0)
        running = min(running, step_min)
        out[j] = (step_min, running, step_mean)
    return out


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, monotone: bool = True) -> tuple[np.ndarray, float]:
    """(coef, intercept) of an L2 logistic regression of targets ``y`` in [0, 1] on raw features ``x``.

    Features are standardised for the fit and the result mapped back to raw units (signs kept).
    ``monotone``: coefficients constrained >= 0 by an active set (drop the most negative, refit;
    re-admit a dropped feature whose gradient asks for a positive weight).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 2 or len(x) != len(y) or len(y) == 0:
        raise ValueError(f"fit_logistic: need x (rows, features) and y (rows,), got {x.shape} and {y.shape}")
    if not np.all((y >= 0) & (y <= 1)) or not np.all(np.isfinite(x)):
        raise ValueError("fit_logistic: targets must lie in [0, 1] and features be finite")
    mean, std = x.mean(0), x.std(0)
    std[std < 1e-12] = 1.0
    z = (x - mean) / std
    d = z.shape[1]
    active = list(range(d))
    w, b = np.zeros(d), 0.0
    for _ in range(2 * d + 2):
        w, b = np.zeros(d), 0.0
        w[active], b = _newton(z[:, active], y, l2)
        if monotone and (w < 0).any():
            active.remove(int(np.argmin(w)))
            continue
        if monotone:
            p = 1 / (1 + np.exp(-(z @ w + b)))
            grad = z.T @ (p - y) / len(y)  # d loss / d w at the constrained optimum
            want = [k for k in range(d) if k not in active and grad[k] < -1e-9]
            if want:
                active.append(min(want, key=lambda k: grad[k]))
                continue
        break
    coef = w / std
    return coef, float(b - (coef * mean).sum())


def _newton(z: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    n, d = z.shape
    a = np.c_[z, np.ones(n)]
    theta = np.zeros(d + 1)
    theta[-1] = math.log((y.mean() + 1e-6) / (1 - y.mean() + 1e-6))
    reg = np.r_[np.full(d, l2), 1e-9]

    def loss(t: np.ndarray) -> float:
        s = a @ t
        return float((np.logaddexp(0, s) - y * s).mean() + 0.5 * (reg * t * t).sum())

    current = loss(theta)
    for _ in range(NEWTON_STEPS):
        p = 1 / (1 + np.exp(-(a @ theta)))
        grad = a.T @ (p - y) / n + reg * theta
        hess = (a * (p * (1 - p))[:, None]).T @ a / n + np.diag(reg)
        step, scale = np.linalg.solve(hess, grad), 1.0
        while scale > 1e-6 and loss(theta - scale * step) > current + 1e-15:
            scale /= 2  # damped Newton: never increase the loss
        theta = theta - scale * step
        new = loss(theta)
        if current - new < 1e-12:
            break
        current = new
    return theta[:d], float(theta[-1])


class LikelihoodPRM:
    """Verifier: per step, sigmoid(coef . features) of a stronger backbone's token log-probs."""

    def __init__(self, backbone: Generator, coef: Sequence[float], intercept: float,
                 backbone_path: str | os.PathLike | None = None, *, fit_info: dict | None = None) -> None:
        if len(coef) != len(FEATURES):
            raise ValueError(f"coef needs {len(FEATURES)} values ({', '.join(FEATURES)}), got {len(coef)}")
        self.backbone, self.backbone_path = backbone, backbone_path
        self.coef, self.intercept = np.asarray(coef, dtype=float), float(intercept)
        self.fit_info = fit_info or {}
        label = Path(backbone_path).name if backbone_path else "backbone"
        self.name = f"likelihood_prm({label})"
        self.num_params = int(backbone.num_params)
        self.tokens_scored = 0

    @property
    def step_contract(self) -> StepContract:
        """What a step is: the backbone Generator's contract."""
        return contract_of(self.backbone)

    @property
    def identity(self) -> str:
        """Its backbone's identity, features and coefficients: all that decides its scores (cheap)."""
        coef = [float(c) for c in self.coef]
        return f"{KIND}:{key_digest(self.backbone.identity, FEATURES, LOGPROB_FLOOR, coef, self.intercept)[:16]}"

    def features(self, questions: Sequence[str], solutions: Sequence[str],
                 progress: bool = False) -> list[np.ndarray]:
        """Per solution, its (n_steps, len(FEATURES)) feature matrix (one forward per solution)."""
        if len(questions) != len(solutions):
            raise ValueError(f"got {len(questions)} questions but {len(solutions)} solutions")
        out = [np.zeros((0, len(FEATURES))) for _ in solutions]
        todo = [i for i, s in enumerate(solutions) if self.step_contract.spans(s)]
        tok = self.backbone.tokenizer
        for start in tqdm(range(0, len(todo), SCORE_CHUNK), desc=self.name,
                          **({} if progress else {"disable": True})):
            rows = todo[start:start + SCORE_CHUNK]
            qs, ss = [questions[i] for i in rows], [solutions[i] for i in rows]
            for i, s, tl in zip(rows, ss, self.backbone.token_logprobs(qs, ss)):
                out[i] = step_features(s, tl, self.step_contract)
                self.tokens_scored += len(tl.token_ids)
            prompts = tok([model_prompt(self.backbone, q) for q in qs])["input_ids"]
            self.tokens_scored += sum(len(p) for p in prompts)
        return out

    def score_features(self, feats: np.ndarray) -> list[float]:
        """Calibrated probability per row of a feature matrix."""
        logits = np.asarray(feats, dtype=float).reshape(-1, len(FEATURES)) @ self.coef + self.intercept
        return (1 / (1 + np.exp(-logits))).tolist()

    def score(self, questions: list[str], solutions: list[str], progress: bool = False) -> list[list[float]]:
        """Per solution, one score in [0, 1] per step of its step contract (empty solution: [])."""
        return [self.score_features(f) for f in self.features(questions, solutions, progress)]

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``verifier_config.json`` (the backbone is referenced by path, not copied)."""
        if self.backbone_path is None:
            raise ValueError("this LikelihoodPRM has no backbone_path: it cannot be saved for reloading")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        backbone = Path(self.backbone_path).expanduser()
        local = backbone.exists()
        save_verifier_config(
            path, KIND, backbone=str(backbone.resolve()) if local else str(self.backbone_path),
            backbone_relative=os.path.relpath(backbone.resolve(), path.resolve()) if local else None,
            features=list(FEATURES), coef=self.coef.tolist(), intercept=self.intercept,
            logprob_floor=LOGPROB_FLOOR, num_params=self.num_params, fit=self.fit_info,
            prompt_style=self.backbone.prompt_style,
            # recorded only off the world's contract: the world's saved configs stay as they were
            **({} if self.step_contract == LINES else {"step_delimiter": self.step_contract.name}))
        return path


def fit_likelihood_prm(backbone_path: str | os.PathLike, train: Sequence[LabelledSolution], *, l2: float = L2,
                       monotone: bool = True, device: str = "cpu", backbone: Generator | None = None,
                       progress: bool = False, step_delimiter: str | StepContract = "newline") -> LikelihoodPRM:
    """Calibrate the features of ``backbone_path``'s log-probs on labelled steps (None labels skipped).

    Pass an already loaded ``backbone`` (a Generator of that checkpoint) to skip reloading it; else
    it is loaded with ``step_delimiter`` (the step contract the labels were made under).
    Soft (Monte-Carlo fractions), hard, oracle or outcome labels all work.
    """
    if not train:
        raise ValueError("fit_likelihood_prm: no training solutions")
    gen = backbone if backbone is not None else Generator.from_pretrained(backbone_path, device=device,
                                                                         step_delimiter=step_delimiter)
    prm = LikelihoodPRM(gen, np.zeros(len(FEATURES)), 0.0, backbone_path)
    feats = prm.features([t.question for t in train], [t.solution for t in train], progress)
    xs, ys = [], []
    for t, f in zip(train, feats):
        if len(t.labels) != len(f):
            raise ValueError(f"question {t.question_id}: {len(t.labels)} labels but {len(f)} steps in its solution")
        for row, label in zip(f, t.labels):
            if label is not None:
                xs.append(row)
                ys.append(float(label))
    if not ys:
        raise ValueError("fit_likelihood_prm: every label is None")
    coef, intercept = fit_logistic(np.array(xs), np.array(ys), l2=l2, monotone=monotone)
    prm.coef, prm.intercept = coef, intercept
    prm.fit_info = {"steps": len(ys), "solutions": len(train), "mean_label": float(np.mean(ys)), "l2": l2,
                    "monotone": monotone}
    prm.tokens_scored = 0  # fitting is training cost, not test-time verifier cost
    return prm


def load_likelihood_prm(path: Path, device: str = "cpu") -> LikelihoodPRM:
    """Loader for verifier.load_verifier: the backbone is found next to the verifier (relative path) first."""
    cfg = read_verifier_config(path)
    if list(cfg.get("features", [])) != list(FEATURES):
        raise ValueError(f"{path}: saved features {cfg.get('features')} differ from this code's {list(FEATURES)}")
    rel = cfg.get("backbone_relative")
    backbone = Path(path) / rel if rel and (Path(path) / rel).exists() else cfg["backbone"]
    # a backbone without ttc_config.json (your own model) needs the prompt style it was saved with
    gen = Generator.from_pretrained(backbone, device=device, prompt_style=cfg.get("prompt_style"),
                                    step_delimiter=cfg.get("step_delimiter", "newline"))
    return LikelihoodPRM(gen, cfg["coef"], cfg["intercept"], backbone, fit_info=cfg.get("fit"))
