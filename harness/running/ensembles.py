"""Training runs that differ only in seed as members of one ensemble, each into its own record:
which runs may (:func:`refusal`, :func:`seedless`), and :func:`execute_ensemble`, the
:class:`~harness.running.member_epochs.MemberTrainer` on the one unit-execution path
(:func:`harness.running.engine.execute`). Times in the records are the ensemble's
(``ensemble: {id, size, index}`` says so).
"""
from __future__ import annotations

import hashlib
import json
from typing import Sequence

import torch

from harness.record import RunRecord
from harness.registry import Registry
from harness.running.checkpoints import Checkpoints
from harness.running.configs import without_seed
from harness.running.engine import execute
from harness.running.member_epochs import MemberTrainer
from harness.running.observers import Notify
from harness.suites.runspec import RunSpec
from harness.toolkit.ensemble import NotStackable


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
    if spec.memory:
        return ("it measures memory, which is a run's own: a stacked ensemble's steps hold "
                "every member's tensors at once")
    return None


def execute_ensemble(specs: Sequence[RunSpec], registry: Registry, device: torch.device,
                     notify: Notify | None = None,
                     checkpoints: Checkpoints | None = None) -> list[RunRecord]:
    """Train and evaluate the runs ``specs`` (the same but for the seed) together; whatever
    happens, return one record per run, in order. Raises :class:`NotStackable` before anything
    trains (and before any event) when their models cannot be stacked: run them alone then;
    and :class:`~harness.running.member_epochs.TooLarge` when they run out of memory before their first epoch ends: run them
    in smaller ensembles then (their ``run_started`` events were sent; nothing else was).

    With ``checkpoints``, the ensemble saves its state after every epoch under
    :func:`ensemble_id` and continues from there when run again (a checkpoint that cannot be
    saved raises :class:`CheckpointWriteError`, no record). The ensemble is made and trained in
    its runs' precision (:mod:`harness.running.precision`).
    """
    if len({seedless(member) for member in specs}) > 1:
        raise ValueError("the runs of an ensemble may differ only in their seed")
    reason = refusal(specs[0], registry)
    if reason:
        raise NotStackable(reason)
    return execute(MemberTrainer(specs, registry, device, ensemble_id(specs)), registry, device,
                   notify, checkpoints)
