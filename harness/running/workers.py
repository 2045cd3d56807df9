"""A pool of worker processes that the driver supervises, one unit of work per worker at a time.

A unit of work is one run, or runs that differ only in seed, trained as one ensemble
(:mod:`harness.running.grouping`: :func:`~harness.running.grouping.execute_unit` runs it, in a
worker as inline). The driver holds one pipe per worker and waits on the pipes and the
processes' sentinels together (``multiprocessing.connection.wait``), so it sees at once when a
worker reports an event and when a worker dies. A worker that dies fails only the runs of its
unit that had started and not ended (``worker_died``, with the epochs of their checkpoint —
the run's, or its ensemble's — which stays for a rerun to resume); a run past its time limit
plus a grace is stopped by killing its worker (``time_limit``), wherever it is stuck (an
ensemble's limit is the whole ensemble's, counted from its start, as inline). A fresh worker
takes the next unit; runs not yet started are never touched (those of a unit whose worker died
before starting them go back to the queue, as a unit).

Messages, each a pickled tuple on the pipe:

* driver → worker: ``(unit, checkpoint_dir)``, one unit of work (a list of run specs) to
  execute (a closed pipe, or the driver's death, ends the worker);
* worker → driver: ``("ready", None, {})`` once its plugins are loaded (only then does it get
  a unit), then ``(event, index, details)`` for run ``index`` of its unit: "run_started"
  (``ensemble=`` for a member of an ensemble), "epoch_finished" (``epoch=``), "run_finished"
  (``record=``, the run's record, which ends it; the unit ends with its last run);
  ``("storage_failed", None, {"message": …})`` when a checkpoint could not be saved, which
  ends the pool with :class:`~harness.running.checkpoints.CheckpointWriteError` (a storage
  failure, not the run's).

Workers are started with the ``spawn`` method (CUDA cannot be forked); what runs inside them
is :mod:`harness.running.worker_process`. They die with the driver (Linux's parent-death
signal, and a thread watching the parent elsewhere), ignore SIGINT (the driver handles Ctrl-C
and stops them), and are stopped when the driver leaves the pool for any reason, including an
exception.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from harness.record import RunRecord
from harness.registry import Registry
from harness.running.checkpoints import CheckpointWriteError, Checkpoints
from harness.running.deadline import grace
from harness.running.ensembles import ensemble_id
from harness.running.failures import ExecutorUnavailable, TimeLimitExceeded, WorkerDied
from harness.running.observers import Notify
from harness.running.records import lost_record, now
from harness.running.runner import solver_backend
from harness.running.worker_process import Slot, serve
from harness.suites.runspec import RunSpec

STOP_TIMEOUT_S = 2.0
"""How long stopped workers get to exit before they are killed."""

MAX_FAILED_STARTS = 3
"""Workers of one slot that may die in a row before they start a unit, before the pool gives
up (a broken installation would otherwise be restarted for ever)."""

@dataclass(frozen=True)
class Start:
    """A run of a unit that the worker reported started and not yet ended."""

    monotonic: float
    at: str
    ensemble: dict[str, Any] | None
    """Its ``{id, size, index}`` when it trains as a member of an ensemble."""
    checkpoint: str
    """The key of the checkpoint it trains into: its own, or its ensemble's id."""


@dataclass
class Assignment:
    """A unit of work handed to a worker, as the driver tracks it."""

    unit: list[RunSpec]
    earlier_s: dict[str, float]
    """Seconds taken before this attempt, by checkpoint key (a run's, an ensemble's): read
    when the unit is handed out, for units with a time limit."""
    running: dict[int, Start] = field(default_factory=dict)
    """The unit's runs (by index) that have started and not ended."""
    ended: set[int] = field(default_factory=set)

    def start(self, index: int, ensemble: dict[str, Any] | None) -> None:
        checkpoint = ensemble["id"] if ensemble else self.unit[index].key
        self.running[index] = Start(time.monotonic(), now(), ensemble, checkpoint)

    def unstarted(self) -> list[RunSpec]:
        return [spec for index, spec in enumerate(self.unit)
                if index not in self.running and index not in self.ended]

    def kill_at(self) -> float | None:
        """When the driver stops the unit: the first of its running runs' time limits plus the
        grace, each counted from its start (earlier attempts included; for an ensemble, the
        ensemble's); None without a limit or before a run started."""
        due = [start.monotonic - self.earlier_s.get(start.checkpoint, 0.0) + limit + grace(limit)
               for index, start in self.running.items()
               if (limit := self.unit[index].time_limit_s)]
        return min(due, default=None)

    def elapsed_s(self, index: int) -> float:
        start = self.running[index]
        return self.earlier_s.get(start.checkpoint, 0.0) + time.monotonic() - start.monotonic


