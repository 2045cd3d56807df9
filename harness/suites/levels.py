"""One level of run settings (a suite's ``defaults``, an entry, a grid point, an override, a
task's schedule): checked and normalised against what it applies to, and merged with the level
below it. The settings themselves, their defaults and checks, are :mod:`harness.suites.runspec`'s.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from functools import partial, reduce
from typing import Any, Callable, Collection, Mapping

from harness.contract import Family, Task
from harness.setting_values import PROFILES
from harness.solvers.backends import SolverBackend
from harness.solvers.settings import TOLERANCE, TOLERANCES
from harness.suites.runspec import SETTINGS, scalar_checks, solver_checks
from harness.suites.validation import (Problems, boolean, integer, join, mapping, number,
                                       non_negative_int, numeric, positive_int, positive_number, string,
                                       valid_choices)
from harness.widths import WidthNames

#: Settings merged key by key, and the keys nested inside them that merge the same way.
MERGED: dict[str, dict] = {"solver": {"options": {}}, "model_options": {}, "task_options": {}}


#: How a task option's value is checked, by the type of its default (bool before int).
OPTION_TYPES: tuple[tuple[type, Callable[[Any], Any]], ...] = (
    (bool, boolean), (int, integer), (float, number), (str, string))


def option_value(default: Any, value: Any) -> Any:
    """``value`` as a task option whose default is ``default``: an int default takes ints, a
    float default any number (as a float), a bool or str default its own type; other defaults
    (None included) take anything."""
    for kind, check in OPTION_TYPES:
        if isinstance(default, kind):
            return check(value)
    return value


#: How each run setting that is one value is checked (the settings' own checks).
SCALAR_SETTINGS = scalar_checks()


@dataclass
class Scope:
    """What a level of settings applies to, for checking solver settings (against the
    registry's backends), model and task options, and width names."""

    backends: Mapping[str, SolverBackend]
    tasks: list[Task] = field(default_factory=list)
    families: list[type[Family]] = field(default_factory=list)
    baselines: list[str] = field(default_factory=list)


def check_settings(raw: dict, at: str, report: Problems, scope: Scope,
                    valid_keys: Collection[str] = tuple(SETTINGS)) -> dict[str, Any]:
    """One level of run settings, with numbers as floats and ``solver.tol`` expanded.

    ``valid_keys`` only feeds the message for an unknown key (an entry also has its own keys).
    """
    layer: dict[str, Any] = {}
    for key, value in raw.items():
        where = join(at, key)
        if key in SCALAR_SETTINGS:
            layer[key] = report.check(where, SCALAR_SETTINGS[key], value)
        elif key in STRUCTURED_SETTINGS:
            layer[key] = STRUCTURED_SETTINGS[key](value, where, report, scope)
        else:
            report.unknown(where, f"unknown key {key!r}", key, valid_keys)
    return layer


def _check_solver(value: Any, at: str, report: Problems,
                  checks: dict[str, Callable[[Any], Any]]) -> dict[str, Any]:
    solver = mapping(value, at, report, f"a mapping with keys {', '.join(checks)}, options")
    checked: dict[str, Any] = {}
    for key, item in solver.items():
        where = join(at, key)
        if key in checks:
            checked[key] = report.check(where, checks[key], item)
        elif key == "options":
            options = mapping(item, where, report, "a mapping of the solver backend's options")
            checked[key] = {name: numeric(option) for name, option in options.items()}
        else:
            report.unknown(where, f"unknown solver key {key!r}", key, [*checks, "options"])
    if TOLERANCE in checked:
        tol = checked.pop(TOLERANCE)
        checked = {**dict.fromkeys(TOLERANCES, tol), **checked}
    return checked


def _check_widths(value: Any, at: str, report: Problems, scope: Scope) -> dict[str, int] | None:
    """Widths, each name one that a model of the scope reads (one model is enough: a grid's
    widths may serve a family and a baseline that read different names)."""
    if value is None:
        return None
    widths = mapping(value, at, report, "a mapping of width name to an integer > 0, or null")
    read = _names_read(scope)
    for name in widths:
        if not isinstance(name, str):
            report.add(join(at, name), f"width name {name!r} is not a string",
                       "valid: a width name such as 'n'")
        elif read is not None and name not in read:
            models = ", ".join([*(family.name for family in scope.families), *scope.baselines])
            tasks = ", ".join(task.name for task in scope.tasks)
            report.add(join(at, name), f"unknown width {name!r}: not read by {models} on "
                                       f"task(s) {tasks}",
                       valid_choices(read, name) + " (the names they read: Task.width_names)")
    may_be_zero = _declared_optional(scope)
    return {name: report.check(join(at, name),
                               non_negative_int if name in may_be_zero else positive_int, width)
            for name, width in widths.items()}


def _names_read(scope: Scope) -> frozenset[str] | None:
    """Every width name that some task of the scope reads for some model of it; None when
    a task does not say (:meth:`harness.Task.widths_read`) or the scope names no model (a
    task's own schedule)."""
    reads: list[WidthNames | None] = [
        *(task.widths_read() for task in scope.tasks if scope.families),
        *(task.widths_read(name) for task in scope.tasks for name in scope.baselines
          if name in task.baselines)]
    if not reads or None in reads:
        return None
    return frozenset().union(*(read.valid for read in reads))


def _declared_optional(scope: Scope) -> frozenset[str]:
    """The width names that may be 0: those a task of the scope declares optional
    (:attr:`harness.Task.width_names`) and none requires; the task gives 0 its meaning
    (plane vibration's and Walker2D's ``c: 0``: no initial-state layer)."""
    declared = [*(task.width_names for task in scope.tasks if scope.families),
                *(task.baseline_width_names.get(name) for task in scope.tasks
                  for name in scope.baselines)]
    names = [read for read in declared if read is not None]
    required = frozenset().union(*(read.required for read in names))
    return frozenset().union(*(read.optional for read in names)) - required


def _keyword_parameters(family: type[Family]) -> list[str]:
    """The family's options: the parameters its ``__init__`` takes by keyword."""
    parameters = inspect.signature(family).parameters.values()
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _check_model_options(value: Any, at: str, report: Problems,
                         families: list[type[Family]]) -> dict[str, Any]:
    options = mapping(value, at, report, "a mapping of model option to value")
    for family in families:
        accepted = _keyword_parameters(family)
        for key in options:
            if key not in accepted:
                report.unknown(join(at, key), f"unknown option {key!r} for model {family.name!r}",
                               key, accepted)
    return dict(options)


def _check_task_options(value: Any, at: str, report: Problems, tasks: list[Task]) -> dict[str, Any]:
    options = mapping(value, at, report, "a mapping of task option to value")
    for task in tasks:
        for key, item in options.items():
            where = join(at, key)
            if key not in task.options:
                report.unknown(where, f"unknown option {key!r} for task {task.name!r}", key,
                               task.options)
            else:
                report.check(where, partial(option_value, task.options[key]), item)
    return dict(options)


def check_profiles(task: Task, report: Problems, backends: Mapping[str, SolverBackend],
                   families: Mapping[str, type[Family]]) -> dict[str, dict[str, dict[str, Any]]]:
    """The task's :attr:`~harness.Task.profiles`, checked: per profile, its level for every run
    and, under ``models``, one per installed family (families not installed are skipped), as
    ``{profile: {"": level, family: level, …}}``."""
    checked: dict[str, dict[str, dict[str, Any]]] = {}
    for profile, raw in task.profiles.items():
        at = f"task {task.name!r} profile {profile!r}"
        if profile not in PROFILES:
            report.unknown(at, f"{profile!r} is not a profile", profile, PROFILES)
            continue
        raw = dict(raw)
        models = mapping(raw.pop("models", {}), join(at, "models"), report,
                         "a mapping of model name to run settings")
        levels = {"": check_settings(raw, at, report, Scope(backends, [task]))}
        for model, settings in models.items():
            where = join(join(at, "models"), model)
            if model in families:
                levels[model] = check_settings(mapping(settings, where, report, "run settings"),
                                               where, report,
                                               Scope(backends, [task], [families[model]]))
        checked[profile] = levels
    return checked


def merge(base: dict[str, Any], layer: dict[str, Any],
           merged: dict[str, dict] = MERGED) -> dict[str, Any]:
    """``base`` updated by ``layer``: keys in ``merged`` merge key by key, others replace."""
    result = dict(base)
    for key, value in layer.items():
        if key in merged and isinstance(result.get(key), dict):
            value = merge(result[key], value, merged[key])
        result[key] = value
    return result


def merge_all(*levels: dict[str, Any]) -> dict[str, Any]:
    """The levels merged in order by :func:`merge`, later ones winning."""
    return reduce(merge, levels, {})


def _check_lr_restarts(value: Any, at: str, report: Problems) -> dict[int, float]:
    """``{epoch: lr}``, each epoch an integer > 1 (epoch 1 takes ``lr``), each lr > 0."""
    restarts = mapping(value, at, report, "a mapping of epoch (an integer > 1) to a learning rate")
    checked = {}
    for epoch, lr in restarts.items():
        where = join(at, epoch)
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 2:
            report.add(where, f"epoch {epoch!r} is not an integer > 1",
                       "valid: the epoch (counted from 1) whose start gets a fresh optimizer; "
                       "epoch 1 takes `lr`")
            continue
        checked[epoch] = report.check(where, positive_number, lr)
    return checked


#: How each setting whose value is a mapping is checked, in the scope of its level.
STRUCTURED_SETTINGS: dict[str, Callable[[Any, str, Problems, Scope], Any]] = {
    "solver": lambda value, at, report, scope: _check_solver(value, at, report,
                                                             solver_checks(scope.backends)),
    "widths": lambda value, at, report, scope: _check_widths(value, at, report, scope),
    "lr_restarts": lambda value, at, report, scope: _check_lr_restarts(value, at, report),
    "model_options": lambda value, at, report, scope: _check_model_options(value, at, report,
                                                                           scope.families),
    "task_options": lambda value, at, report, scope: _check_task_options(value, at, report,
                                                                         scope.tasks),
}
