"""Counting function evaluations of the dynamics, split by phase."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

PHASES = ("forward", "backward", "eval", "probe")


class NFECounter:
    """Counts calls of a model's dynamics into the phase that is current when they happen.

    The runner sets the phase around the forward pass ("forward"), around ``loss.backward()``
    ("backward": the adjoint solve calls the dynamics there), around evaluation ("eval") and
    around a task's extra measurements ("probe").
    One counter is shared by every ODE block of a model.
    """

    __slots__ = ("phase", "counts")

    def __init__(self) -> None:
        self.phase = "forward"
        self.counts = dict.fromkeys(PHASES, 0)

    def tick(self) -> None:
        self.counts[self.phase] += 1

    @contextmanager
    def in_phase(self, phase: str) -> Iterator[None]:
        previous, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = previous

    def take(self) -> dict[str, int]:
        """Return the counts so far and start again from zero."""
        counts, self.counts = self.counts, dict.fromkeys(PHASES, 0)
        return counts
