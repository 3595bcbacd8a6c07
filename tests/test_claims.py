"""The claims table (analysis.claims): each claim read from hand-made summaries at its key path, the
verdict rule applied, every verdict reachable, a missing stage or key never a crash, and claims.md
listing every claim."""

from __future__ import annotations

import json

import pytest

from ttc_lib.analysis.claims import CLAIMS, claims_figure, claims_markdown, claims_table, resolve, write_claims_md
from ttc_lib.analysis.verdict import VERDICTS
from ttc_lib.pipeline.summaries import claims_summary
from ttc_lib.storage import json_text

CHOSEN = "likelihood_strong"


def iv(low, high, n=400, **extra):
    return {"estimate": None if low is None else (low + high) / 2, "ci_low": low, "ci_high": high,
            "n_questions": n, **extra}


def on_side(claim, where):
    """An interval wholly on the paper's side ("paper"), wholly on the other ("other"), or across it."""
    t, sign = claim.threshold, 1 if claim.side == ">" else -1
    if where == "across":
        return iv(t - 0.01, t + 0.01)
    ends = sorted((t + sign * 0.02, t + sign * 0.05) if where == "paper" else (t - sign * 0.02, t - sign * 0.05))
    return iv(*ends)


def _put(node: dict, segments: list[str], value: dict, decoy: dict) -> None:
    """``value`` at the key each segment resolves to; beside it, keys the rule must NOT pick (a
    smaller budget for ``<max>``, a larger R for ``<min>``, the other verifier, the later
    alternatives of ``a|b``) lead to ``decoy``, which would give another verdict."""
    segment, rest = segments[0], segments[1:]
    alternatives = segment.split("|")
    key = {"<chosen_verifier>": CHOSEN, "<max>": "16", "<min>": "0.16"}.get(segment, alternatives[0])
    # "8" > "16" and "22.0" > "0.16" as strings: the rule must compare numbers
    decoys = {"<chosen_verifier>": ["head_policy"], "<max>": ["8"], "<min>": ["22.0"]}.get(segment, alternatives[1:])
    for k, v in [(d, decoy) for d in decoys] + [(key, value)]:
        if rest:
            _put(node.setdefault(k, {}), rest, v, decoy)
        else:
            node[k] = v


def summaries_with(value_of) -> dict:
    """Summaries holding ``value_of(claim)`` at every claim's path, decoys beside it (``_put``)."""
    summaries: dict[str, dict] = {"02_train_verifier": {"chosen_verifier": CHOSEN}}
    for claim in CLAIMS:
        decoy = {**on_side(claim, "other"), "n_questions": 7}
        _put(summaries.setdefault(claim.stage, {}), list(claim.path), value_of(claim), decoy)
        if claim.requires:
            _put(summaries[claim.stage], list(claim.requires), True, False)
    return summaries


@pytest.mark.parametrize("where,expected", [("paper", "reproduces"), ("other", "contradicts"),
                                            ("across", "inconclusive")])
def test_each_claim_reads_its_interval_and_gets_the_rule_verdict(where, expected):
    rows = claims_table(summaries_with(lambda claim: on_side(claim, where)))
    assert len(rows) == len(CLAIMS)
    assert [r["verdict"] for r in rows] == [expected] * len(CLAIMS), [(r["name"], r["source"]) for r in rows]
    for row, claim in zip(rows, CLAIMS):
        assert row["claim"] == claim.claim and row["rule"] == claim.rule and row["n_questions"] == 400
        assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
        assert row["source"].startswith(claim.stage + ": ") and "<" not in row["source"] and "|" not in row["source"]


def test_every_verdict_is_reachable_in_one_table():
    plan = ["paper", "other", "across", "undefined"]
    where = {claim.name: plan[i % 4] for i, claim in enumerate(CLAIMS)}
    rows = claims_table(summaries_with(
        lambda c: iv(None, None, reason="baseline flat") if where[c.name] == "undefined" else on_side(c, where[c.name])))
    assert {r["verdict"] for r in rows} == set(VERDICTS)
    expected = dict(zip(plan, VERDICTS))
    assert all(r["verdict"] == expected[where[r["name"]]] for r in rows)
    assert all(r["note"] == "baseline flat" for r in rows if r["verdict"] == "not measured")


def test_max_and_min_are_numeric_chosen_verifier_and_alternatives_resolve():
    summary = {"chosen_verifier": "b", "x": {"a": {"8": 1, "16": 2}, "b": {"2": 3, "10": 4, "note": 0}}}
    assert resolve(summary, ("x", "<chosen_verifier>", "<max>")) == (4, ["x", "b", "10"])
    assert resolve(summary, ("x", "<chosen_verifier>", "<min>")) == (3, ["x", "b", "2"])
    assert resolve(summary, ("x", "zzz|a", "<max>")) == (2, ["x", "a", "16"])
    assert resolve(summary, ("x", "b|a", "<max>")) == (4, ["x", "b", "10"])
    rows = claims_table({"02_train_verifier": {"chosen_verifier": "v", "prm_vs_baselines": {
        "oracle_prm": {"4": {"vs_orm": iv(0.01, 0.03)}}}}})
    head = next(r for r in rows if r["name"] == "prm>orm (trained head)")
    assert head["verdict"] == "reproduces" and head["source"] == "02_train_verifier: prm_vs_baselines/oracle_prm/4/vs_orm"
    chosen = next(r for r in rows if r["name"] == "prm>orm (chosen)")
    assert chosen["verdict"] == "not measured" and "chosen_verifier = 'v'" in chosen["note"]


