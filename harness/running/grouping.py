"""Which runs train together: a suite's runs grouped into ensembles of runs that differ only in
seed (``execution: {ensemble: N}`` or ``auto``), and how one such unit of work executes."""
from __future__ import annotations

import logging
from typing import Iterator

import torch

from harness.record import RunRecord
from harness.registry import Registry
from harness.running.checkpoints import Checkpoints
from harness.running.ensembles import execute_ensemble, refusal, seedless
from harness.running.member_epochs import TooLarge
from harness.running.observers import Notify
from harness.running.runner import execute_run
from harness.suites.runspec import RunSpec
from harness.toolkit.ensemble import NotStackable

log = logging.getLogger("harness")

#: Members of an ``auto`` ensemble: every seed of a group, in ensembles of at most this many
#: (100: the paper's seeds of one point-cloud model, and what a CPU's memory holds easily).
#: An ensemble that does not fit the device's memory is halved until it does
#: (:func:`execute_unit`).
AUTO_SIZE = 100


def units(runs: list[RunSpec], ensemble: int | str | None) -> list[list[RunSpec]]:
    """The runs as units of work: with ``ensemble`` (a size, or ``auto``), runs that differ only
    in seed in groups of at most that size, in the order of their first run; else one each."""
    size = AUTO_SIZE if ensemble == "auto" else int(ensemble or 1)
    groups: dict[str, list[RunSpec]] = {}
    for spec in runs:
        groups.setdefault(seedless(spec) if size > 1 else spec.key, []).append(spec)
    return [group[start:start + size] for group in groups.values()
            for start in range(0, len(group), size)]


def execute_unit(unit: list[RunSpec], registry: Registry, device: torch.device, notify: Notify,
                 checkpoints: Checkpoints | None) -> Iterator[RunRecord]:
    """Execute one unit of work: an ensemble when it has several runs that can train as one
    (else each run alone, with a warning saying why; two ensembles of half the size each
    when it runs out of memory before its first epoch ends), or its one run."""
    if len(unit) > 1:
        try:
            reason = refusal(unit[0], registry)
            if reason is None:
                yield from execute_ensemble(unit, registry, device, notify, checkpoints)
                return
        except NotStackable as why:
            reason = str(why)
        except TooLarge as why:
            half = (len(unit) + 1) // 2
            log.warning("%s and %d more seeds: %s; as ensembles of %d and %d", unit[0].label,
                        len(unit) - 1, why, half, len(unit) - half)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            for part in (unit[:half], unit[half:]):
                yield from execute_unit(part, registry, device, notify, checkpoints)
            return
        log.warning("%s and %d more seeds run alone, not as an ensemble: %s", unit[0].label,
                    len(unit) - 1, reason)
    for spec in unit:
        yield execute_run(spec, registry, device, notify, checkpoints)
