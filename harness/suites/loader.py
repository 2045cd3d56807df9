"""Suite files: read a YAML suite, check it, and expand it into resolved run specs.

A suite lists run entries (tasks × models × grid points × seeds); an entry's ``baselines:``
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
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection

from harness.contract import Task
from harness.data_root import data_root_or_default
from harness.registry import Registry
from harness.suites.levels import Scope, check_profiles, check_settings, merge, option_value
from harness.suites.runspec import SETTINGS, RunSpec, default_settings
from harness.suites.validation import (Invalid, Problems, choice, join, mapping, non_negative_int,
                                       optional, positive_int, read_yaml, settings_of, string,
                                       top_level, valid_choices)

_TOP_KEYS = ("name", "description", "data_root", "execution", "defaults", "runs")
_EXECUTION_KEYS = ("executor", "workers", "address", "ensemble")
_ENTRY_KEYS = ("task", "tasks", "model", "models", "baseline", "baselines", "seed", "seeds",
               "grid", "overrides")
_SEED_RANGE_KEYS = ("start", "count")

#: The most runs a suite may expand to (a seed range, a grid, an entry, the whole suite): more
#: is a typo (``count: 1000000000``) or a job for several suites; planning this many takes
#: seconds.
MAX_RUNS = 100_000
_TOO_MANY = f"valid: at most {MAX_RUNS} runs in a suite (split a larger study into suites)"

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


# ---------------------------------------------------------------------------------------------
# Run entries.


@dataclass
class _Entry:
    """One checked run entry (``runs[index]``); ``grid`` holds per grid point its settings
    level and its values (:func:`_check_grid`)."""

    index: int
    tasks: list[Task]
    models: list[str]
    baselines: list[str]
    seeds: list[int]
    settings: dict[str, Any]
    grid: list[tuple[dict[str, Any], dict[str, Any]]]
    overrides: dict[str, dict[str, Any]]


def _items(entry: dict, one: str, many: str, at: str, report: Problems,
           valid: str) -> list[tuple[str, Any]] | None:
    """(key path, value) of each item given as ``one: x`` or ``many: [x, ...]``; None if
    neither key is there."""
    if one in entry and many in entry:
        report.add(at, f"both {one!r} and {many!r} given", "valid: exactly one of them")
        return []
    if one in entry:
        return [(join(at, one), entry[one])]
    if many not in entry:
        return None
    values, where = entry[many], join(at, many)
    if not isinstance(values, list) or not values:
        report.add(where, f"{values!r} is not a non-empty list", f"valid: {valid}")
        return []
    return [(f"{where}[{i}]", value) for i, value in enumerate(values)]


def _check_names(entry: dict, one: str, many: str, at: str, report: Problems,
                 known: Collection[str], broken: str = "", required: bool = True) -> list[str]:
    """The entry's task or model names, each checked against ``known``; ``broken`` (the plugins
    that failed to load, and why) is added to the message of an unknown name. Not given: an
    error if ``required``, else no names."""
    items = _items(entry, one, many, at, report, f"a non-empty list of {one} names")
    if items is None:
        if required:
            report.add(at, f"no {one!r} or {many!r} given", valid_choices(known, ""))
        return []
    names = []
    for where, name in items:
        if isinstance(name, str) and name in known:
            names.append(name)
        else:
            report.add(where, f"unknown {one} {name!r}", valid_choices(known, name) + broken)
    return names


def _check_seeds(entry: dict, at: str, report: Problems) -> list[int]:
    """``seed: 0``, ``seeds: [0, 1]`` or ``seeds: {start: 0, count: 100}``; default [0]."""
    if isinstance(entry.get("seeds"), dict) and "seed" not in entry:
        return _check_seed_range(entry["seeds"], join(at, "seeds"), report)
    items = _items(entry, "seed", "seeds", at, report,
                   "a non-empty list of integers >= 0, or {start: 0, count: N}")
    if items is None:
        return [0]
    seeds = [report.check(where, non_negative_int, value) for where, value in items]
    seen: set[int] = set()
    for (where, _), seed in zip(items, seeds):
        if seed is not None and seed in seen:
            report.add(where, f"seed {seed} is listed twice", "valid: distinct seeds")
        seen.add(seed)
    return seeds


def _check_seed_range(seeds: dict, at: str, report: Problems) -> list[int]:
    for key in seeds:
        if key not in _SEED_RANGE_KEYS:
            report.unknown(join(at, key), f"unknown key {key!r}", key, _SEED_RANGE_KEYS)
    if "count" not in seeds:
        report.add(join(at, "count"), "missing", "valid: an integer > 0")
        return []
    start = report.check(join(at, "start"), non_negative_int, seeds.get("start", 0))
    count = report.check(join(at, "count"), positive_int, seeds["count"])
    if count is not None and count > MAX_RUNS:
        report.add(join(at, "count"), f"{count} seeds", _TOO_MANY)
        return []
    return list(range(start, start + count)) if start is not None and count is not None else []


def _check_grid(value: Any, at: str, report: Problems, scope: Scope
                ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The grid's points, each as its settings level and its values (dotted path as the suite
    names it → the checked value): the cartesian product of the value lists, in key order. A
    key is a dotted setting path such as ``solver.tol``. Without a grid: one point, no values."""
    grid = mapping(value, at, report, "a mapping of dotted run-setting path to a list of values")
    axes = []
    for path, values in grid.items():
        if not isinstance(values, list) or not values:
            report.add(join(at, path), f"{values!r} is not a non-empty list",
                       "valid: a non-empty list of values to sweep")
            continue
        axis = []
        for given in values:
            level = check_settings(_nested(str(path), given), at, report, scope)
            axis.append((str(path), _at(level, str(path), given), level))
        axes.append(axis)
    if math.prod(len(axis) for axis in axes) > MAX_RUNS:
        report.add(at, f"{' x '.join(str(len(axis)) for axis in axes)} grid points", _TOO_MANY)
        return []
    points = []
    for combination in itertools.product(*axes):
        point: dict[str, Any] = {}
        for _, _, level in combination:
            point = merge(point, level)
        points.append((point, {path: checked for path, checked, _ in combination}))
    return points


