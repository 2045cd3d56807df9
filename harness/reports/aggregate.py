"""Seed aggregation shared by the tables, figures, comparison and claims.

Runs are grouped by (suite, task, model, setting): the *setting* is the values of the
configuration keys — and of the task's and the model's versions (:data:`VERSION_KEYS`) — that
vary between runs of one suite and task with the same model and seed (a grid over
``solver.tol`` gives one setting per tolerance; records of an older version of the task form
groups of their own, :func:`older`), so runs that differ only by seed land in one group.
Where records keep their grid point (the suite entry and grid values they came from,
``grid_point``), runs of two grid points are never one group, and a key that one's
configuration holds and the other's lacks is part of the setting (:func:`_varying_keys`); an
older record without it joins the group of its setting when that setting has one grid point.
Every statistic is over a group's ok runs: mean, sample standard deviation (None below two
values), n and the 95 % confidence interval of the mean
(:func:`harness.reports.seed_statistics.mean_interval`).
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import fmean, stdev
from typing import Any

from harness.reports.seed_statistics import CONFIDENCE, mean_interval
from harness.running.configs import flatten as flat_config
from harness.running.store import standing
from harness.solvers.settings import TOLERANCE, TOLERANCES

#: How one run's per-epoch field becomes one number: the mean over its epochs, or the value at
#: the first or last epoch that has the field.
AT_CHOICES = ("mean", "first", "last")

#: Configuration keys that never make a setting: they name the run, or follow from its seed.
_IDENTITY_KEYS = ("task", "model", "kind", "seed")
#: The versions a run's group is told apart by, as they appear in a setting: the task's and
#: the family's own (:attr:`harness.Task.version`; None in records made before they were kept).
VERSION_KEYS = ("task_version", "model_version")


@dataclass(frozen=True)
class Stat:
    """Mean, sample std (None for n < 2), n, the confidence interval [low, high] of the mean
    (None for n < 2), the values themselves (for tests between groups) and how many values
    were left out for not being finite numbers (NaN, ±inf: a gate must not pass them)."""

    mean: float | None
    std: float | None
    n: int
    low: float | None = None
    high: float | None = None
    values: tuple[float, ...] = ()
    non_finite: int = 0

    def format(self, digits: int = 4) -> str:
        """``mean ± std`` (or ``mean`` alone, ``—`` with no value), e.g. ``20 ± 10``."""
        if self.mean is None:
            return "—"
        text = f"{self.mean:.{digits}g}"
        return text if self.std is None else f"{text} ± {self.std:.2g}"

    def format_interval(self, digits: int = 4) -> str:
        """The confidence interval as ``[low, high]``, or ``""`` below two values."""
        if self.low is None or self.high is None:
            return ""
        return f"[{self.low:.{digits}g}, {self.high:.{digits}g}]"


def stat(values: Iterable[float | None]) -> Stat:
    """The :class:`Stat` of the values that are finite numbers (None, NaN and ±inf dropped, the
    last two counted), with the :data:`harness.reports.seed_statistics.CONFIDENCE` interval of
    their mean."""
    numbers = [float(v) for v in values if v is not None]
    kept = [v for v in numbers if math.isfinite(v)]
    interval = mean_interval(kept, CONFIDENCE)
    low, high = interval if interval else (None, None)
    return Stat(fmean(kept) if kept else None, stdev(kept) if len(kept) > 1 else None, len(kept),
                low, high, tuple(kept), len(numbers) - len(kept))


@dataclass
class Group:
    """The runs of one model on one task in one suite with one setting (any number of seeds)."""

    suite: str
    task: str
    model: str
    setting: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    kind: str = "family"
    """``baseline`` for one of the task's baselines (:func:`kind_of`): its own group and row."""

    @property
    def ok(self) -> list[dict[str, Any]]:
        return [run for run in self.runs if run.get("status") == "ok"]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [run for run in self.runs if run.get("status") != "ok"]

    @property
    def label(self) -> str:
        """The model, with the setting when there is one: ``hbnode (tol 0.001)``; a baseline
        says so: ``planar (baseline)``, ``planar (baseline, tol 0.001)``."""
        text = ", ".join(part for part in ("baseline" if self.kind == "baseline" else "",
                                           setting_label(self.setting)) if part)
        return f"{self.model} ({text})" if text else self.model

    @property
    def metric(self) -> str:
        return next((run["metric"] for run in self.ok + self.runs if run.get("metric")), "metric")

    @property
    def higher_is_better(self) -> bool:
        return bool((self.ok or self.runs)[0].get("higher_is_better"))

    def value(self, name: str, at: str = "mean", ensemble_times: bool = False) -> Stat:
        """Across ok seeds, the per-run value of an epoch field (see :func:`run_value`)."""
        return stat(run_value(run, name, at, ensemble_times) for run in self.ok)

    def first(self, key: str) -> Any:
        """A top-level record field (``params``, ``paper_params``) of the group's first run."""
        return (self.ok or self.runs)[0].get(key)

    def versions(self) -> dict[str, Any]:
        """The task's and the model's version (:data:`VERSION_KEYS`) its runs were made with
        (the same for all: versions that differ between runs of a model make settings)."""
        return _versions(self.runs[0])


