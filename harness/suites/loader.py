"""Suite files: read a YAML suite, check it, and expand it into resolved run specs.

A suite lists run entries (tasks × models × grid points × seeds, each checked by
:mod:`harness.suites.entries`); an entry's ``baselines:``
(or ``baseline:``) names models the tasks offer that are no ODE family
(:attr:`harness.Task.baselines`), run beside or instead of ``models:``, each on every task of
the entry, under the same settings. Each run's settings are
resolved in this order, later levels winning: the defaults (the settings' own, see
:mod:`harness.suites.runspec`) < the task's ``schedule`` < the task's settings for the run's
``profile`` (:attr:`harness.Task.profiles`: for every run, then for its model) <
the suite's ``defaults`` < the entry's settings < the grid point < the entry's
``overrides[model]``. The mappings ``solver`` (and its ``options``), ``model_options`` and
``task_options`` merge key by key; every other setting is replaced. ``solver.tol`` sets both
``rtol`` and ``atol`` at the level where it appears (an ``rtol``/``atol`` next to it wins).

Where the data lives: :func:`harness.data_root.data_root_or_default` decides, from the
``data_root`` argument (the CLI's ``--data-root``), the suite's ``data_root:`` key (relative to
the suite file's directory), ``$HARNESS_DATA_ROOT`` and the default, in that order.

The suite's name (``name:``, else the file's name without ``.yaml``) names its results
directory ``results/<name>``, so it is one plain file name (:func:`suite_name`).

The file is read with ``yaml.safe_load``'s loader (nothing in it is evaluated; a key given twice
is an error, :func:`harness.suites.validation.read_yaml`). Every problem found is collected and
reported together in one :class:`SuiteError`, one line each.
"""
from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.contract import Task
from harness.data_root import data_root_or_default
from harness.registry import Registry
from harness.suites.entries import MAX_RUNS, TOO_MANY, Entry, check_entry
from harness.suites.levels import Scope, check_profiles, check_settings, merge_all, option_value
from harness.suites.runspec import RunSpec, default_settings
from harness.suites.validation import (Invalid, Problems, choice, join, mapping, non_empty_list,
                                       optional, positive_int, read_yaml, settings_of, string,
                                       top_level)
from harness.widths import lacking

_TOP_KEYS = ("name", "description", "data_root", "execution", "defaults", "runs")
_EXECUTION_KEYS = ("executor", "workers", "address", "ensemble")

#: A suite's name names its results directory (results/<name>), so it is a plain file name.
_SUITE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")


class SuiteError(ValueError):
    """A suite file that cannot be used; the message lists every problem, one per line."""


def suite_name(value: Any) -> str:
    """A name that is one plain file name, so results/<name> stays inside results/."""
    if not isinstance(value, str) or not _SUITE_NAME.fullmatch(value):
        raise Invalid(f"{value!r} is not a suite name",
                      "valid: 1 to 100 letters (a-z, A-Z), digits, '.', '_' or '-', not starting "
                      "with '.' or '-' (it names the results directory results/<name>)")
    return value


@dataclass
class Suite:
    """A loaded suite: its runs fully resolved, in order, without duplicates."""

    name: str
    path: Path
    description: str
    runs: list[RunSpec]
    data_root: str | None
    execution: dict[str, Any] = field(default_factory=dict)
    """Where to run: ``executor`` (inline, local, ray, …), ``workers``, ``address``,
    ``ensemble``, and under an executor's name its ``Settings`` instance."""


