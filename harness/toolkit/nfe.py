"""Counting function evaluations of the dynamics, split by phase."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping, Protocol, runtime_checkable

from torch import nn

PHASES = ("forward", "backward", "eval", "probe")


class Ticks(Protocol):
    """What a solve's dynamics and its NFE cap use of a counter: the current phase, and one
    tick per call (an :class:`NFECounter`, or one member's share of an ensemble's counts)."""

    @property
    def phase(self) -> str: ...

    def tick(self) -> None: ...


@runtime_checkable
class CountsEvaluations(Protocol):
    """A module of a baseline that evaluates a function as a solver evaluates dynamics (RK-Net's
    fixed-step Runge–Kutta solve): the runner hands it the run's counter once the model is
    built, it ticks once per evaluation, and the baseline's records hold NFE by phase as a
    family's do (a baseline without one holds none)."""

    def count_with(self, ticks: Ticks) -> None: ...


def hand_counter(model: nn.Module, ticks: Ticks) -> bool:
    """Give ``ticks`` to every module of ``model`` that counts its evaluations
    (:class:`CountsEvaluations`); whether there was one."""
    counting = [module for module in model.modules() if isinstance(module, CountsEvaluations)]
    for module in counting:
        module.count_with(ticks)
    return bool(counting)


class NFECounter:
    """Counts calls of a model's dynamics into the phase that is current when they happen.

    The runner sets the phase around the forward pass ("forward"), around ``loss.backward()``
    ("backward": the adjoint solve calls the dynamics there), around evaluation ("eval") and
    around a task's extra measurements ("probe").
    One counter is shared by every ODE block of a model. It also keeps the statistics a
    solver backend notes per solve (:meth:`note`: the proximal backend's outer steps and
    inner iterations), by phase too.
    """

    __slots__ = ("phase", "counts", "notes")

    def __init__(self) -> None:
        self.phase = "forward"
        self.counts = dict.fromkeys(PHASES, 0)
        self.notes: dict[str, list[Mapping[str, float]]] = {}

    def tick(self) -> None:
        self.counts[self.phase] += 1

    @contextmanager
    def in_phase(self, phase: str) -> Iterator[None]:
        previous, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = previous

    def note(self, stats: Mapping[str, float]) -> None:
        """Keep one solve's statistics in the current phase."""
        self.notes.setdefault(self.phase, []).append(stats)

    def take(self) -> dict[str, int]:
        """Return the counts so far and start again from zero (noted statistics too)."""
        counts, self.counts, self.notes = self.counts, dict.fromkeys(PHASES, 0), {}
        return counts

    def take_notes(self, phases: tuple[str, ...] = PHASES) -> dict[str, float]:
        """The noted statistics of ``phases`` as record fields, each the mean over that phase's
        solves (``forward_outer_steps``, …), forgetting them; {} when no solve noted any."""
        fields = {}
        for phase in phases:
            solves = self.notes.pop(phase, [])
            for name in dict.fromkeys(name for stats in solves for name in stats):
                values = [stats[name] for stats in solves if name in stats]
                fields[f"{phase}_{name}"] = sum(values) / len(values)
        return fields
