"""SIGINT and SIGTERM held back while a file is written: a record appended, a checkpoint saved.

Held, such a signal lands as the write ends, for two reasons. The file is then whole. And the
interrupt is not lost: Python runs a signal's handler in the main thread at its next check,
and when another thread took the signal (torch's threads block none, and after a stop and a
continue the kernel hands the signal to whichever thread runs first) that check can fall
inside library code that swallows every exception. Measured: pickling a tensor calls
``copyreg._slotnames``, whose ``try: … except: pass`` ate 1 to 11 of 600–1,500 SIGTERMs sent
to another thread while checkpoints were saved (none sent to the main thread; none held), and a
checkpoint is saved every epoch.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: The signals a write holds back until it is done.
HELD = (signal.SIGINT, signal.SIGTERM)


class _Noted:
    """The handler of the held signals during a write: notes each that arrives while
    ``open``; once closed, hands it to the handler it replaced (and puts that one back), so
    that a signal landing while the handlers are being put back — which a raising handler
    may cut short — is not lost."""

    def __init__(self, replaced: dict[int, Callable[[int, Any], Any]]) -> None:
        self.replaced, self.arrived, self.open = replaced, [], True

    def __call__(self, signum: int, frame: Any) -> None:
        if self.open:
            self.arrived.append(signum)
            return
        handler = self.replaced[signum]
        signal.signal(signum, handler)
        handler(signum, frame)


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back inside the block, in the main thread (only it may set
    handlers): one that arrives meanwhile is handed to its handler as the block ends (the
    first whose handler raises ends the delivery; that exception replaces any the block
    raised). A mask would not keep the handler out of the block, since Python runs it in the
    main thread whichever thread took the signal: handlers set from Python are swapped for a
    :class:`_Noted`. Ignored signals need no holding, and one left at its default ends the
    process as a kill does (the writers leave no half file for that: a record store cuts a
    torn line, a checkpoint is renamed into place whole); one whose handler was not set from
    Python (None, which cannot be put back) is blocked in this thread, which holds it only
    where no other thread takes it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {signum: signal.getsignal(signum) for signum in HELD}
    noted = _Noted({signum: handler for signum, handler in handlers.items()
                    if callable(handler)})
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signum for signum, handler
                                                     in handlers.items() if handler is None})
    try:
        for signum in noted.replaced:
            signal.signal(signum, noted)
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        noted.open = False
        for signum, handler in noted.replaced.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(noted.arrived):
            signal.raise_signal(signum)
