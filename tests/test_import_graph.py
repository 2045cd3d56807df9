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
    "commands": "lazy for start-up time",
    # a pytest11 entry point, loaded into every pytest session of an environment with the
    # harness installed: the harness (and torch) load only when the fixture is used.
    "gates.pytest_plugin": "lazy for every pytest session's start-up",
    # harness.load_results brings pandas and the reports; a plugin importing harness does not
    # need them.
    "__init__": "lazy: load_results only on first use",
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
            if parts[0] == "harness" and len(parts) > 1 and _is_module(parts[1:]):
                found.append((".".join(parts[1:]), id(node) in local))
    return found


def _is_module(parts: list[str]) -> bool:
    """Whether harness/<parts> is a module of its own (a file, not a package's __init__)."""
    return HARNESS.joinpath(*parts).with_suffix(".py").is_file()


def module_name(path: Path) -> str:
    """``running.store`` for harness/running/store.py; a package's __init__ as ``running``."""
    parts = path.relative_to(HARNESS).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def import_graph() -> dict[str, set[str]]:
    """harness module → the harness modules it imports (``harness/__init__.py`` as "__init__")."""
    return {module_name(path): {name for name, _ in _imports(path)} - {module_name(path)}
            for path in sorted(HARNESS.rglob("*.py"))}


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
    local = {(module_name(path), name) for path in sorted(HARNESS.rglob("*.py"))
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


#: The leaves: modules that import nothing of the harness, which every part may name (the
#: result record's type; what the contract names but does not define: where a task's data
#: lives, the width types, the values of run settings).
LEAVES = {"record", "data_root", "widths", "setting_values"}

#: The layers: which of the harness's parts each part may import (its own modules and the
#: leaves aside). The same rule is written in each package's ``__init__`` docstring; this keeps
#: it true.
LAYERS: dict[str, set[str]] = {
    **{leaf: set() for leaf in LEAVES},
    "contract": set(),
    # reports and running lazily: harness.load_results, harness.Executor
    "__init__": {"contract", "reports", "running"},
    "solvers": {"contract"},
    "toolkit": {"contract", "solvers"},
    "registry": {"contract", "solvers"},
    "suites": {"contract", "registry", "solvers"},
    "running": {"contract", "registry", "suites", "solvers", "toolkit"},
    "reports": {"contract", "suites", "running", "solvers"},
    # the hook specs name the types of what hooks return and receive, from the layers below
    "hookspecs": {"contract", "suites", "running", "solvers"},
    "plugins": {"contract", "hookspecs", "registry", "running", "solvers"},
    "gates": {"contract", "registry", "suites", "running", "reports", "solvers", "toolkit",
              "plugins"},
    "conformance": {"contract", "registry", "suites", "running", "solvers", "toolkit", "plugins"},
    # the subcommands' actions, which the command line (cli) calls
    "commands": {"contract", "registry", "suites", "running", "reports", "solvers", "toolkit",
                 "plugins", "gates"},
    "cli": {"contract", "registry", "suites", "running", "reports", "solvers", "toolkit",
            "plugins", "gates", "commands"},
}


def test_each_part_imports_only_the_parts_below_it():
    graph = import_graph()
    part = lambda module: module.split(".")[0]  # noqa: E731
    assert {part(module) for module in graph} == set(LAYERS), "a part without a layer rule"
    may = lambda module: ({part(module)} | LAYERS[part(module)]  # noqa: E731
                          | (set() if part(module) in LEAVES else LEAVES))
    wrong = sorted(f"{module} imports {other}" for module, imported in graph.items()
                   for other in imported if part(other) not in may(module))
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


#: What plugins and examples may import from the harness: its public API.
PUBLIC = {"harness", "harness.toolkit", "harness.conformance", "harness.solvers.backends",
          "harness.running.executors"}
REPOSITORY = HARNESS.parent


def test_plugins_and_examples_import_only_the_public_api():
    sources = [*REPOSITORY.glob("plugins/**/*.py"), *REPOSITORY.glob("examples/**/*.py")]
    assert len(sources) > 10
    wrong = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            wrong += [f"{path.relative_to(REPOSITORY)}: {name}" for name in names
                      if name.split(".")[0] == "harness" and name not in PUBLIC]
    assert not wrong, "imports of internal harness modules:\n" + "\n".join(wrong)
