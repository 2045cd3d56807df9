"""harness: a benchmark harness for neural ODE models.

The public API, what plugins and examples import, is this module (the plugin contract,
:mod:`harness.contract`, with the leaves it names: :mod:`harness.widths`,
:mod:`harness.data_root`, :mod:`harness.setting_values`; the hooks it names are specified in
:mod:`harness.hookspecs`),
:mod:`harness.toolkit` (the building blocks of tasks), :mod:`harness.conformance` (the
conformance kit for a plugin's tests), and the base classes of the other plugin kinds:
:class:`harness.solvers.backends.SolverBackend` and :class:`Executor` (with :class:`Work`, what
an executor receives, and :class:`ExecutorUnavailable`, its refusal to start; from
:mod:`harness.running.execution`); and, for analysing results, :func:`load_results` (a pandas
DataFrame of every run's epochs, from :mod:`harness.reports.frame`). Everything else is
internal and may move.

Importing ``harness`` imports nothing heavy: the contract's names (and torch with them) load on
first use, so the ``harness`` command sets up its Ctrl-C and SIGTERM handling before torch
starts importing (:mod:`harness.cli`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.contract import (CONTRACT_VERSION, STARTS, BuildContext, DifferentiableField,
                                  EpochBatches, Family, ODEBlockLike, Pullback, State, Task,
                                  TaskData, VJP, VectorField, hookimpl, hookspec)
    from harness.data_root import DEFAULT_DATA_ROOT, DataNotFound, data_root_or_default
    from harness.reports.frame import load_results
    from harness.running.execution import Executor, Work
    from harness.running.failures import ExecutorUnavailable
    from harness.setting_values import PROFILES
    from harness.widths import Structure, WidthNames

__version__ = "0.1.0"

_CONTRACT = ("CONTRACT_VERSION", "STARTS", "BuildContext", "DifferentiableField", "EpochBatches",
             "Family", "ODEBlockLike", "Pullback", "State", "Task", "TaskData", "VJP",
             "VectorField", "hookimpl", "hookspec")
_DATA_ROOT = ("DEFAULT_DATA_ROOT", "DataNotFound", "data_root_or_default")
_WIDTHS = ("Structure", "WidthNames")


def __getattr__(name: str) -> object:
    """The contract's names from :mod:`harness.contract` (torch comes with it) and its leaves,
    ``harness.load_results`` (pandas and the reports) and the executor plugin point (the running
    machinery), each imported on first use (PEP 562): model and task plugins importing
    ``harness`` need none of the last two."""
    if name in _CONTRACT:
        from harness import contract
        value = getattr(contract, name)
    elif name in _DATA_ROOT:
        from harness import data_root
        value = getattr(data_root, name)
    elif name in _WIDTHS:
        from harness import widths
        value = getattr(widths, name)
    elif name == "PROFILES":
        from harness.setting_values import PROFILES as value
    elif name == "load_results":
        from harness.reports.frame import load_results as value
    elif name in ("Executor", "Work"):
        from harness.running import execution
        value = getattr(execution, name)
    elif name == "ExecutorUnavailable":
        from harness.running.failures import ExecutorUnavailable as value
    else:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    globals()[name] = value  # later lookups find it without coming here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [*_CONTRACT, *_DATA_ROOT, *_WIDTHS, "PROFILES", "Executor", "ExecutorUnavailable", "Work", "load_results", "__version__"]
