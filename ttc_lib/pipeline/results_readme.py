"""The README of a results folder, made from a run's summaries only (``publish`` writes it).

Rules
- A header: the profile, when the stages ran and the git commit they recorded (their manifests),
  the wall time of each notebook and the total (``timings.json``), and the commands that made it.
- One section per stage of tables, each named by the summary key it shows; an interval reads
  ``estimate [ci_low, ci_high]`` with its number of questions n; an undefined one, "undefined" and
  the summary's reason. No sentence states a result: the numbers are the tables'.
- A key the summary lacks (an older run, a skipped stage) prints "not in this run's summary"; a
  value of an unexpected shape prints what could not be read. Neither stops the README.
- Each section links the stage's executed notebook, its tables and ``claims.md``, and shows its figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ttc_lib.pipeline.runs import STAGES
from ttc_lib.storage import read_json

IV = "estimate [ci_low, ci_high]"


class _Missing(Exception):
    """A key the summary does not hold."""


def _get(summary: Any, *path: str) -> Any:
    value = summary
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise _Missing("/".join(path))
        value = value[key]
    return value


def _num(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    return str(x) if isinstance(x, int) else f"{x:.3f}"


def _iv(cell: Any) -> str:
    """"0.125 [0.000, 0.250]" from an interval dict; "undefined (reason)" where its estimate is None."""
    if not isinstance(cell, dict):
        return "—"
    if cell.get("estimate") is None:
        return "undefined" + (f" ({cell['reason']})" if cell.get("reason") else "")
    low, high = (_num(None if cell.get(k) is None else float(cell[k])) for k in ("ci_low", "ci_high"))
    return f"{float(cell['estimate']):.3f} [{low}, {high}]"


def _n(cell: Any) -> str:
    n = cell.get("n_questions") if isinstance(cell, dict) else None
    return "—" if n is None else str(n)


def _order(key: str) -> tuple:
    try:
        return (key != "all", float(key), key)
    except ValueError:
        return (key != "all", float("inf"), key)


def _keys(mapping: Any) -> list[str]:
    return sorted(mapping, key=_order)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    text = [str(c).replace("|", "\\|").replace("\n", " ") for row in rows for c in row]
    width = len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * width]
    lines += ["| " + " | ".join(text[i:i + width]) + " |" for i in range(0, len(text), width)]
    return lines


def _value(x: Any) -> str:
    if isinstance(x, dict) and "estimate" in x:
        return f"{_iv(x)}, n {_n(x)}"
    if isinstance(x, dict):
        return ", ".join(f"{k}: {_num(x[k])}" for k in _keys(x))
    return ", ".join(map(_num, x)) if isinstance(x, list) else _num(x)


def _values(*keys: str) -> Callable[[dict], list[str]]:
    """A table | key | value | of the ``keys`` the summary holds (intervals formatted)."""
    def table(summary: dict) -> list[str]:
        rows = [[f"`{k}`", _value(summary[k])] for k in keys if k in summary]
        if not rows:
            raise _Missing(", ".join(keys))
        return _table(["key", "value"], rows)
    return table



def _s01(s: dict) -> list[str]:
    models = s.get("models") or {"policy": {"sampled": _get(s, "pass1_sampled_by_level"),
                                            "greedy": _get(s, "pass1_greedy_by_level")}}
    levels = _keys({lv for kinds in models.values() for by in kinds.values() for lv in by})
    rows = [[f"{role}, {kind}", *(_num(by.get(lv)) for lv in levels)]
            for role, kinds in models.items() for kind, by in kinds.items()]
    return _table(["`models`: pass@1 (role, decoding)", *(f"level {lv}" for lv in levels)], rows)



def _s02_auroc(s: dict) -> list[str]:
    keys = ("same_step_auroc", "within_question_auroc_ci")
    if not any(k in s for k in keys):
        raise _Missing(" and ".join(keys))
    same, within = s.get(keys[0], {}), s.get(keys[1], {})
    notes = [f"`{k}`: not in this run's summary." for k in keys if k not in s]
    return notes + [""] * bool(notes) + _table(["verifier", f"`same_step_auroc` {IV}", "n", f"`within_question_auroc_ci` {IV}", "n"],
                  [[v, _iv(same.get(v)), _n(same.get(v)), _iv(within.get(v)), _n(within.get(v))]
                   for v in dict.fromkeys([*same, *within])])


def _s02_prm(s: dict) -> list[str]:
    return _table(["verifier", "N", f"`vs_majority` {IV}", "n", f"`vs_orm` {IV}", "n"],
                  [[v, n, _iv(c.get("vs_majority")), _n(c.get("vs_majority")), _iv(c.get("vs_orm")),
                    _n(c.get("vs_orm"))] for v, by_n in _get(s, "prm_vs_baselines").items()
                   for n in _keys(by_n) for c in [by_n[n]]])



def _s03_bins(s: dict) -> list[str]:
    pass1, counts = _get(s, "oracle_pass1_by_bin"), s.get("questions_per_bin", {})
    return _table(["oracle bin", "`questions_per_bin`", "`oracle_pass1_by_bin`"],
                  [[b, counts.get(b, "—"), _num(pass1[b])] for b in _keys(pass1)])



def headline_methods(summary: dict, parameters: dict) -> list[str]:
    """The methods notebook 04 ran on the headline questions (its ``headline_specs`` as the summary
    names methods); every method of ``differences`` where the manifest does not say."""
    diffs = summary.get("differences", {})
    specs = [dict(spec) for spec in parameters.get("headline_specs") or [] if isinstance(spec, dict)]
    if not specs:
        return list(diffs)
    from ttc_lib.analysis.results_table import method_name
    from ttc_lib.search.common import config_key

    named = [method_name(spec.pop("strategy", ""), config_key(spec)) for spec in specs]
    return [m for m in named if m in diffs] or list(diffs)


def _s04_diff(s: dict, manifest: dict) -> list[str]:
    diffs, budgets = _get(s, "differences"), [str(b) for b in _get(s, "headline_budgets")]
    rows = []
    for method in headline_methods(s, manifest.get("parameters") or {}):
        for budget in budgets:
            by_bin = diffs[method].get(budget, {})
            for b in _keys(by_bin):
                c = by_bin[b]
                half = None if None in (c.get("ci_high"), c.get("ci_low")) else (c["ci_high"] - c["ci_low"]) / 2
                rows.append([method, budget, b, _iv(c), _num(half), _n(c)])
    return _table(["method (minus `baseline_method`)", "N", "bin", f"`differences` {IV}", "half-width", "n"], rows)


def _s04_lookahead(s: dict) -> list[str]:
    return _table(["`lookahead_vs_beam`", "N", IV, "n"],
                  [[k, n, _iv(by_n[n].get("all")), _n(by_n[n].get("all"))]
                   for k, by_n in _get(s, "lookahead_vs_beam").items() for n in _keys(by_n)])


def _s04_grid(s: dict) -> list[str]:
    accuracy = _get(s, "accuracy")
    budgets = _keys({b for by in accuracy.values() for b in by})
    return _table(["`accuracy`: method", *(f"N={b}" for b in budgets)],
                  [[m, *(_num(by.get(b)) for b in budgets)] for m, by in accuracy.items()])


def _s05_steps(s: dict) -> list[str]:
    steps = _get(s, "pass1_step_ci")
    return _table(["revision step", f"`pass1_step_ci` {IV}", "n"], [[k, _iv(steps[k]), _n(steps[k])] for k in _keys(steps)])



def _s05_probe(s: dict) -> list[str]:
    probe = _get(s, "context_probe_ci")
    return _table(["one attempt read", f"`context_probe_ci`: pass@1 minus with none {IV}", "n"],
                  [[k, _iv(c), _n(c)] for k, c in probe.items()])


def _s05_selection(s: dict) -> list[str]:
    return _table(["N", "selection", f"`selection_differences` {IV}", "n"],
                  [[n, name, _iv(c), _n(c)]
                   for n, pairs in sorted(_get(s, "selection_differences").items(), key=lambda kv: _order(kv[0]))
                   for name, c in pairs.items()])


def _s05_seq(s: dict) -> list[str]:
    return _table(["N", "bin", "ratio", "versus", f"`sequential_vs_parallel` {IV}", "n"],
                  [[n, b, c.get("ratio", "—"), c.get("versus", "—"), _iv(c), _n(c)]
                   for n, by_bin in sorted(_get(s, "sequential_vs_parallel").items(), key=lambda kv: _order(kv[0]))
                   for b in _keys(by_bin) for c in [by_bin[b]]])


def _s06_curve(s: dict) -> list[str]:
    return _table(["baseline", "bins", "budget", "status", f"ratio {IV}", "censored share", "n"],
                  [[base, kind, b, c.get("status", "—"), _iv({**c, "reason": None}), _num(c.get("censored")), _n(c)]
                   for base, by_kind in _get(s, "efficiency_ratio_curve").items()
                   for kind, by_b in by_kind.items() for b in _keys(by_b) for c in [by_b[b]]])


def _s06_summary(s: dict) -> list[str]:
    def budgets(c: dict, key: str) -> str:
        return ", ".join(map(str, c.get(key) or [])) or "—"
    return _table(["envelope", "baseline", "bins", f"geometric mean {IV}", "n", "defined budgets",
                   "censored budgets", "undefined budgets", "reason"],
                  [[env, base, kind, _iv({**c, "reason": None}), _n(c), budgets(c, "defined_budgets"),
                    budgets(c, "censored_budgets"), budgets(c, "undefined_budgets"), c.get("reason") or ""]
                   for env, by_base in _get(s, "efficiency_ratio_summary").items()
                   for base, by_kind in by_base.items() for kind, c in by_kind.items()])


def _s06_predicted(s: dict) -> list[str]:
    pvo = _get(s, "predicted_vs_oracle")
    return _table(["budget", f"`predicted_vs_oracle` {IV}", "n"], [[b, _iv(pvo[b]), _n(pvo[b])] for b in _keys(pvo)])



def _s07_exchange(s: dict) -> list[str]:
    return _table(["bin", "R", f"`exchange_ci` {IV}", "n"],
                  [[b, r, _iv(by_r[r]), _n(by_r[r])] for b, by_r in sorted(_get(s, "exchange_ci").items(),
                                                                         key=lambda kv: _order(kv[0]))
                   for r in _keys(by_r)])


def _s08(s: dict) -> list[str]:
    return _table(["claim", "paper", IV, "n", "verdict"],
                  [[c.get("claim"), c.get("paper"), _iv({**c, "reason": c.get("note")}), _n(c), c.get("verdict")] for c in _get(s, "claims")])


def _s08_counts(s: dict) -> list[str]:
    return _table(["verdict", "`verdict_counts`"], [[k, v] for k, v in _get(s, "verdict_counts").items()])


SECTIONS: dict[str, list[Callable[..., list[str]]]] = {
    "00_data": [_values("n_train", "n_test", "test_by_level", "train_test_overlap")],
    "01_train_generator": [_s01, _values("large_to_small_params", "same_recipe", "recipe_differences", "wall_seconds")],
    "02_train_verifier": [_values("chosen_verifier", "chosen_by", "chosen_aggregation", "label_kind"), _s02_auroc, _s02_prm],
    "03_difficulty_bins": [_values("questions", "samples_per_question", "bin_scheme", "spearman", "bin_agreement"), _s03_bins],
    "04_search": [_values("baseline_method", "headline_budgets", "headline_questions", "questions", "seeds"),
                  _s04_diff, _s04_lookahead, _s04_grid],
    "05_revisions": [_s05_steps, _values("pass1_step4_minus_step1", "correct_to_wrong_ci"), _s05_probe, _s05_seq,
                     _s05_selection],
    "06_compute_optimal": [_s06_curve, _s06_summary, _s06_predicted],
    "07_ttc_vs_pretraining": [_values("same_recipe", "recipe_differences", "bin_kind", "size_ratio", "r_values"),
                              _s07_exchange],
    "08_claims": [_s08, _s08_counts]}


def _block(table: Callable[..., list[str]], summary: dict, manifest: dict) -> list[str]:
    try:
        return (table(summary, manifest) if table is _s04_diff else table(summary)) + [""]
    except _Missing as missing:
        return [f"`{missing}`: not in this run's summary.", ""]
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        return [f"A table of this section could not be read: unexpected shape ({type(err).__name__}: {err}).", ""]


def read_dict(path: Path) -> dict:
    """The JSON object in ``path``; {} if it is missing, unreadable or not an object."""
    try:
        value = read_json(path)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def readme(profile: str, stages: dict[str, Path], figures: dict[str, list[str]], timings: dict,
           notebooks: set[str], runs_label: str) -> str:
    """The README text (module rules); ``stages``: finished stage -> folder, ``figures``: stage ->
    the names written for it."""
    manifests = {stage: read_dict(folder / "manifest.json") for stage, folder in stages.items()}
    started = sorted(m["started"] for m in manifests.values() if m.get("started"))
    finished = sorted(m["finished"] for m in manifests.values() if m.get("finished"))
    commits = list(dict.fromkeys(m["git_commit"][:10] for m in manifests.values() if m.get("git_commit")))
    lines = [f"# Results — profile `{profile}`", "",
             f"Generated from the summaries of one run: `make run PROFILE={profile}`, then "
             f"`python -m ttc_lib.pipeline publish {profile}` (reads `{runs_label}/<stage>/summary.json`, "
             f"`manifest.json` and `build/{profile}/timings.json`). Every interval reads `{IV}`; n: questions.", "",
             *_table(["run", "value"], [["stages started", started[0] if started else "not recorded"],
                                        ["stages finished", finished[-1] if finished else "not recorded"],
                                        ["git commit", ", ".join(commits) or "not recorded"]]), ""]
    seconds = {k: v for k, v in timings.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    lines += _table(["notebook (`timings.json`)", "wall seconds"],
                    [*[[k, f"{v:.0f}"] for k, v in seconds.items()], ["total", f"{sum(seconds.values()):.0f}"]]) \
        if seconds else ["`timings.json`: not in this run's build folder."]
    lines.append("")
    for stage in STAGES:
        lines += [f"## {stage}", ""]
        if stage not in stages:
            lines += [f"`{stage}/summary.json`: not in this run (the stage did not finish).", ""]
            continue
        summary = read_dict(stages[stage] / "summary.json")
        for table in SECTIONS.get(stage, []):
            lines += _block(table, summary, manifests[stage])
        links = [f"[executed notebook](notebooks/{stage}.ipynb)"] if stage in notebooks else []
        links += [f"[{n}]({n})" for n in figures.get(stage, []) if n.endswith((".csv", ".md"))]
        lines += [" · ".join(links), ""] if links else []
        lines += [f"![{n}]({n})" for n in figures.get(stage, []) if n.endswith(".png")] + [""]
    return "\n".join(lines).rstrip("\n") + "\n"
