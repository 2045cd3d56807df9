"""Time limits inside a process: an alarm that interrupts a run wherever Python code runs.

:class:`Alarm` arms ``SIGALRM`` (``setitimer(ITIMER_REAL)``) around a block; when it goes off,
:class:`~harness.running.failures.TimeLimitExceeded` is raised in whatever the main thread is doing: a
solve, a backward pass, a ``time.sleep`` in a right-hand side. It cannot interrupt a C call
that never returns to the interpreter (the handler runs only when the interpreter runs again);
the local executor's worker processes cover that case by being killed from outside
(:mod:`harness.running.workers`).
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from time import monotonic
from types import TracebackType
from typing import Any, Iterator

from harness.running.failures import TimeLimitExceeded


def can_alarm() -> bool:
    """Signals reach only the main thread, and Windows has no ``setitimer``."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


class Alarm:
    """``with Alarm(seconds, message):`` raises ``TimeLimitExceeded(message)`` in the block
    after ``seconds`` (at once when that is not positive). Without ``seconds``, or where no
    alarm can be armed (see :func:`can_alarm`), it does nothing. On the way out the previous
    SIGALRM handler and timer are restored; the alarm goes off at most once."""

    def __init__(self, seconds: float | None, message: str) -> None:
        self.seconds, self.message = seconds, message
        self.active = seconds is not None and can_alarm()
        self._armed = self._held = self._pending = False
        self._previous: Any = None
        self._outer: tuple[float, float] = (0.0, 0.0)
        self._armed_at = 0.0

    def __enter__(self) -> Alarm:
        if not self.active:
            return self
        if self.seconds <= 0:
            raise TimeLimitExceeded(self.message)
        self._armed = True
        self._previous = signal.signal(signal.SIGALRM, self._expire)
        self._outer = signal.setitimer(signal.ITIMER_REAL, self.seconds)
        self._armed_at = monotonic()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if not self.active:
            return
        try:
            self._armed = False  # if the alarm beats this line, it has disarmed itself
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)
            delay, interval = self._outer
            if delay:  # someone else's timer: give back what is left of it
                signal.setitimer(signal.ITIMER_REAL,
                                 max(delay - (monotonic() - self._armed_at), 1e-3), interval)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep the alarm from going off inside this block (a checkpoint being written, a
        message half-sent to the driver); one that comes due here goes off as the block ends."""
        self._held = True
        try:
            yield
        finally:
            self._held = False
        if self._pending and self._armed:
            self._armed = False
            raise TimeLimitExceeded(self.message)

    def _expire(self, signum: int, frame: Any) -> None:
        if not self._armed:
            return
        if self._held:
            self._pending = True
            return
        self._armed = False
        raise TimeLimitExceeded(self.message)


def grace(limit_s: float) -> float:
    """How long past its time limit a run may take to stop by itself before it is killed:
    max(5 s, 10 %), enough for the in-process alarm to end it cleanly in the usual case."""
    return max(5.0, 0.1 * limit_s)
