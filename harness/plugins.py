"""Discovering plugins: the pluggy host, entry-point loading, and the checks that fill the
registry (:mod:`harness.registry`) with what loaded."""
from __future__ import annotations

import importlib
import os
from functools import partial
from importlib.metadata import entry_points
from typing import Collection, Iterable, Mapping

import pluggy

from harness import contract, hookspecs
from harness.contract import Family, Task
from harness.registry import PluginFailure, Registry
from harness.running import executors
from harness.running.execution import Executor, settings_problem
from harness.solvers import built_in as built_in_backends
from harness.solvers.backends import SolverBackend
from harness.widths import WidthNames

ENTRY_POINT_GROUP = "harness"
PLUGINS_VARIABLE = "HARNESS_PLUGINS"
"""Comma-separated importable modules, each registered as a plugin (like PYTEST_PLUGINS):
worker processes inherit the environment, so they see these plugins as the driver does."""


def new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager("harness")
    manager.add_hookspecs(hookspecs)
    return manager


def load_registry(extra_plugins: Iterable[tuple[str, object]] = (), *,
                  entry_points_group: str | None = ENTRY_POINT_GROUP) -> Registry:
    """Load every plugin of the entry-point group, then the modules named in
    ``$HARNESS_PLUGINS``, plus ``extra_plugins`` ((name, plugin) pairs registered directly),
    and collect their families and tasks.

    A plugin that fails to import, raises in a hook, returns the wrong thing or reuses a taken
    name is recorded in ``failures``; the others still load.
    """

    registry = Registry(new_manager(), loader=partial(load_registry,
                                                      entry_points_group=entry_points_group))
    _register(registry, "executors", "harness", executors)
    _register(registry, "backends", "harness", built_in_backends)
    if entry_points_group:
        for ep in entry_points(group=entry_points_group):
            package = ep.dist.name if ep.dist else "?"
            try:
                plugin = ep.load()
            except Exception as error:  # a broken plugin must not break the host
                registry.failures.append(PluginFailure(ep.name, package, f"import failed: {error!r}"))
                continue
            _register(registry, ep.name, package, plugin)
    for module in filter(None, map(str.strip, os.environ.get(PLUGINS_VARIABLE, "").split(","))):
        try:
            plugin = importlib.import_module(module)
        except Exception as error:  # like a broken entry point
            registry.failures.append(PluginFailure(
                module, module, f"import failed (from ${PLUGINS_VARIABLE}): {error!r}"))
            continue
        _register(registry, module, module, plugin)
    for name, plugin in extra_plugins:
        _register(registry, name, getattr(plugin, "__module__", "?") or "?", plugin)
    _collect(registry)
    return registry


def _register(registry: Registry, name: str, package: str, plugin: object) -> None:
    wanted = getattr(plugin, "HARNESS_CONTRACT", contract.CONTRACT_VERSION)
    if wanted != contract.CONTRACT_VERSION:
        registry.failures.append(PluginFailure(name, package, contract_mismatch(wanted)))
        return
    try:
        registry.manager.register(plugin, name=name)
    except Exception as error:
        registry.failures.append(PluginFailure(name, package, f"registration failed: {error}"))
        return
    registry.packages[name] = package


def contract_mismatch(wanted: object) -> str:
    """Why a plugin written for contract ``wanted`` is refused."""
    have = contract.CONTRACT_VERSION
    if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > have:
        return f"needs plugin contract {wanted}, but this harness has contract {have}: upgrade harness"
    if isinstance(wanted, int) and not isinstance(wanted, bool) and 1 <= wanted < have:
        return (f"written for plugin contract {wanted}; this harness has contract {have}: "
                f"{CHANGES}. Update the plugin and set HARNESS_CONTRACT = {have} (see "
                f"docs/plugin-guide.md), or install a harness of contract {wanted}")
    return f"HARNESS_CONTRACT is {wanted!r}; a contract version is an integer, this harness's is {have}"


