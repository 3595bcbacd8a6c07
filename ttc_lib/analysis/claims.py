"""The paper's findings as one table, each read from a stage's summary and given a verdict.

Rules
-----
* ``CLAIMS`` is the table: per finding its text, the paper's number (as text), where our number
  lives (a stage and a key path into that stage's ``summary.json``) and the paper's side of a
  threshold (``analysis.verdict``: ``reproduces`` when the whole interval lies on the paper's side,
  ``contradicts`` when it lies wholly on the other side, ``inconclusive`` when it touches or
  crosses the threshold).
* A key path is a tuple of keys, read one level at a time. A key may be ``"a|b"`` (the first of
  them present), ``"<max>"`` / ``"<min>"`` (the numerically largest / smallest key there, e.g. the
  largest budget) or ``"<chosen_verifier>"`` (the value of the summary's ``chosen_verifier``). The
  row's ``source`` names the keys actually read.
* Never a crash on an older or partial run: a stage without a summary, a skipped stage
  (``{"skipped": reason}``), a missing key, a value that is not an interval, an undefined interval
  (None ends, its ``reason`` carried) → verdict ``not measured`` with the reason in ``note``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ttc_lib.analysis.verdict import VERDICTS, verdict
from ttc_lib.storage import atomic_write_text

RULE = ("Each claim is a quantity on one side of a threshold (the paper's side). Our number is the "
        "stage's estimate with its bootstrap interval over questions (95% unless the stage says "
        "otherwise). **reproduces**: the whole interval lies on the paper's side of the threshold; "
        "**contradicts**: the whole interval lies on the other side; **inconclusive**: the interval "
        "touches or crosses the threshold (too few questions, or no effect at this scale); "
        "**not measured**: the stage did not run the comparison or the quantity is undefined (the "
        "note says why).")
BEAM, BON = "beam[lookahead=0,width=4]", "best-of-N weighted"
HEAD = "oracle_prm"  # the trained-head PRM fine-tuned on oracle step labels (notebook 02)
SAME_RECIPE = ("same_recipe",)  # 07: the exchange is a finding only when both models had one training recipe


@dataclass(frozen=True)
class Claim:
    """One finding: ``path`` into ``stage``'s summary gives an interval, the paper says it is ``side`` ``threshold``."""

    name: str
    claim: str
    paper: str
    stage: str
    path: tuple[str, ...]
    side: str
    threshold: float = 0.0
    requires: tuple[str, ...] = ()  # a key path in the same summary that must hold True, else not measured

    @property
    def rule(self) -> str:
        return f"{self.side} {self.threshold:g}"


def _prm(name: str, who: str, verifier: str, versus: str, label: str) -> Claim:
    return Claim(name, f"PRM beats {label} ({who}; weighted best-of-N minus {label}, largest N)",
                 f"PRM > {label} (the gap grows with N)", "02_train_verifier",
                 ("prm_vs_baselines", verifier, "<max>", f"vs_{versus}"), ">")


