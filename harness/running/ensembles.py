"""Training runs that differ only in seed as members of one ensemble, each into its own record.

The members' models are built exactly as their solo runs build them (each seeded by its run),
then stacked into one model (:func:`harness.toolkit.ensemble.stack_models`); each member reads
its own data (seeded as alone), in its own order, and its rows of every batch are its own. One
optimizer holds the stacked parameters: Adam, AdamW and SGD are elementwise, so each member's
slice moves as its solo optimizer would move it; gradient clipping is per member. Each member
has its own loss, metrics, NFE and failure: a member whose solve fails or whose loss is not
finite is recorded failed (as its solo run would be) and masked out, and the others go on.
Times in the records are the ensemble's (``ensemble: {id, size, index}`` says so). The epochs
themselves: :mod:`harness.running.member_epochs`.
"""
from __future__ import annotations

import hashlib
import json
from time import perf_counter
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from harness.contract import TaskData
from harness.record import RunRecord
from harness.registry import Registry
from harness.running.checkpoints import CheckpointWriteError, Checkpoints
from harness.running.configs import without_seed
from harness.running.deadline import Alarm
from harness.running.failures import TimeLimitExceeded, failure_kind
from harness.running.member_epochs import train_members
from harness.running.observers import Notify, Observers
from harness.running.precision import in_precision
from harness.running.records import finish, mark_failed, new_record, restore_failure
from harness.running.runner import (BuiltRun, build_run, count_parameters, solver_backend,
                                    task_options)
from harness.suites.runspec import OPTIMIZERS, RunSpec
from harness.toolkit.batches import TensorBatches
from harness.toolkit.ensemble import Members, NotStackable, stack_models


class TooLarge(RuntimeError):
    """The ensemble ran out of device memory before any member finished an epoch: the same
    runs in smaller ensembles may fit (nothing was recorded, no run_finished was sent)."""


def out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is the device (or the host) running out of memory."""
    return isinstance(error, (torch.OutOfMemoryError, MemoryError))


def ensemble_id(specs: Sequence[RunSpec]) -> str:
    """The ensemble's identity (its checkpoint's name): a hash of its members' keys, in order."""
    return hashlib.sha256(" ".join(spec.key for spec in specs).encode()).hexdigest()[:16]


def seedless(spec: RunSpec) -> str:
    """What runs of one ensemble share: everything of the run but its seed."""
    return json.dumps([without_seed(spec.config()), spec.versions, spec.data_root, spec.suite],
                      sort_keys=True, default=str)


def refusal(spec: RunSpec, registry: Registry) -> str | None:
    """Why runs like ``spec`` cannot train as an ensemble (checks that need no model), or None."""
    task = registry.tasks[spec.task]
    if not task.joins_ensembles:
        return f"task {task.name!r} does not join ensembles"
    if spec.baseline:
        return f"{spec.model!r} is a baseline: only a family's models are stacked"
    if spec.lr_restarts:
        return "lr_restarts (a fresh optimizer at given epochs) is not done for ensembles yet"
    return None


def execute_ensemble(specs: Sequence[RunSpec], registry: Registry, device: torch.device,
                     notify: Notify | None = None,
                     checkpoints: Checkpoints | None = None) -> list[RunRecord]:
    """Train and evaluate the runs ``specs`` (the same but for the seed) together; whatever
    happens, return one record per run, in order. Raises :class:`NotStackable` before anything
    trains (and before any event) when their models cannot be stacked: run them alone then;
    and :class:`TooLarge` when they run out of memory before their first epoch ends: run them
    in smaller ensembles then (their ``run_started`` events were sent; nothing else was).

    With ``checkpoints``, the ensemble saves its state after every epoch under
    :func:`ensemble_id` and continues from there when run again (a checkpoint that cannot be
    saved raises :class:`CheckpointWriteError`, no record). The ensemble is made and trained in
    its runs' precision (:mod:`harness.running.precision`).
    """
    with in_precision(specs[0].precision):
        return _execute_ensemble(specs, registry, device, notify, checkpoints)


