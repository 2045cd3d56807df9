"""The hooks a plugin may implement, typed (as pytest keeps its specs in ``hookspec.py``).

Contribution hooks return classes, all four alike; the registry (:mod:`harness.plugins`)
checks each and makes what it keeps: a task and a solver backend are instantiated once, when
the plugins load; a family and an executor stay classes, instantiated per use (a family per ODE
block with the run's ``model_options``, an executor per command). Observer hooks return
nothing; one that raises is switched off and reported as its plugin's failure
(:mod:`harness.running.observers`), never changing a run's result.

The specs live here, not in :mod:`harness.contract`, because their types (the backend and
executor base classes, the run spec) live in layers above the contract; plugins import
``hookimpl`` from :mod:`harness`.

May import: harness.record, harness.contract, harness.suites, harness.running, harness.solvers.
"""
from __future__ import annotations

from typing import Sequence

from harness.contract import Family, Task, hookspec
from harness.record import EpochRecord, RunRecord
from harness.running.execution import Executor
from harness.solvers.backends import SolverBackend
from harness.suites.runspec import RunSpec


@hookspec
def harness_model_families() -> Sequence[type[Family]]:
    """Return the :class:`harness.Family` subclasses this plugin contributes."""


@hookspec
def harness_tasks() -> Sequence[type[Task]]:
    """Return the :class:`harness.Task` subclasses this plugin contributes; each is
    instantiated once, without arguments, when the plugins load."""


@hookspec
def harness_executors() -> Sequence[type[Executor]]:
    """Return :class:`harness.Executor` subclasses: where runs execute (one is instantiated
    per command; its ``Settings`` are read from the suite's ``execution.<name>``)."""


@hookspec
def harness_solver_backends() -> Sequence[type[SolverBackend]]:
    """Return :class:`harness.solvers.backends.SolverBackend` subclasses, each instantiated
    once without arguments: a run naming one in ``solver.backend`` solves with it."""


@hookspec
def harness_run_started(run: RunSpec) -> None:
    """A run is about to train."""


@hookspec
def harness_epoch_finished(run: RunSpec, epoch: EpochRecord) -> None:
    """A run finished an epoch; ``epoch`` is the per-epoch record that goes into the result."""


@hookspec
def harness_run_finished(run: RunSpec, record: RunRecord) -> None:
    """A run ended (``record["status"]`` is "ok" or "failed"); the record is about to be stored."""