CLAIMS: tuple[Claim, ...] = (
    _prm("prm>majority (chosen)", "the chosen verifier", "<chosen_verifier>", "majority", "majority"),
    _prm("prm>orm (chosen)", "the chosen verifier", "<chosen_verifier>", "orm", "ORM"),
    _prm("prm>majority (trained head)", f"the trained-head PRM on oracle labels, {HEAD}", HEAD, "majority", "majority"),
    _prm("prm>orm (trained head)", f"the trained-head PRM on oracle labels, {HEAD}", HEAD, "orm", "ORM"),
    Claim("beam>bon at N=4", f"beam search beats {BON} at a low budget (N = 4, all questions)",
          "> 0 (beam wins at small budgets; search-and-learn: beam at N=4 ≈ best-of-N at N=16)", "04_search",
          ("differences", BEAM, "4", "all"), ">"),
    *(Claim(f"beam>bon bin {b}", f"beam search beats {BON} on harder questions (bin {b}, N = 16)",
            "> 0 (beam wins on medium/hard bins)", "04_search", ("differences", BEAM, "16", str(b)), ">")
      for b in (3, 4)),
    *(Claim(f"beam<bon bin {b} at max N", f"beam search falls behind {BON} on easy questions at a high "
            f"budget (bin {b}, largest search budget)", "< 0 (beam over-optimises the PRM on easy bins as N grows)",
            "04_search", ("differences", BEAM, "<max>", str(b)), "<") for b in (1, 2)),
    *(Claim(f"lookahead={k} worse", f"lookahead search (k = {k}) is worse than beam search at equal cost (N = 16)",
            "< 0 (lookahead usually worst at equal cost)", "04_search", ("lookahead_vs_beam", f"lookahead={k}", "16",
                                                                          "all"), "<") for k in (1, 3)),
    Claim("revision pass@1 rises", "revision pass@1 rises over revision steps (step 4 minus step 1)",
          "> 0 (pass@1 rises step by step, fig.)", "05_revisions", ("pass1_step4_minus_step1",), ">"),
    *(Claim(f"sequential>parallel bin {b}", f"{'easy' if b < 3 else 'harder'} questions (bin {b}) gain from "
            "sequential revisions (best sequential-leaning ratio minus fully parallel, largest N)",
            "> 0 (easy: fully sequential best)" if b < 3 else "> 0 (harder: an intermediate ratio best)",
            "05_revisions", ("sequential_vs_parallel", "<max>", str(b)), ">") for b in (1, 2, 3, 4)),
    Claim("search ratio vs best-of-N", "compute-optimal search needs less compute than best-of-N weighted "
          "(efficiency ratio, oracle bins, geometric mean over budgets)", "~4x (16 vs 64 generations)",
          "06_compute_optimal", ("efficiency_ratio_summary", "search", "best_of_n_weighted", "oracle"), ">", 1.0),
    Claim("search ratio vs best fixed", "compute-optimal search needs less compute than the best single fixed "
          "strategy (what choosing per difficulty adds)", "not reported (the paper's baseline is best-of-N)",
          "06_compute_optimal", ("efficiency_ratio_summary", "search", "best_fixed", "oracle"), ">", 1.0),
    Claim("revisions ratio vs parallel", "compute-optimal revisions need less compute than parallel sampling "
          "(efficiency ratio, oracle bins)", "~4x (64 vs 256 generations)", "06_compute_optimal",
          ("efficiency_ratio_summary", "revisions", "parallel", "oracle"), ">", 1.0),
    Claim("predicted ≈ oracle bins", "predicted difficulty bins are nearly as good as oracle bins (search envelope "
          "accuracy, predicted minus oracle, largest budget; 'nearly' = above -0.03)",
          "≈ 0 (predicted bins close to oracle)", "06_compute_optimal", ("predicted_vs_oracle", "<max>"), ">", -0.03),
    *(Claim(f"ttc>larger model bin {b}", f"test-time compute beats the larger model on {what} questions "
            f"(bin {b}, lowest R; accuracy minus its greedy pass@1)",
            "> 0 (test-time compute wins on easy/medium questions at low R)", "07_ttc_vs_pretraining",
            ("exchange_ci", str(b), "<min>"), ">", requires=SAME_RECIPE)
      for b, what in ((1, "easy"), (2, "easy"), (3, "medium"))),
    *(Claim(f"larger model>ttc bin {b}", f"the larger model beats test-time compute on the hardest questions "
            f"(bin {b}, highest R)", "< 0 (pretraining wins on the hardest questions and at high R)",
            "07_ttc_vs_pretraining", ("exchange_ci", str(b), "<max>"), "<", requires=SAME_RECIPE) for b in (4, 5)),
    Claim("reviser reads its attempts", "the revision model answers better after one of its own wrong attempts "
          "than with none (context probe, pass@1 difference)", "> 0 (implied: revisions fix earlier mistakes)",
          "05_revisions", ("context_probe_ci", "own_wrong - none"), ">"),
    Claim("hierarchical>majority", "selecting among revisions hierarchically with the revision-aware ORM beats "
          "majority voting (1 chain of N, largest N)", "> 0 (the paper's design choice)", "05_revisions",
          ("selection_differences", "<max>", "hierarchical - majority"), ">"),
)


