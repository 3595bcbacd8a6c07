"""Answer extraction and equivalence: table-driven over every answer kind, plus robustness."""

from __future__ import annotations

import threading
import time

import pytest

from ttc_lib.tasks.grading import answers_match, extract_answer, grade_answer, normalize_answer

# ---- extract_answer -------------------------------------------------------------------------

EXTRACT_CASES = [
    ("so \\boxed{75}", "75"),
    ("first \\boxed{1} then \\boxed{2}.", "2"),  # the LAST box
    ("$\\boxed{\\frac{1}{2}}$", "\\frac{1}{2}"),
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),  # nested braces
    ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),  # escaped braces are content
    ("\\boxed{a{b}c}", "a{b}c"),
    ("\\boxed{ 5 }", "5"),
    ("\\boxed {7}", "7"),
    ("\\boxed 5", "5"),
    ("$\\boxed 5$ done", "5"),
    ("\\fbox{8}", "8"),
    ("\\boxed{\\text{Friday}}.", "\\text{Friday}"),
    ("23+7=30\n\\boxed{30}", "30"),
    ("no box here", None),
    ("", None),
    ("\\boxed", None),
    ("\\boxed{}", None),  # empty: no answer
    ("\\boxed{5", None),  # truncated
    ("\\boxed{5} then \\boxed{6", None),  # the last box is truncated: not finished
    ("\\boxed{\\frac{1}{2}", None),
    ("\\boxedx{5}", None),  # another command
    ("\\boxed5", None),
]


@pytest.mark.parametrize("text,expected", EXTRACT_CASES)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize("bad", [None, 5, 3.5, b"\\boxed{5}", ["\\boxed{5}"], {"a": 1}])
def test_extract_answer_non_str(bad):
    assert extract_answer(bad) is None


# ---- grade_answer ---------------------------------------------------------------------------

EQUIVALENT = [  # (given, reference)
    ("75", "75"), ("-3", "-3"), ("+5", "5"), ("007", "7"), ("0", "-0"),
    ("5.0", "5"), ("0.50", "0.5"), (".5", "0.5"), ("1,000", "1000"), ("1000", "1,000"),
    ("12,345.50", "12345.5"), ("$75$", "75"), ("\\boxed{75}", "75"), (" 75 ", "75"),
    ("\\frac12", "\\frac{1}{2}"), ("\\dfrac{3}{4}", "\\frac{3}{4}"), ("3/4", "\\frac{3}{4}"),
    ("0.5", "\\frac{1}{2}"), ("\\frac{-1}{3}", "-\\frac{1}{3}"), ("\\tfrac{2}{4}", "\\frac12"),
    ("\\frac{10}{2}", "5"),
    ("\\sqrt{12}", "2\\sqrt{3}"), ("\\sqrt{72}", "6\\sqrt{2}"), ("\\sqrt2", "\\sqrt{2}"),
    ("\\frac{1}{2}\\sqrt{3}", "\\frac{\\sqrt{3}}{2}"),
    ("25 \\pi", "25\\pi"), ("\\pi/2", "\\frac{\\pi}{2}"), ("\\frac14\\pi", "\\frac{\\pi}{4}"),
    ("pi", "\\pi"),
    ("(2, 5)", "(2,5)"), ("\\left(2,5\\right)", "(2,5)"), ("(-1, 0.5)", "\\left(-1,\\frac12\\right)"),
    ("[3, \\infty)", "[3,\\infty)"), ("\\left[3,\\infty\\right)", "[3,\\infty)"),
    ("(-\\infty, 2]", "(-\\infty,2]"), ("\\{2,1\\}", "\\{1,2\\}"),
    ("65", "65^\\circ"), ("65^{\\circ}", "65^\\circ"), ("65°", "65^\\circ"),
    ("Friday", "\\text{Friday}"), ("\\text{friday}", "\\text{Friday}"), ("(C)", "\\text{(C)}"),
    ("C", "\\text{(C)}"), ("\\textbf{(C)}", "\\text{(C)}"), ("Friday.", "\\text{Friday}"),
    ("1+x^2", "x^2+1"), ("2(x+1)", "2x+2"),
    ("10\\%", "10"), ("\\$5", "5"), ("5\\text{ cm}", "5"),
]

NOT_EQUIVALENT = [
    ("76", "75"), ("-75", "75"), ("7.5", "75"), ("1,001", "1000"), ("75.01", "75"),
    ("0.333", "\\frac13"), ("\\frac{1}{3}", "\\frac{1}{2}"), ("\\frac{2}{3}", "\\frac32"),
    ("\\sqrt{3}", "3"), ("2\\sqrt{3}", "3\\sqrt{2}"),
    ("25", "25\\pi"), ("5\\pi", "25\\pi"),
    ("(5,2)", "(2,5)"), ("(2,5)", "[2,5]"), ("(3,\\infty)", "[3,\\infty)"),
    ("\\{1,2\\}", "\\{1,3\\}"),
    ("64^\\circ", "65^\\circ"),
    ("Thursday", "\\text{Friday}"), ("Fri", "\\text{Friday}"), ("\\text{Evelny}", "\\text{Evelyn}"),
    ("D", "\\text{(C)}"), ("\\text{two}", "2"),
    ("x^2-1", "x^2+1"), ("y", "x"),
    ("", "75"), ("   ", "75"), ("75", ""), ("\\text{?}", "\\text{!}"), ("$$", "\\text{.}"),
]


