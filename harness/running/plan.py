"""What a suite invocation will do, read from its results directory before anything runs: the
runs finished there (skipped), those that resume from a checkpoint and at which epoch, those
that start afresh, those left out for missing data, the units of work they execute as (runs
alone, or ensembles) and the checkpoints to drop first, and how long each should take — from
earlier results of the same configuration, else from the reference timings shipped with the
harness (:mod:`harness.running.reference`), each estimate saying which.

The plan is made once: ``harness run --dry-run`` prints it, the progress display follows it and
the driver (:func:`harness.running.driver.run_plan`) executes it as it is, so what the dry run
says is what the run does. Planning only reads; the driver, once it holds the folder's lock,
checks the folder is still as the plan read it (:func:`basis`), else :class:`PlanOutdated`."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from harness.record import RunRecord
from harness.running import grouping
from harness.running.checkpoints import CHECKPOINT_DIR, Checkpoints
from harness.running.configs import without_seed
from harness.running.leftovers import checkpoint_key, leftover
from harness.running.reference import ReferenceTimes
from harness.running.store import StoreBusy, finished_keys, read_records, standing
from harness.suites.runspec import RunSpec

#: Where a run stands: finished ``ok`` in the results directory, resuming from its
#: checkpoint, starting afresh, or left out for missing data (recorded failed,
#: ``data_missing``, not run).
DONE, RESUME, NEW, UNAVAILABLE = "done", "resume", "new", "unavailable"

#: Where an estimate comes from: earlier results in the results directory, or the shipped
#: reference timings.
HISTORY, REFERENCE = "history", "reference"


class PlanOutdated(StoreBusy):
    """The results folder changed between planning and taking its lock (another harness run
    wrote there meanwhile): the plan no longer says what is done."""


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
    missing: tuple[str, ...] = ()
    """The data files it lacks (``unavailable``)."""


@dataclass
class SuitePlan:
    """Every run of a suite invocation, in suite order, what executes and how, and the timings
    known before it."""

    out_dir: Path
    runs: list[PlannedRun]
    units: list[list[RunSpec]] = field(default_factory=list)
    """What the executor receives, in order: the runs to do as units of work (one run each, or
    an ensemble's members)."""
    dropped: list[str] = field(default_factory=list)
    """Checkpoints to drop before any run: those that only repeat their runs' records
    (:func:`harness.running.leftovers.leftover`), whose runs train afresh."""
    basis: str = ""
    """What the plan was read from (:func:`basis`): the driver checks it under the lock."""
    ensemble: int | str | None = None
    """``execution.ensemble`` the runs were grouped by."""
    history: History = field(default_factory=History)
    reference: ReferenceTimes = field(default_factory=ReferenceTimes)
    workers: int = 1
    """How many units of work (runs, or ensembles) execute at once."""

    @property
    def todo(self) -> list[PlannedRun]:
        """The runs this invocation executes (those of :attr:`units`)."""
        return [run for run in self.runs if run.state in (RESUME, NEW)]

    @property
    def skipped(self) -> int:
        return sum(run.state == DONE for run in self.runs)

    @property
    def resuming(self) -> int:
        return sum(run.state == RESUME for run in self.runs)

    @property
    def unavailable(self) -> list[PlannedRun]:
        """The runs left out for missing data (:meth:`leaving_out`)."""
        return [run for run in self.runs if run.state == UNAVAILABLE]

    def finished(self) -> set[str]:
        """The keys of the runs skipped as finished."""
        return {run.spec.key for run in self.runs if run.state == DONE}

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

    def leaving_out(self, missing: Mapping[str, Sequence[str]]) -> "SuitePlan":
        """The same plan with the runs to do that ``missing`` names (run key → the data files
        it lacks, :attr:`harness.running.preflight.DataCheck.by_run`) left out: recorded failed,
        ``data_missing``, instead of run. The data check answers per task options and data
        root, which an ensemble's runs share, so a unit is left out whole; a ValueError says
        which when ``missing`` would split one."""
        units = []
        for unit in self.units:
            lacking = [spec.key in missing for spec in unit]
            if all(lacking):
                continue
            if any(lacking):
                raise ValueError(f"{unit[0].label}: part of an ensemble lacks data; a unit of "
                                 f"work is left out whole or not at all")
            units.append(unit)
        runs = [dataclasses.replace(run, state=UNAVAILABLE, resume_epoch=0, ensemble_size=1,
                                    missing=tuple(missing[run.spec.key]))
                if run.state in (RESUME, NEW) and run.spec.key in missing else run
                for run in self.runs]
        return dataclasses.replace(self, runs=runs, units=units)


def basis(records: Sequence[RunRecord], checkpoint_dir: Path) -> str:
    """A digest of what a plan is read from: the folder's records and its checkpoints' names,
    sizes and modification times. Equal when nothing was written there in between."""
    listing = []
    if checkpoint_dir.is_dir() and not checkpoint_dir.is_symlink():
        for entry in os.scandir(checkpoint_dir):
            status = entry.stat(follow_symlinks=False)
            listing.append((entry.name, status.st_size, status.st_mtime_ns))
    text = json.dumps([records, sorted(listing)], sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def plan_suite(runs: list[RunSpec], out_dir: str | Path, force: bool = False,
               ensemble: int | str | None = None, workers: int = 1,
               reference: ReferenceTimes | None = None) -> SuitePlan:
    """Where each run of ``runs`` stands in ``out_dir`` (with ``force``, none is done; a run
    resumes from its checkpoint unless that only repeats its record: that checkpoint is
    dropped and the run trains afresh); the runs to do grouped into units of work by
    ``ensemble`` (``execution.ensemble``; a member resumes from its ensemble's checkpoint).
    ``workers`` units execute at once; ``reference`` (the shipped timings,
    :func:`~harness.running.reference.shipped_reference`) estimates what earlier results do not.
    Reads the results file and the checkpoints; writes nothing (a checkpoint that cannot be used
    is planned as starting afresh and left where it is: the run, holding the folder's lock, sets
    it aside)."""
    out_dir = Path(out_dir)
    records = read_records(out_dir) if out_dir.is_dir() else []
    done = set() if force else finished_keys(records)
    by_key = {record["key"]: record for record in standing(records)}
    checkpoints = Checkpoints(out_dir / CHECKPOINT_DIR)
    work = grouping.units([spec for spec in runs if spec.key not in done], ensemble)
    resumes, sizes, dropped = {}, {}, []  # epochs each run to do resumes from, its unit's size
    for unit in work:
        sizes.update((spec.key, len(unit)) for spec in unit)
        key = checkpoint_key(unit)
        saved = (checkpoints.read(key, unit, set_aside=False) if checkpoints.path(key).is_file()
                 else None)
        if saved is not None and leftover(saved, unit, by_key):
            saved = None  # the driver drops it: the runs start afresh
            dropped.append(key)
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
    return SuitePlan(out_dir, planned, work, dropped, basis(records, checkpoints.directory),
                     ensemble, History(records), reference or ReferenceTimes(), max(1, workers))


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