def _check_execution(value: Any, report: Problems, registry: Registry) -> dict[str, Any]:
    """``execution: {executor: local, workers: 2, address: …, ensemble: 10}``, each key
    optional (``ensemble``: runs that differ only in seed train together, at most this many at
    once, or ``auto``: see :mod:`harness.running.ensembles`), and an executor's own settings
    under its name (``slurm: {partition: gpu}``), made into its ``Settings``."""
    own = {name: kind.Settings for name, kind in registry.executors.items() if kind.Settings}
    keys = [*_EXECUTION_KEYS, *sorted(own)]
    execution = mapping(value, "execution", report, f"a mapping with keys {', '.join(keys)}")
    checks = {"executor": choice(registry.executors, "an executor"),
              "workers": positive_int, "address": string, "ensemble": ensemble_size}
    checked = {}
    for key, item in execution.items():
        if key in checks:
            checked[key] = report.check(join("execution", key), checks[key], item)
        elif key in own:
            checked[key] = settings_of(own[key], item, join("execution", key), report)
        else:
            report.unknown(join("execution", key), f"unknown key {key!r}", key, keys)
    return checked


def _merged(*levels: dict[str, Any]) -> dict[str, Any]:
    """The levels merged, later ones winning, in a copy that shares nothing with them."""
    return copy.deepcopy(merge_all(*levels))


def ensemble_size(value: Any) -> int | str:
    """``execution.ensemble``: a number of members (1: no ensembles) or ``auto``."""
    if value == "auto":
        return value
    try:
        return positive_int(value)
    except Invalid:
        raise Invalid(f"{value!r} is not a number of members", "valid: an integer > 0 or auto") \
            from None


def _expand(name: str, entries: list[Entry], defaults: dict[str, Any],
            schedules: dict[str, dict[str, Any]], profiles: dict[str, dict[str, dict]],
            data_root: str | None, registry: Registry) -> list[RunSpec]:
    """Every run, in entry, task, model (the families, then the baselines), grid point, seed
    order; duplicates keep the first (and its grid point:
    :attr:`~harness.suites.runspec.RunSpec.grid_point`)."""
    runs: dict[str, RunSpec] = {}
    versions: dict[tuple[str, str, str], dict[str, Any]] = {}  # looked up once: metadata is slow
    for entry in entries:
        for task in entry.tasks:
            named = [*((m, "family") for m in entry.models),
                     *((b, "baseline") for b in entry.baselines)]
            for (model, kind), (point, values) in itertools.product(named, entry.grid):
                suite_levels = (defaults, entry.settings, point, entry.overrides.get(model, {}))
                settings = _merged(default_settings(), schedules[task.name], *suite_levels)
                profile = profiles[task.name].get(settings["profile"], {})
                if profile:  # the profile's levels go under the suite's (its models' are families')
                    own = profile.get(model, {}) if kind == "family" else {}
                    settings = _merged(default_settings(), schedules[task.name], profile[""],
                                       own, *suite_levels)
                # Each task reads its options as its defaults' types (a float option's 1 is 1.0).
                settings["task_options"] = {key: option_value(task.options[key], value)
                                            for key, value in settings["task_options"].items()}
                if (task.name, model, kind) not in versions:
                    versions[task.name, model, kind] = _versions(registry, task, model, kind)
                for seed in entry.seeds:
                    spec = RunSpec.from_settings(name, task.name, model, seed, settings, data_root,
                                                 versions[task.name, model, kind],
                                                 {"entry": entry.index, "values": values}, kind)
                    runs.setdefault(spec.key, spec)
    return list(runs.values())


def _check_required_widths(runs: list[RunSpec], registry: Registry, report: Problems) -> None:
    """Report each run whose suite-given widths lack one its task always reads for its model
    (:attr:`harness.Task.width_names`): a suite's ``widths:`` replaces the task's whole."""
    for spec in runs:
        task = registry.tasks[spec.task]
        read = task.widths_read(spec.model if spec.baseline else None)
        missing = sorted(set(read.required) - set(spec.widths)) if read and spec.widths else []
        if missing:
            point = spec.grid_point or {}
            where = f"runs[{point.get('entry')}]" + (f" (grid point {point['values']})"
                                                      if point.get("values") else "")
            report.add(where, f"{lacking(missing, spec.widths, task.name, spec.kind, spec.model)}"
                              f"; a suite's widths replace the task's whole",
                       f"valid: widths with {', '.join(sorted(read.required))}"
                       + (f", optionally {', '.join(sorted(read.optional))}" if read.optional
                          else ""))