#: What changed since contract 1, for the refusal of a plugin written for it.
CHANGES = ("every contribution hook returns classes (harness_tasks and harness_solver_backends "
           "returned instances), Family.initial_state maps each part to where it starts (it was "
           "'augment' or 'network'), and a family's readout part is declared (readout, default 'h')")


def _collect(registry: Registry) -> None:
    kinds = (("model", registry.manager.hook.harness_model_families, family_problem, registry.families),
             ("task", registry.manager.hook.harness_tasks, task_problem, registry.tasks),
             ("executor", registry.manager.hook.harness_executors, executor_problem,
              registry.executors),
             ("backend", registry.manager.hook.harness_solver_backends, backend_problem,
              registry.backends))
    for kind, hook, check, found in kinds:
        for impl in hook.get_hookimpls():  # in registration order
            plugin = impl.plugin_name
            package = registry.packages.get(plugin, "?")
            try:
                contributed = list(impl.function())
            except Exception as error:
                registry.failures.append(PluginFailure(plugin, package, f"{hook.name} raised {error!r}"))
                continue
            for item in contributed:
                problem = check(item)
                name = getattr(item, "name", None)
                if problem is None and name in found:
                    other = registry.sources[(kind, name)]
                    problem = f"{kind} name {name!r} is already taken by plugin {other!r}"
                if problem is None and kind in INSTANTIATED:
                    try:
                        item = item()
                    except Exception as error:  # like a hook that raises
                        problem = f"{kind} {name!r}: {item.__qualname__}() raised {error!r}"
                if problem:
                    registry.failures.append(PluginFailure(plugin, package, problem))
                    continue
                found[name] = item
                registry.sources[(kind, name)] = plugin


#: The hooks that returned instances under contract 1.
CLASSES_SINCE_2 = ("harness_tasks", "harness_solver_backends")

#: The kinds the registry keeps one instance of, made when the plugins load (families and
#: executors stay classes, instantiated per use).
INSTANTIATED = ("task", "backend")


def _subclass_problem(item: object, hook: str, base: type, base_name: str) -> str | None:
    """Why ``item``, returned by ``hook``, is not a named subclass of ``base``, or None."""
    if isinstance(item, base):
        since = " (since plugin contract 2)" if hook in CLASSES_SINCE_2 else ""
        kind = type(item).__qualname__
        return (f"{hook} returned an instance, {item!r}; it returns classes{since}: return "
                f"{kind}, not {kind}()")
    if not (isinstance(item, type) and issubclass(item, base)):
        return f"{hook} returned {item!r}, not a subclass of {base_name}"
    name = getattr(item, "name", None)
    if not isinstance(name, str) or not name:
        return f"{base_name} subclass {item.__qualname__} (from {hook}) has no name"
    return None


def family_problem(item: object) -> str | None:
    """What is wrong with a contributed family class, or None: its class, its state layout,
    where each part starts, its readout, what f reads and its interval."""
    problem = _subclass_problem(item, "harness_model_families", Family, "harness.Family")
    if problem or not isinstance(item, type):
        return problem
    name, parts = item.name, item.parts
    if not _is_version(item.version):
        return _version_problem("family", name, item.version)
    if (not isinstance(parts, tuple) or not parts or not all(isinstance(p, str) and p for p in parts)
            or len(set(parts)) != len(parts)):
        return f"family {name!r}: parts must be a non-empty tuple of distinct names, not {parts!r}"
    if item.readout not in parts:
        return (f"family {name!r}: readout {item.readout!r} is not one of its parts {parts}; "
                f"set readout to the part tasks read the model's output from")
    problem = initial_state_problem(item)
    if problem:
        return f"family {name!r}: {problem}"
    if not (isinstance(item.f_input_parts, int) and 1 <= item.f_input_parts <= len(parts)):
        return f"family {name!r}: f_input_parts must be between 1 and {len(parts)}"
    t0, t1 = item.interval
    if not t1 > t0:
        return f"family {name!r}: interval {item.interval!r} must increase"
    return None