def _at(level: dict[str, Any], path: str, given: Any) -> Any:
    """The value a checked settings level holds at ``path`` (numbers made floats), or the value
    as ``given`` where checking renamed it (``solver.tol`` becomes rtol and atol)."""
    for part in path.split("."):
        if not isinstance(level, dict) or part not in level:
            return given
        level = level[part]
    return level


def _nested(path: str, value: Any) -> dict[str, Any]:
    """``solver.tol``, 1e-3 → {"solver": {"tol": 1e-3}}."""
    head, _, rest = path.partition(".")
    return {head: _nested(rest, value) if rest else value}


def _check_overrides(value: Any, at: str, report: Problems, registry: Registry,
                     tasks: list[Task], models: list[str],
                     baselines: list[str]) -> dict[str, dict[str, Any]]:
    """``overrides: {model or baseline name: run settings}`` (a name both a model and a
    baseline of the entry applies to both)."""
    overrides = mapping(value, at, report, "a mapping of model name to run settings")
    checked = {}
    for model, settings in overrides.items():
        where = join(at, model)
        if model not in models and model not in baselines:
            report.unknown(where, f"{model!r} is not a model of this entry", model,
                           [*models, *baselines])
            continue
        settings = mapping(settings, where, report, "a mapping of run settings")
        families = [registry.families[model]] if model in models else []
        checked[model] = check_settings(settings, where, report,
                                         Scope(registry.backends, tasks, families,
                                               [model] if model in baselines else []))
    return checked


def _check_baselines(raw: dict, at: str, report: Problems, tasks: list[Task]) -> list[str]:
    """The entry's baseline names (``baseline:`` or ``baselines:``; none when neither is
    given), each offered by every task of the entry."""
    offered = list(dict.fromkeys(name for task in tasks for name in task.baselines))
    names = _check_names(raw, "baseline", "baselines", at, report, offered, required=False)
    for name in names:
        lacking = [task.name for task in tasks if name not in task.baselines]
        if lacking:
            report.add(at, f"baseline {name!r} is not offered by task(s) {', '.join(lacking)}",
                       "valid: baselines every task of the entry offers (Task.baselines); "
                       "give tasks without it an entry of their own")
    return names