def group_runs(records: Iterable[dict[str, Any]]) -> list[Group]:
    """The groups of the records' standing runs, in the order first seen. A run stands by its
    record in each suite (:func:`harness.running.store.standing` over the suite's records): a
    run recorded by two suites is shown in both."""
    by_suite: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_suite.setdefault(record.get("suite", ""), []).append(record)
    runs = [run for suite_records in by_suite.values() for run in standing(suite_records)]
    varying = _varying_keys(runs)
    settings, points = [], {}  # each run's setting; the grid points of each (…, setting)
    for run in runs:
        scope = (run.get("suite", ""), run["task"])
        flat = _described(run)
        setting = {key: flat.get(key) for key in varying.get(scope, [])}
        base = (*scope, run["model"], kind_of(run), _text(setting))
        settings.append((base, setting))
        if run.get("grid_point") is not None:
            points.setdefault(base, set()).add(_text(run["grid_point"]))
    groups: dict[tuple[Any, ...], Group] = {}
    for run, (base, setting) in zip(runs, settings):
        found = points.get(base, set())
        point = (_text(run["grid_point"]) if run.get("grid_point") is not None
                 else next(iter(found)) if len(found) == 1 else None)
        if (*base, point) not in groups:
            groups[(*base, point)] = Group(base[0], run["task"], run["model"], setting,
                                           kind=kind_of(run))
        groups[(*base, point)].runs.append(run)
    return list(groups.values())


def kind_of(run: dict[str, Any]) -> str:
    """What a record's model is (:data:`harness.setting_values.MODEL_KINDS`): ``baseline`` when its
    record says so, else ``family`` (records of families carry no ``kind``)."""
    return "baseline" if run.get("kind") == "baseline" else "family"


def run_value(run: dict[str, Any], name: str, at: str = "mean",
              ensemble_times: bool = False) -> float | None:
    """One number per run from an epoch field: the mean over the epochs that have it, or its
    value at the first or last such epoch; None when no epoch has a number for it. A time
    (``*_time_s``) of a run trained in an ensemble is the ensemble's, not the run's: None
    unless ``ensemble_times``, so tables, figures, claims, budgets and comparisons of time
    leave ensemble members out."""
    if _ensemble_time(run, name) and not ensemble_times:
        return None
    values = [epoch[name] for epoch in run.get("epochs", [])
              if isinstance(epoch.get(name), (int, float)) and not isinstance(epoch[name], bool)]
    if not values:
        return None
    if at == "mean":
        return fmean(values)
    return values[0] if at == "first" else values[-1]


def epoch_series(runs: Sequence[dict[str, Any]], name: str,
                 log: bool = False) -> tuple[list[int], list[Stat]]:
    """Per epoch number (ascending), the stat across runs of an epoch field (with ``log``, of
    log10 of its positive values); epochs where no run has a value are left out (e.g. test
    fields between evaluations), and so are the times of ensemble members (as in
    :func:`run_value`: they are the ensemble's)."""
    by_epoch: dict[int, list[float]] = {}
    for run in runs:
        if _ensemble_time(run, name):
            continue
        for epoch in run.get("epochs", []):
            value = epoch.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                by_epoch.setdefault(epoch["epoch"], []).append(value)
    epochs = sorted(by_epoch)
    stats = [stat(math.log10(v) for v in by_epoch[number] if v > 0) if log
             else stat(by_epoch[number]) for number in epochs]
    kept = [(number, s) for number, s in zip(epochs, stats) if s.n]
    return [number for number, _ in kept], [s for _, s in kept]


def _ensemble_time(run: dict[str, Any], name: str) -> bool:
    """Whether ``name`` is a time and ``run`` trained in an ensemble: the ensemble's time."""
    return name.endswith("_time_s") and bool(run.get("ensemble"))


def curve_stats(curves: Sequence[Sequence[float]], log: bool = False) -> list[Stat]:
    """Pointwise stats across curves of one length (the shortest length when they differ).
    With ``log``, the stats are of log10 of the positive values (zeros and negatives dropped)."""
    length = min((len(curve) for curve in curves), default=0)
    columns = [[curve[i] for curve in curves] for i in range(length)]
    if log:
        return [stat(math.log10(v) for v in column if v is not None and v > 0)
                for column in columns]
    return [stat(column) for column in columns]


