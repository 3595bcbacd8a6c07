"""The one place that counts cost.

FLOPs follow the paper's accounting (Kaplan et al.): a forward pass costs 2·N FLOPs per token
and a training step 6·N per token, N the parameter count. Later stages add the per-strategy
ledger (generations, generated tokens, verifier tokens) here, so every method is charged in the
same units.
"""

from __future__ import annotations


def forward_flops(params: int, tokens: int | float) -> float:
    """Inference FLOPs of ``tokens`` forward tokens through a model of ``params`` parameters."""
    _check(params, tokens)
    return 2.0 * params * tokens


def training_flops(params: int, tokens: int | float) -> float:
    """Training FLOPs (forward + backward) of ``tokens`` tokens: 6·N·D."""
    _check(params, tokens)
    return 6.0 * params * tokens


def _check(params: int | float, tokens: int | float) -> None:
    if params < 0 or tokens < 0:
        raise ValueError(f"params and tokens must be non-negative, got params={params}, tokens={tokens}")
