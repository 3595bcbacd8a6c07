"""Final-answer extraction and equivalence: the one grader every stage uses.

Rules
-----
* ``extract_answer(text)``: the content of the LAST ``\\boxed{...}`` (or ``\\fbox{...}``) in
  ``text``, braces nested to any depth, escaped braces ``\\{``/``\\}`` skipped. ``\\boxed 5``
  (no braces) gives the next space-free token. If the last box is not closed (a truncated
  completion) or is empty, the answer is None: a truncated solution never counts as finished.
* ``grade_answer(given, reference)``: True when ``given`` states the same answer. In order:
  1. guards: a non-string or blank ``given``/``reference`` is False;
  2. fast path: both plain numbers (``75``, ``-3.50``, ``1,000``) -> exact decimal equality,
     without math-verify (the synthetic world grades millions of samples this way);
  3. equal ``normalize_answer`` keys -> True (so equal keys always mean equivalent answers);
  4. text answers (``\\text{Friday}``, ``\\text{(C)}``, bare words): case-, space- and
     punctuation-insensitive text comparison; never math-verify, which reads ``Evelyn`` as a
     product of commuting symbols (equal to ``Evelny``);
  5. otherwise math-verify (``verify(parse(ref), parse(given))``), which knows fractions,
     radicals, pi, tuples/intervals, sets, degrees, percent and units. Answers longer than
     MAX_SYMBOLIC_CHARS are not handed to it (a key mismatch then means False).
* Time guard: math-verify's own timeouts use ``signal.alarm``, which only works in the main
  thread. In the main thread they are passed (PARSE_TIMEOUT_S, VERIFY_TIMEOUT_S). In any other
  thread the symbolic check runs in a single helper process (started on first need) with its
  own timeouts; a call that still overruns WORKER_TIMEOUT_S kills that process and grades False.
  Nothing here raises on any input: every failure grades False.
* Results are memoised on the (given, reference) string pair.
"""

from __future__ import annotations

import atexit
import functools
import re
import threading
from decimal import Decimal, InvalidOperation

