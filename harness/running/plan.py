"""What a suite invocation will do, read from its results directory before anything runs: the
runs finished there (skipped), those that resume from a checkpoint and at which epoch, those
that start afresh, and how long each should take — from earlier results of the same
configuration, else from the reference timings shipped with the harness
(:mod:`harness.running.reference`), each estimate saying which. The progress display and
``harness run --dry-run`` share it; it only reads."""
from __future__ import annotations

import dataclasses
import json
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch

from harness.running import grouping
from harness.running.checkpoints import Checkpoints
from harness.running.configs import without_seed
from harness.running.driver import CHECKPOINT_DIR
from harness.running.leftovers import checkpoint_key, leftover
from harness.running.reference import ReferenceTimes
from harness.running.store import finished_keys, read_records, standing
from harness.suites.runspec import RunSpec

#: Where a run stands: finished ``ok`` in the results directory, resuming from its
#: checkpoint, or starting afresh.
DONE, RESUME, NEW = "done", "resume", "new"

#: Where an estimate comes from: earlier results in the results directory, or the shipped
#: reference timings.
HISTORY, REFERENCE = "history", "reference"


def configuration(config: dict[str, Any]) -> str:
    """A run's configuration less its seed, as text: runs that differ only in their seed take
    about the same time per epoch."""
    return json.dumps(without_seed(config), sort_keys=True, default=str)


def units(spec: RunSpec) -> int:
    """The epochs a run trains (a run of 0 epochs evaluates once: one unit of work)."""
    return max(spec.epochs, 1)


class History:
    """Seconds per epoch of runs that ended, by configuration (:func:`configuration`):
    a record's whole wall time (data, build and evaluation included) over its epochs. Members
    of an ensemble are left out: their times are the whole ensemble's, not a run's."""

    def __init__(self, records: Iterable[dict[str, Any]] = ()) -> None:
        self.seconds: dict[str, list[float]] = {}
        for record in records:
            self.add(record)

    def add(self, record: dict[str, Any]) -> None:
        epochs, wall = record.get("epochs") or [], record.get("wall_time_s")
        if (epochs and isinstance(wall, (int, float)) and isinstance(record.get("config"), dict)
                and not record.get("ensemble")):
            self.seconds.setdefault(configuration(record["config"]), []).append(
                wall / len(epochs))

    def copy(self) -> "History":
        copied = History()
        copied.seconds = {key: list(times) for key, times in self.seconds.items()}
        return copied

    def per_epoch(self, spec: RunSpec) -> tuple[float, int] | None:
        """The median seconds per epoch of earlier runs like ``spec``, and how many there
        were; None without any."""
        if not self.seconds:  # nothing to look up: spare the configuration's text
            return None
        return self.per_epoch_of(configuration(spec.config()))

    def per_epoch_of(self, configuration_text: str) -> tuple[float, int] | None:
        """:meth:`per_epoch` for a configuration given as its :func:`configuration` text."""
        times = self.seconds.get(configuration_text)
        return (statistics.median(times), len(times)) if times else None


@dataclass(frozen=True)
class PlannedRun:
    """One run of the suite and where it stands."""

    spec: RunSpec
    state: str
    resume_epoch: int = 0
    """Epochs its checkpoint holds (``resume``); it continues with the next one."""
    ensemble_size: int = 1
    """How many runs train together with it as one ensemble (1: alone)."""