@pytest.mark.parametrize("given,reference", EQUIVALENT)
def test_equivalent(given, reference):
    assert grade_answer(given, reference) is True
    assert answers_match(given, reference) and answers_match(reference, given)


@pytest.mark.parametrize("given,reference", NOT_EQUIVALENT)
def test_not_equivalent(given, reference):
    assert grade_answer(given, reference) is False
    assert not answers_match(given, reference) and not answers_match(reference, given)


def test_fixture_has_enough_pairs():
    assert len(EQUIVALENT) >= 30 and len(NOT_EQUIVALENT) >= 20


GARBAGE = [None, "", " ", "}{", "{", "\\frac{", "\\boxed{", "$$", "$", "\\", "\x00\x01",
           "\U0001F642" * 50, "a" * 100_000, "9" * 5000, "1" * 10_000 + ".5", "\\sqrt{-1}",
           "1/0", "\\frac{1}{0}", "((((((((((", "\\left(", "nan", "inf", "-", "--5", "1e999999",
           5, 5.0, [], {}, b"5", object()]


@pytest.mark.parametrize("junk", GARBAGE, ids=range(len(GARBAGE)))
def test_never_raises_on_garbage(junk):
    assert grade_answer(junk, "75") is False or junk in ("75",)
    assert isinstance(grade_answer("75", junk), bool)
    assert isinstance(grade_answer(junk, "\\frac{1}{2}"), bool)
    assert isinstance(answers_match(junk, junk), bool)
    key = normalize_answer(junk)
    assert isinstance(key, str) and (bool(key) or not (isinstance(junk, str) and junk.strip()))


def test_none_matches_nothing():
    assert not answers_match(None, None)
    assert not grade_answer(None, "75")


def test_runaway_answer_times_out_in_main_thread():
    t0 = time.perf_counter()
    assert grade_answer("10^{10^{10}}", "5") is False  # math-verify's signal timeout fires
    assert time.perf_counter() - t0 < 30


def test_worker_thread_is_guarded():
    """Off the main thread math-verify cannot use signal.alarm: a helper process does it."""
    results: dict = {}

    def work():
        try:
            results["frac"] = grade_answer("\\dfrac{6}{8}", "0.75 + 0")
            results["tower"] = grade_answer("9^{9^{9^{9}}}", "4")
            results["int"] = grade_answer("42", "42.0")
        except BaseException as e:  # noqa: BLE001 - the test reports any escape
            results["error"] = e

    t = threading.Thread(target=work)
    t.start()
    t.join(timeout=120)
    assert not t.is_alive(), "grading hung in a worker thread"
    assert results == {"frac": True, "tower": False, "int": True}


# ---- normalize_answer ---------------------------------------------------------------------

@pytest.mark.parametrize("text,key", [
    ("5.0", "5"), ("1,000", "1000"), ("-0", "0"), ("100", "100"), ("0.50", "0.5"),
    ("$\\dfrac{1}{2}$", "\\frac{1}{2}"), ("\\text{Friday}", "friday"), ("Friday", "friday"),
    ("65^\\circ", "65"), ("\\left( 1, 2 \\right)", "(1,2)"), ("\\boxed{7}", "7"),
    ("10\\%", "10"), ("\\$5", "5"), (None, ""), (3, ""), ("$$", "$$"), ("\\boxed{5", "\\boxed{5"),
])
def test_normalize_answer(text, key):
    assert normalize_answer(text) == key


def test_equal_keys_grade_equal():
    keys = {}
    for given, reference in EQUIVALENT + NOT_EQUIVALENT:
        for x in (given, reference):
            keys.setdefault(normalize_answer(x), []).append(x)
    for key, members in keys.items():
        if key:
            assert all(grade_answer(a, members[0]) for a in members), members


def test_integer_answers_never_reach_math_verify(monkeypatch):
    # the fast path: plain integers are compared without the (slow) symbolic checker; a wall-time
    # bound here was flaky on the shared machine (speed targets live in benchmarks/)
    import ttc_lib.tasks.grading as grading

    def symbolic(*args, **kwargs):
        raise AssertionError("math-verify called for an integer pair")

    monkeypatch.setattr(grading, "_symbolic_equal", symbolic)
    monkeypatch.setattr(grading, "_symbolic_equal_off_main", symbolic)
    n = sum(grade_answer(str(i), str(i % 500)) for i in range(20_000))
    assert n == 500
