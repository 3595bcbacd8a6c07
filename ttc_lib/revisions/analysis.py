"""Reading a revisions sweep: pass@1 by revision step, how answers change between attempts, and
accuracy by sequential:parallel ratio (the paper's Figure 7), overall or per difficulty bin.

Inputs are the tables of search/revisions.py: the attempts frame (one row per attempt: seed,
question_id, chain, step, correct, ...) and a RESULT_COLUMNS results table whose config names
selection, chains and length.
"""

from __future__ import annotations

import pandas as pd


def pass1_by_step(frame: pd.DataFrame) -> pd.DataFrame:
    """Accuracy of the t-th attempt (1-based), over every chain that reaches step t: step, pass1, attempts."""
    table = frame.groupby("step").agg(pass1=("correct", "mean"), attempts=("correct", "size")).reset_index()
    table["step"] += 1
    return table


def transitions(frame: pd.DataFrame) -> dict:
    """Between consecutive attempts of a chain: the share of correct answers revised into wrong ones
    (the paper's ~38%), of wrong ones revised into correct ones, and the pair counts."""
    f = frame.sort_values(["seed", "question_id", "chain", "step"])
    nxt = f.groupby(["seed", "question_id", "chain"]).correct.shift(-1)
    pairs = f.assign(next=nxt).dropna(subset=["next"])
    right, wrong = pairs[pairs.correct], pairs[~pairs.correct]
    return {"correct_to_wrong": float((~right.next.astype(bool)).mean()) if len(right) else float("nan"),
            "wrong_to_correct": float(wrong.next.astype(bool).mean()) if len(wrong) else float("nan"),
            "correct_pairs": int(len(right)), "wrong_pairs": int(len(wrong))}


def ratio_label(chains: int, length: int) -> str:
    """The sequential:parallel ratio of a split, reduced: (chains=8, length=2) -> "1:4"."""
    from math import gcd

    g = gcd(chains, length)
    return f"{length // g}:{chains // g}"


def accuracy_by_ratio(table: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per (method, budget, chains, length, seed[, bin]) of a revisions results table
    (RESULT_COLUMNS; per bin when it has a ``bin`` column: ``analysis.results_table.attach_bins``).
    method = selection, plus "/verifier" when the config names one; ratio = length / chains
    (sequential / parallel) and its label."""
    config = table.config.map(lambda text: dict(kv.split("=", 1) for kv in text.split(",")))
    frame = table.assign(method=[c["selection"] + (f"/{c['verifier']}" if "verifier" in c else "") for c in config],
                         chains=[int(c["chains"]) for c in config], length=[int(c["length"]) for c in config])
    keys = ["method", "budget", "chains", "length", "seed"]
    if "bin" in frame.columns:
        keys.append("bin")
    out = frame.groupby(keys).correct.mean().rename("accuracy").reset_index()
    out["ratio"] = out.length / out.chains
    out["ratio_label"] = [ratio_label(c, n) for c, n in zip(out.chains, out.length)]
    return out


def nested_accuracy(acc: pd.DataFrame) -> dict:
    """method -> ratio label -> budget -> {"mean", "std"} over seeds of an ``accuracy_by_ratio``
    table without bins; with a bin column: method -> ratio label -> budget -> bin -> mean."""
    out: dict = {}
    if "bin" in acc:
        for (m, r, n, b), g in acc.groupby(["method", "ratio_label", "budget", "bin"]):
            out.setdefault(m, {}).setdefault(r, {}).setdefault(int(n), {})[int(b)] = round(float(g.accuracy.mean()), 4)
        return out
    for (m, r, n), g in acc.groupby(["method", "ratio_label", "budget"]):
        out.setdefault(m, {}).setdefault(r, {})[int(n)] = {"mean": round(float(g.accuracy.mean()), 4),
                                                           "std": round(float(g.accuracy.std(ddof=0)), 4)}
    return out


def best_ratios(acc: pd.DataFrame, tolerance: float = 1e-9) -> pd.DataFrame:
    """Per (method, budget[, bin]) of an ``accuracy_by_ratio`` table: the ratio(s) with the highest
    mean accuracy over seeds. Ties are kept, not broken by table order: ``ratio_label`` joins every
    tied label, most parallel first ("1:16 = 1:1"), and ``tied`` counts them — on an easy bin every
    ratio is often at 1.0, which says nothing about which ratio is better."""
    keys = ["method", "budget"] + (["bin"] if "bin" in acc else [])
    means = acc.groupby(keys + ["ratio_label", "ratio"]).accuracy.mean().reset_index()
    rows = []
    for key, g in means.groupby(keys):
        top = g[g.accuracy >= g.accuracy.max() - tolerance].sort_values("ratio")
        rows.append({**dict(zip(keys, key)), "ratio_label": " = ".join(top.ratio_label),
                     "accuracy": float(g.accuracy.max()), "tied": len(top)})
    return pd.DataFrame(rows, columns=keys + ["ratio_label", "accuracy", "tied"])