def initial_state_problem(family: type[Family]) -> str | None:
    """What is wrong with ``family.initial_state``, or None."""
    starts, parts = family.initial_state, family.parts
    valid = ", ".join(repr(start) for start in contract.STARTS)
    if not isinstance(starts, Mapping):
        return (f"initial_state must map each part {parts} to where it starts ({valid}), not "
                f"{starts!r} (contract 1's 'augment' is {{'h': 'input+zeros'}}; its 'network' "
                f"is {{'h': 'input+network', <other parts>: 'network'}})")
    if set(starts) != set(parts):
        missing, extra = [p for p in parts if p not in starts], [p for p in starts if p not in parts]
        return (f"initial_state must name every part {parts} and no other"
                + (f"; missing {missing}" if missing else "") + (f"; not parts {extra}" if extra else ""))
    wrong = {part: start for part, start in starts.items() if start not in contract.STARTS}
    if wrong:
        return f"initial_state {wrong} is not a start; valid: {valid}"
    inputs = [part for part in parts if starts[part].startswith("input")]
    if len(inputs) > 1:
        return f"initial_state puts the input x into {len(inputs)} parts {inputs}; one at most"
    if not inputs and not family.uses_network():
        return "initial_state reads nothing of the input: no part starts from x or the network"
    return None


def executor_problem(item: object) -> str | None:
    """What is wrong with a contributed executor class (its class, its Settings), or None."""
    problem = _subclass_problem(item, "harness_executors", Executor, "harness.Executor")
    return problem or settings_problem(item)


def backend_problem(item: object) -> str | None:
    return _subclass_problem(item, "harness_solver_backends", SolverBackend,
                             "harness.solvers.backends.SolverBackend")


def task_problem(item: object) -> str | None:
    problem = _subclass_problem(item, "harness_tasks", Task, "harness.Task")
    if problem is None and isinstance(item, type) and not _is_version(item.version):
        return _version_problem("task", item.name, item.version)
    return problem or width_names_problem(item)


def width_names_problem(task: type[Task]) -> str | None:
    """Where a task's declared width names (:attr:`harness.Task.width_names`) disagree with its
    own widths (:attr:`harness.Task.widths`, :attr:`harness.Task.baselines`): a name they
    hold that it does not declare, or a required one they lack; or a declaration that is no
    ``WidthNames``."""
    declared = [("width_names", task.width_names),
                *((f"baseline_width_names[{name!r}]", names)
                  for name, names in dict(task.baseline_width_names).items())]
    for where, names in declared:
        if names is not None and not (isinstance(names, WidthNames) and all(
                isinstance(part, Collection) and not isinstance(part, str)
                and all(isinstance(name, str) for name in part) for part in names)):
            return (f"task {task.name!r}: {where} is {names!r}; valid: a harness.WidthNames "
                    f"of collections of names, e.g. WidthNames(required={{'n'}})")
    tables = [*((f"widths[{name!r}]", table, None) for name, table in task.widths.items()),
              *((f"baselines[{name!r}]", table, name) for name, table in task.baselines.items())]
    for where, table, baseline in tables:
        read = task.widths_read(baseline)
        unread = sorted(set(table) - read.valid) if read else []
        lacking = sorted(set(read.required) - set(table)) if read else []
        if unread or lacking:
            what = (f"holds {', '.join(unread)}, which its width names do not declare" if unread
                    else f"lacks {', '.join(lacking)}, which its width names require")
            return (f"task {task.name!r}: {where} {what} (declared: required "
                    f"{sorted(read.required)}, optional {sorted(read.optional)})")
    return None


def _is_version(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _version_problem(kind: str, name: str, value: object) -> str:
    """Why a family's or task's ``version`` is refused."""
    return (f"{kind} {name!r}: version {value!r} is not an integer >= 1 (raise it by one when a "
            f"change alters the numbers of runs already recorded)")