def _check_entry(raw: dict, index: int, report: Problems, registry: Registry) -> _Entry:
    at = f"runs[{index}]"
    broken = "".join(f"; plugin {f.plugin!r} (package {f.package}) failed to load: {f.reason}"
                     for f in registry.failures)
    tasks = [registry.tasks[name] for name in
             _check_names(raw, "task", "tasks", at, report, registry.tasks, broken)]
    baselines = _check_baselines(raw, at, report, tasks)
    offered = sorted({name for task in tasks for name in task.baselines})
    hint = f"; the tasks' baselines ({', '.join(offered)}) go under `baselines:`" if offered else ""
    models = _check_names(raw, "model", "models", at, report, registry.families, broken + hint,
                          required="baseline" not in raw and "baselines" not in raw)
    scope = Scope(registry.backends, tasks, [registry.families[name] for name in models],
                  baselines)
    settings = {key: value for key, value in raw.items() if key not in _ENTRY_KEYS}
    entry = _Entry(
        index=index, tasks=tasks, models=models, baselines=baselines,
        seeds=_check_seeds(raw, at, report),
        settings=check_settings(settings, at, report, scope, [*_ENTRY_KEYS, *SETTINGS]),
        grid=_check_grid(raw.get("grid", {}), join(at, "grid"), report, scope),
        overrides=_check_overrides(raw.get("overrides", {}), join(at, "overrides"), report,
                                   registry, tasks, models, baselines))
    if _size(entry) > MAX_RUNS:
        models_text = f"{len(models)} models" + (f" + {len(baselines)} baselines" if baselines
                                                 else "")
        report.add(at, f"{len(tasks)} tasks x {models_text} x {len(entry.grid)} grid points x "
                       f"{len(entry.seeds)} seeds = {_size(entry)} runs", _TOO_MANY)
    return entry


def _size(entry: _Entry) -> int:
    """The runs an entry expands to (duplicates counted)."""
    return (len(entry.tasks) * (len(entry.models) + len(entry.baselines)) * len(entry.grid)
            * len(entry.seeds))


# ---------------------------------------------------------------------------------------------
# The file.


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
    """The levels merged, later ones winning."""
    settings: dict[str, Any] = {}
    for level in levels:
        settings = merge(settings, level)
    return copy.deepcopy(settings)


def ensemble_size(value: Any) -> int | str:
    """``execution.ensemble``: a number of members (1: no ensembles) or ``auto``."""
    if value == "auto":
        return value
    try:
        return positive_int(value)
    except Invalid:
        raise Invalid(f"{value!r} is not a number of members", "valid: an integer > 0 or auto") \
            from None


def _expand(name: str, entries: list[_Entry], defaults: dict[str, Any],
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
            report.add(where, f"the widths {spec.widths} of {spec.kind} {spec.model!r} on task "
                              f"{task.name!r} lack {', '.join(map(repr, missing))}, which it "
                              f"always reads (a suite's widths replace the task's whole)",
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
    raw_runs = document.get("runs")
    if not isinstance(raw_runs, list) or not raw_runs:
        report.add("runs", "missing" if raw_runs is None else f"{raw_runs!r} is not a non-empty list",
                   "valid: a non-empty list of run entries")
        raw_runs = []
    entries = []
    for i, raw in enumerate(raw_runs):
        if isinstance(raw, dict):
            entries.append(_check_entry(raw, i, report, registry))
        else:
            report.add(f"runs[{i}]", f"{raw!r} is not a mapping",
                       "valid: a run entry with task(s) and model(s)")

    if all(_size(entry) <= MAX_RUNS for entry in entries) and \
            sum(map(_size, entries)) > MAX_RUNS:
        report.add("runs", f"{sum(map(_size, entries))} runs in all", _TOO_MANY)
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
