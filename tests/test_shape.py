"""The shape of the code (issue 21): no import circle among the product's modules or its rooms, no
function too long to see whole, the edge runtime never asking for TensorFlow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("toolkit", "converters", "edge_runtime")
MAX_FUNCTION_LINES = 60
needs_source = pytest.mark.skipif(not (ROOT / "edge_runtime").is_dir(),
                                  reason="reads the source tree (an installed wheel is under test: make test-arm64)")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def product_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The product modules `path` imports, at the top or inside a function (a lazy import is still an arrow)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            known = name
            while known and known not in modules:
                known = known.rpartition(".")[0]
            if known:
                found.add(known)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (or a node importing itself)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def module_graph() -> dict[str, set[str]]:
    modules = product_modules()
    graph = {}
    for name, path in modules.items():
        # A package's __init__ is imported with each of its modules; an arrow from a module up to its own
        # package's face is not a circle of the code.
        graph[name] = {m for m in imports_of(path, modules) if m != name and not name.startswith(m + ".")}
    return graph


def room(module: str) -> str:
    """The folder a module lives in: toolkit/train, edge_runtime/camera/sinks, ..."""
    path = product_modules()[module]
    return str(path.parent.relative_to(ROOT))


@needs_source
def test_no_import_circle_between_modules():
    assert cycles(module_graph()) == []


@needs_source
def test_no_import_circle_between_rooms():
    """Folders as rooms: no room imports from one that imports from it, directly or around a circle
    (a sub-folder may use its parent's modules: edge_runtime/camera/sinks uses edge_runtime/camera)."""
    rooms: dict[str, set[str]] = {}
    for module, targets in module_graph().items():
        here = room(module)
        for target in targets:
            there = room(target)
            if there != here and not here.startswith(there + "/") and not there.startswith(here + "/"):
                rooms.setdefault(here, set()).add(there)
    assert cycles(rooms) == []


@needs_source
def test_no_function_is_too_long_to_see_whole():
    long = []
    for path in product_modules().values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert long == []


@needs_source
def test_the_edge_runtime_never_calls_the_tensorflow_loader():
    """edge_runtime.core.quiet.load_tensorflow is for the training side and the converters only."""
    callers = []
    for path in (ROOT / "edge_runtime").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) \
                    == "load_tensorflow":
                callers.append(str(path.relative_to(ROOT)))
    assert callers == []


def test_the_circle_finder_finds_circles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]] and cycles({"a": {"b"}, "b": set()}) == []


@needs_source
def test_the_readme_is_short():
    """What it is, install, the two commands, quickstarts, current numbers, links: the rest is in docs/."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300