class Worker:
    """One worker process and the driver's end of its pipe. It takes a unit once it is ready
    (plugins loaded), so a worker that dies while starting has no run to fail."""

    def __init__(self, context: Any, slot: Slot, load: Callable[[], Registry]) -> None:
        self.slot = slot
        self.connection, theirs = context.Pipe()
        self.process = context.Process(target=serve, args=(theirs, slot, os.getpid(), load),
                                       name="harness-worker", daemon=True)
        with _children_ignore_sigint():
            self.process.start()
        theirs.close()  # else the driver never sees end-of-file when the worker dies
        self.ready = False
        self.ran = False  # started a run (else its death counts as a failed start)
        self.assignment: Assignment | None = None

    @property
    def watched(self) -> bool:
        """Starting up or running: the driver waits for its messages and its death."""
        return not self.ready or self.assignment is not None

    def assign(self, unit: list[RunSpec], checkpoint_dir: Path | None) -> None:
        earlier = {}
        if checkpoint_dir and any(spec.time_limit_s for spec in unit):
            claims = [(spec.key, [spec]) for spec in unit] + (
                [(ensemble_id(unit), unit)] if len(unit) > 1 else [])
            for key, runs in claims:  # nobody writes these checkpoints right now
                saved = Checkpoints(checkpoint_dir).read(key, runs)
                earlier[key] = saved["elapsed_s"] if saved else 0.0
        self.assignment = Assignment(unit, earlier)
        try:
            self.connection.send((unit, checkpoint_dir))
        except OSError:  # it died idle; the pool sees its death and hands the unit on
            pass

    def kill(self) -> None:
        self.process.kill()
        self.process.join()


class WorkerPool:
    """Runs units of work on one worker per slot and yields each record as its run ends."""

    def __init__(self, slots: list[Slot], registry: Registry, checkpoint_dir: Path | None) -> None:
        self.slots = slots
        self.registry = registry
        self.checkpoint_dir = checkpoint_dir
        self.context = multiprocessing.get_context("spawn")  # CUDA cannot be forked

    def run(self, units: list[list[RunSpec]], notify: Notify) -> Iterator[RunRecord]:
        """Execute ``units`` (each a list of runs, see
        :func:`harness.running.grouping.units`); the workers' events go to ``notify`` as
        they arrive."""
        waiting = deque(units)
        workers: list[Worker | None] = [None] * len(self.slots)
        failed_starts = [0] * len(self.slots)
        try:
            while waiting or any(w and w.assignment for w in workers):
                self._staff(workers, waiting)
                watched = [w for w in workers if w and w.watched]
                wait([w.connection for w in watched] + [w.process.sentinel for w in watched],
                     timeout=_until_first([w.assignment.kill_at() for w in watched
                                           if w.assignment]))
                for index, worker in enumerate(workers):
                    if worker is None or not worker.watched:
                        continue
                    records, alive = self._attend(worker, notify, waiting)
                    if not alive:
                        workers[index] = None
                        failed_starts[index] = 0 if worker.ran else failed_starts[index] + 1
                        if failed_starts[index] == MAX_FAILED_STARTS:
                            raise ExecutorUnavailable(
                                f"worker processes die while starting ({MAX_FAILED_STARTS} in a "
                                f"row, the last: {_exit_reason(worker.process.exitcode)}); "
                                f"their output above says why")
                    yield from records
        finally:
            stop([w for w in workers if w])

    def _staff(self, workers: list[Worker | None], waiting: deque[list[RunSpec]]) -> None:
        """Hand waiting units to ready idle workers; start workers for the units left over."""
        for worker in workers:
            if waiting and worker and worker.ready and not worker.assignment:
                worker.assign(waiting.popleft(), self.checkpoint_dir)
        starting = sum(1 for w in workers if w and not w.ready)
        for index, worker in enumerate(workers):
            if worker is None and len(waiting) > starting:
                workers[index] = Worker(self.context, self.slots[index], self.registry.loader)
                starting += 1

    def _attend(self, worker: Worker, notify: Notify,
                waiting: deque[list[RunSpec]]) -> tuple[list[RunRecord], bool]:
        """Take a worker's messages; (the records of the runs that ended, whether the worker
        lives). The runs of its unit a dead worker never started go back to the front of
        ``waiting``, as one unit."""
        records: list[RunRecord] = []
        closed = False
        try:
            while worker.connection.poll():
                event, index, details = worker.connection.recv()
                if event == "ready":
                    worker.ready = True
                    continue
                if event == "storage_failed":
                    raise CheckpointWriteError(details["message"])
                assignment = worker.assignment
                spec = assignment.unit[index]
                if event == "run_started":
                    worker.ran = True
                    assignment.start(index, details.get("ensemble"))
                notify(event, spec, **details)
                if event == "run_finished":
                    del assignment.running[index]
                    assignment.ended.add(index)
                    records.append(details["record"])
                    if len(assignment.ended) == len(assignment.unit):
                        worker.assignment = None
        except (EOFError, OSError):  # the pipe closed (mid-message, maybe): the worker is gone
            closed = True
            worker.process.join(STOP_TIMEOUT_S)
        if closed or not worker.process.is_alive():
            worker.kill()
            if worker.assignment is None:
                return records, False
            error = WorkerDied(f"worker process {worker.process.pid} died "
                               f"({_exit_reason(worker.process.exitcode)}) during the run")
            return records + self._lost(worker, error, notify, waiting), False
        kill_at = worker.assignment.kill_at() if worker.assignment else None
        if kill_at is not None and time.monotonic() >= kill_at:
            worker.kill()
            limits = [worker.assignment.unit[index].time_limit_s
                      for index in worker.assignment.running]
            limit = min(limit for limit in limits if limit)
            error = TimeLimitExceeded(f"time limit of {limit} s reached, and the run did not "
                                      f"stop within {grace(limit):g} s more: its worker was "
                                      f"killed")
            return records + self._lost(worker, error, notify, waiting), False
        return records, True

    def _lost(self, worker: Worker, error: BaseException, notify: Notify,
              waiting: deque[list[RunSpec]]) -> list[RunRecord]:
        """The records of the runs a killed or dead worker had started and not ended, told to
        the observers too; the runs of its unit it had not started go back to ``waiting``."""
        assignment = worker.assignment
        worker.assignment = None
        if unstarted := assignment.unstarted():
            waiting.appendleft(unstarted)
        records = []
        for index, start in sorted(assignment.running.items()):
            spec = assignment.unit[index]
            record = lost_run_record(spec, self.registry, worker.slot.device, error,
                                     self.checkpoint_dir, assignment.elapsed_s(index),
                                     start.ensemble)
            record["started_at"] = start.at
            notify("run_finished", spec, record=record)
            records.append(record)
        return records


