"""A pool of worker processes that the driver supervises, one run per worker at a time.

The driver holds one pipe per worker and waits on the pipes and the processes' sentinels
together (``multiprocessing.connection.wait``), so it sees at once when a worker reports an
event and when a worker dies. A worker that dies fails only the run it had started
(``worker_died``, with the epochs of its checkpoint, which stays for a rerun to resume); a run
past its time limit plus a grace is stopped by killing its worker (``time_limit``), wherever
it is stuck. A fresh worker takes the next run; runs not yet started are never touched (one
handed to a worker that died before starting it goes back to the queue).

Messages, each a pickled tuple on the pipe:

* driver → worker: ``(spec, checkpoint_dir)``, one run to execute (a closed pipe, or the
  driver's death, ends the worker);
* worker → driver: ``("ready", {})`` once its plugins are loaded (only then does it get a
  run), then ``(event, details)`` for the run it has: "run_started", "epoch_finished"
  (``epoch=``), "run_finished" (``record=``, the run's record, which ends it).

Workers are started with the ``spawn`` method (CUDA cannot be forked). They die with the
driver (Linux's parent-death signal, and a thread watching the parent elsewhere), ignore
SIGINT (the driver handles Ctrl-C and stops them), and are stopped when the driver leaves the
pool for any reason, including an exception.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from harness.record import RunRecord
from harness.registry import Registry
from harness.running.checkpoints import Checkpoints
from harness.running.deadline import grace
from harness.running.environment import resolve_device
from harness.running.failures import ExecutorUnavailable, TimeLimitExceeded, WorkerDied
from harness.running.observers import Notify
from harness.running.records import lost_record, now
from harness.running.runner import execute_run, solver_backend
from harness.suites.runspec import RunSpec

STOP_TIMEOUT_S = 2.0
"""How long stopped workers get to exit before they are killed."""

MAX_FAILED_STARTS = 3
"""Workers of one slot that may die in a row before they start a run, before the pool gives
up (a broken installation would otherwise be restarted for ever)."""

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass(frozen=True)
class Slot:
    """Where one worker runs: its torch device ("cpu" or "cuda"), the CUDA_VISIBLE_DEVICES
    it is pinned to (None: as inherited) and its torch threads."""

    device: str
    visible: str | None
    threads: int


@dataclass
class Assignment:
    """A run handed to a worker, as the driver tracks it."""

    spec: RunSpec
    earlier_s: float
    """Seconds the run had already taken before this attempt (from its checkpoint)."""
    started: float | None = None
    """``time.monotonic()`` when the worker reported run_started."""
    started_at: str | None = None

    def kill_at(self) -> float | None:
        """When the driver stops the run: its time limit plus the grace, counted from its
        start (earlier attempts included); None without a limit or before it started."""
        limit = self.spec.time_limit_s
        if not limit or self.started is None:
            return None
        return self.started - self.earlier_s + limit + grace(limit)

    def elapsed_s(self) -> float:
        return self.earlier_s + (time.monotonic() - self.started if self.started else 0.0)


class Worker:
    """One worker process and the driver's end of its pipe. It takes a run once it is ready
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

    def assign(self, spec: RunSpec, checkpoint_dir: Path | None) -> None:
        earlier = 0.0
        if spec.time_limit_s and checkpoint_dir:  # nobody writes the checkpoint right now
            saved = Checkpoints(checkpoint_dir).read(spec.key)
            earlier = float(saved.get("elapsed_s", 0.0)) if saved else 0.0
        self.assignment = Assignment(spec, earlier)
        try:
            self.connection.send((spec, checkpoint_dir))
        except OSError:  # it died idle; the pool sees its death and hands the run on
            pass

    def kill(self) -> None:
        self.process.kill()
        self.process.join()


