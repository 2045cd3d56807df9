"""A suite's run entries: each entry of ``runs:`` checked into an :class:`Entry` — its tasks,
models and baselines against the loaded plugins, its seeds, its grid points and its overrides —
which :mod:`harness.suites.loader` expands into runs. Every problem goes to the suite's
:class:`~harness.suites.validation.Problems`, so all of them are reported together.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Collection

from harness.contract import Task
from harness.registry import Registry
from harness.suites.levels import Scope, check_settings, merge_all
from harness.suites.runspec import SETTINGS
from harness.suites.validation import (Problems, join, mapping, non_negative_int, positive_int,
                                       valid_choices)

_ENTRY_KEYS = ("task", "tasks", "model", "models", "baseline", "baselines", "seed", "seeds",
               "grid", "overrides")
_SEED_RANGE_KEYS = ("start", "count")

#: The most runs a suite may expand to (a seed range, a grid, an entry, the whole suite): more
#: is a typo (``count: 1000000000``) or a job for several suites; planning this many takes
#: seconds.
MAX_RUNS = 100_000
TOO_MANY = f"valid: at most {MAX_RUNS} runs in a suite (split a larger study into suites)"


@dataclass
class Entry:
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

    @property
    def size(self) -> int:
        """The runs the entry expands to (duplicates counted)."""
        return (len(self.tasks) * (len(self.models) + len(self.baselines)) * len(self.grid)
                * len(self.seeds))


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
        report.add(join(at, "count"), f"{count} seeds", TOO_MANY)
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
        report.add(at, f"{' x '.join(str(len(axis)) for axis in axes)} grid points", TOO_MANY)
        return []
    points = []
    for combination in itertools.product(*axes):
        point = merge_all(*(level for _, _, level in combination))
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


def check_entry(raw: dict, index: int, report: Problems, registry: Registry) -> Entry:
    """``runs[index]`` checked against the loaded plugins (``registry``); each problem goes to
    ``report``, and the loader raises them all together."""
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
    entry = Entry(
        index=index, tasks=tasks, models=models, baselines=baselines,
        seeds=_check_seeds(raw, at, report),
        settings=check_settings(settings, at, report, scope, [*_ENTRY_KEYS, *SETTINGS]),
        grid=_check_grid(raw.get("grid", {}), join(at, "grid"), report, scope),
        overrides=_check_overrides(raw.get("overrides", {}), join(at, "overrides"), report,
                                   registry, tasks, models, baselines))
    if entry.size > MAX_RUNS:
        models_text = f"{len(models)} models" + (f" + {len(baselines)} baselines" if baselines
                                                 else "")
        report.add(at, f"{len(tasks)} tasks x {models_text} x {len(entry.grid)} grid points x "
                       f"{len(entry.seeds)} seeds = {entry.size} runs", TOO_MANY)
    return entry