class _Missing(Exception):
    """A claim's value is not in the summaries; the message is the reason shown."""


def _is_number(key: Any) -> bool:
    try:
        return math.isfinite(float(key))
    except (TypeError, ValueError):
        return False


def _key(node: Mapping, option: str, summary: Mapping) -> str | None:
    if option == "<chosen_verifier>":
        option = summary.get("chosen_verifier")
        return option if isinstance(option, str) and option in node else None
    if option in ("<max>", "<min>"):
        numbers = [k for k in node if _is_number(k)]
        return (max if option == "<max>" else min)(numbers, key=float) if numbers else None
    return option if option in node else None


def resolve(summary: Mapping, path: Sequence[str], stage: str = "summary") -> tuple[Any, list[str]]:
    """The value at ``path`` in ``summary`` (module rules) and the keys read; ``_Missing`` with the reason."""
    node, read = summary, []
    for segment in path:
        where = f"{stage}: {'/'.join(read) or 'the top level'}"
        if not isinstance(node, Mapping):
            raise _Missing(f"{where} is a {type(node).__name__}, not a mapping (a run before this key)")
        found = next((k for k in (_key(node, o, summary) for o in segment.split("|")) if k is not None), None)
        if found is None:
            skipped = summary.get("skipped")
            why = f"; skipped: {skipped[segment]}" if isinstance(skipped, Mapping) and segment in skipped else ""
            if segment == "<chosen_verifier>":
                why += f"; chosen_verifier = {summary.get('chosen_verifier')!r}"
            keys = ", ".join(map(str, list(node)[:6])) + (" …" if len(node) > 6 else "")
            raise _Missing(f"{where} has no key {segment!r} (keys there: {keys or 'none'}){why}")
        node, read = node[found], read + [str(found)]
    return node, read


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        else None


def _requirement(summary: Mapping, claim: Claim) -> str | bool:
    # True, or why the claim cannot be read as a finding (the summary's own differences listed)
    try:
        value, _ = resolve(summary, claim.requires, claim.stage)
    except _Missing as missing:
        return str(missing)
    if value is True:
        return True
    why = summary.get("recipe_differences")
    return (f"{'/'.join(claim.requires)} is {value!r}: not a finding"
            + (f" ({'; '.join(map(str, why))})" if why else ""))


def _row(claim: Claim, summaries: Mapping[str, Mapping]) -> dict:
    row = {"name": claim.name, "claim": claim.claim, "paper": claim.paper, "estimate": None, "ci_low": None,
           "ci_high": None, "n_questions": None, "verdict": "not measured",
           "source": f"{claim.stage}: {'/'.join(claim.path)}", "rule": claim.rule, "note": None}
    summary = summaries.get(claim.stage)
    if summary is None:
        return {**row, "note": f"stage {claim.stage} has no summary (not run)"}
    if isinstance(summary.get("skipped"), str):
        return {**row, "note": f"{claim.stage} was skipped: {summary['skipped']}"}
    if claim.requires and _requirement(summary, claim) is not True:
        return {**row, "note": _requirement(summary, claim)}
    try:
        value, read = resolve(summary, claim.path, claim.stage)
    except _Missing as missing:
        return {**row, "note": str(missing)}
    row["source"] = f"{claim.stage}: {'/'.join(read)}"
    if not isinstance(value, Mapping):
        return {**row, "note": f"the value there is a {type(value).__name__}, not an interval (a run before intervals)"}
    try:
        result = verdict(value, claim.side, claim.threshold)
    except ValueError as err:
        return {**row, "note": f"malformed interval: {err}"}
    n = value.get("n_questions")
    row.update(estimate=_number(value.get("estimate")), ci_low=_number(value.get("ci_low")),
               ci_high=_number(value.get("ci_high")), n_questions=int(n) if _number(n) is not None else None,
               verdict=result)
    versus = f" vs {value['versus']}" if value.get("versus") else ""
    notes = [f"ratio {value['ratio']}{versus}" if value.get("ratio") else None, value.get("reason")]
    if result == "not measured" and not value.get("reason"):
        notes.append("the interval's ends are null")
    row["note"] = "; ".join(str(n) for n in notes if n) or None
    return row