class WorkerPool:
    """Runs specs on one worker per slot and yields each record as its run ends."""

    def __init__(self, slots: list[Slot], registry: Registry, checkpoint_dir: Path | None) -> None:
        self.slots = slots
        self.registry = registry
        self.checkpoint_dir = checkpoint_dir
        self.context = multiprocessing.get_context("spawn")  # CUDA cannot be forked

    def run(self, runs: list[RunSpec], notify: Notify) -> Iterator[RunRecord]:
        """Execute ``runs``; the workers' events go to ``notify`` as they arrive."""
        waiting = deque(runs)
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
                    record, alive = self._attend(worker, notify, waiting)
                    if not alive:
                        workers[index] = None
                        failed_starts[index] = 0 if worker.ran else failed_starts[index] + 1
                        if failed_starts[index] == MAX_FAILED_STARTS:
                            raise ExecutorUnavailable(
                                f"worker processes die while starting ({MAX_FAILED_STARTS} in a "
                                f"row, the last: {_exit_reason(worker.process.exitcode)}); "
                                f"their output above says why")
                    if record:
                        yield record
        finally:
            stop([w for w in workers if w])

    def _staff(self, workers: list[Worker | None], waiting: deque[RunSpec]) -> None:
        """Hand waiting runs to ready idle workers; start workers for the runs left over."""
        for worker in workers:
            if waiting and worker and worker.ready and not worker.assignment:
                worker.assign(waiting.popleft(), self.checkpoint_dir)
        starting = sum(1 for w in workers if w and not w.ready)
        for index, worker in enumerate(workers):
            if worker is None and len(waiting) > starting:
                workers[index] = Worker(self.context, self.slots[index], self.registry.loader)
                starting += 1

    def _attend(self, worker: Worker, notify: Notify,
                waiting: deque[RunSpec]) -> tuple[RunRecord | None, bool]:
        """Take a worker's messages; (the record if its run ended, whether the worker lives).
        A run its dead worker never started goes back to the front of ``waiting``."""
        closed = False
        try:
            while worker.connection.poll():
                event, details = worker.connection.recv()
                if event == "ready":
                    worker.ready = True
                    return None, True
                assignment = worker.assignment
                if event == "run_started":
                    worker.ran = True
                    assignment.started = time.monotonic()
                    assignment.started_at = now()
                notify(event, assignment.spec, **details)
                if event == "run_finished":
                    worker.assignment = None
                    return details["record"], True
        except (EOFError, OSError):  # the pipe closed (mid-message, maybe): the worker is gone
            closed = True
            worker.process.join(STOP_TIMEOUT_S)
        if closed or not worker.process.is_alive():
            worker.kill()
            if worker.assignment and worker.assignment.started is None:
                waiting.appendleft(worker.assignment.spec)
                worker.assignment = None
            if worker.assignment is None:
                return None, False
            error = WorkerDied(f"worker process {worker.process.pid} died "
                               f"({_exit_reason(worker.process.exitcode)}) during the run")
            return self._lost(worker, error, notify), False
        kill_at = worker.assignment.kill_at() if worker.assignment else None
        if kill_at is not None and time.monotonic() >= kill_at:
            worker.kill()
            limit = worker.assignment.spec.time_limit_s
            error = TimeLimitExceeded(f"time limit of {limit} s reached, and the run did not "
                                      f"stop within {grace(limit):g} s more: its worker was "
                                      f"killed")
            return self._lost(worker, error, notify), False
        return None, True

    def _lost(self, worker: Worker, error: BaseException, notify: Notify) -> RunRecord:
        """The record of the run a killed or dead worker had, told to the observers too."""
        assignment = worker.assignment
        worker.assignment = None
        record = lost_run_record(assignment.spec, self.registry, worker.slot.device, error,
                             self.checkpoint_dir, assignment.elapsed_s())
        if assignment.started_at:
            record["started_at"] = assignment.started_at
        notify("run_finished", assignment.spec, record=record)
        return record


def lost_run_record(spec: RunSpec, registry: Registry, device: str, error: BaseException,
                    checkpoint_dir: Path | None, wall_time_s: float | None = None) -> RunRecord:
    """The record of a run that ended with its process, with the epochs its checkpoint holds
    (the checkpoint stays, so a rerun resumes the run). Without ``wall_time_s`` the time is the
    checkpoint's."""
    saved = Checkpoints(checkpoint_dir).read(spec.key) if checkpoint_dir else None
    if wall_time_s is None:
        wall_time_s = float(saved.get("elapsed_s", 0.0)) if saved else 0.0
    return lost_record(spec, registry, torch.device(device), solver_backend(spec, registry),
                       error, saved["epochs"] if saved else [], wall_time_s)


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
    the driver in that moment waits instead of being lost (Linux keeps a blocked signal even
    while it is ignored). Only the main thread may change handlers; elsewhere this does
    nothing, and nor does it when the handler was not set from Python."""
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


# --- inside a worker process -----------------------------------------------------------------

def serve(connection: Connection, slot: Slot, driver: int,
          load: Callable[[], Registry]) -> None:
    """A worker's life: load the plugins, then execute each run the driver sends, sending its
    events back, until the driver closes the pipe (or dies)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    die_with(driver)
    if slot.visible is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = slot.visible
    torch.set_num_threads(slot.threads)
    registry = load()
    device = resolve_device(slot.device)

    def notify(event: str, run: RunSpec, **details: Any) -> None:
        connection.send((event, details))

    connection.send(("ready", {}))
    while True:
        try:
            spec, checkpoint_dir = connection.recv()
        except EOFError:
            return
        checkpoints = Checkpoints(checkpoint_dir) if checkpoint_dir else None
        execute_run(spec, registry, device, notify, checkpoints)


def die_with(driver: int) -> None:
    """Make this process end when the ``driver`` process does, even by ``kill -9``: Linux's
    parent-death signal, then a check that the driver did not die before it was set, and a
    daemon thread watching the parent for systems without it (or a parent that was not the
    driver)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != driver:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(driver,), name="harness-parent-watch",
                     daemon=True).start()


def _watch_parent(driver: int) -> None:
    while os.getppid() == driver:
        time.sleep(1.0)
    os._exit(1)
