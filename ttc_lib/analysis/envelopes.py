"""The study's compute-optimal envelopes (notebook 06): which questions each envelope compares, the
cross-validated envelope of every (kind, bin kind), their curves, the choices fitted on all
questions and how often the cross-validated choice agrees with them.

Kinds: "search" (notebook 04's methods), "revisions" (notebook 05's) and "pooled" (both, on the
questions both compared). Each envelope compares its methods on the questions all of them ran:
best-of-N from the pool covers more questions than the searches run at every budget.
"""

from __future__ import annotations

import pandas as pd

from ttc_lib.analysis.compute_optimal import Envelope, common_questions, cross_validated_envelope, fit_choices
from ttc_lib.analysis.results_table import attach_bins

BIN_KINDS = ("oracle", "predicted")


def envelope_tables(raw: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """kind -> its per-question table (``results_table.per_question``) on the questions all its
    methods ran; "pooled" when both "search" and "revisions" are given."""
    tables = {kind: t[t.question_id.isin(common_questions(t))] for kind, t in raw.items()}
    if {"search", "revisions"} <= set(tables):
        shared = set(tables["search"].question_id) & set(tables["revisions"].question_id)
        tables["pooled"] = pd.concat([t[t.question_id.isin(shared)] for t in tables.values()], ignore_index=True)
    return tables


def tables_overview(tables: dict[str, pd.DataFrame], raw: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per kind: methods, questions compared, questions in the full table, budgets."""
    return pd.DataFrame({kind: {"methods": t.method.nunique(), "questions compared": t.question_id.nunique(),
                                "questions in the table": raw[kind].question_id.nunique() if kind in raw
                                else t.question_id.nunique(),
                                "budgets": sorted(t.budget.unique().tolist())} for kind, t in tables.items()}).T


def build_envelopes(tables: dict[str, pd.DataFrame], bins: pd.DataFrame, *, n_splits: int,
                    seed: int) -> dict[tuple[str, str], Envelope]:
    """(kind, bin kind) -> the cross-validated envelope of that kind's table binned that way."""
    return {(kind, bin_kind): cross_validated_envelope(attach_bins(table, bins, bin_kind), n_splits=n_splits,
                                                       seed=seed, name=f"{kind}/{bin_kind}")
            for kind, table in tables.items() for bin_kind in BIN_KINDS}


def envelope_curves(envelopes: dict[tuple[str, str], Envelope]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(overall, per bin) summaries of every envelope, with columns envelope and bins added."""
    curves = pd.concat([env.summary().assign(envelope=k, bins=b) for (k, b), env in envelopes.items()],
                       ignore_index=True)
    by_bin = pd.concat([env.summary(by_bin=True).assign(envelope=k, bins=b) for (k, b), env in envelopes.items()],
                       ignore_index=True)
    return curves, by_bin


def choices_with_agreement(tables: dict[str, pd.DataFrame], bins: pd.DataFrame,
                           envelopes: dict[tuple[str, str], Envelope]) -> pd.DataFrame:
    """The choice per (kind, bin kind, bin, budget) fitted on all questions, and ``cv_agreement``: the
    share of (split, question) where the cross-validated envelope chose the same method."""
    choices = pd.concat([fit_choices(attach_bins(tables[k], bins, b)).assign(envelope=k, bins=b)
                         for k in tables for b in BIN_KINDS], ignore_index=True)
    keys = ["envelope", "bins", "bin", "budget"]
    paired = pd.concat([env.by_question.merge(choices[(choices.envelope == k) & (choices.bins == b)],
                                              on=["bin", "budget"], suffixes=("", "_fit")).assign(envelope=k, bins=b)
                        for (k, b), env in envelopes.items()])
    agreement = paired.assign(same=paired.method == paired.method_fit).groupby(keys).same.mean()
    return choices.merge(agreement.rename("cv_agreement").reset_index(), on=keys)
