"""Checkpoints left over by runs already recorded, told apart from those a run resumes from.

The driver stores a run's record, then drops its checkpoint; killed between the two, it leaves
a checkpoint whose every epoch the run's record already holds. A run to do must not resume from
that (with ``--force`` it would "finish" without training), but must resume from any other: the
checkpoint of a ``--force`` rerun that was interrupted, of a run whose worker died. The planner
decides with :func:`leftover` (:attr:`harness.running.plan.SuitePlan.dropped`); the driver drops
what the plan says, so ``--dry-run`` announces what the run does.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from harness.record import RunRecord
from harness.running.ensembles import ensemble_id
from harness.suites.runspec import RunSpec

#: The failure after which the driver keeps a run's checkpoint for a rerun to resume.
KEPT_AFTER = "worker_died"


def checkpoint_key(unit: Sequence[RunSpec]) -> str:
    """The name of the checkpoint a unit of work trains into: its run's key, or its
    ensemble's id."""
    return ensemble_id(unit) if len(unit) > 1 else unit[0].key


def may_be_leftover(unit: Sequence[RunSpec], standing: Mapping[str, RunRecord]) -> bool:
    """Whether every run of ``unit`` has a standing record after which the driver drops the
    checkpoint (else its checkpoint is one to resume from, without reading it)."""
    return all(spec.key in standing and standing[spec.key].get("failure_kind") != KEPT_AFTER
               for spec in unit)


def leftover(saved: Mapping[str, Any], unit: Sequence[RunSpec],
             standing: Mapping[str, RunRecord]) -> bool:
    """Whether checkpoint ``saved`` of ``unit`` holds exactly the epochs of its runs' standing
    records (:func:`may_be_leftover` records; an ensemble's, member by member): left behind
    by a driver killed after storing them. Epochs carry their times, so another attempt's never
    match."""
    if not may_be_leftover(unit, standing):
        return False
    recorded = [standing[spec.key].get("epochs") for spec in unit]
    return _text(saved.get("epochs")) == _text(recorded[0] if len(unit) == 1 else recorded)


def _text(epochs: Any) -> str:
    """Epochs as the results file holds them (NaN equal to NaN, tuples to lists)."""
    return json.dumps(epochs, sort_keys=True, default=str)
