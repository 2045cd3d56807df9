"""The driver: picks the runs a results directory still needs, hands them to an executor, and
writes each record as it comes back (then, and only then, drops the run's checkpoint)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.registry import Registry
from harness.running.checkpoints import Checkpoints
from harness.running.environment import resolve_device
from harness.running.execution import Work
from harness.running.grouping import units
from harness.running.leftovers import checkpoint_key, leftover, may_be_leftover
from harness.running.observers import Observers
from harness.running.preflight import unavailable_record
from harness.running.runner import RunConfigError, check_model, solver_backend, widths_for
from harness.running.safe_files import Folder
from harness.running.store import ResultStore, StoreWriteError, finished_keys, standing
from harness.suites.runspec import RunSpec

CHECKPOINT_DIR = "checkpoints"


@dataclass
class SuiteOutcome:
    """What a suite invocation did: records written, runs skipped as already finished."""

    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    unavailable: list[dict[str, Any]] = field(default_factory=list)
    """Records of the runs left out for missing data (failed, ``data_missing``): not run."""

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] != "ok"]


def check_runs(runs: Iterable[RunSpec], registry: Registry) -> None:
    """Find set-up problems of every run before any training starts."""
    problems = []
    for spec in runs:
        try:
            check_model(spec, registry, widths_for(spec, registry))
            solver_backend(spec, registry).check(spec.solver)
        except RunConfigError as error:
            problems.append(str(error))
        except (TypeError, ValueError) as error:
            problems.append(f"{spec.label}: {error}")
    if problems:
        raise RunConfigError("\n".join(problems))


def run_suite(runs: list[RunSpec], registry: Registry, out_dir: str | Path,
              device: Any = "auto", force: bool = False, executor: str = "inline",
              workers: int | None = None, address: str | None = None,
              unavailable: dict[str, list[str]] | None = None,
              ensemble: int | str | None = None, settings: Any = None,
              files: Mapping[str, bytes] | None = None) -> SuiteOutcome:
    """Run every spec not already finished ``ok`` in ``out_dir`` (all of them with ``force``)
    on the named executor, appending one record per run to ``out_dir/results.jsonl`` as soon
    as it ends. Runs checkpoint into ``out_dir/checkpoints`` and continue from there: a
    ``force`` rerun that was interrupted continues too (a checkpoint that only repeats a run's
    record, left by a driver killed after storing it, is dropped: that run trains afresh).

    The directory is locked for the whole invocation (:class:`harness.running.store.StoreBusy` when
    another driver holds it). A run's checkpoint is discarded only after its record is durable,
    and kept when its worker died (a rerun resumes it); a record that cannot be written raises
    :class:`harness.running.store.StoreWriteError` saying whether its run's checkpoint is
    there, and a checkpoint that cannot be saved raises
    :class:`harness.running.checkpoints.CheckpointWriteError` (nothing recorded for that run).

    ``files`` (name → content, such as the suite's ``claims.yaml``) are written into
    ``out_dir`` once it is locked, before any run (never through a link there).

    ``unavailable`` (run key → the data files it lacks, from
    :func:`harness.running.preflight.check_data`) names runs not to execute: each gets a failed
    ``data_missing`` record instead, so the report shows them and a rerun tries them again.

    With ``ensemble`` (``execution.ensemble``: a size or ``auto``), runs that differ only in
    seed train together (:mod:`harness.running.ensembles`), each ensemble one unit of work for
    the executor; an ensemble's checkpoint goes once its last member's record is durable,
    unless its worker died (then a rerun resumes it).

    ``settings`` are the executor's own (its ``Settings``, from the suite's
    ``execution.<executor>``; None: their defaults).
    """
    check_runs(runs, registry)
    checkpoint_dir = Path(out_dir) / CHECKPOINT_DIR
    if os.path.lexists(checkpoint_dir) and (checkpoint_dir.is_symlink()
                                             or not checkpoint_dir.is_dir()):
        raise RunConfigError(f"{checkpoint_dir}: is not a directory; valid: a folder the "
                             f"harness writes run checkpoints into (move this aside)")
    checkpoints = Checkpoints(checkpoint_dir)
    with ResultStore(out_dir) as store:
        for name, content in (files or {}).items():
            try:
                Folder(Path(out_dir)).write(name, content)
            except OSError as error:
                raise StoreWriteError(f"{Path(out_dir) / name}: cannot be written: "
                                      f"{error.strerror or error}") from None
        records = store.records()
        done = set() if force else finished_keys(records)
        checkpoints.sweep(done)
        todo = [spec for spec in runs if spec.key not in done]
        _drop_leftovers(checkpoints, todo, records, ensemble)
        outcome = SuiteOutcome(skipped=len(runs) - len(todo))
        left_out = [spec for spec in todo if spec.key in (unavailable or {})]
        for spec in left_out:
            record = unavailable_record(spec, registry, resolve_device(device),
                                        unavailable[spec.key])
            _append(store, record, checkpoints)
            outcome.unavailable.append(record)
        todo = [spec for spec in todo if spec.key not in (unavailable or {})]
        if not todo:
            return outcome
        runner = registry.executors[executor](device, workers, address, settings)
        if ensemble not in (None, 1) and not runner.runs_ensembles:
            able = sorted(name for name, kind in registry.executors.items() if kind.runs_ensembles)
            raise RunConfigError(f"execution.ensemble: the {executor} executor runs one run per "
                                 f"unit of work; ensembles run with executor: "
                                 f"{', '.join(able)}")
        work = Work(units(todo, ensemble), Path(out_dir), checkpoint_dir, registry,
                    Observers(registry))
        died: set[str] = set()  # ensembles a member of which died with its worker
        for record in runner.run(work):
            _append(store, record, checkpoints)
            died_here = record.get("failure_kind") == "worker_died"
            if not died_here:
                checkpoints.discard(record["key"])
            member = record.get("ensemble")
            if member and died_here:
                died.add(member["id"])
            if member and member["index"] == member["size"] - 1 and member["id"] not in died:
                checkpoints.discard(member["id"])
            outcome.records.append(record)
    return outcome


def _append(store: ResultStore, record: dict[str, Any], checkpoints: Checkpoints) -> None:
    """Store a record; when it cannot be written, say what of its run is still there."""
    try:
        store.append(record)
    except StoreWriteError as error:
        member = record.get("ensemble")
        path = checkpoints.path(member["id"] if member else record["key"])
        kept = (f"its checkpoint is kept ({path}): a rerun resumes it there"
                if os.path.lexists(path) else "it has no checkpoint: a rerun runs it again")
        raise StoreWriteError(f"{error}; {kept}") from None


def _drop_leftovers(checkpoints: Checkpoints, todo: list[RunSpec], records: list[dict[str, Any]],
                    ensemble: int | str | None) -> None:
    """Drop the checkpoints of runs to do that only repeat their records
    (:func:`harness.running.leftovers.leftover`): those runs train afresh (``--force``); every
    other checkpoint is resumed from, as the plan says."""
    by_key = {record["key"]: record for record in standing(records)}
    for unit in units(todo, ensemble):
        key = checkpoint_key(unit)
        if may_be_leftover(unit, by_key) and checkpoints.path(key).is_file():
            saved = checkpoints.read(key, unit)
            if saved is not None and leftover(saved, unit, by_key):
                checkpoints.discard(key)
