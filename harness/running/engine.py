"""One path for executing a unit of training — one run alone or an ensemble's members — into
one result record per run, whatever happens.

The path (:func:`execute`) owns what every run gets the same way: the time limit (an alarm
from the start, and a deadline checked between iterations), the checkpoint after every epoch
and the resumption from it, the observer events, the epochs (:mod:`harness.running.epochs`),
the lr restarts, the record and its outcome (a failure is a value: recorded with its reason,
what finished kept). A :class:`Trainer` owns what differs: how its model is built, what its
state is, how it trains one epoch and evaluates, and which of its runs have failed.
"""
from __future__ import annotations

from time import perf_counter
from typing import Any, Iterator, Protocol, Sequence

import torch

from harness.record import EpochRecord, RunRecord
from harness.registry import Registry
from harness.running.checkpoints import CheckpointWriteError, Checkpoints
from harness.running.deadline import Alarm
from harness.running.epochs import Trained, epoch_record, evaluates, untrained_record
from harness.running.failures import TimeLimitExceeded, failure_kind
from harness.running.observers import Notify, Observers
from harness.running.precision import in_precision
from harness.running.records import finish, mark_failed, new_record, restore_failure
from harness.solvers.backends import SolverBackend
from harness.suites.runspec import RunSpec


class Trainer(Protocol):
    """A model training the runs ``specs`` (the same but for the seed), one record each."""

    specs: Sequence[RunSpec]
    checkpoint: str
    """The name of its checkpoint (a run's key; an ensemble's id)."""
    placements: Sequence[dict[str, Any] | None]
    """Each run's ``{id, size, index}`` in its ensemble (None alone)."""
    sizes: Sequence[dict[str, Any]]
    """Each run's ``params`` and ``widths``, once its model is built."""
    failures: dict[int, BaseException]
    """The runs that failed (by index), each with the first error that stopped it."""
    backend: SolverBackend

    def fail(self, index: int, error: BaseException) -> None:
        """Run ``index`` fails with ``error`` (unless it has failed already); it trains no more."""

    def prepare(self) -> None:
        """What comes before any event: raises to give the unit back, nothing recorded."""

    def build(self) -> None:
        """Make the model, optimizer and data (the run's build failing fails its runs)."""

    def resume(self, saved: dict[str, Any]) -> str | None:
        """Load a checkpoint's ``model`` and ``optimizer``; when they do not fit, say why (the
        trainer is then as built afresh)."""

    def state(self) -> dict[str, Any]:
        """The ``model`` and ``optimizer`` state to checkpoint."""

    def restart(self, lr: float) -> None:
        """A fresh optimizer (its state too) at ``lr``, for every run: ``lr_restarts``."""

    def train_epoch(self, epoch: int, deadline: float | None) -> list[Trained | None]:
        """Train one epoch: each run's :class:`Trained`, None for runs that have failed."""

    def evaluate(self, epoch: int) -> list[dict[str, Any]]:
        """Each run's evaluation (:func:`~harness.running.epochs.evaluation`) and the task's
        measurements ({} for runs that have failed)."""

    def unfit(self, error: Exception, trained: bool) -> Exception | None:
        """An error to raise instead of failing the runs with ``error`` (the unit is given
        back: an ensemble too large for the device before any epoch ``trained``), or None."""


def execute(trainer: Trainer, registry: Registry, device: torch.device,
            notify: Notify | None = None,
            checkpoints: Checkpoints | None = None) -> list[RunRecord]:
    """Train and evaluate the trainer's runs; whatever happens, return one record per run, in
    order (made and trained in their precision, :mod:`harness.running.precision`).

    With ``checkpoints``, the unit saves its state after every epoch under
    ``trainer.checkpoint`` and, when a checkpoint of it exists, continues from there (the
    records say ``resumed_from_epoch``; a run that had failed stays failed). The checkpoint
    stays when the unit ends: whoever stores the records discards it once they are durable.
    A checkpoint that cannot be saved raises :class:`CheckpointWriteError` (no record).
    """
    with in_precision(trainer.specs[0].precision):
        return _execute(trainer, registry, device, notify or Observers(registry), checkpoints)