def lost_run_record(spec: RunSpec, registry: Registry, device: str, error: BaseException,
                    checkpoint_dir: Path | None, wall_time_s: float | None = None,
                    ensemble: dict[str, Any] | None = None) -> RunRecord:
    """The record of a run that ended with its process, with the epochs its checkpoint holds
    (the checkpoint stays, so a rerun resumes the run). A member of an ensemble (``ensemble``:
    its ``{id, size, index}``) has its epochs, and any failure before, in its ensemble's
    checkpoint. Without ``wall_time_s`` the time is the checkpoint's."""
    key = ensemble["id"] if ensemble else spec.key
    runs = [spec] * ensemble["size"] if ensemble else [spec]  # the members differ in seed only
    saved = Checkpoints(checkpoint_dir).read(key, runs) if checkpoint_dir else None
    if wall_time_s is None:
        wall_time_s = saved["elapsed_s"] if saved else 0.0
    epochs, failure = [], None
    if saved and ensemble:
        epochs = saved["epochs"][ensemble["index"]]
        failure = saved["failed"].get(str(ensemble["index"]))
    elif saved:
        epochs = saved["epochs"]
    return lost_record(spec, registry, torch.device(device), solver_backend(spec, registry),
                       error, epochs, wall_time_s, ensemble, failure)


def stop(workers: list[Worker]) -> None:
    """Stop workers: SIGTERM (an idle worker has nothing to finish, and exiting the Python way
    takes a second or two of torch's teardown), and SIGKILL for any left after
    ``STOP_TIMEOUT_S``. Safe at any moment: checkpoints are atomic renames."""
    for worker in workers:
        worker.connection.close()
        worker.process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            worker.kill()


def _until_first(times: list[float | None]) -> float | None:
    """Seconds until the earliest of ``times`` (monotonic; None entries ignored), or None."""
    due = [t for t in times if t is not None]
    return max(0.0, min(due) - time.monotonic()) if due else None


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


@contextmanager
def _children_ignore_sigint() -> Iterator[None]:
    """Start processes with SIGINT ignored, a disposition that survives exec, so a Ctrl-C while
    a worker starts up is no traceback there. Meanwhile SIGINT is blocked here, so one sent to
    the driver in that moment waits, where no other thread takes it: Linux keeps a blocked
    signal even while it is ignored, but hands a process's signal to any thread that does not
    block it, and there an ignored one is dropped. torch's own threads do not block it, so a
    Ctrl-C in the milliseconds of a worker's start may be lost (a second one is not); the
    ignored disposition is what a child inherits, so no handler swap can stand in for it.
    Only the main thread may change handlers; elsewhere this does nothing, and nor does it
    when the handler was not set from Python."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is None:
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
