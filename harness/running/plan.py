"""What a suite invocation will do, read from its results directory before anything runs: the
runs finished there (skipped), those that resume from a checkpoint and at which epoch, those
that start afresh, and how long each should take from earlier results of the same
configuration. The progress display and ``harness run --dry-run`` share it; it only reads."""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from harness.running import grouping
from harness.running.checkpoints import Checkpoints
from harness.running.driver import CHECKPOINT_DIR
from harness.running.leftovers import checkpoint_key, leftover
from harness.running.store import finished_keys, read_records, standing
from harness.suites.runspec import RunSpec

#: Where a run stands: finished ``ok`` in the results directory, resuming from its
#: checkpoint, or starting afresh.
DONE, RESUME, NEW = "done", "resume", "new"


def configuration(config: dict[str, Any]) -> str:
    """A run's configuration less its seed, as text: runs that differ only in their seed take
    about the same time per epoch."""
    return json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True,
                      default=str)


def units(spec: RunSpec) -> int:
    """The epochs a run trains (a run of 0 epochs evaluates once: one unit of work)."""
    return max(spec.epochs, 1)


class History:
    """Seconds per epoch of runs that ended, by configuration (:func:`configuration`):
    a record's whole wall time (data, build and evaluation included) over its epochs."""

    def __init__(self, records: Iterable[dict[str, Any]] = ()) -> None:
        self.seconds: dict[str, list[float]] = {}
        for record in records:
            self.add(record)

    def add(self, record: dict[str, Any]) -> None:
        epochs, wall = record.get("epochs") or [], record.get("wall_time_s")
        if epochs and isinstance(wall, (int, float)) and isinstance(record.get("config"), dict):
            self.seconds.setdefault(configuration(record["config"]), []).append(
                wall / len(epochs))

    def copy(self) -> "History":
        copied = History()
        copied.seconds = {key: list(times) for key, times in self.seconds.items()}
        return copied

    def per_epoch(self, spec: RunSpec) -> tuple[float, int] | None:
        """The median seconds per epoch of earlier runs like ``spec``, and how many there
        were; None without any."""
        times = self.seconds.get(configuration(spec.config()))
        return (statistics.median(times), len(times)) if times else None


@dataclass(frozen=True)
class PlannedRun:
    """One run of the suite and where it stands."""

    spec: RunSpec
    state: str
    resume_epoch: int = 0
    """Epochs its checkpoint holds (``resume``); it continues with the next one."""


@dataclass
class SuitePlan:
    """Every run of a suite invocation, in suite order, and the timings known before it."""

    out_dir: Path
    runs: list[PlannedRun]
    history: History = field(default_factory=History)

    @property
    def todo(self) -> list[PlannedRun]:
        return [run for run in self.runs if run.state != DONE]

    @property
    def skipped(self) -> int:
        return sum(run.state == DONE for run in self.runs)

    @property
    def resuming(self) -> int:
        return sum(run.state == RESUME for run in self.runs)

    def estimate_s(self, run: PlannedRun) -> float | None:
        """Seconds the run still needs, from earlier runs of its configuration; None without."""
        known = self.history.per_epoch(run.spec)
        return None if known is None else known[0] * (units(run.spec) - run.resume_epoch)

    def total_estimate_s(self) -> tuple[float, int]:
        """The estimated seconds of the runs still to do, and how many of them have no
        estimate (so the total is a lower bound when that is not 0)."""
        estimates = [self.estimate_s(run) for run in self.todo]
        return sum(e for e in estimates if e is not None), sum(e is None for e in estimates)


def plan_suite(runs: list[RunSpec], out_dir: str | Path, force: bool = False,
               ensemble: int | str | None = None) -> SuitePlan:
    """Where each run of ``runs`` stands in ``out_dir`` (with ``force``, none is done; a run
    resumes from its checkpoint unless that only repeats its record, as in the driver); with
    ``ensemble`` (``execution.ensemble``), the runs to do are grouped as the executor will
    group them, and a member resumes from its ensemble's checkpoint. Reads the results file and
    the checkpoints; writes nothing (a checkpoint that cannot be read is set aside, as the run
    itself would)."""
    out_dir = Path(out_dir)
    records = read_records(out_dir) if out_dir.is_dir() else []
    done = set() if force else finished_keys(records)
    by_key = {record["key"]: record for record in standing(records)}
    checkpoints = Checkpoints(out_dir / CHECKPOINT_DIR)
    resumes = {}  # epochs each run to do resumes from, by key
    for unit in grouping.units([spec for spec in runs if spec.key not in done], ensemble):
        key = checkpoint_key(unit)
        saved = checkpoints.read(key) if checkpoints.path(key).is_file() else None
        if saved is not None and leftover(saved, unit, by_key):
            saved = None  # the driver drops it: the runs start afresh
        epochs = saved["epochs"] if saved else []
        if len(unit) == 1:
            resumes[unit[0].key] = len(epochs)
            continue
        fits = len(epochs) == len(unit) and all(isinstance(e, list) for e in epochs)
        for index, spec in enumerate(unit):  # an ensemble's holds each member's epochs
            resumes[spec.key] = len(epochs[index]) if fits else 0
    planned = []
    for spec in runs:
        if spec.key in done:
            planned.append(PlannedRun(spec, DONE))
        elif resumes[spec.key]:
            planned.append(PlannedRun(spec, RESUME, resumes[spec.key]))
        else:
            planned.append(PlannedRun(spec, NEW))
    return SuitePlan(out_dir, planned, History(records))


def duration(seconds: float) -> str:
    """``45s``, ``12m 5s``, ``3h 20m``, ``2d 4h``: two units at most."""
    seconds = max(0, round(seconds))
    for size, unit, smaller, small_unit in ((86400, "d", 3600, "h"), (3600, "h", 60, "m"),
                                            (60, "m", 1, "s")):
        if seconds >= size:
            rest = (seconds % size) // smaller
            return f"{seconds // size}{unit}" + (f" {rest}{small_unit}" if rest else "")
    return f"{seconds}s"