def _execute(trainer: Trainer, registry: Registry, device: torch.device, notify: Notify,
             checkpoints: Checkpoints | None) -> list[RunRecord]:
    specs, spec = trainer.specs, trainer.specs[0]
    records = [new_record(member, registry, device, trainer.backend, placement)
               for member, placement in zip(specs, trainer.placements)]
    start, earlier = perf_counter(), 0.0
    restored: dict[int, dict[str, Any]] = {}
    message = f"time limit of {spec.time_limit_s} s reached"
    stopped: TimeLimitExceeded | None = None
    try:
        with Alarm(spec.time_limit_s, message):  # a task's data or build may hang too
            trainer.prepare()
    except TimeLimitExceeded as error:  # the runs fail together
        stopped = error
    for member, record in zip(specs, records):  # the run's place: a worker pool tracks it
        notify("run_started", member, **({"ensemble": record["ensemble"]}
                                         if "ensemble" in record else {}))
    try:
        if stopped:
            raise stopped
        with Alarm(spec.time_limit_s - (perf_counter() - start) if spec.time_limit_s else None,
                   message):
            try:
                trainer.build()
            finally:  # the model's size is known even when its data are not
                for record, size in zip(records, trainer.sizes):
                    record.update(size)
            saved = checkpoints.load(trainer.checkpoint, specs) if checkpoints else None
            misfit = trainer.resume(saved) if saved else None
            if misfit:
                checkpoints.reject(trainer.checkpoint, misfit)  # afresh, as if never run
            elif saved:
                restored = _resumed(trainer, saved, records)
                earlier = saved["elapsed_s"]
        deadline = start - earlier + spec.time_limit_s if spec.time_limit_s else None
        limit = Alarm(None if deadline is None else deadline - perf_counter(), message)
        with limit:  # stops the unit wherever it is, even inside a solve
            for epochs in _epochs(trainer, 1 + max(len(r["epochs"]) for r in records), deadline):
                with limit.held():  # not while a checkpoint or an event is half-written
                    for record, epoch in zip(records, epochs):
                        if epoch is not None:
                            record["epochs"].append(epoch)
                    if checkpoints:
                        checkpoints.save(trainer.checkpoint, _state(
                            trainer, records, restored, earlier + perf_counter() - start))
                    for member, epoch in zip(specs, epochs):
                        if epoch is not None:
                            notify("epoch_finished", member, epoch=epoch)
    except CheckpointWriteError:  # the storage failed, not the runs: the command stops
        raise
    except Exception as error:  # a unit that blows up is a result, not a crash
        given_back = trainer.unfit(error, any(record["epochs"] for record in records))
        if given_back is not None:
            raise given_back from error
        for index in range(len(specs)):  # every run still training fails with it
            trainer.fail(index, error)
    elapsed = earlier + perf_counter() - start
    for index, (member, record) in enumerate(zip(specs, records)):
        if index in restored:
            restore_failure(record, restored[index])
        elif index in trainer.failures:
            mark_failed(record, trainer.failures[index])
        finish(record, elapsed)
        notify("run_finished", member, record=record)
    return records


def _epochs(trainer: Trainer, first: int,
            deadline: float | None) -> Iterator[list[EpochRecord | None]]:
    """From epoch ``first`` on, each epoch's records (None for a run that has failed); with
    ``epochs: 0``, the untrained model's, numbered 0 (resumed: already there)."""
    spec = trainer.specs[0]
    numbers = [0] if spec.epochs == 0 and first == 1 else range(first, spec.epochs + 1)
    for epoch in numbers:
        if len(trainer.failures) == len(trainer.specs):
            return
        if epoch == 0:
            done: list[EpochRecord | None] = [untrained_record() for _ in trainer.specs]
        else:
            if epoch in spec.lr_restarts:
                trainer.restart(spec.lr_restarts[epoch])
            done = [None if trained is None else epoch_record(trained, spec)
                    for trained in trainer.train_epoch(epoch, deadline)]
            if len(trainer.failures) == len(trainer.specs):
                return
        if evaluates(spec, epoch):
            for record, results in zip(done, trainer.evaluate(epoch)):
                if record is not None:
                    record.update(results)
        yield [None if index in trainer.failures else record
               for index, record in enumerate(done)]


def _resumed(trainer: Trainer, saved: dict[str, Any],
             records: list[RunRecord]) -> dict[int, dict[str, Any]]:
    """Each run's epochs from the checkpoint; runs that had failed stay failed. Returns their
    failures as recorded, by run."""
    several = len(records) > 1
    failed = {int(index): failure for index, failure in saved.get("failed", {}).items()}
    for index, (record, epochs) in enumerate(zip(records, saved["epochs"] if several
                                                 else [saved["epochs"]])):
        record.update(epochs=epochs, resumed_from_epoch=len(epochs))
        if index in failed:
            trainer.fail(index, RuntimeError(failed[index]["error"]))
    return failed


def _state(trainer: Trainer, records: list[RunRecord], restored: dict[int, dict[str, Any]],
           elapsed_s: float) -> dict[str, Any]:
    """What a checkpoint holds: the trainer's state, the epochs and the time so far; an
    ensemble's, each member's epochs and each failed member's failure as its record says it."""
    state = {**trainer.state(), "elapsed_s": elapsed_s}
    if len(records) == 1:
        return {**state, "epochs": records[0]["epochs"]}
    failed = {str(index): restored.get(index) or {"error": f"{type(error).__name__}: {error}",
                                                  "failure_kind": failure_kind(error)}
              for index, error in trainer.failures.items()}
    return {**state, "epochs": [record["epochs"] for record in records], "failed": failed}
