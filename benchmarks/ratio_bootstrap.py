"""Time notebook 06's interval work on a cpu-sized synthetic table (no models).

    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python benchmarks/ratio_bootstrap.py [--questions 500] [--budgets 12]
        [--methods 10] [--n-boot 1000] [--n-splits 20]

Per-question accuracies (two 0/1 draws per question, method and budget; five oracle bins of equal
size, predicted bins off by one at random) stand in for ``results_table.per_question``. Printed, in
seconds: the two cross-validated envelopes (oracle / predicted bins; existing code, for scale), the
best fixed strategy of both bin kinds, ``ratio_study.efficiency_study`` (both baselines, both bin
kinds, generations and FLOPs, one set of replicates), ``predicted_vs_oracle`` and the per-bin paired
``differences`` of the envelope and the best fixed strategy — then the ratio table in generations.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pandas as pd

from ttc_lib.analysis import compute_optimal as co, ratio_study as rs


def synthetic(questions: int, budgets: int, methods: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = [f"q{i:05d}" for i in range(questions)]
    strata = np.arange(questions) % 5 + 1
    bins = pd.DataFrame({"question_id": ids, "oracle_bin": strata,
                         "predicted_bin": np.clip(strata + rng.integers(-1, 2, questions), 1, 5)})
    names = ["best_of_n[selection=weighted]"] + [f"beam[width={w}]" for w in range(1, methods)]
    rows = []
    for m, name in enumerate(names):
        for b in (2 ** k for k in range(budgets)):
            p = np.clip(0.9 - 0.15 * strata + 0.03 * math.log2(b) * (1 + 0.1 * m), 0, 1)
            rows.append(pd.DataFrame({"method": name, "strategy": name.split("[")[0], "config": name[:-1].split("[")[1],
                                      "budget": b, "question_id": ids, "generations": b, "total_flops": 1e9 * b * (1 + m / 10),
                                      "accuracy": (rng.random((questions, 2)) < p[:, None]).mean(axis=1)}))
    return pd.concat(rows, ignore_index=True), bins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for flag, default in (("--questions", 500), ("--budgets", 12), ("--methods", 10), ("--n-boot", 1000), ("--n-splits", 20)):
        parser.add_argument(flag, type=int, default=default)
    args = parser.parse_args()
    table, bins = synthetic(args.questions, args.budgets, args.methods)
    clock = time.perf_counter()

    def lap(what: str) -> None:
        nonlocal clock
        print(f"{what}: {time.perf_counter() - clock:.1f} s")
        clock = time.perf_counter()

    envelopes = {("search", k): co.cross_validated_envelope(co.attach_bins(table, bins, k), n_splits=args.n_splits, seed=0)
                 for k in rs.BIN_KINDS}
    lap("cross-validated envelopes, oracle and predicted bins (existing code)")
    fixed = rs.best_fixed_envelopes(table, bins, n_splits=args.n_splits, seed=0)
    lap("best fixed strategy, both bin kinds")
    study = rs.efficiency_study({"search": table}, envelopes, fixed, bins, revisions_skipped="not in this benchmark",
                                n_boot=args.n_boot, seed=0)
    lap(f"efficiency_study, n_boot {args.n_boot}")
    rs.predicted_vs_oracle(envelopes, bins, n_boot=args.n_boot, seed=0)
    lap("predicted_vs_oracle")
    rs.differences(envelopes["search", "oracle"].by_question, fixed["oracle"].by_question, bins, n_boot=args.n_boot,
                   seed=0, per_bin=True)
    lap("differences, envelope minus best fixed, per budget and oracle bin")
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(study.overview("generations"))


if __name__ == "__main__":
    main()
