"""Families that hang or crawl on purpose, and the task of which one seed fails, for the
worker-fault tests. Loaded as a plugin module through ``HARNESS_PLUGINS=tests.fault_plugins``,
so worker processes see them too."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from harness import Family, hookimpl
from tests.plugins_for_tests import OneSeedFails, OutOfMemoryAbove


class HangsInEpoch2(Family):
    """h' = f(h) until the first training call after an evaluation (epoch 2, with the
    default ``eval_every: 1``), which never returns: a run with one epoch to its name."""

    widths_like = "node"

    def __init__(self) -> None:
        super().__init__()
        # What it has seen, in one mutable object: an ensemble solves through a per-call copy
        # of its family (no attribute is set on a module during a solve), which shares it.
        self.seen = {"evaluated": False}

    def derivatives(self, t, state, f):
        if not self.training:
            self.seen["evaluated"] = True
        elif self.seen["evaluated"]:
            self.hang()
        (h,) = state
        return (f(t, h),)

    def hang(self):
        while True:
            time.sleep(60)


class Sleeper(HangsInEpoch2):
    """Hangs in Python (a sleep), where an in-process alarm can stop it."""

    name = "sleeper"


class Stuck(HangsInEpoch2):
    """Hangs where no in-process alarm stops it, as a C call that never returns to the
    interpreter would: it throws SIGALRM away at every call, so however far it got when its
    time ran out (its epoch 1 on a busy machine, else the hang), only killing its process
    ends it."""

    name = "stuck"

    def derivatives(self, t, state, f):
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        return super().derivatives(t, state, f)


class AdjointSleeper(Family):
    """h' = f(h) for the first ``calls`` evaluations (a forward solve's worth), then sleeps
    forever: inside the adjoint solve in ``loss.backward()``."""

    name = "adjoint_sleeper"
    widths_like = "node"

    def __init__(self, calls: int = 8) -> None:
        super().__init__()
        self.calls, self.made = calls, 0

    def derivatives(self, t, state, f):
        self.made += 1
        while self.made > self.calls:
            time.sleep(60)
        (h,) = state
        return (f(t, h),)


class Crawler(Family):
    """h' = f(h), sleeping ``delay`` seconds per evaluation, so a run lasts long enough to be
    killed mid-epoch; with ``pid_file``, its process id is written there at the first call;
    with ``wait_for``, each call waits until that file exists (another run has started)."""

    name = "crawler"
    widths_like = "node"

    def __init__(self, delay: float = 0.01, pid_file: str | None = None,
                 wait_for: str | None = None) -> None:
        super().__init__()
        self.delay, self.pid_file, self.wait_for = delay, pid_file, wait_for

    def derivatives(self, t, state, f):
        if self.pid_file and not Path(self.pid_file).exists():
            Path(self.pid_file).write_text(str(os.getpid()))
        while self.wait_for and not Path(self.wait_for).exists():
            time.sleep(0.05)
        time.sleep(self.delay)
        (h,) = state
        return (f(t, h),)


@hookimpl
def harness_model_families():
    return [Sleeper, Stuck, AdjointSleeper, Crawler, OutOfMemoryAbove]


@hookimpl
def harness_tasks():
    return [OneSeedFails]
