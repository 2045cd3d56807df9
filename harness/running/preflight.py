"""The pre-flight data check: before anything trains, every task says which of the files its
runs would read are missing (:meth:`harness.contract.Task.check_data`), so a suite missing data
fails within seconds instead of hours in, naming every missing file and the runs that need it.
With ``--skip-unavailable`` those runs are recorded as failed with failure kind
``data_missing`` and the reason, and the rest run."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch

from harness.contract import Task
from harness.data_root import DataNotFound
from harness.record import RunRecord
from harness.registry import Registry
from harness.running.records import left_out_record
from harness.running.runner import solver_backend
from harness.suites.runspec import RunSpec

log = logging.getLogger("harness")

#: Missing files listed per run in a record's error before the rest are counted.
SHOWN_FILES = 5


@dataclass
class MissingFile:
    """A file some runs need and that is not there."""

    path: str
    runs: list[RunSpec] = field(default_factory=list)

    @property
    def tasks(self) -> list[str]:
        return sorted({spec.task for spec in self.runs})


@dataclass
class DataCheck:
    """What the pre-flight check found for a set of runs."""

    missing: list[MissingFile]
    by_run: dict[str, list[str]]
    """Run key → the files it needs that are missing (only runs missing some)."""
    unchecked: list[str]
    """Tasks that do not implement ``check_data`` (checked only when their runs start)."""

    def unavailable(self, runs: Iterable[RunSpec]) -> list[RunSpec]:
        return [spec for spec in runs if spec.key in self.by_run]

    def report(self) -> str:
        """Every missing file, the tasks and the number of runs that need it."""
        runs = len(self.by_run)
        lines = [f"data missing for {runs} run{'s' * (runs != 1)}; nothing was trained:"]
        for missing in self.missing:
            labels = [spec.label for spec in missing.runs]
            shown = ", ".join(labels[:3]) + (f" and {len(labels) - 3} more" if len(labels) > 3
                                             else "")
            lines.append(f"  {missing.path}  (needed by {len(labels)} run"
                         f"{'s' * (len(labels) != 1)}: {shown})")
        lines.append("Put the files there (README, \"Data\"), point the runs at another data root "
                     "with --data-root, or run the rest with --skip-unavailable.")
        return "\n".join(lines)


def has_data_check(task: Task) -> bool:
    """Whether the task implements :meth:`~harness.contract.Task.check_data`."""
    return type(task).check_data is not Task.check_data


def check_data(runs: Iterable[RunSpec], registry: Registry) -> DataCheck:
    """Ask each task, once per distinct (task options, data root), which files are missing.
    A ``check_data`` that raises is warned about and its runs count as available (they fail,
    if they must, when they start)."""
    answers: dict[tuple[str, str, str | None], list[str]] = {}
    missing: dict[str, MissingFile] = {}
    by_run: dict[str, list[str]] = {}
    unchecked: set[str] = set()
    for spec in runs:
        task = registry.tasks[spec.task]
        if not has_data_check(task):
            unchecked.add(spec.task)
            continue
        options = {**task.options, **spec.task_options}
        question = (spec.task, json.dumps(options, sort_keys=True, default=str), spec.data_root)
        if question not in answers:
            answers[question] = _ask(task, options, spec.data_root)
        for path in answers[question]:
            missing.setdefault(path, MissingFile(path)).runs.append(spec)
            by_run.setdefault(spec.key, []).append(path)
    return DataCheck(list(missing.values()), by_run, sorted(unchecked))


def unavailable_record(spec: RunSpec, registry: Registry, device: torch.device,
                       files: list[str]) -> RunRecord:
    """The record of a run left out for missing data: failed, kind ``data_missing``, no
    epochs; a rerun tries it again."""
    listed = ", ".join(files[:SHOWN_FILES]) + (f" and {len(files) - SHOWN_FILES} more files"
                                                if len(files) > SHOWN_FILES else "")
    return left_out_record(spec, registry, device, solver_backend(spec, registry),
                           DataNotFound(f"skipped before training (--skip-unavailable): "
                                        f"missing {listed}"))


def _ask(task: Task, options: dict[str, Any], data_root: str | None) -> list[str]:
    try:
        return [str(path) for path in task.check_data(options, data_root)]
    except Exception as error:  # a plugin's check must not stop the suite
        log.warning("task %s: check_data raised %r; its runs are checked when they start",
                    task.name, error)
        return []