def _versions(registry: Registry, task: Task, model: str, kind: str) -> dict[str, Any]:
    """What a run of ``model`` on ``task`` runs, in which version: a baseline is the task's
    (its package and version)."""
    task_package = registry.provenance("task", task.name)
    if kind == "baseline":
        return {"task": task_package, "model": task_package, "task_version": task.version,
                "model_version": task.version}
    return {"task": task_package, "model": registry.provenance("model", model),
            "task_version": task.version, "model_version": registry.families[model].version}


def load_suite(path: str | Path, registry: Registry, data_root: str | None = None) -> Suite:
    """Read, check and expand the suite at ``path`` against the loaded plugins.

    Raises :class:`SuiteError` listing every problem found.
    """
    path = Path(path)
    return suite_from_document(read_yaml(path, SuiteError, "a suite YAML file"), path, registry,
                               data_root)


def suite_from_document(document: Any, path: Path, registry: Registry,
                        data_root: str | None = None) -> Suite:
    """Check and expand an already parsed suite; ``path`` names it in messages and anchors a
    relative ``data_root``."""
    report = Problems(str(path))
    document = top_level(document, path, SuiteError, _TOP_KEYS, report)
    at_name = "name" if "name" in document else "name (none given: the file's name)"
    name = report.check(at_name, suite_name, document.get("name", path.stem))
    description = report.check("description", string, document.get("description", ""))
    suite_root = report.check("data_root", optional(string), document.get("data_root"))

    execution = _check_execution(document.get("execution", {}), report, registry)
    raw_runs = non_empty_list(document.get("runs"), "runs", report,
                              "a non-empty list of run entries")
    entries = []
    for i, raw in enumerate(raw_runs):
        if isinstance(raw, dict):
            entries.append(check_entry(raw, i, report, registry))
        else:
            report.add(f"runs[{i}]", f"{raw!r} is not a mapping",
                       "valid: a run entry with task(s) and model(s)")

    total = sum(entry.size for entry in entries)
    if all(entry.size <= MAX_RUNS for entry in entries) and total > MAX_RUNS:
        report.add("runs", f"{total} runs in all", TOO_MANY)
    used_tasks = list({task.name: task for entry in entries for task in entry.tasks}.values())
    used_families = list({m: registry.families[m] for entry in entries for m in entry.models}.values())
    used_baselines = list(dict.fromkeys(b for entry in entries for b in entry.baselines))
    raw_defaults = dict(mapping(document.get("defaults", {}), "defaults", report,
                                "a mapping of run settings"))
    for key in [key for key in ("seed", "seeds") if key in raw_defaults]:
        del raw_defaults[key]  # a run entry's key, not a setting: said plainly, not "unknown"
        report.add(f"defaults.{key}", "seeds are given per run entry, not in defaults",
                   "valid: `seeds:` (or `seed:`) in each entry of runs; without it, seed 0")
    defaults = check_settings(raw_defaults, "defaults", report,
                              Scope(registry.backends, used_tasks, used_families, used_baselines))
    schedules = {task.name: check_settings(dict(task.schedule), f"task {task.name!r} schedule",
                                            report, Scope(registry.backends, [task]))
                 for task in used_tasks}
    profiles = {task.name: check_profiles(task, report, registry.backends, registry.families)
                for task in used_tasks}
    report.raise_if_any(SuiteError)

    root = str(data_root_or_default(data_root, suite_root, path.parent))
    runs = _expand(name, entries, defaults, schedules, profiles, root, registry)
    _check_required_widths(runs, registry, report)
    report.raise_if_any(SuiteError)
    return Suite(name=name, path=path, description=description, runs=runs, data_root=root,
                 execution=execution)
