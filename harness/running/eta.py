"""Elapsed time and the time remaining, per run and for the suite, as the runs go.

A run's remaining time comes from its own pace once it has finished an epoch in this
invocation (seconds per epoch so far × epochs left); before that, from earlier runs of the
same configuration (:class:`harness.running.plan.History`, which also learns from the runs
that end now), else from other runs of its configuration in progress, else from the shipped
reference timings (:mod:`harness.running.reference`; not for ensemble members, whose time is
their ensemble's). The suite's remaining
time is the sum over the runs not yet ended, divided by the number of runs seen running at
once; runs with no estimate yet are counted, so the total is shown as a lower bound.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from harness.running.plan import SuitePlan, configuration, units
from harness.suites.runspec import RunSpec


@dataclass
class _Running:
    spec: RunSpec
    started: float
    first_epoch: int
    """The epoch the run continues from (0: from the start)."""
    epochs_here: int = 0
    """Epochs finished in this invocation."""
    last_epoch: int = 0

    def pace(self, now: float) -> float | None:
        """Seconds per epoch so far in this invocation."""
        return (now - self.started) / self.epochs_here if self.epochs_here else None


class SuiteEta:
    """Follows a suite's runs (fed by the progress display's observer hooks) and answers how
    long they have taken and how long they should still take. ``clock`` is a monotonic clock
    in seconds (tests pass a fake one)."""

    def __init__(self, plan: SuitePlan, clock: Callable[[], float] = time.monotonic) -> None:
        self.plan, self.clock = plan, clock
        self.start = clock()
        self.history = plan.history.copy()  # learns from the runs that end now
        self.waiting = {run.spec.key: run for run in plan.todo}
        self.reference = {run.spec.key: plan.reference.per_epoch(run.spec.config())
                          for run in plan.todo if run.ensemble_size == 1}
        self.running: dict[str, _Running] = {}
        self.configurations: dict[str, str] = {}
        """Each run's :func:`configuration`, by key: computed once, since the suite's ETA asks
        for every waiting run's at every progress line (hundreds of ensemble members)."""
        self.ended = 0
        self.parallel = 1

    def run_started(self, spec: RunSpec) -> None:
        planned = self.waiting.get(spec.key)
        first = planned.resume_epoch if planned else 0
        self.running[spec.key] = _Running(spec, self.clock(), first, last_epoch=first)
        self.parallel = max(self.parallel, len(self.running))

    def epoch_finished(self, spec: RunSpec, epoch: int) -> None:
        run = self.running.get(spec.key)
        if run is not None:
            run.epochs_here += 1
            run.last_epoch = epoch

    def run_finished(self, spec: RunSpec, record: dict[str, Any]) -> None:
        self.running.pop(spec.key, None)
        if self.waiting.pop(spec.key, None) is not None:
            self.ended += 1
        self.history.add(record)

    def elapsed(self, spec: RunSpec | None = None) -> float:
        """Seconds since the suite started, or since the run started in this invocation."""
        run = self.running.get(spec.key) if spec is not None else None
        return self.clock() - (run.started if run else self.start)

    def run_remaining(self, spec: RunSpec,
                      paces: dict[str, list[float]] | None = None) -> float | None:
        """Seconds the run should still take; None when nothing tells yet. ``paces``: the
        running runs' seconds per epoch by configuration, when the caller has them already."""
        now = self.clock()
        run = self.running.get(spec.key)
        if run is not None and run.epochs_here:
            return run.pace(now) * max(0, units(spec) - run.last_epoch)
        per_epoch = self._per_epoch(spec, self._paces(now) if paces is None else paces)
        if per_epoch is None:
            return None
        if run is None:
            planned = self.waiting.get(spec.key)
            return per_epoch * (units(spec) - (planned.resume_epoch if planned else 0))
        return max(0.0, per_epoch * (units(spec) - run.first_epoch) - (now - run.started))

    def suite_remaining(self) -> tuple[float, int]:
        """Seconds the runs not yet ended should take together (running at the parallelism
        seen so far), and how many of them have no estimate yet."""
        paces = self._paces(self.clock())
        estimates = [self.run_remaining(planned.spec, paces) for planned in self.waiting.values()]
        known = sum(e for e in estimates if e is not None)
        return known / self.parallel, sum(e is None for e in estimates)

    def _configuration(self, spec: RunSpec) -> str:
        if spec.key not in self.configurations:
            self.configurations[spec.key] = configuration(spec.config())
        return self.configurations[spec.key]

    def _paces(self, now: float) -> dict[str, list[float]]:
        """Seconds per epoch so far of the running runs that finished an epoch here."""
        paces: dict[str, list[float]] = {}
        for run in self.running.values():
            pace = run.pace(now)
            if pace is not None:
                paces.setdefault(self._configuration(run.spec), []).append(pace)
        return paces

    def _per_epoch(self, spec: RunSpec, paces: dict[str, list[float]]) -> float | None:
        wanted = self._configuration(spec)
        earlier = self.history.per_epoch_of(wanted)
        if earlier is not None:
            return earlier[0]
        alike = paces.get(wanted)
        return sum(alike) / len(alike) if alike else self.reference.get(spec.key)
