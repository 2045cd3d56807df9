"""Executors: where a suite's runs execute.

* ``inline``: one unit of work after another in this process (the default with one device);
* ``local``: a pool of worker processes on this machine, one per visible GPU (each pinned to
  its GPU through CUDA_VISIBLE_DEVICES) or N CPU workers sharing the cores' threads, supervised
  by the driver (:mod:`harness.running.workers`);
* ``ray``: each unit of work a Ray task asking for one GPU, on an existing cluster
  (``address``) or a local one (``pip install 'harness[ray]'``); inside the task the unit
  executes in a one-worker pool, so its time limit is enforced from outside it as with
  ``local``.

A unit of work is one run, or an ensemble of runs that differ only in seed
(``execution.ensemble``, :func:`harness.running.grouping.units`); every executor executes it
with :func:`harness.running.grouping.execute_unit`. Every executor yields each run's record
back to the driver as the run ends; the driver alone writes records. Worker processes load plugins from the installed entry points and from
``HARNESS_PLUGINS``, so plugins registered only in the driver's process are not seen there.
More executors (say, Slurm) come from plugins through the ``harness_executors`` hook.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import torch

from harness.contract import hookimpl
from harness.record import RunRecord
from harness.registry import Registry
from harness.running.checkpoints import CheckpointWriteError, Checkpoints
from harness.running.ensembles import ensemble_id
from harness.running.environment import resolve_device
from harness.running.failures import ExecutorUnavailable, WorkerDied
from harness.running.observers import Notify
from harness.running.grouping import execute_unit, units
from harness.running.workers import Slot, WorkerPool, lost_run_record
from harness.suites.runspec import RunSpec


class Executor(ABC):
    """Runs specs somewhere and yields their records as they finish."""

    name: ClassVar[str]
    #: Whether it executes ensembles (``execution.ensemble``) as units of work (else the
    #: driver refuses ``ensemble`` for it); the built-in executors all do.
    runs_ensembles: ClassVar[bool] = False

    def __init__(self, registry: Any, device: str = "auto", workers: int | None = None,
                 address: str | None = None) -> None:
        self.registry = registry
        self.device = str(device)
        self.workers = workers
        self.address = address
        self.ensemble: int | str | None = None
        """Runs that differ only in seed train together in ensembles of this size (or
        ``auto``): see :func:`harness.running.grouping.units`."""

    @abstractmethod
    def run(self, runs: list[RunSpec], notify: Notify,
            checkpoint_dir: Path | None) -> Iterator[RunRecord]:
        """Execute ``runs``; yield each record as soon as its run ends."""


class Inline(Executor):
    name = "inline"
    runs_ensembles = True

    def run(self, runs: list[RunSpec], notify: Notify,
            checkpoint_dir: Path | None) -> Iterator[RunRecord]:
        device = resolve_device(self.device)
        checkpoints = Checkpoints(checkpoint_dir) if checkpoint_dir else None
        for unit in units(runs, self.ensemble):
            yield from execute_unit(unit, self.registry, device, notify, checkpoints)


class LocalPool(Executor):
    name = "local"
    runs_ensembles = True

    def slots(self) -> list[Slot]:
        """One per GPU (pinned through CUDA_VISIBLE_DEVICES), else ``workers`` CPU workers
        splitting the cores' threads."""
        gpus = torch.cuda.device_count() if resolve_device(self.device).type == "cuda" else 0
        if gpus:
            return [Slot("cuda", str(i), 1) for i in range(min(self.workers or gpus, gpus))]
        cores = os.cpu_count() or 1
        workers = self.workers or cores
        return [Slot("cpu", "", max(1, cores // workers))] * workers

    def run(self, runs: list[RunSpec], notify: Notify,
            checkpoint_dir: Path | None) -> Iterator[RunRecord]:
        pool = WorkerPool(self.slots(), self.registry, checkpoint_dir)
        yield from pool.run(units(runs, self.ensemble), notify)


class RayCluster(Executor):
    name = "ray"
    runs_ensembles = True
    #: How many times Ray runs a task again when its worker or node is lost (Ray's default);
    #: each attempt resumes from the unit's checkpoint.
    retries = 3

    def run(self, runs: list[RunSpec], notify: Notify,
            checkpoint_dir: Path | None) -> Iterator[RunRecord]:
        try:
            import ray
        except ImportError:
            raise ExecutorUnavailable("the ray executor needs Ray: pip install 'harness[ray]'") \
                from None
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, num_cpus=None if self.address else self.workers,
                     include_dashboard=False, log_to_driver=False)
        try:
            gpus = 1 if self.device == "cuda" or (
                self.device == "auto" and ray.cluster_resources().get("GPU", 0) >= 1) else 0
            device = "cuda" if gpus else "cpu"
            task = ray.remote(_execute_in_ray).options(num_cpus=1, num_gpus=gpus,
                                                       max_retries=self.retries)
            pending = {task.remote(unit, checkpoint_dir, device, self.registry.loader): unit
                       for unit in units(runs, self.ensemble)}
            while pending:
                (ready,), _ = ray.wait(list(pending), num_returns=1)
                unit = pending.pop(ready)
                try:
                    records = ray.get(ready)
                except ray.exceptions.RayError as error:  # the task, its worker or node was lost
                    if isinstance(getattr(error, "cause", None), CheckpointWriteError):
                        raise CheckpointWriteError(str(error.cause)) from None  # the storage's
                    lost = WorkerDied(f"the Ray task was lost: {error}")
                    records = [lost_run_record(spec, self.registry, device, lost, checkpoint_dir,
                                               ensemble=member)
                               for spec, member in zip(unit, _saved_members(unit,
                                                                            checkpoint_dir))]
                specs = {spec.key: spec for spec in unit}
                for record in records:
                    notify("run_finished", specs[record["key"]], record=record)
                    yield record
        finally:
            if started_here:
                ray.shutdown()


def _execute_in_ray(unit: list[RunSpec], checkpoint_dir: Path | None, device: str,
                    load: Callable[[], Registry]) -> list[RunRecord]:
    """One unit of work inside a Ray task, in a worker process of its own that this task
    supervises (its time limit, its death) as the local pool does. Plugins are imported once
    per Ray worker process, so loading the registry again per task is cheap."""
    pool = WorkerPool([Slot(device, None, 1)], load(), checkpoint_dir)
    return list(pool.run([unit], lambda *args, **details: None))


def _saved_members(unit: list[RunSpec],
                   checkpoint_dir: Path | None) -> list[dict[str, Any] | None]:
    """Each run's ``{id, size, index}`` in its ensemble when the unit trained as one far
    enough to checkpoint it (its lost records then hold the ensemble's epochs), else None:
    what a lost Ray task, whose events the driver never saw, can tell."""
    identity = ensemble_id(unit)
    if len(unit) == 1 or checkpoint_dir is None or \
            not Checkpoints(checkpoint_dir).path(identity).is_file():
        return [None] * len(unit)
    return [{"id": identity, "size": len(unit), "index": index} for index in range(len(unit))]


def default_executor() -> str:
    """"local" when several GPUs are visible, else "inline"."""
    return "local" if torch.cuda.device_count() > 1 else "inline"


@hookimpl
def harness_executors() -> list[type[Executor]]:
    return [Inline, LocalPool, RayCluster]
