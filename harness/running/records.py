"""The constructors of result records (:class:`harness.record.RunRecord`): the only code that
builds one. A run's record starts as :func:`new_record`; a run that ends adds its outcome
(:func:`finish`, after :func:`mark_failed` when it failed); a run whose process died is
:func:`lost_record`; one never started is :func:`left_out_record`. The record store (:mod:`harness.running.store`) writes and reads them."""
from __future__ import annotations

import datetime as dt
from typing import Any

import torch

from harness.record import SCHEMA, EpochRecord, RunRecord
from harness.registry import Registry
from harness.running.environment import environment
from harness.running.failures import failure_kind
from harness.running.tracebacks import format_failure
from harness.solvers.backends import SolverBackend
from harness.solvers.settings import as_solver_failure
from harness.suites.runspec import RunSpec


def new_record(spec: RunSpec, registry: Registry, device: torch.device,
               backend: SolverBackend, ensemble: dict[str, Any] | None = None) -> RunRecord:
    """A run's record before it trains: what it is, what it ran with, no epochs yet; its status
    is ``ok`` until :func:`mark_failed` says otherwise. ``ensemble``: ``{id, size, index}`` of
    a member of an ensemble."""
    task = registry.tasks[spec.task]
    record = RunRecord(
        schema=SCHEMA, key=spec.key, suite=spec.suite, task=spec.task, model=spec.model,
        seed=spec.seed, status="ok", error=None, failure_kind=None,
        metric=task.metric, higher_is_better=task.higher_is_better,
        paper_params=task.paper_params.get(spec.model), config=spec.config(),
        packages={"task": registry.package_of("task", spec.task),
                  "model": (registry.package_of("task", spec.task) if spec.baseline
                            else registry.package_of("model", spec.model))},
        versions=spec.versions, environment=environment(device, backend), started_at=now(),
        epochs=[])
    if spec.baseline:  # a family's record says nothing: records before kinds stay as they were
        record["kind"] = spec.kind
    if ensemble is not None:
        record["ensemble"] = dict(ensemble)
    return record


def mark_failed(record: RunRecord, error: BaseException, kind: str | None = None) -> None:
    """Record ``error`` as the run's outcome: its kind (from its type, unless given), its
    message and its whole traceback (of the error as raised, before a solver's assertion
    becomes a SolverFailure)."""
    trace = format_failure(error)
    error = as_solver_failure(error)
    record.update(status="failed", error=f"{type(error).__name__}: {error}",
                  failure_kind=kind or failure_kind(error), traceback=trace)


def restore_failure(record: RunRecord, failure: dict[str, Any]) -> None:
    """A failure read back from a checkpoint (``error``, ``failure_kind``), as it was recorded
    (an ensemble member that failed before the ensemble was interrupted)."""
    record.update(status="failed", error=str(failure["error"]),
                  failure_kind=str(failure["failure_kind"]), traceback=None)


def finish(record: RunRecord, wall_time_s: float) -> None:
    """Close a record: the run's time (all its sessions, when it resumed) and when it ended."""
    record.update(wall_time_s=wall_time_s, finished_at=now())


def lost_record(spec: RunSpec, registry: Registry, device: torch.device,
                backend: SolverBackend, error: BaseException, epochs: list[EpochRecord],
                wall_time_s: float, ensemble: dict[str, Any] | None = None,
                failure: dict[str, Any] | None = None) -> RunRecord:
    """The record of a run that ended with its process (a dead worker, a run killed at its time
    limit): failed with ``error``, with the epochs its checkpoint held. A member of an ensemble
    (``ensemble``: its ``{id, size, index}``) that its checkpoint says had already failed keeps
    that ``failure`` (``error``, ``failure_kind``), as a resumed ensemble would record it."""
    record = new_record(spec, registry, device, backend, ensemble)
    mark_failed(record, error)
    if failure is not None:
        restore_failure(record, failure)
    record["epochs"] = epochs
    finish(record, wall_time_s)
    return record


def left_out_record(spec: RunSpec, registry: Registry, device: torch.device,
                    backend: SolverBackend, reason: BaseException) -> RunRecord:
    """The record of a run that was never started (its data is missing, say): failed with
    ``reason``, no epochs, no time, no traceback (nothing ran)."""
    record = new_record(spec, registry, device, backend)
    mark_failed(record, reason)
    record.update(traceback=None, wall_time_s=0.0, finished_at=record["started_at"])
    return record


def now() -> str:
    """The time of day in the records' form (UTC, ISO 8601, seconds)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