@dataclass
class SuitePlan:
    """Every run of a suite invocation, in suite order, and the timings known before it."""

    out_dir: Path
    runs: list[PlannedRun]
    history: History = field(default_factory=History)
    reference: ReferenceTimes = field(default_factory=ReferenceTimes)
    workers: int = 1
    """How many units of work (runs, or ensembles) execute at once."""

    @property
    def todo(self) -> list[PlannedRun]:
        return [run for run in self.runs if run.state != DONE]

    @property
    def skipped(self) -> int:
        return sum(run.state == DONE for run in self.runs)

    @property
    def resuming(self) -> int:
        return sum(run.state == RESUME for run in self.runs)

    def estimate(self, run: PlannedRun) -> tuple[float, str] | None:
        """Seconds the run still needs and where that comes from (:data:`HISTORY`, earlier runs
        of its configuration; else :data:`REFERENCE`, the shipped timing of its epoch shape);
        None without either, and for a member of an ensemble (whose time is the ensemble's,
        which no solo timing tells)."""
        if run.ensemble_size > 1:
            return None
        left = units(run.spec) - run.resume_epoch
        known = self.history.per_epoch(run.spec)
        if known is not None:
            return known[0] * left, HISTORY
        reference = self.reference.per_epoch(run.spec.config())
        return None if reference is None else (reference * left, REFERENCE)

    def estimate_s(self, run: PlannedRun) -> float | None:
        """Seconds the run still needs (:meth:`estimate`); None when nothing tells."""
        known = self.estimate(run)
        return None if known is None else known[0]

    def total_estimate_s(self) -> tuple[float, int]:
        """The estimated seconds of the runs still to do, run :attr:`workers` at a time, and how
        many of them have no estimate (so the total is a lower bound when that is not 0)."""
        estimates = [self.estimate_s(run) for run in self.todo]
        return (sum(e for e in estimates if e is not None) / max(1, self.workers),
                sum(e is None for e in estimates))

    def sources(self) -> dict[str, int]:
        """How many runs still to do take their estimate from each source."""
        counts: dict[str, int] = {}
        for run in self.todo:
            known = self.estimate(run)
            if known is not None:
                counts[known[1]] = counts.get(known[1], 0) + 1
        return counts

    def how(self) -> str:
        """How the runs execute: ``one at a time``, ``2 at a time``, ``as 5 ensembles, 2 at a
        time``."""
        ensembles = {run.ensemble_size for run in self.todo if run.ensemble_size > 1}
        pace = "one at a time" if self.workers == 1 else f"{self.workers} at a time"
        if not ensembles:
            return pace
        count = round(sum(1 / run.ensemble_size for run in self.todo if run.ensemble_size > 1))
        return (f"as {count} ensemble{'s' * (count != 1)} of "
                f"{'–'.join(map(str, sorted(ensembles)))} runs, {pace}")

    def without(self, keys: set[str] | dict[str, object]) -> "SuitePlan":
        """The same plan less the runs of ``keys`` (those left out for missing data)."""
        return dataclasses.replace(self, runs=[run for run in self.runs
                                               if run.spec.key not in keys])


def plan_suite(runs: list[RunSpec], out_dir: str | Path, force: bool = False,
               ensemble: int | str | None = None, workers: int = 1,
               reference: ReferenceTimes | None = None) -> SuitePlan:
    """Where each run of ``runs`` stands in ``out_dir`` (with ``force``, none is done; a run
    resumes from its checkpoint unless that only repeats its record, as in the driver); with
    ``ensemble`` (``execution.ensemble``), the runs to do are grouped as the executor will
    group them, and a member resumes from its ensemble's checkpoint. ``workers`` units execute
    at once; ``reference`` (the shipped timings, :func:`~harness.running.reference.
    shipped_reference`) estimates what earlier results do not. Reads the results file and
    the checkpoints; writes nothing (a checkpoint that cannot be used is planned as starting
    afresh and left where it is: the run, holding the folder's lock, sets it aside)."""
    out_dir = Path(out_dir)
    records = read_records(out_dir) if out_dir.is_dir() else []
    done = set() if force else finished_keys(records)
    by_key = {record["key"]: record for record in standing(records)}
    checkpoints = Checkpoints(out_dir / CHECKPOINT_DIR)
    resumes, sizes = {}, {}  # epochs each run to do resumes from, its unit's size, by key
    for unit in grouping.units([spec for spec in runs if spec.key not in done], ensemble):
        sizes.update((spec.key, len(unit)) for spec in unit)
        key = checkpoint_key(unit)
        saved = (checkpoints.read(key, unit, set_aside=False) if checkpoints.path(key).is_file()
                 else None)
        if saved is not None and leftover(saved, unit, by_key):
            saved = None  # the driver drops it: the runs start afresh
        epochs = saved["epochs"] if saved else []
        if len(unit) == 1:
            resumes[unit[0].key] = len(epochs)
            continue
        for index, spec in enumerate(unit):  # an ensemble's holds each member's epochs
            resumes[spec.key] = len(epochs[index]) if saved else 0
    planned = []
    for spec in runs:
        if spec.key in done:
            planned.append(PlannedRun(spec, DONE))
        else:
            state = RESUME if resumes[spec.key] else NEW
            planned.append(PlannedRun(spec, state, resumes[spec.key], sizes[spec.key]))
    return SuitePlan(out_dir, planned, History(records), reference or ReferenceTimes(),
                     max(1, workers))


def parallel_units(executor: str, workers: int | None) -> int:
    """How many units of work execute at once: one under ``inline``; else ``workers``, or as
    the local pool sizes itself by default (one per GPU, else one per core)."""
    if executor == "inline":
        return 1
    return workers or torch.cuda.device_count() or os.cpu_count() or 1


def duration(seconds: float) -> str:
    """``45s``, ``12m 5s``, ``3h 20m``, ``2d 4h``: two units at most."""
    seconds = max(0, round(seconds))
    for size, unit, smaller, small_unit in ((86400, "d", 3600, "h"), (3600, "h", 60, "m"),
                                            (60, "m", 1, "s")):
        if seconds >= size:
            rest = (seconds % size) // smaller
            return f"{seconds // size}{unit}" + (f" {rest}{small_unit}" if rest else "")
    return f"{seconds}s"