def flatten(config: dict[str, Any]) -> dict[str, Any]:
    """A configuration as dotted keys (:func:`harness.running.configs.flatten`), lists as JSON
    text so that they compare as values."""
    return {key: json.dumps(value) if isinstance(value, list) else value
            for key, value in flat_config(config).items()}


def setting_label(setting: dict[str, Any]) -> str:
    """Short text for a setting: ``tol 0.001`` when rtol and atol vary together (the suite's
    :data:`~harness.solvers.settings.TOLERANCE`), else ``key=value`` pairs with the last part
    of each key."""
    items = dict(setting)
    parts = []
    rtol, atol = (f"solver.{name}" for name in TOLERANCES)
    if rtol in items and atol in items and items[rtol] == items[atol]:
        parts.append(f"{TOLERANCE} {format_number(items.pop(rtol))}")
        del items[atol]
    parts += [f"{key.rsplit('.', 1)[-1]}={format_number(value)}" for key, value in items.items()]
    return ", ".join(parts)


def format_number(value: Any) -> str:
    """Numbers as ``%g`` (1e-05, 0.001, 300), anything else as text."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def older(groups: Sequence[Group]) -> list[Group]:
    """The groups of one suite and task whose runs were made with an older version of the task,
    or of their model, than another group's (records made before versions were kept count as
    older than any that have one)."""
    def rank(version: Any) -> int:
        return version if isinstance(version, int) else 0

    newest: dict[tuple[str, str], int] = {}
    for group in groups:
        versions = group.versions()
        for name, owner in zip(VERSION_KEYS, (group.task, group.model)):
            key = (name, owner)
            newest[key] = max(newest.get(key, 0), rank(versions[name]))
    return [group for group in groups
            if any(rank(group.versions()[name]) < newest[(name, owner)]
                   for name, owner in zip(VERSION_KEYS, (group.task, group.model)))]


def _versions(run: dict[str, Any]) -> dict[str, Any]:
    versions = run.get("versions") or {}
    return {name: versions.get(name) for name in VERSION_KEYS}


def _described(run: dict[str, Any]) -> dict[str, Any]:
    """What a run's group is told apart by: its configuration as dotted keys, then the
    versions of its task and model."""
    return {**flatten(run.get("config", {})), **_versions(run)}


def _varying_keys(runs: Sequence[dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """Per (suite, task), the config keys with more than one value among runs of the same
    model and seed, and the versions with more than one among runs of the same model (seeds
    of two versions are not one group), in the order they appear. Between two runs that
    record different grid points (``grid_point``), a key one of them lacks counts as a value
    of its own (``options: {}`` against ``{step_size: 0.25}``); records without one (made
    before it was kept) are compared on the keys they hold, so a setting added to the harness
    later does not split them from newer records."""
    seen: dict[tuple[Any, ...], dict[str, set[str]]] = {}
    order: dict[tuple[str, str], dict[str, None]] = {}
    placed: dict[tuple[Any, ...], dict[str, list[dict[str, Any]]]] = {}
    for run in runs:
        scope = (run.get("suite", ""), run["task"])
        flat = _described(run)
        order.setdefault(scope, {}).update(dict.fromkeys(flat))
        for key, value in flat.items():
            model = (run["model"], kind_of(run))
            among = model if key in VERSION_KEYS else (*model, run.get("seed"))
            seen.setdefault((*scope, *among), {}).setdefault(key, set()).add(_text(value))
        if run.get("grid_point") is not None:
            at_seed = (*scope, run["model"], kind_of(run), run.get("seed"))
            placed.setdefault(at_seed, {}).setdefault(_text(run["grid_point"]), []).append(flat)
    for group, points in placed.items():
        if len(points) > 1:
            flats = [flat for at_point in points.values() for flat in at_point]
            for key in set().union(*flats) - set(VERSION_KEYS):
                if any(key not in flat for flat in flats):
                    seen[group].setdefault(key, set()).add(_ABSENT)
    varying: dict[tuple[str, str], set[str]] = {}
    for (suite, task, *_), values in seen.items():
        varying.setdefault((suite, task), set()).update(
            key for key, distinct in values.items() if len(distinct) > 1)
    return {scope: [key for key in order[scope] if key in keys and key not in _IDENTITY_KEYS]
            for scope, keys in varying.items()}


#: How a key a run's configuration lacks compares (:func:`_varying_keys`): unlike any value.
_ABSENT = "\0absent"


def _text(value: Any) -> str:
    """A value as comparable text."""
    return json.dumps(value, sort_keys=True, default=str)
