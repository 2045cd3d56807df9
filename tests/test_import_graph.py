"""The harness's modules import each other without cycles, and at module top: the import
graph is built from the source with ``ast`` (top-level, ``TYPE_CHECKING`` and function-local
imports all count as arrows)."""
from __future__ import annotations

import ast
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1] / "harness"

#: Function-local imports of harness modules that stay, and why. Whole modules:
LAZY_MODULES = {
    # lazy for start-up time: each subcommand imports what it needs (`harness list` and
    # `harness check` skip the drivers, the report page and matplotlib: about a second).
    "cli": "lazy for start-up time",
    # a pytest11 entry point, loaded into every pytest session of an environment with the
    # harness installed: the harness (and torch) load only when the fixture is used.
    "pytest_plugin": "lazy for every pytest session's start-up",
}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(harness module imported, whether inside a function) for every import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    local = {id(node) for function in ast.walk(tree)
             if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
             for node in ast.walk(function) if isinstance(node, (ast.Import, ast.ImportFrom))}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from .x import y
                base = ".".join(["harness", *filter(None, [node.module])])
            else:
                base = node.module or ""
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "harness" and len(parts) == 2 and (HARNESS / f"{parts[1]}.py").exists():
                found.append((parts[1], id(node) in local))
    return found


def import_graph() -> dict[str, set[str]]:
    """harness module → the harness modules it imports (``harness/__init__.py`` as "__init__")."""
    return {path.stem: {name for name, _ in _imports(path)} - {path.stem}
            for path in sorted(HARNESS.glob("*.py"))}


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan): each holds every
    module of one or more import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph.get(module, ())):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component: set[str] = set()
            while module not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.append(component)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def one_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest import cycle through the component's first module, for the message."""
    start = min(component)
    paths = [[start]]
    while paths:
        path = paths.pop(0)
        for other in sorted(graph[path[-1]] & component):
            if other == start:
                return [*path, start]
            if other not in path:
                paths.append([*path, other])
    return []


def test_the_harness_has_no_import_cycle():
    graph = import_graph()
    found = [f"{' → '.join(one_cycle(graph, c))} (all in cycles together: {sorted(c)})"
             for c in cycles(graph)]
    assert not found, "import cycles in harness/:\n" + "\n".join(found)


def test_harness_modules_are_imported_at_module_top():
    local = {(path.stem, name) for path in sorted(HARNESS.glob("*.py"))
             for name, inside in _imports(path) if inside}
    unexpected = sorted(pair for pair in local if pair[0] not in LAZY_MODULES)
    assert not unexpected, ("function-local imports of harness modules (importer, imported): "
                            f"{unexpected}")
    stale = sorted({*LAZY_MODULES} - {importer for importer, _ in local})
    assert not stale, f"listed as lazy but no longer: {stale}: drop them from the lists"


def test_the_cycle_check_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [{"a", "b", "c"}]
    assert one_cycle(graph, {"a", "b", "c"}) == ["a", "b", "c", "a"]
