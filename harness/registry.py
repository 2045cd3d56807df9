"""The registry: what the plugins of one load contributed — families, tasks, executors, solver
backends — where each came from, what failed, and how to load the same again in another
process (worker processes load their own registry)."""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Callable

import pluggy

from harness.contract import Family, Task
from harness.solvers.backends import SolverBackend


@dataclass(frozen=True)
class PluginFailure:
    """A plugin, or one thing it contributed, that could not be used, and why."""

    plugin: str
    package: str
    reason: str


@dataclass
class Registry:
    """The model families and tasks found, where each came from, and what failed to load."""

    manager: pluggy.PluginManager
    families: dict[str, type[Family]] = field(default_factory=dict)
    """family name → class, instantiated per ODE block with the run's ``model_options``."""
    tasks: dict[str, Task] = field(default_factory=dict)
    """task name → the one instance of the class a plugin returned, made when it loaded."""
    executors: dict[str, type] = field(default_factory=dict)
    """executor name → class (an :class:`harness.Executor`), one instance per command."""
    backends: dict[str, SolverBackend] = field(default_factory=dict)
    """solver backend name → the one instance of the class a plugin returned: what runs built
    with this registry solve with."""
    packages: dict[str, str] = field(default_factory=dict)
    """plugin name → the distribution that provides it."""
    sources: dict[tuple[str, str], str] = field(default_factory=dict)
    """("model" | "task", name) → plugin name."""
    failures: list[PluginFailure] = field(default_factory=list)
    loader: Callable[[], "Registry"] | None = None
    """Loads this registry's plugins afresh (a module-level function, so it travels to worker
    processes): the entry points and ``$HARNESS_PLUGINS``, not plugins registered directly."""

    def package_of(self, kind: str, name: str) -> str:
        return self.packages.get(self.sources.get((kind, name), ""), "?")

    def provenance(self, kind: str, name: str) -> str:
        """"<package> <version>" of the plugin that provides this model or task."""
        package = self.package_of(kind, name)
        try:
            return f"{package} {version(package)}"
        except PackageNotFoundError:
            return package

    @property
    def hook(self) -> Any:
        return self.manager.hook

    def load_again(self) -> "Registry":
        """A registry of the same installed plugins, for another process."""
        if self.loader is None:
            raise RuntimeError("this registry was not made by harness.plugins.load_registry")
        return self.loader()
