"""Executors: where a suite's runs execute.

* ``inline``: one run after another in this process (the default with one device);
* ``local``: a pool of worker processes on this machine, one per visible GPU (each pinned to
  its GPU through CUDA_VISIBLE_DEVICES) or N CPU workers sharing the cores' threads;
* ``ray``: each run a Ray task asking for its GPU, on an existing cluster (``address``) or a
  local one (``pip install 'harness[ray]'``).

Every executor yields each run's record back to the driver as the run ends; the driver alone
writes records. Worker processes load plugins from the installed entry points, so plugins
registered only in the driver's process are not seen there. More executors (say, Slurm) come
from plugins through the ``harness_executors`` hook.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
from abc import ABC, abstractmethod
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, ClassVar, Iterator

import torch

from harness.checkpoints import Checkpoints
from harness.contract import hookimpl
from harness.environment import resolve_device
from harness.runner import Notify, execute_run
from harness.runspec import RunSpec


class Executor(ABC):
    """Runs specs somewhere and yields their records as they finish."""

    name: ClassVar[str]

    def __init__(self, registry: Any, device: str = "auto", workers: int | None = None,
                 address: str | None = None) -> None:
        self.registry = registry
        self.device = str(device)
        self.workers = workers
        self.address = address

    @abstractmethod
    def run(self, runs: list[RunSpec], notify: Notify,
            checkpoint_dir: Path | None) -> Iterator[dict[str, Any]]:
        """Execute ``runs``; yield each record as soon as its run ends."""


class Inline(Executor):
    name = "inline"

    def run(self, runs: list[RunSpec], notify: Notify,
            checkpoint_dir: Path | None) -> Iterator[dict[str, Any]]:
        device = resolve_device(self.device)
        checkpoints = Checkpoints(checkpoint_dir) if checkpoint_dir else None
        for spec in runs:
            yield execute_run(spec, self.registry, device, notify, checkpoints)


class LocalPool(Executor):
    name = "local"

    def slots(self) -> list[tuple[str, int]]:
        """(CUDA_VISIBLE_DEVICES or "" for a CPU worker, torch threads) per worker."""
        gpus = torch.cuda.device_count() if resolve_device(self.device).type == "cuda" else 0
        if gpus:
            return [(str(i), 1) for i in range(min(self.workers or gpus, gpus))]
        cores = os.cpu_count() or 1
        workers = self.workers or cores
        return [("", max(1, cores // workers))] * workers

    def run(self, runs: list[RunSpec], notify: Notify,
            checkpoint_dir: Path | None) -> Iterator[dict[str, Any]]:
        context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        events, slots = context.Queue(), context.Queue()
        for slot in self.slots():
            slots.put(slot)
        with ProcessPoolExecutor(slots.qsize(), mp_context=context, initializer=_start_worker,
                                 initargs=(slots, events)) as pool:
            futures = {pool.submit(_execute_in_worker, spec, checkpoint_dir): spec for spec in runs}
            pending: set[Future] = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _deliver(events, notify)
                for future in done:
                    spec = futures[future]
                    try:
                        yield future.result()
                    except Exception as error:  # the worker process died
                        record = crashed_record(spec, error)
                        notify("run_finished", spec, record=record)
                        yield record


class RayCluster(Executor):
    name = "ray"

    def run(self, runs: list[RunSpec], notify: Notify,
            checkpoint_dir: Path | None) -> Iterator[dict[str, Any]]:
        try:
            import ray
        except ImportError:
            raise RuntimeError("the ray executor needs Ray: pip install 'harness[ray]'") from None
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, num_cpus=None if self.address else self.workers,
                     include_dashboard=False, log_to_driver=False)
        try:
            gpus = 1 if self.device == "cuda" or (
                self.device == "auto" and ray.cluster_resources().get("GPU", 0) >= 1) else 0
            task = ray.remote(_execute_in_ray).options(num_cpus=1, num_gpus=gpus)
            pending = {task.remote(spec, checkpoint_dir, "cuda" if gpus else "cpu"): spec
                       for spec in runs}
            while pending:
                (ready,), _ = ray.wait(list(pending), num_returns=1)
                spec = pending.pop(ready)
                try:
                    record = ray.get(ready)
                except Exception as error:  # the Ray task or its worker died
                    record = crashed_record(spec, error)
                notify("run_finished", spec, record=record)
                yield record
        finally:
            if started_here:
                ray.shutdown()


def crashed_record(spec: RunSpec, error: BaseException) -> dict[str, Any]:
    """The record of a run whose worker died before it could return one."""
    return {"key": spec.key, "suite": spec.suite, "task": spec.task, "model": spec.model,
            "seed": spec.seed, "status": "failed", "failure_kind": "worker_died",
            "error": f"{type(error).__name__}: {error}", "config": spec.config(),
            "versions": spec.versions, "epochs": []}


# --- inside worker processes -----------------------------------------------------------------

_worker: dict[str, Any] = {}


def _start_worker(slots: Any, events: Any) -> None:
    visible, threads = slots.get()
    if visible:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible
    torch.set_num_threads(threads)
    from harness.plugins import load_registry
    _worker.update(registry=load_registry(), device=resolve_device("cuda" if visible else "cpu"),
                   notify=lambda event, run, **details: events.put((event, run, details)))


def _execute_in_worker(spec: RunSpec, checkpoint_dir: Path | None) -> dict[str, Any]:
    checkpoints = Checkpoints(checkpoint_dir) if checkpoint_dir else None
    return execute_run(spec, _worker["registry"], _worker["device"], _worker["notify"], checkpoints)


def _execute_in_ray(spec: RunSpec, checkpoint_dir: Path | None, device: str) -> dict[str, Any]:
    if "registry" not in _worker:
        from harness.plugins import load_registry
        torch.set_num_threads(1)
        _worker["registry"] = load_registry()
    checkpoints = Checkpoints(checkpoint_dir) if checkpoint_dir else None
    return execute_run(spec, _worker["registry"], resolve_device(device), lambda *a, **k: None,
                       checkpoints)


def _deliver(events: Any, notify: Notify) -> None:
    """Pass the workers' queued events to the driver's observers."""
    while True:
        try:
            event, run, details = events.get_nowait()
        except queue.Empty:
            return
        notify(event, run, **details)


def default_executor() -> str:
    """"local" when several GPUs are visible, else "inline"."""
    return "local" if torch.cuda.device_count() > 1 else "inline"


@hookimpl
def harness_executors() -> list[type[Executor]]:
    return [Inline, LocalPool, RayCluster]
