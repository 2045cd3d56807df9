"""harness: a benchmark harness for neural ODE models.

The public API, what plugins and examples import, is this module (the plugin contract,
:mod:`harness.contract`; the hooks it names are specified in :mod:`harness.hookspecs`),
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
    from harness.contract import (CONTRACT_VERSION, DEFAULT_DATA_ROOT, PROFILES, STARTS,
                                  BuildContext, DataNotFound, DifferentiableField, EpochBatches,
                                  Family, ODEBlockLike, Pullback, State, Structure, Task, TaskData,
                                  VJP, VectorField, WidthNames, data_root_or_default, hookimpl,
                                  hookspec)
    from harness.reports.frame import load_results
    from harness.running.execution import Executor, Work
    from harness.running.failures import ExecutorUnavailable

__version__ = "0.1.0"

_CONTRACT = ("CONTRACT_VERSION", "DEFAULT_DATA_ROOT", "PROFILES", "STARTS", "BuildContext",
             "DataNotFound", "DifferentiableField", "EpochBatches", "Family", "ODEBlockLike",
             "Pullback", "State", "Structure", "Task", "TaskData", "VJP", "VectorField",
             "WidthNames", "data_root_or_default", "hookimpl", "hookspec")


def __getattr__(name: str) -> object:
    """The contract's names from :mod:`harness.contract` (torch comes with it),
    ``harness.load_results`` (pandas and the reports) and the executor plugin point (the running
    machinery), each imported on first use (PEP 562): model and task plugins importing
    ``harness`` need none of the last two."""
    if name in _CONTRACT:
        from harness import contract
        value = getattr(contract, name)
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


__all__ = [*_CONTRACT, "Executor", "ExecutorUnavailable", "Work", "load_results", "__version__"]
