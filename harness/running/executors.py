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
(``execution.ensemble``, :func:`harness.running.grouping.units`); the driver groups them and
hands them over as :class:`harness.running.execution.Work`. Every executor yields each run's
record back to the driver as the run ends; the driver alone writes records. Worker processes
load plugins from the installed entry points and from ``HARNESS_PLUGINS``, so plugins
registered only in the driver's process are not seen there. These three register through the
``harness_executors`` hook as a plugin's executors do (the Slurm one:
``harness_plugins.executors.slurm``); the base class is :mod:`harness.running.execution`'s.
"""
from __future__ import annotations

import os
from typing import Callable, Iterator

import torch

from harness.contract import hookimpl
from harness.record import RunRecord
from harness.running.checkpoints import CheckpointWriteError
from harness.running.environment import resolve_device
from harness.running.execution import Executor, Work
from harness.running.failures import ExecutorUnavailable
from harness.running.workers import Slot, WorkerPool


class Inline(Executor):
    name = "inline"
    runs_ensembles = True

    def run(self, work: Work) -> Iterator[RunRecord]:
        for unit in work.units:
            yield from work.execute(unit, self.device)


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

    def run(self, work: Work) -> Iterator[RunRecord]:
        pool = WorkerPool(self.slots(), work.registry, work.checkpoint_dir)
        yield from pool.run(work.units, work.notify)


class RayCluster(Executor):
    name = "ray"
    runs_ensembles = True
    #: How many times Ray runs a task again when its worker or node is lost (Ray's default);
    #: each attempt resumes from the unit's checkpoint.
    retries = 3

    def run(self, work: Work) -> Iterator[RunRecord]:
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
            task = ray.remote(_call).options(num_cpus=1, num_gpus=gpus, max_retries=self.retries)
            pending = {task.remote(work.job(unit, device)): unit for unit in work.units}
            while pending:
                (ready,), _ = ray.wait(list(pending), num_returns=1)
                unit = pending.pop(ready)
                try:
                    records = ray.get(ready)
                except ray.exceptions.RayError as error:  # the task, its worker or node was lost
                    if isinstance(getattr(error, "cause", None), CheckpointWriteError):
                        raise CheckpointWriteError(str(error.cause)) from None  # the storage's
                    records = work.lost(unit, f"the Ray task was lost: {error}", device)
                yield from work.finish(unit, records)
        finally:
            if started_here:
                ray.shutdown()


def _call(job: Callable[[], list[RunRecord]]) -> list[RunRecord]:
    """A Ray task: the job :meth:`Work.job` made, called in a Ray worker."""
    return job()


def default_executor() -> str:
    """"local" when several GPUs are visible, else "inline"."""
    return "local" if torch.cuda.device_count() > 1 else "inline"


@hookimpl
def harness_executors() -> list[type[Executor]]:
    return [Inline, LocalPool, RayCluster]