PARSE_TIMEOUT_S = 2  # per math-verify parse (whole seconds: signal.alarm)
VERIFY_TIMEOUT_S = 2  # per math-verify pairwise comparison
WORKER_TIMEOUT_S = 20.0  # worst case for one symbolic check in the helper process
WORKER_START_S = 60.0  # extra allowance while the helper process imports sympy
MAX_SYMBOLIC_CHARS = 400  # MATH answers are far shorter; longer text is not parsed
CACHE_SIZE = 1 << 17

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
# A plain number: optional sign, digits (or 1,000-style groups), optional decimal part.
_NUMBER_RE = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|[+-]?\.\d+", re.ASCII)
_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_TEXTUAL_RE = re.compile(r"[A-Za-z\s(),.'\-:;!?]+")  # letters and punctuation only, no digits
_SPACE_CMD_RE = re.compile(r"\\[,;:! ]|\\q?quad|~")
_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def extract_answer(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` in ``text``; None if absent, empty or unclosed."""
    if not isinstance(text, str):
        return None
    starts = [m.end() for m in _BOX_RE.finditer(text)]
    if not starts:
        return None
    i = starts[-1]
    n = len(text)
    j = i
    while j < n and text[j] in " \t":
        j += 1
    if j >= n:
        return None
    if text[j] != "{":
        # "\boxed 5": only with a space (a letter would have made it another command).
        if j == i:
            return None
        m = re.match(r"[^\s$]+", text[j:])
        return m.group(0) if m else None
    depth, k = 0, j
    while k < n:
        c = text[k]
        if c == "\\":
            k += 2  # an escaped brace \{ \} is content, not structure
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                content = text[j + 1:k].strip()
                return content or None
        k += 1
    return None  # unbalanced: the completion was cut off inside its answer


def _strip_delimiters(s: str) -> str:
    s = s.strip()
    for left, right in _DELIMS:
        if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
            return s[len(left):len(s) - len(right)].strip()
    return s


def _unwrap_text(s: str) -> tuple[str, bool]:
    """Replace \\text{X}-like commands by X; also report whether there were any."""
    out, count = _TEXT_CMD_RE.subn(r"\1", s)
    while count:  # nested \text{\textbf{..}}
        out, count2 = _TEXT_CMD_RE.subn(r"\1", out)
        count = count2
    return out, out != s


def _text_key(s: str) -> str | None:
    """Lower-case word key if ``s`` is a text answer (a word, or anything in \\text{}), else None."""
    body, had_text = _unwrap_text(_strip_delimiters(s))
    body = body.strip().rstrip(".")
    if not body or not _TEXTUAL_RE.fullmatch(body):
        return None
    if not had_text and not re.search(r"[A-Za-z]{2,}", body):
        return None  # a lone letter like "x" or "C" is maths unless it was in \text{}
    return " ".join(re.sub(r"[^a-z]+", " ", body.lower()).split())


def _loose_text(s: str) -> str:
    body, _ = _unwrap_text(_strip_delimiters(s))
    return " ".join(re.sub(r"[^a-z0-9]+", " ", body.lower()).split())


def _canonical_number(s: str) -> str | None:
    if not _NUMBER_RE.fullmatch(s):
        return None
    try:
        d = Decimal(s.replace(",", ""))
    except InvalidOperation:
        return None
    return "0" if d == 0 else format(d.normalize(), "f")


@functools.lru_cache(maxsize=CACHE_SIZE)
def _normalize(s: str) -> str:
    s = _strip_delimiters(s)
    if s.startswith("\\boxed{") and s.endswith("}"):
        s = extract_answer(s) or s
    key = _text_key(s)
    if key:
        return key
    s, _ = _unwrap_text(s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\dfrac", "\\frac")
    s = s.replace("\\tfrac", "\\frac").replace("^\\circ", "").replace("^{\\circ}", "")
    s = s.replace("°", "").replace("\\%", "").replace("%", "").replace("\\$", "")
    s = _SPACE_CMD_RE.sub("", s)
    s = "".join(s.split()).rstrip(".")
    number = _canonical_number(s)
    return number if number is not None else s


def _key(text: str) -> str:
    # Never "" for a non-blank answer: "" would merge unrelated junk like "$$" and "\text{.}".
    return _normalize(text) or text.strip()


def normalize_answer(text: str | None) -> str:
    """Cheap canonical key to bucket answers; equal keys always grade as equivalent.

    Strips $..$, \\left/\\right, spacing commands, degrees, percent, dollars and whitespace;
    \\dfrac -> \\frac; numbers in canonical decimal form (``5.0`` -> ``5``, ``1,000`` ->
    ``1000``); text answers lower-cased words. Non-strings give "".
    """
    if not isinstance(text, str):
        return ""
    try:
        return _key(text)
    except Exception:  # a key must never break voting
        return text.strip()


# ---- math-verify, behind the time guard ---------------------------------------------------

@functools.lru_cache(maxsize=CACHE_SIZE)
def _parse(s: str, timeout: int | None) -> list:
    from math_verify import parse

    parsed = parse(f"${s}$", parsing_timeout=timeout)
    return parsed if parsed else parse(s, parsing_timeout=timeout)


def _symbolic_equal(given: str, reference: str, use_signals: bool = True) -> bool:
    """math-verify on two answers; with signal timeouts only when allowed (main thread)."""
    from math_verify import verify
    from math_verify.errors import TimeoutException

    p_to = PARSE_TIMEOUT_S if use_signals else None
    v_to = VERIFY_TIMEOUT_S if use_signals else None
    try:
        gold, target = _parse(reference, p_to), _parse(given, p_to)
        if not gold or not target:
            return False
        return bool(verify(gold, target, timeout_seconds=v_to))
    except (Exception, TimeoutException):
        return False


_helper_lock = threading.Lock()
_helper = None  # subprocess.Popen serving symbolic checks requested off the main thread
_helper_warm = False


def _serve() -> None:
    """Helper process loop: one JSON [given, reference] per line in, one JSON bool out."""
    import json
    import sys

    out = sys.stdout
    sys.stdout = sys.stderr  # keep the protocol pipe clean of anything a library prints
    for line in sys.stdin:
        try:
            given, reference = json.loads(line)
            ok = _symbolic_equal(str(given), str(reference))
        except Exception:
            ok = False
        out.write("true\n" if ok else "false\n")
        out.flush()


def _stop_helper() -> None:
    global _helper
    if _helper is not None:
        _helper.kill()
        _helper.wait()
        _helper = None


atexit.register(_stop_helper)


def _symbolic_equal_off_main(given: str, reference: str) -> bool:
    """Run the check in a helper process, whose main thread has working signal timeouts.

    A plain subprocess (not multiprocessing): spawn would re-import the caller's __main__
    script, fork is unsafe in a process that runs threads. One request at a time.
    """
    global _helper, _helper_warm
    import json
    import os
    import select
    import subprocess
    import sys

    with _helper_lock:
        try:
            if _helper is None or _helper.poll() is not None:
                env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
                _helper = subprocess.Popen(
                    [sys.executable, "-c", "from ttc_lib.tasks.grading import _serve; _serve()"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                    text=True, env=env)
                _helper_warm = False
            _helper.stdin.write(json.dumps([given, reference]) + "\n")
            _helper.stdin.flush()
            wait = WORKER_TIMEOUT_S + (0.0 if _helper_warm else WORKER_START_S)
            ready, _, _ = select.select([_helper.stdout], [], [], wait)
            if not ready:
                raise TimeoutError("symbolic check overran")
            answer = _helper.stdout.readline().strip()
            if answer not in ("true", "false"):
                raise RuntimeError("helper process died")
            _helper_warm = True
            return answer == "true"
        except Exception:  # timeout or a dead helper: kill it, start afresh next time
            _stop_helper()
            return False


def _is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@functools.lru_cache(maxsize=CACHE_SIZE)
def _grade(given: str, reference: str) -> bool:
    g_num, r_num = _canonical_number(given.strip()), _canonical_number(reference.strip())
    if g_num is not None and r_num is not None:
        return g_num == r_num  # fast path: no sympy for plain numbers
    g_key, r_key = normalize_answer(given), normalize_answer(reference)
    if g_key and g_key == r_key:
        return True
    if _text_key(given) is not None or _text_key(reference) is not None:
        g_text = _loose_text(given)
        return bool(g_text) and g_text == _loose_text(reference)
    g, r = _strip_delimiters(given), _strip_delimiters(reference)
    if len(g) > MAX_SYMBOLIC_CHARS or len(r) > MAX_SYMBOLIC_CHARS:
        return False
    if _is_main_thread():
        return _symbolic_equal(g, r)
    return _symbolic_equal_off_main(g, r)


def grade_answer(given: str | None, reference: str) -> bool:
    """True when the extracted answer ``given`` is equivalent to ``reference``; never raises."""
    if not isinstance(given, str) or not isinstance(reference, str):
        return False
    if not given.strip() or not reference.strip():
        return False
    try:
        return _grade(given, reference)
    except Exception:
        return False


def answers_match(a: str | None, b: str | None) -> bool:
    """Symmetric equivalence of two candidate answers (for grouping votes); None matches nothing."""
    return grade_answer(a, b) or grade_answer(b, a)
