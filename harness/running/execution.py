"""The executor plugin point: the base class of executors (where a suite's runs execute), and
:class:`Work`, what an executor receives: the units of work of one ``harness run`` and the
means to execute a unit here, to ship it elsewhere as a job, and to account for runs lost with
their process. Public as ``harness.Executor`` and ``harness.Work`` (docs/plugin-guide.md,
"Write an executor"); the built-in executors are in :mod:`harness.running.executors`.
"""
from __future__ import annotations

import dataclasses
import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

from harness.record import RunRecord
from harness.registry import Registry
from harness.running.checkpoints import Checkpoints
from harness.running.ensembles import ensemble_id
from harness.running.environment import resolve_device
from harness.running.failures import WorkerDied
from harness.running.grouping import execute_unit
from harness.running.observers import Notify
from harness.running.workers import Slot, WorkerPool, lost_run_record
from harness.suites.runspec import RunSpec


class Executor(ABC):
    """Runs a suite's units of work somewhere and yields each run's record as it ends.

    Subclasses set ``name`` (what ``execution.executor`` and ``--executor`` say) and implement
    :meth:`run`. One instance is made per command, with the suite's (or the command line's)
    ``device``, ``workers`` and ``address``, and ``settings``: an instance of :attr:`Settings`
    made from the suite's ``execution.<name>`` mapping (its defaults without one)."""

    name: ClassVar[str]
    #: Whether it executes units of several runs (``execution.ensemble``; :meth:`Work.execute`,
    #: :meth:`Work.job` and :meth:`Work.lost` handle them); else the driver refuses
    #: ``ensemble`` for it and every unit is one run.
    runs_ensembles: ClassVar[bool] = False
    #: A dataclass of the executor's own settings, or None: a suite sets them in
    #: ``execution.<name>``, checked against the fields' types (bool, int, float, str,
    #: ``list[...]``, ``dict[str, ...]``, ``X | None``) before any run starts; a ValueError
    #: from its ``__post_init__`` is reported as the suite's error too.
    Settings: ClassVar[type | None] = None

    def __init__(self, device: str = "auto", workers: int | None = None,
                 address: str | None = None, settings: Any = None) -> None:
        self.device = str(device)
        self.workers = workers
        self.address = address
        self.settings = settings if settings is not None or self.Settings is None \
            else self.Settings()

    @abstractmethod
    def run(self, work: Work) -> Iterator[RunRecord]:
        """Execute every unit of ``work``; yield each run's record as soon as the run ends
        (the driver writes it). Records made elsewhere (:meth:`Work.job`) or for a lost job
        (:meth:`Work.lost`) go through :meth:`Work.finish`."""


@dataclass(frozen=True)
class Work:
    """What an executor receives: one invocation's units of work and how to execute them."""

    units: list[list[RunSpec]]
    """The runs to execute, as units of work: one run each, or (``execution.ensemble``) runs
    that differ only in seed, trained together in one process."""
    out_dir: Path
    """The results directory: an executor on other machines needs it on storage they share
    (runs checkpoint into it), and may keep its own files in a folder of it."""
    checkpoint_dir: Path
    registry: Registry
    """The loaded plugins (internal: :meth:`execute` and :meth:`job` use it)."""
    notify: Notify
    """``notify(event, run, **details)``: the observer hooks (progress display, trackers)."""

    def execute(self, unit: list[RunSpec], device: str) -> Iterator[RunRecord]:
        """Execute ``unit`` in this process on ``device`` ("auto", "cpu", "cuda", …), yielding
        each run's record as it ends; the observers hear of every event."""
        yield from execute_unit(unit, self.registry, resolve_device(device), self.notify,
                                Checkpoints(self.checkpoint_dir))

    def job(self, unit: list[RunSpec], device: str, threads: int = 1
            ) -> Callable[[], list[RunRecord]]:
        """A picklable call that executes ``unit`` wherever it is called (a Ray task, a Slurm
        job) and returns its runs' records: it loads the installed plugins and
        ``$HARNESS_PLUGINS`` there and runs the unit in a worker process of its own with
        ``threads`` torch threads, which it supervises as the ``local`` executor does (a run's
        time limit, a worker's death: ``worker_died``). ``device`` is "cpu" or "cuda"."""
        return partial(execute_in_process, unit, self.checkpoint_dir, device, threads,
                       self.registry.loader)

    def lost(self, unit: list[RunSpec], reason: str, device: str) -> list[RunRecord]:
        """The records of a unit whose job was lost (its process or machine died, the
        scheduler cancelled it): each run failed ``worker_died`` with ``reason`` and the epochs
        its checkpoint holds (an ensemble's member: its ensemble's), which stays for a rerun to
        resume."""
        error = WorkerDied(reason)
        return [lost_run_record(spec, self.registry, device, error, self.checkpoint_dir,
                                ensemble=member)
                for spec, member in zip(unit, self._saved_members(unit))]

    def finish(self, unit: list[RunSpec], records: list[RunRecord]) -> Iterator[RunRecord]:
        """Tell the observers that these runs of ``unit`` ended, and yield their records: for
        records that come from a job or from :meth:`lost`."""
        specs = {spec.key: spec for spec in unit}
        for record in records:
            self.notify("run_finished", specs[record["key"]], record=record)
            yield record

    def _saved_members(self, unit: list[RunSpec]) -> list[dict[str, Any] | None]:
        """Each run's ``{id, size, index}`` in its ensemble when the unit trained as one far
        enough to checkpoint it (its lost records then hold the ensemble's epochs), else None:
        what a lost job, whose events the driver never saw, can tell."""
        identity = ensemble_id(unit)
        if len(unit) == 1 or not Checkpoints(self.checkpoint_dir).path(identity).is_file():
            return [None] * len(unit)
        return [{"id": identity, "size": len(unit), "index": index} for index in range(len(unit))]


def execute_in_process(unit: list[RunSpec], checkpoint_dir: Path, device: str, threads: int,
                       load: Callable[[], Registry]) -> list[RunRecord]:
    """One unit of work in a worker process of its own that this process supervises (its
    time limit, its death) as the local pool does: what :meth:`Work.job` ships. Plugins are
    imported once per process, so loading the registry again per unit is cheap."""
    pool = WorkerPool([Slot(device, None, threads)], load(), checkpoint_dir)
    return list(pool.run([unit], lambda *args, **details: None))


def settings_problem(executor: type[Executor]) -> str | None:
    """What is wrong with an executor's :attr:`Executor.Settings` declaration, or None."""
    declared = executor.Settings
    if declared is None:
        return None
    if not (isinstance(declared, type) and dataclasses.is_dataclass(declared)):
        return (f"executor {executor.name!r}: Settings is {declared!r}, not a dataclass; valid: "
                f"a @dataclass whose fields are the settings of execution.{executor.name}, or None")
    try:
        typing.get_type_hints(declared)
    except Exception as error:  # a type the suite's values could never be checked against
        return f"executor {executor.name!r}: the types of its Settings do not resolve: {error!r}"
    return None
