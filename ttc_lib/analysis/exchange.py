"""Test-time compute vs pretraining: the paper's FLOPs-matched exchange (Snell et al., section 7).

A model with N parameters pretrained on D_pretrain tokens and then serving D_inference tokens
costs (Kaplan et al.)

    X = 6 · N · D_pretrain          pretraining
    Y = 2 · N · D_inference         inference (ICLR version: 4 · N · D_inference, the verifier
                                    of the same size read every generated token once more)

with R = D_inference / D_pretrain. A model M times larger spends, for the *same* data, as many
FLOPs as the small model does when the small model's inference tokens are multiplied by

    K = M + 3 · (D_pretrain / D_inference) · (M − 1)      = M + 3 (M − 1) / R
    K = M + 1.5 · (D_pretrain / D_inference) · (M − 1)    = M + 1.5 (M − 1) / R    (ICLR)

Derivation: 6·M·N·D_p + c·M·N·D_i = 6·N·D_p + c·N·K·D_i with c = 2 (c = 4 for the ICLR variant,
on both sides as the paper writes it) gives K = M + (6/c)·(M − 1)·D_p/D_i. The small model may
therefore spend K times the large model's inference tokens: with the large model answering
greedily (one generation), a test-time budget of ≈ K generations per question. The paper's R
values are 0.16, 0.79 and 22 (the paper's Figure 9; its ICLR text halves them).

``flops_match`` does the same bookkeeping with *measured* numbers (both models' own training
tokens, the large model's greedy tokens per question, and the measured generator + verifier
FLOPs per question of a test-time strategy), so notebook 07 can report each side's FLOPs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from ttc_lib.models.cost import forward_flops, training_flops

if TYPE_CHECKING:  # annotations only: pandas is imported where a table is built
    import pandas as pd

PAPER_R = (0.16, 0.79, 22.0)  # D_inference / D_pretrain values of the paper's Figure 9
VARIANTS = {"arxiv": 2.0, "iclr": 4.0}  # inference FLOPs per parameter per token


def _positive(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def pretraining_flops(params: int, d_pretrain: float) -> float:
    """X = 6 · N · D_pretrain."""
    return training_flops(params, d_pretrain)


def inference_flops(params: int, d_inference: float, variant: str = "arxiv") -> float:
    """Y = 2 · N · D_inference (``variant="iclr"``: 4 · N · D_inference, the verifier counted)."""
    return VARIANTS[_variant(variant)] / 2.0 * forward_flops(params, d_inference)


def _variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    return variant


def inference_multiplier(size_ratio: float, r: float, variant: str = "arxiv") -> float:
    """K = M + (6/c)·(M − 1)/R: how many times the large model's inference tokens the small model
    may spend for equal total FLOPs (c = 2 arXiv, 4 ICLR). ``size_ratio`` M ≥ 1, ``r`` R > 0."""
    m, r = _positive("size_ratio", size_ratio), _positive("R", r)
    if m < 1:
        raise ValueError(f"size_ratio must be >= 1 (the larger model over the smaller), got {size_ratio}")
    return m + 6.0 / VARIANTS[_variant(variant)] * (m - 1.0) / r



@dataclass(frozen=True)
class FlopsMatch:
    """Both sides of one FLOPs-matched comparison, per question (amortised) and in total."""

    r: float
    queries: float  # questions served: D_inference / large tokens per question
    large_pretrain: float  # X_large
    large_inference: float  # Y_large (greedy answers of all queries)
    small_pretrain: float  # X_small
    small_inference_allowance: float  # FLOPs the small model may spend at test time, in total
    per_question_allowance: float  # ... per question
    multiplier_tokens: float  # small test-time tokens / large inference tokens (generator only)

    @property
    def large_total(self) -> float:
        return self.large_pretrain + self.large_inference

    def small_total(self, per_question_flops: float) -> float:
        """Total FLOPs of the small side when it spends ``per_question_flops`` per question."""
        return self.small_pretrain + self.queries * per_question_flops

    def to_dict(self) -> dict:
        return {**asdict(self), "large_total": self.large_total}


def flops_match(*, small_params: int, large_params: int, small_pretrain_tokens: float,
                large_pretrain_tokens: float, large_tokens_per_question: float, r: float) -> FlopsMatch:
    """The measured FLOPs exchange at ``r`` = D_inference / D_pretrain.

    D_pretrain is the large model's training tokens; D_inference = r·D_pretrain tokens are served
    by the large model answering greedily, ``large_tokens_per_question`` tokens per answer, so
    queries = D_inference / large_tokens_per_question. The small model pays its own pretraining
    and may spend the rest of the large side's total at test time (generator and verifier FLOPs
    alike). With equal training tokens, ``multiplier_tokens`` equals inference_multiplier(M, r).
    """
    r = _positive("R", r)
    for name, value in (("small_params", small_params), ("large_params", large_params),
                        ("small_pretrain_tokens", small_pretrain_tokens),
                        ("large_pretrain_tokens", large_pretrain_tokens),
                        ("large_tokens_per_question", large_tokens_per_question)):
        _positive(name, value)
    d_inference = r * large_pretrain_tokens
    queries = d_inference / large_tokens_per_question
    x_large, y_large = pretraining_flops(large_params, large_pretrain_tokens), forward_flops(large_params, d_inference)
    x_small = pretraining_flops(small_params, small_pretrain_tokens)
    allowance = x_large + y_large - x_small
    return FlopsMatch(r=r, queries=queries, large_pretrain=x_large, large_inference=y_large, small_pretrain=x_small,
                      small_inference_allowance=allowance, per_question_allowance=allowance / queries,
                      multiplier_tokens=allowance / forward_flops(small_params, d_inference))


def _weights(x, at: float) -> "list[float]":
    """Weights over the points ``x`` (ascending, positive) of the linear interpolation at ``at`` in
    log(x), clamped to the ends: sum(w · y) is np.interp(log at, log x, y) for any y."""
    import numpy as np

    lx = np.log(np.asarray(x, float))
    return [float(np.interp(math.log(at), lx, unit)) for unit in np.eye(len(lx))]


def matched_point(group, match: FlopsMatch, r: float, size_ratio: float, accounting: str) -> dict:
    """Where the small model's test-time compute lands for one bin, R and accounting.

    ``group``: the envelope rows (budget, accuracy, total_flops) of one bin. Returns ``budget``
    (generations, possibly between measured ones), ``flag`` ("", "capped", "over_share",
    "unaffordable"), ``per_question_flops``, ``multiplier`` and ``weights``: {measured budget:
    weight}, so the accuracy there is sum(weight · accuracy at budget) — of the bin's mean or of
    one question's value alike (None when unaffordable). Rules in ``exchange_table``."""
    g = group.sort_values("budget")
    budgets, flops = g.budget.to_numpy(float), g.total_flops.to_numpy(float)
    if accounting == "measured":
        by_flops = g.sort_values("total_flops")
        fx, target = by_flops.total_flops.to_numpy(float), match.per_question_allowance
        if target < fx[0]:
            return {"budget": math.nan, "flag": "unaffordable", "per_question_flops": math.nan,
                    "multiplier": match.multiplier_tokens, "weights": None}
        per_q = min(target, fx[-1])
        w = _weights(fx, per_q)
        return {"budget": math.exp(sum(wi * math.log(b) for wi, b in zip(w, by_flops.budget))),
                "flag": "capped" if target > fx[-1] else "", "per_question_flops": per_q,
                "multiplier": match.multiplier_tokens, "weights": dict(zip(by_flops.budget.astype(int), w))}
    k = inference_multiplier(size_ratio, r, accounting)
    budget = min(max(k, budgets[0]), budgets[-1])
    w = _weights(budgets, budget)
    return {"budget": budget, "flag": "capped" if k > budgets[-1] else "over_share" if k < budgets[0] else "",
            "per_question_flops": float(sum(wi * f for wi, f in zip(w, flops))), "multiplier": k,
            "weights": dict(zip(g.budget.astype(int), w))}


