"""A verifier without a model, for tests and benchmarks: step scores from a checksum.

Rules
-----
* Step i of a solution scores ``crc32(salt + question + "|" + the solution's steps 0..i) % 1000 /
  1000``: the same text always gets the same scores, whatever else is in the batch and in whatever
  process (``models.workers``); another ``salt`` is another verifier.
* ``tokens_scored`` counts characters (question + solution) as tokens; ``calls`` counts ``score``
  calls (a test can tell a cached score from a fresh one).
* ``identity`` is what result caches key on (``models.identity``); ``num_params`` feeds the FLOPs
  ledger and costs nothing here.
"""

from __future__ import annotations

import zlib
from typing import Sequence

from ttc_lib.tasks.steps import join_steps, split_steps


class HashVerifier:
    name = "hash"

    def __init__(self, identity: str = "hash", salt: str = "", num_params: int = 1000) -> None:
        self.identity, self.salt, self.num_params = identity, salt, num_params
        self.tokens_scored, self.calls = 0, 0

    def score(self, questions: Sequence[str], solutions: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        out = []
        for q, s in zip(questions, solutions):
            steps = split_steps(s)
            self.tokens_scored += len(q) + len(s)
            out.append([zlib.crc32(f"{self.salt}{q}|{join_steps(steps[:i + 1])}".encode()) % 1000 / 1000
                        for i in range(len(steps))])
        return out
