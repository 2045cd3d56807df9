"""Discovering plugins: the pluggy host, entry-point loading, and the checks that fill the
registry (:mod:`harness.registry`) with what loaded."""
from __future__ import annotations

import importlib
import os
from functools import partial
from importlib.metadata import entry_points
from typing import Iterable

import pluggy

from harness import contract
from harness.contract import Family, Task
from harness.registry import PluginFailure, Registry
from harness.running import executors
from harness.running.executors import Executor
from harness.solvers import built_in as built_in_backends
from harness.solvers.backends import SolverBackend

ENTRY_POINT_GROUP = "harness"
PLUGINS_VARIABLE = "HARNESS_PLUGINS"
"""Comma-separated importable modules, each registered as a plugin (like PYTEST_PLUGINS):
worker processes inherit the environment, so they see these plugins as the driver does."""


def new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager("harness")
    manager.add_hookspecs(contract)
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
    if not isinstance(wanted, int) or wanted > contract.CONTRACT_VERSION:
        registry.failures.append(PluginFailure(
            name, package, f"needs plugin contract {wanted!r}, but this harness has contract "
                           f"{contract.CONTRACT_VERSION}: upgrade harness"))
        return
    try:
        registry.manager.register(plugin, name=name)
    except Exception as error:
        registry.failures.append(PluginFailure(name, package, f"registration failed: {error}"))
        return
    registry.packages[name] = package


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
                if problem:
                    registry.failures.append(PluginFailure(plugin, package, problem))
                    continue
                found[name] = item
                registry.sources[(kind, name)] = plugin


def family_problem(item: object) -> str | None:
    """What is wrong with a contributed family class, or None."""
    if not (isinstance(item, type) and issubclass(item, Family)):
        return f"harness_model_families returned {item!r}, not a subclass of harness.Family"
    name = getattr(item, "name", None)
    if not isinstance(name, str) or not name:
        return f"family {item.__qualname__} has no name"
    if not item.parts or not all(isinstance(p, str) for p in item.parts):
        return f"family {name!r}: parts must be a non-empty tuple of names, not {item.parts!r}"
    if item.initial_state not in ("augment", "network"):
        return f"family {name!r}: initial_state must be 'augment' or 'network', not {item.initial_state!r}"
    if not 1 <= item.f_input_parts <= len(item.parts):
        return f"family {name!r}: f_input_parts must be between 1 and {len(item.parts)}"
    t0, t1 = item.interval
    if not t1 > t0:
        return f"family {name!r}: interval {item.interval!r} must increase"
    return None


def executor_problem(item: object) -> str | None:
    if not (isinstance(item, type) and issubclass(item, Executor)):
        return f"harness_executors returned {item!r}, not a subclass of harness.running.executors.Executor"
    return None if isinstance(getattr(item, "name", None), str) else f"executor {item!r} has no name"


def backend_problem(item: object) -> str | None:
    if not isinstance(item, SolverBackend):
        return (f"harness_solver_backends returned {item!r}, not an instance of "
                f"harness.solvers.backends.SolverBackend")
    return None if isinstance(getattr(item, "name", None), str) else f"backend {item!r} has no name"


def task_problem(item: object) -> str | None:
    if not isinstance(item, Task):
        return f"harness_tasks returned {item!r}, not an instance of harness.Task"
    if not isinstance(getattr(item, "name", None), str) or not item.name:
        return f"task {type(item).__qualname__} has no name"
    return None