def _execute_ensemble(specs: Sequence[RunSpec], registry: Registry, device: torch.device,
                      notify: Notify | None, checkpoints: Checkpoints | None) -> list[RunRecord]:
    spec, size, identity = specs[0], len(specs), ensemble_id(specs)
    if len({seedless(member) for member in specs}) > 1:
        raise ValueError("the runs of an ensemble may differ only in their seed")
    reason = refusal(spec, registry)
    if reason:
        raise NotStackable(reason)
    notify = notify or Observers(registry)
    task = registry.tasks[spec.task]
    members = Members(size)
    records = [new_record(member, registry, device, solver_backend(member, registry),
                          {"id": identity, "size": size, "index": index})
               for index, member in enumerate(specs)]
    start = perf_counter()
    message = f"time limit of {spec.time_limit_s} s reached"
    stopped: TimeLimitExceeded | None = None
    try:
        with Alarm(spec.time_limit_s, message):  # a task's data or build may hang too
            builts, model = _build(specs, registry, device, members)
            data = [task.data(task_options(task, member), member.seed, member.data_root, device,
                              member.batch_size) for member in specs]
    except TimeLimitExceeded as error:  # alone, each would hang again: they fail together
        stopped = error
    except NotStackable:
        raise
    except Exception as error:  # alone, each run records what stopped it
        raise NotStackable(f"the models or data could not be made ({type(error).__name__}: "
                           f"{error})") from error
    if stopped is None:
        _check_same_batches(data)
        for record, built in zip(records, builts):
            record.update(params=count_parameters(built.model), widths=built.widths)
    for member, record in zip(specs, records):  # the member's place: a worker pool tracks it
        notify("run_started", member, ensemble=record["ensemble"])
    earlier, restored = 0.0, {}
    try:
        if stopped:
            raise stopped
        with Alarm(spec.time_limit_s - (perf_counter() - start) if spec.time_limit_s else None,
                   message):
            optimizer = OPTIMIZERS[spec.optimizer](model.parameters(), lr=spec.lr)
            saved = checkpoints.load(identity, specs) if checkpoints else None
            if saved and not _fits(model, optimizer, saved):
                checkpoints.reject(identity, "its state does not fit this ensemble")
                builts, model = _build(specs, registry, device, members)  # afresh
                optimizer = OPTIMIZERS[spec.optimizer](model.parameters(), lr=spec.lr)
                saved = None
            if saved:
                restored = _resume(saved, members, records)
                earlier = saved["elapsed_s"]
        deadline = start - earlier + spec.time_limit_s if spec.time_limit_s else None
        limit = Alarm(None if deadline is None else deadline - perf_counter(), message)
        first = 1 + max(len(record["epochs"]) for record in records)
        with limit:
            for epochs in train_members(specs, model, optimizer, members, task, data, device,
                                        first, deadline, builts):
                with limit.held():
                    for record, epoch in zip(records, epochs):
                        if epoch is not None:
                            record["epochs"].append(epoch)
                    if checkpoints:
                        checkpoints.save(identity, _state(model, optimizer, members, restored,
                                                          records,
                                                          earlier + perf_counter() - start))
                    for member, epoch in zip(specs, epochs):
                        if epoch is not None:
                            notify("epoch_finished", member, epoch=epoch)
    except CheckpointWriteError:  # the storage failed, not the members: the command stops
        raise
    except Exception as error:  # whatever stops the ensemble stops every member still alive
        if out_of_memory(error) and size > 1 and not any(r["epochs"] for r in records):
            raise TooLarge(f"{size} members ran out of device memory before their first epoch "
                           f"ended ({type(error).__name__}: {error})") from error
        for member in np.flatnonzero(members.alive):
            members.fail(int(member), error)
    elapsed = earlier + perf_counter() - start
    for index, (member, record) in enumerate(zip(specs, records)):
        if index in restored:
            restore_failure(record, restored[index])
        elif index in members.failures:
            mark_failed(record, members.failures[index])
        finish(record, elapsed)
        notify("run_finished", member, record=record)
    return records


def _check_same_batches(data: list[TaskData]) -> None:
    """NotStackable when the members' training or test data differ in their number of batches
    or samples (say, a seeded split that keeps a different number of windows): side by side,
    a member would lose batches or a batch would not split by member."""
    for split in ("train", "test", "validation"):
        sizes = {_batch_shape(getattr(member, split)) for member in data}
        if len(sizes) > 1:
            raise NotStackable(f"the members' {split} data differ in size "
                               f"({', '.join(sorted(map(str, sizes)))})")


def _batch_shape(batches: Any) -> tuple[int, int] | int | None:
    """(batches, samples) of :class:`TensorBatches`, the length of other sized iterables."""
    if isinstance(batches, TensorBatches):
        return len(batches), len(batches.x)
    return len(batches) if hasattr(batches, "__len__") else None


def _build(specs: Sequence[RunSpec], registry: Registry, device: torch.device,
           members: Members) -> tuple[list[BuiltRun], nn.Module]:
    """Each member's model as its solo run builds it, and their stack."""
    builts = [build_run(member, registry, device) for member in specs]
    return builts, stack_models([built.model for built in builts], members)


def _state(model: nn.Module, optimizer: torch.optim.Optimizer, members: Members,
           restored: dict[int, dict[str, Any]], records: list[RunRecord],
           elapsed_s: float) -> dict[str, Any]:
    """What a checkpoint of the ensemble holds: the stacked model and optimizer, each member's
    epochs, and each failed member's failure as its record will say it."""
    failed = {str(index): restored.get(index) or {"error": f"{type(error).__name__}: {error}",
                                                  "failure_kind": failure_kind(error)}
              for index, error in members.failures.items()}
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "epochs": [record["epochs"] for record in records], "failed": failed,
            "elapsed_s": elapsed_s}


def _fits(model: nn.Module, optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> bool:
    """Load a checkpoint's model and optimizer state (the rest was checked as it was read);
    False when they are not this ensemble's."""
    try:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
    except (RuntimeError, KeyError, ValueError, TypeError):
        return False
    return True


def _resume(saved: dict[str, Any], members: Members,
            records: list[RunRecord]) -> dict[int, dict[str, Any]]:
    """Each member's epochs from the checkpoint; members that had failed stay failed. Returns
    their failures, by member."""
    failed = {int(index): failure for index, failure in saved["failed"].items()}
    for index, (record, epochs) in enumerate(zip(records, saved["epochs"])):
        record.update(epochs=epochs, resumed_from_epoch=len(epochs))
        if index in failed:
            members.fail(index, RuntimeError(failed[index]["error"]))
    return failed
