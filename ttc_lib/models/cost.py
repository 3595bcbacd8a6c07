"""The one place that counts cost.

FLOPs follow the paper's accounting (Kaplan et al.): a forward pass costs 2·N FLOPs per token
and a training step 6·N per token, N the parameter count. Later stages add the per-strategy
ledger (generations, generated tokens, verifier tokens) here, so every method is charged in the
same units.
"""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass
class Cost:
    """What one strategy spent on one question, in every unit the study compares.

    ``generations`` is the paper's budget unit, set by the strategy from its structure (best-of-N:
    N samples; beam/DVTS: N beams; lookahead k: N·(k+1); revisions: chains × length).
    Tokens are measured. FLOPs follow the paper: 2·params per generated (generator) or read
    (verifier) token; ``prompt_tokens`` (tokens prefilled, prompts and re-read prefixes) is kept
    for information and is not charged, as in the paper's D_inference.
    """

    generator_params: int = 0  # parameters of the policy that generated
    verifier_params: int = 0  # parameters of the model that scored (0: no verifier used)
    generations: float = 0.0
    generated_tokens: int = 0
    prompt_tokens: int = 0
    verifier_tokens: int = 0

    @property
    def generator_flops(self) -> float:
        return forward_flops(self.generator_params, self.generated_tokens)

    @property
    def verifier_flops(self) -> float:
        return forward_flops(self.verifier_params, self.verifier_tokens)

    @property
    def total_flops(self) -> float:
        return self.generator_flops + self.verifier_flops

    def __add__(self, other: "Cost") -> "Cost":
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(max(self.generator_params, other.generator_params),
                    max(self.verifier_params, other.verifier_params),
                    self.generations + other.generations, self.generated_tokens + other.generated_tokens,
                    self.prompt_tokens + other.prompt_tokens, self.verifier_tokens + other.verifier_tokens)

    def to_row(self) -> dict:
        """Flat columns for the results tables (see search/common.py RESULT_COLUMNS)."""
        return {"generations": self.generations, "generated_tokens": self.generated_tokens,
                "prompt_tokens": self.prompt_tokens, "verifier_tokens": self.verifier_tokens,
                "generator_flops": self.generator_flops, "verifier_flops": self.verifier_flops,
                "total_flops": self.total_flops}
