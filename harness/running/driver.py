"""The driver: executes a suite's plan (:mod:`harness.running.plan`: the runs a results
directory still needs, as units of work) on an executor, and writes each record as it comes
back (then, and only then, drops the run's checkpoint)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.registry import Registry
from harness.running.checkpoints import CHECKPOINT_DIR, Checkpoints
from harness.running.environment import resolve_device
from harness.running.execution import Work
from harness.running.observers import Observers
from harness.running.plan import PlanOutdated, SuitePlan, basis, plan_suite
from harness.running.preflight import unavailable_record
from harness.running.runner import RunConfigError, check_model, solver_backend, widths_for
from harness.running.safe_files import Folder
from harness.running.store import ResultStore, StoreWriteError
from harness.suites.runspec import RunSpec


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
              ensemble: int | str | None = None, settings: Any = None,
              files: Mapping[str, bytes] | None = None) -> SuiteOutcome:
    """Plan ``runs`` in ``out_dir`` (:func:`harness.running.plan.plan_suite`: every run not
    already finished ``ok`` there, all of them with ``force``, grouped by ``ensemble``) and
    execute that plan (:func:`run_plan`)."""
    return run_plan(plan_suite(runs, out_dir, force, ensemble), registry, device, executor,
                    workers, address, settings, files)


def run_plan(plan: SuitePlan, registry: Registry, device: Any = "auto",
             executor: str = "inline", workers: int | None = None, address: str | None = None,
             settings: Any = None, files: Mapping[str, bytes] | None = None) -> SuiteOutcome:
    """Execute ``plan`` (:mod:`harness.running.plan`) on the named executor, appending one
    record per run to ``results.jsonl`` of its folder as soon as the run ends: its units of
    work, as they are, after recording its runs left out for missing data (failed,
    ``data_missing``: the report shows them and a rerun tries them again). Runs checkpoint into
    ``checkpoints`` there and continue from there, as the plan says.

    The directory is locked for the whole invocation (:class:`harness.running.store.StoreBusy`
    when another driver holds it; :class:`harness.running.plan.PlanOutdated` when another wrote
    there since the plan was read, before this one writes anything). Then the checkpoints the
    plan drops go (those of finished runs, and those that only repeat their runs' records). A
    run's checkpoint is discarded only after its record is durable, and kept when its worker
    died (a rerun resumes it); a record that cannot be written raises
    :class:`harness.running.store.StoreWriteError` saying whether its run's checkpoint is
    there, and a checkpoint that cannot be saved raises
    :class:`harness.running.checkpoints.CheckpointWriteError` (nothing recorded for that run).

    ``files`` (name → content, such as the suite's ``claims.yaml``) are written into the folder
    once it is locked, before any run (never through a link there).

    An ensemble (a unit of several runs, ``execution.ensemble``) is one unit of work for the
    executor; its checkpoint goes once its last member's record is durable, unless its worker
    died (then a rerun resumes it). ``settings`` are the executor's own (its ``Settings``, from
    the suite's ``execution.<executor>``; None: their defaults).
    """
    check_runs([run.spec for run in plan.runs], registry)
    out_dir = plan.out_dir
    checkpoint_dir = out_dir / CHECKPOINT_DIR
    if os.path.lexists(checkpoint_dir) and (checkpoint_dir.is_symlink()
                                             or not checkpoint_dir.is_dir()):
        raise RunConfigError(f"{checkpoint_dir}: is not a directory; valid: a folder the "
                             f"harness writes run checkpoints into (move this aside)")
    checkpoints = Checkpoints(checkpoint_dir)
    with ResultStore(out_dir) as store:
        if basis(store.records(), checkpoint_dir) != plan.basis:
            raise PlanOutdated(f"{out_dir}: another harness run wrote here since this one was "
                               f"planned; run the command again to plan from what is there now")
        for name, content in (files or {}).items():
            try:
                Folder(out_dir).write(name, content)
            except OSError as error:
                raise StoreWriteError(f"{out_dir / name}: cannot be written: "
                                      f"{error.strerror or error}") from None
        checkpoints.sweep(plan.finished())
        for key in plan.dropped:
            checkpoints.discard(key)
        outcome = SuiteOutcome(skipped=plan.skipped)
        for run in plan.unavailable:
            record = unavailable_record(run.spec, registry, resolve_device(device),
                                        list(run.missing))
            _append(store, record, checkpoints)
            outcome.unavailable.append(record)
        if not plan.units:
            return outcome
        runner = registry.executors[executor](device, workers, address, settings)
        if plan.ensemble not in (None, 1) and not runner.runs_ensembles:
            able = sorted(name for name, kind in registry.executors.items() if kind.runs_ensembles)
            raise RunConfigError(f"execution.ensemble: the {executor} executor runs one run per "
                                 f"unit of work; ensembles run with executor: "
                                 f"{', '.join(able)}")
        work = Work(plan.units, out_dir, checkpoint_dir, registry, Observers(registry))
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
