"""The shape of ttc_lib, checked from its source: layers import one way, no cycles, nothing private
crosses a module boundary, no module grows past one idea's length."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "ttc_lib"
# lowest layer first: a module may import from its own layer and the ones before it
LAYERS = ["ttc_lib", "ttc_lib.storage", "ttc_lib.tasks", "ttc_lib.models", "ttc_lib.generation",
          "ttc_lib.verifiers", "ttc_lib.revisions", "ttc_lib.search", "ttc_lib.analysis", "ttc_lib.pipeline"]
MAX_LINES = 350
SCRATCH = re.compile(r"build/(?:s\d+exp|rev\d+)")  # scratch folders of old trials, not in the repository


def module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(LIB.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) for every project import of a module (lazy ones too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "ttc_lib"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "ttc_lib":
                continue
            names = [a.name for a in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
            if submodules:
                found += [(s, [], node.lineno) for s in submodules]
            rest = [n for n in names if f"{target}.{n}" not in known]
            if rest or not submodules:
                found.append((target, rest, node.lineno))
    return found


def layer_of(name: str) -> int:
    matches = [i for i, layer in enumerate(LAYERS) if name == layer or name.startswith(layer + ".")]
    return max(matches)


def graph() -> dict[str, set[str]]:
    known = set(modules())
    edges: dict[str, set[str]] = {}
    for name, path in modules().items():
        edges[name] = {target for target, _, _ in imports_of(name, path, known) if target != name and target in known}
    return edges


def test_every_module_has_a_layer():
    for name in modules():
        assert any(name == layer or name.startswith(layer + ".") for layer in LAYERS), name


def test_imports_follow_the_layer_order():
    known = set(modules())
    wrong = []
    for name, path in modules().items():
        for target, _, line in imports_of(name, path, known):
            if target in known and name != "ttc_lib" and layer_of(target) > layer_of(name):
                wrong.append(f"{path.relative_to(LIB.parent)}:{line} imports {target} "
                             f"({modules()[target].relative_to(LIB.parent)}), a higher layer")
    assert not wrong, "\n".join(wrong)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle():
    cycle = find_cycle(graph())
    paths = [str(modules()[m].relative_to(LIB.parent)) for m in cycle] if cycle else []
    assert cycle is None, "import cycle: " + " -> ".join(paths)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_nothing_private_crosses_a_module_boundary():
    known = set(modules())
    wrong = []
    for name, path in modules().items():
        for target, names, line in imports_of(name, path, known):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and target != name:
                wrong.append(f"{path.relative_to(LIB.parent)}:{line} imports {private} from {target}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", sorted(LIB.rglob("*.py")), ids=lambda p: str(p.relative_to(LIB)))
def test_module_length(path: Path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(LIB.parent)} has {lines} lines (at most {MAX_LINES}): split it by idea"


def test_every_package_says_what_it_owns():
    for init in LIB.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and "may import" in doc.lower(), f"{init.relative_to(LIB.parent)}: docstring must say what it owns and what it may import"
        owned = doc.split("Owns:", 1)[1] if "Owns:" in doc else ""
        missing = [p.stem for p in init.parent.glob("*.py") if p.stem != "__init__" and p.stem not in owned]
        assert not missing, f"{init.relative_to(LIB.parent)}: 'Owns:' does not list {missing}"


def test_the_project_stands_alone():
    """No file cites notes, papers or scratch folders outside the repository: a measured number
    points to where the project itself records it (docs/), with the command that measures it."""
    root = LIB.parent
    # built by concatenation so that this file does not match itself
    patterns = ["shared" + "/", "FIND" + "INGS", "/" + "tmp/"]
    skip_dirs = {"__pycache__", ".ipynb_checkpoints"}
    files = []
    for name in ("ttc_lib", "notebooks", "tests", "params", "docs", "benchmarks"):
        files += [p for p in sorted((root / name).rglob("*")) if p.is_file() and not skip_dirs & set(p.parts)]
    files.append(root / "README.md")
    found = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # figures and other binary files
        for number, line in enumerate(text.splitlines(), start=1):
            hits = [p for p in patterns if p in line] + SCRATCH.findall(line)
            if hits:
                found.append(f"{path.relative_to(root)}:{number}: {hits} in {line.strip()[:100]}")
    assert not found, "files outside the repository cited:\n" + "\n".join(found)
