"""harness: a benchmark harness for neural ODE models.

The public API, what plugins and examples import, is this module (the plugin contract,
:mod:`harness.contract`; the hooks it names are specified in :mod:`harness.hookspecs`),
:mod:`harness.toolkit` (the building blocks of tasks), :mod:`harness.conformance` (the
conformance kit for a plugin's tests), and the base classes of the other plugin kinds:
:class:`harness.solvers.backends.SolverBackend` and :class:`harness.running.executors.Executor`;
and, for analysing results, :func:`load_results` (a pandas DataFrame of every run's epochs,
from :mod:`harness.reports.frame`). Everything else is internal and may move.
"""
from harness.contract import (CONTRACT_VERSION, DEFAULT_DATA_ROOT, PROFILES, STARTS,
                              BuildContext, DataNotFound, DifferentiableField, EpochBatches,
                              Family, ODEBlockLike, Pullback, State, Structure, Task, TaskData,
                              VJP, VectorField, data_root_or_default, hookimpl, hookspec)

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``harness.load_results``, imported on first use (it brings pandas, which plugins
    importing ``harness`` do not need)."""
    if name == "load_results":
        from harness.reports.frame import load_results
        return load_results
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


__all__ = ["CONTRACT_VERSION", "DEFAULT_DATA_ROOT", "PROFILES", "STARTS", "BuildContext",
           "DataNotFound", "DifferentiableField", "EpochBatches", "Family", "ODEBlockLike",
           "Pullback", "State", "Structure", "Task", "TaskData", "VJP", "VectorField",
           "data_root_or_default", "hookimpl", "hookspec", "load_results", "__version__"]
