"""A worker process's side of the pool (:mod:`harness.running.workers`): where it runs
(:class:`Slot`), its start-up (SIGINT ignored, dying with the driver, pinned to its device and
threads, the plugins loaded) and its loop executing the units of work the driver sends."""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Callable

import torch

from harness.registry import Registry
from harness.running.checkpoints import CheckpointWriteError, Checkpoints
from harness.running.environment import resolve_device
from harness.running.grouping import execute_unit
from harness.suites.runspec import RunSpec

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass(frozen=True)
class Slot:
    """Where one worker runs: its torch device ("cpu" or "cuda"), the CUDA_VISIBLE_DEVICES
    it is pinned to (None: as inherited) and its torch threads."""

    device: str
    visible: str | None
    threads: int


def serve(connection: Connection, slot: Slot, driver: int,
          load: Callable[[], Registry]) -> None:
    """A worker's life: load the plugins, then execute each unit of work the driver sends,
    sending its runs' events back, until the driver closes the pipe (or dies)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    die_with(driver)
    if slot.visible is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = slot.visible
    torch.set_num_threads(slot.threads)
    registry = load()
    device = resolve_device(slot.device)

    connection.send(("ready", None, {}))
    while True:
        try:
            unit, checkpoint_dir = connection.recv()
        except EOFError:
            return
        places = {spec.key: index for index, spec in enumerate(unit)}

        def notify(event: str, run: RunSpec, **details: Any) -> None:
            connection.send((event, places[run.key], details))

        checkpoints = Checkpoints(checkpoint_dir) if checkpoint_dir else None
        try:
            for _ in execute_unit(unit, registry, device, notify, checkpoints):
                pass  # each record went to the driver with its run_finished
        except CheckpointWriteError as error:  # the driver ends the command with it
            connection.send(("storage_failed", None, {"message": str(error)}))


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