def test_missing_stages_and_keys_are_not_measured_with_the_reason():
    assert all(r["verdict"] == "not measured" and "has no summary" in r["note"] for r in claims_table({}))
    old = {"04_search": {"accuracy": {}}, "05_revisions": {"skipped": "no training data"},
           "06_compute_optimal": {"efficiency_ratio_summary": {"search": 4.2}, "skipped": {"revisions": "no 05"},
                                  "predicted_vs_oracle": {"16": 0.01}},
           "07_ttc_vs_pretraining": {"exchange_ci": {"1": {"0.16": iv(0.3, 0.1)}}, "same_recipe": True}}
    rows = {r["name"]: r for r in claims_table(old)}
    assert set(r["verdict"] for r in rows.values()) == {"not measured"}
    assert "no key 'differences'" in rows["beam>bon at N=4"]["note"] and "accuracy" in rows["beam>bon at N=4"]["note"]
    assert rows["revision pass@1 rises"]["note"] == "05_revisions was skipped: no training data"
    assert "float, not a mapping" in rows["search ratio vs best-of-N"]["note"]
    assert "skipped: no 05" in rows["revisions ratio vs parallel"]["note"]
    assert "not an interval" in rows["predicted ≈ oracle bins"]["note"]
    assert "malformed interval" in rows["ttc>larger model bin 1"]["note"]
    assert rows["ttc>larger model bin 1"]["source"] == "07_ttc_vs_pretraining: exchange_ci/1/0.16"


def test_an_exchange_between_two_recipes_is_not_a_finding():
    summaries = summaries_with(lambda claim: on_side(claim, "paper"))
    summaries["07_ttc_vs_pretraining"].update(same_recipe=False, recipe_differences=["tokens: policy 5 vs large 3"])
    rows = {r["name"]: r for r in claims_table(summaries)}
    exchange = [r for name, r in rows.items() if r["source"].startswith("07_")]
    assert len(exchange) == 5  # one per difficulty bin
    assert all(r["verdict"] == "not measured" and "same_recipe is False: not a finding (tokens: policy 5 vs large 3)"
               == r["note"] for r in exchange)
    del summaries["07_ttc_vs_pretraining"]["same_recipe"]  # a run before the recipe check
    assert all(r["verdict"] == "not measured" and "no key 'same_recipe'" in r["note"]
               for r in claims_table(summaries) if r["source"].startswith("07_"))
    assert all(r["verdict"] == "reproduces" for r in rows.values() if not r["source"].startswith("07_"))


def test_markdown_lists_every_claim_with_the_rule_and_the_summary_is_strict_json(tmp_path):
    rows = claims_table(summaries_with(lambda claim: on_side(claim, "paper")))
    rows[0] = {**rows[0], "note": "a | b"}
    path = write_claims_md(rows, tmp_path / "docs" / "claims.md", "cpu", digits=2)
    text = path.read_text()
    assert "profile `cpu`" in text and "**reproduces**: the whole interval lies on the paper's side" in text
    for row in rows:
        assert row["claim"] in text and row["paper"] in text
    table = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(table) == len(CLAIMS) and all(line.count(" | ") == 7 for line in table)  # "|" in a note is escaped
    assert f"{rows[0]['estimate']:.2f} [{rows[0]['ci_low']:.2f}, {rows[0]['ci_high']:.2f}]" in table[0]
    assert claims_markdown(claims_table({}), "ci").count("| **not measured** |") == len(CLAIMS)
    summary = json.loads(json_text(claims_summary(claims_table({}), docs_path=None)))
    assert summary["verdict_counts"] == {"reproduces": 0, "contradicts": 0, "inconclusive": 0,
                                         "not measured": len(CLAIMS)}
    assert {"claim", "paper", "estimate", "ci_low", "ci_high", "n_questions", "verdict", "source", "rule"} <= \
        set(summary["claims"][0])


def test_figure_has_one_row_per_claim():
    import matplotlib

    matplotlib.use("Agg")
    plan = ["paper", "other", "across"]
    rows = claims_table(summaries_with(lambda c: on_side(c, plan[CLAIMS.index(c) % 3])))
    rows[-1] = {**rows[-1], "estimate": None, "ci_low": None, "ci_high": None, "verdict": "not measured", "note": "x"}
    fig = claims_figure(rows)
    assert len(fig.axes) == len(CLAIMS)