def claims_table(summaries: Mapping[str, Mapping]) -> list[dict]:
    """One row per ``CLAIMS`` entry: {name, claim, paper, estimate, ci_low, ci_high, n_questions,
    verdict, source, rule, note}; ``summaries`` maps a stage name to its summary (absent: not run)."""
    return [_row(claim, summaries) for claim in CLAIMS]


def verdict_counts(rows: Sequence[Mapping]) -> dict[str, int]:
    """How many rows have each verdict (every verdict listed, 0 included)."""
    return {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}


def _cell(value: Any) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def _ours(row: Mapping, digits: int) -> str:
    if row["estimate"] is None:
        return "—"
    interval = "" if row["ci_low"] is None else f" [{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]"
    return f"{row['estimate']:.{digits}f}{interval}"


def claims_markdown(rows: Sequence[Mapping], profile: str, digits: int = 3) -> str:
    """``claims.md``: the verdict rule in words, then one table line per claim."""
    counts = ", ".join(f"{n} {v}" for v, n in verdict_counts(rows).items())
    lines = [f"# The paper's claims, measured (profile `{profile}`)", "",
             "Written by notebook `08_claims` from the summaries of this run; every number below is read "
             "from the `source` summary key.", "", f"**The rule.** {RULE}", "", f"Verdicts: {counts}.", "",
             "| claim | paper | ours: estimate [interval] | questions | paper's side | verdict | source | note |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        cells = (row["claim"], row["paper"], _ours(row, digits), row["n_questions"], row["rule"],
                 f"**{row['verdict']}**", f"`{row['source']}`", row["note"])
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_claims_md(rows: Sequence[Mapping], path: str | Path, profile: str, digits: int = 3) -> Path:
    """Write ``claims_markdown`` to ``path`` (atomically; folders created); returns the path."""
    atomic_write_text(path, claims_markdown(rows, profile, digits))
    return Path(path)


COLOURS = {"reproduces": "tab:green", "contradicts": "tab:red", "inconclusive": "tab:orange", "not measured": "0.6"}


def claims_figure(rows: Sequence[Mapping]):
    """One row per claim: the estimate with its interval bar, the threshold as a dashed line (ratios,
    threshold 1, on a log axis), coloured by verdict; a claim not measured shows why. Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 0.5 * len(rows) + 0.8), squeeze=False)
    thresholds = {claim.name: claim.threshold for claim in CLAIMS}
    for ax, row in zip(axes[:, 0], rows):
        colour, threshold = COLOURS[row["verdict"]], thresholds.get(row["name"], 0.0)
        ax.set_ylim(-1, 1)
        ax.set_yticks([])
        ax.set_ylabel(row["name"], rotation=0, ha="right", va="center", fontsize=7, color=colour)
        ax.text(1.01, 0.5, row["verdict"], transform=ax.transAxes, fontsize=7, color=colour, va="center")
        if row["estimate"] is None:
            ax.set_xticks([])
            ax.text(0.5, 0.5, (row["note"] or "no interval").split(" (keys there")[0][:110], transform=ax.transAxes,
                    ha="center", va="center", fontsize=6, color=colour)
            continue
        est = row["estimate"]
        low = est if row["ci_low"] is None else row["ci_low"]
        high = est if row["ci_high"] is None else row["ci_high"]
        ax.axvline(threshold, color="black", ls="--", lw=0.8)
        ax.errorbar([est], [0], xerr=[[est - low], [high - est]], fmt="o", color=colour, capsize=3)
        lo, hi = min(low, threshold), max(high, threshold)
        if threshold == 1.0 and lo > 0:
            ax.set_xscale("log")
            ax.set_xlim(lo / 1.3, hi * 1.3)
        else:
            pad = 0.1 * (hi - lo) or 0.05
            ax.set_xlim(lo - pad, hi + pad)
        ax.tick_params(axis="x", which="both", labelsize=6)  # after set_xscale, which resets the ticks
    axes[0, 0].set_title("the paper's claims: our estimate and interval against the threshold (dashed)", fontsize=9)
    fig.tight_layout()
    return fig
