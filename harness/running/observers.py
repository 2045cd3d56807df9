"""Observer hooks, contained: a progress display or a logger from a plugin may fail without
changing any run's result or stopping the suite."""
from __future__ import annotations

import logging
from typing import Any, Callable

from harness.registry import PluginFailure, Registry

log = logging.getLogger("harness")

Notify = Callable[..., None]
"""``notify(event, run, **details)`` with event "run_started" (``ensemble=``, the ``{id, size,
index}`` of a member of an ensemble), "epoch_finished" (``epoch=``) or "run_finished"
(``record=``): how a run reports progress to the observer hooks, in this process or across a
process boundary. Observer hooks take the details their specification names."""


class Observers:
    """Delivers run events to the registry's observer hooks (``harness_<event>``), one
    implementation at a time. One that raises is recorded as its plugin's failure in
    ``registry.failures``, warned about once, and not called again in this process; the run
    goes on as if it had not been there. (Observer hooks are called plainly: hook wrappers are
    not supported for them.)"""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.broken: set[str] = set()

    def __call__(self, event: str, run: Any, **details: Any) -> None:
        hook = getattr(self.registry.hook, f"harness_{event}")
        arguments = {"run": run, **details}
        for impl in reversed(hook.get_hookimpls()):  # pluggy's order: last registered first
            if impl.plugin_name in self.broken:
                continue
            try:
                impl.function(*(arguments[name] for name in impl.argnames))
            except Exception as error:  # a broken observer must not break a run
                self._contain(impl.plugin_name, hook.name, error)

    def _contain(self, plugin: str, hook: str, error: Exception) -> None:
        self.broken.add(plugin)
        failure = PluginFailure(plugin, self.registry.packages.get(plugin, "?"),
                                f"{hook} raised {error!r}; its observer hooks were switched "
                                f"off, the runs were not affected")
        self.registry.failures.append(failure)
        log.warning("plugin %s (package %s): %s", failure.plugin, failure.package, failure.reason)
