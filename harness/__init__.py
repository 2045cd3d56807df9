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
"""
from harness.contract import (CONTRACT_VERSION, DEFAULT_DATA_ROOT, PROFILES, STARTS,
                              BuildContext, DataNotFound, DifferentiableField, EpochBatches,
                              Family, ODEBlockLike, Pullback, State, Structure, Task, TaskData,
                              VJP, VectorField, data_root_or_default, hookimpl, hookspec)

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``harness.load_results`` and the executor plugin point, imported on first use (they
    bring pandas and the running machinery, which model and task plugins importing
    ``harness`` do not need)."""
    if name == "load_results":
        from harness.reports.frame import load_results
        return load_results
    if name in ("Executor", "Work"):
        from harness.running import execution
        return getattr(execution, name)
    if name == "ExecutorUnavailable":
        from harness.running.failures import ExecutorUnavailable
        return ExecutorUnavailable
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


__all__ = ["CONTRACT_VERSION", "DEFAULT_DATA_ROOT", "PROFILES", "STARTS", "BuildContext",
           "DataNotFound", "DifferentiableField", "EpochBatches", "Executor",
           "ExecutorUnavailable", "Family", "ODEBlockLike",
           "Pullback", "State", "Structure", "Task", "TaskData", "VJP", "VectorField", "Work",
           "data_root_or_default", "hookimpl", "hookspec", "load_results", "__version__"]