ACCOUNTINGS = ("arxiv", "iclr", "measured")


def exchange_table(envelope, large_accuracy: dict, *, size_ratio: float, matches: dict) -> "pd.DataFrame":
    """Small model + test-time compute vs the larger model's greedy pass@1, per bin and R.

    ``envelope``: rows (bin, budget, accuracy, total_flops) — the compute-optimal accuracy of the
    small model per bin and budget (generations) with its measured FLOPs per question;
    ``large_accuracy``: bin -> greedy pass@1 of the large model; ``matches``: R -> FlopsMatch.
    Three accountings per (R, bin): "arxiv" and "iclr" give the small model K =
    inference_multiplier(M, R) generations (one greedy answer of the large model = 1 generation);
    "measured" gives it the FLOPs the large side spends per question (``FlopsMatch``), read off
    the envelope on a log-FLOPs axis. Accuracy between measured budgets is interpolated on a log
    axis; a budget beyond the largest measured one is capped there (flag "capped": test-time
    compute gets less than its share); a K below the smallest measured budget is raised to it
    (flag "over_share": test-time compute gets more than its share, its FLOPs say by how much);
    a measured allowance below the cheapest point is "unaffordable" (no accuracy: the larger
    model wins). relative_improvement = (small − large) / large · 100. ``large_accuracy`` may
    also map (bin) for one envelope; pass each envelope's own questions' accuracy.
    """
    import pandas as pd

    rows = []
    for r, match in sorted(matches.items()):
        for b, group in envelope.groupby("bin"):
            accuracy_at = dict(zip(group.budget.astype(int), group.accuracy.astype(float)))
            large = float(large_accuracy[b])
            for accounting in ACCOUNTINGS:
                point = matched_point(group, match, r, size_ratio, accounting)
                weights = point["weights"]
                small = math.nan if weights is None else sum(w * accuracy_at[k] for k, w in weights.items())
                if small != small:
                    winner = "pretraining"
                else:
                    winner = "test-time compute" if small > large else "pretraining" if small < large else "tie"
                per_q = point["per_question_flops"]
                rows.append({"r": r, "accounting": accounting, "bin": int(b), "small_budget": point["budget"],
                             "small_accuracy": small, "large_accuracy": large,
                             "relative_improvement": (small - large) / large * 100 if large > 0 else math.nan,
                             "winner": winner, "flag": point["flag"],
                             "small_flops_total": match.small_total(per_q) if per_q == per_q else math.nan,
                             "large_flops_total": match.large_total, "multiplier": point["multiplier"]})
    return pd.DataFrame(rows)
