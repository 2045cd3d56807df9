"""NFE budgets: ceilings and floors on what runs measured, so CI can fail a change that blows them.

A budget file (YAML, read with ``yaml.safe_load``)::

    tolerance: 0.1                 # relative slack for every line (default 0.1)
    budgets:
      - task: point_cloud
        model: hbnode
        solver: {rtol: 1.0e-3}     # optional: only runs with these solver settings (any of
                                   # harness.solvers.settings.SOLVER_SETTINGS: method, rtol,
                                   # atol, adjoint, backend, options, max_nfe)
        at: mean                   # ceilings on the mean over epochs (default), the first or the last
        max: {forward_nfe: 40, backward_nfe: 52, eval_nfe: 30, train_time_s: 1.5,
              backward_memory_bytes: 2.0e+5}  # runs with memory: true (docs/memory.md)
        min: {test_accuracy: 0.9}  # floors, on the last epoch
        tolerance: 0.05            # this line's own slack

A ceiling passes when measured ≤ limit·(1 + tolerance), a floor when measured ≥
limit·(1 − tolerance). ``measured`` is the mean over every run in the results that matches the
line (all its seeds). A line that matches no run, or only failed runs, fails too, and so does
one whose runs record the value as no number (NaN, ±inf): a budget is never passed silently.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any, Iterable

import yaml
from tabulate import tabulate

from harness.reports.aggregate import AT_CHOICES, run_value
from harness.running.safe_files import Folder
from harness.running.store import standing
from harness.solvers.built_in import uses_tolerance
from harness.solvers.settings import SOLVER_SETTINGS, TOLERANCES
from harness.suites.validation import (Invalid, Problems, choice, fraction, join, mapping,
                                       non_empty_list, number, positive_number, read_yaml, string,
                                       top_level)

#: Per-epoch record fields a budget may bound (besides any ``test_<metric>``).
FIELDS = ("forward_nfe", "backward_nfe", "eval_nfe", "train_time_s", "forward_time_s",
          "backward_time_s", "eval_time_s", "loss", "forward_memory_bytes",
          "backward_memory_bytes")
#: The fields a new budget line bounds from what its runs measured (memory where they did).
MEASURED_FIELDS = ("forward_nfe", "backward_nfe", "eval_nfe", "forward_memory_bytes",
                   "backward_memory_bytes")
_LINE_KEYS = ("task", "model", "solver", "at", "max", "min", "tolerance")
#: The solver settings a line may narrow by: every declared one.
_SOLVER_KEYS = tuple(SOLVER_SETTINGS)
DEFAULT_TOLERANCE = 0.1


class BudgetError(ValueError):
    """A budget file that cannot be used; the message lists every problem, one per line."""


@dataclass
class Budget:
    """One line of a budget file."""

    task: str
    model: str
    solver: dict[str, Any] = field(default_factory=dict)
    at: str = "mean"
    max: dict[str, float] = field(default_factory=dict)
    min: dict[str, float] = field(default_factory=dict)
    tolerance: float = DEFAULT_TOLERANCE

    @property
    def label(self) -> str:
        narrowing = ", ".join(f"{k}={v}" for k, v in self.solver.items())
        return f"{self.task}/{self.model}" + (f" [{narrowing}]" if narrowing else "")

    def matches(self, record: dict[str, Any]) -> bool:
        if (record.get("task"), record.get("model")) != (self.task, self.model):
            return False
        solver = record.get("config", {}).get("solver", {})
        return all(_same(solver.get(key), value) for key, value in self.solver.items())

    def as_yaml(self, default_tolerance: float) -> dict[str, Any]:
        line: dict[str, Any] = {"task": self.task, "model": self.model}
        if self.solver:
            line["solver"] = dict(self.solver)
        if self.at != "mean":
            line["at"] = self.at
        for bound in ("max", "min"):
            if getattr(self, bound):
                line[bound] = dict(getattr(self, bound))
        if self.tolerance != default_tolerance:
            line["tolerance"] = self.tolerance
        return line


@dataclass
class Verdict:
    """One bound of one budget line against the results."""

    budget: Budget
    field: str
    bound: str  # "max" or "min"
    limit: float
    measured: float | None
    runs: int
    problem: str | None  # None when the bound holds

    @property
    def allowed(self) -> float:
        slack = 1 + self.budget.tolerance if self.bound == "max" else 1 - self.budget.tolerance
        return self.limit * slack

    @property
    def passed(self) -> bool:
        return self.problem is None


# --- reading -----------------------------------------------------------------------------------


def load_budgets(path: str | Path) -> tuple[list[Budget], float]:
    """The budget lines of a file and its default tolerance; :class:`BudgetError` lists every
    problem found."""
    path = Path(path)
    report = Problems(str(path))
    document = top_level(read_yaml(path, BudgetError, "a budget YAML file"), path, BudgetError,
                         ("tolerance", "budgets"), report)
    tolerance = report.check("tolerance", fraction, document.get("tolerance", DEFAULT_TOLERANCE))
    lines = non_empty_list(document.get("budgets"), "budgets", report,
                           "a non-empty list of budget lines")
    budgets = [_check_line(line, f"budgets[{i}]", report, tolerance or DEFAULT_TOLERANCE)
               for i, line in enumerate(lines)]
    report.raise_if_any(BudgetError)
    return budgets, tolerance


def _check_line(line: Any, at: str, report: Problems, tolerance: float) -> Budget:
    line = mapping(line, at, report, "a budget line with task, model, max and/or min")
    for key in line:
        if key not in _LINE_KEYS:
            report.unknown(join(at, key), f"unknown key {key!r}", key, _LINE_KEYS)
    for key in ("task", "model"):
        if key not in line:
            report.add(join(at, key), "missing", f"valid: the {key}'s name")
    solver = mapping(line.get("solver", {}), join(at, "solver"), report,
                     f"a mapping with keys among {', '.join(_SOLVER_KEYS)}")
    for key in solver:
        if key not in _SOLVER_KEYS:
            report.unknown(join(at, f"solver.{key}"), f"unknown solver key {key!r}", key, _SOLVER_KEYS)
    bounds = {bound: _check_bounds(line.get(bound, {}), join(at, bound), report)
              for bound in ("max", "min")}
    if not bounds["max"] and not bounds["min"]:
        report.add(at, "no bounds", "valid: a `max:` and/or `min:` mapping of field to limit")
    return Budget(
        task=report.check(join(at, "task"), string, line.get("task", "")),
        model=report.check(join(at, "model"), string, line.get("model", "")),
        solver={k: _number_or_value(v) for k, v in solver.items()},
        at=report.check(join(at, "at"), choice(AT_CHOICES, "a way to summarise epochs"),
                        line.get("at", "mean")),
        max=bounds["max"], min=bounds["min"],
        tolerance=report.check(join(at, "tolerance"), fraction, line.get("tolerance", tolerance)))


def _check_bounds(value: Any, at: str, report: Problems) -> dict[str, float]:
    bounds = mapping(value, at, report, "a mapping of record field to limit")
    checked = {}
    for name, limit in bounds.items():
        if name in FIELDS or str(name).startswith("test_"):
            checked[name] = report.check(join(at, name), positive_number, limit)
        else:
            report.unknown(join(at, name), f"unknown field {name!r}", name,
                           [*FIELDS, "test_<metric>"])
    return checked


def _number_or_value(value: Any) -> Any:
    try:
        return number(value)
    except Invalid:
        return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b


# --- checking ----------------------------------------------------------------------------------


def check(budgets: Iterable[Budget], records: Iterable[dict[str, Any]]) -> list[Verdict]:
    """Every bound of every line against the matching runs (each run by its standing record,
    :func:`harness.running.store.standing`: a run that failed and then passed on retry counts as passed)."""
    records = standing(records)
    verdicts = []
    for budget in budgets:
        matching = [r for r in records if budget.matches(r)]
        ok = [r for r in matching if r.get("status") == "ok"]
        failed = [r for r in matching if r.get("status") != "ok"]
        for bound, limits in (("max", budget.max), ("min", budget.min)):
            at = budget.at if bound == "max" else "last"
            for name, limit in limits.items():
                values = [run_value(r, name, at) for r in ok]
                measured = fmean(values) if _readable(values) else None
                verdict = Verdict(budget, name, bound, limit, measured, len(matching), None)
                verdict.problem = _problem(verdict, failed, values)
                verdicts.append(verdict)
    return verdicts


def _readable(values: list[float | None]) -> bool:
    """Whether every run recorded the value as a finite number (there being runs)."""
    return bool(values) and all(v is not None and math.isfinite(v) for v in values)


def _problem(verdict: Verdict, failed: list[dict[str, Any]], values: list) -> str | None:
    if not verdict.runs:
        return "no run matches this budget"
    if failed:
        return f"{len(failed)} of {verdict.runs} matching runs failed: {failed[0].get('error')}"
    unreadable = sum(v is not None and not math.isfinite(v) for v in values)
    if unreadable:
        return (f"{unreadable} of {verdict.runs} matching runs record {verdict.field} as no "
                f"number (NaN or ±inf)")
    if verdict.measured is None:
        return f"the runs record no {verdict.field}"
    if verdict.bound == "max" and verdict.measured > verdict.allowed:
        return (f"measured {verdict.measured:.4g} > budget {verdict.limit:.4g} "
                f"(+{verdict.budget.tolerance:.0%} = {verdict.allowed:.4g})")
    if verdict.bound == "min" and verdict.measured < verdict.allowed:
        return (f"measured {verdict.measured:.4g} < floor {verdict.limit:.4g} "
                f"(−{verdict.budget.tolerance:.0%} = {verdict.allowed:.4g})")
    return None


def render(verdicts: list[Verdict]) -> str:
    """A table of every bound, then one line per violation naming the run, value and budget."""
    rows = [[v.budget.label, v.field, "≤" if v.bound == "max" else "≥", _fmt(v.limit),
             _fmt(v.allowed), _fmt(v.measured), v.runs, "pass" if v.passed else "FAIL"]
            for v in verdicts]
    table = tabulate(rows, headers=["budget", "value", "", "limit", "with tolerance", "measured",
                                    "runs", "result"], disable_numparse=True)
    failures = [f"FAIL {v.budget.label} {v.field}: {v.problem}" for v in verdicts if not v.passed]
    return "\n".join([table, *([""] + failures if failures else [])])


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


# --- updating ----------------------------------------------------------------------------------


def updated_budgets(records: Iterable[dict[str, Any]], existing: list[Budget],
                    margin: float) -> list[Budget]:
    """Budgets refreshed from measured values: every existing line's ceilings and floors set
    to what its runs measured now, and a new line (forward, backward and eval NFE ceilings) for
    each (task, model, solver settings) the results hold that no line covers, narrowed to the
    solver settings it was measured at (:func:`measured_at`), so that it never judges runs at
    another tolerance or method. The margin becomes the new lines' tolerance."""
    ok = [r for r in records if r.get("status") == "ok"]
    budgets = []
    for budget in existing:
        matching = [r for r in ok if budget.matches(r)]
        for bound in ("max", "min"):
            at = budget.at if bound == "max" else "last"
            for name in getattr(budget, bound):
                values = [run_value(r, name, at) for r in matching]
                if _readable(values):  # a NaN would make a bound no run can meet or fail
                    getattr(budget, bound)[name] = _round(fmean(values), bound)
        budgets.append(budget)
    for (task, model, _), runs in _groups(ok).items():
        narrowing = measured_at(runs[0])
        if any(b.task == task and b.model == model and all(_same(narrowing.get(k), v)
               for k, v in b.solver.items()) for b in budgets):
            continue
        ceilings = {name: _round(fmean(values), "max") for name in MEASURED_FIELDS
                    if _readable(values := [run_value(r, name, "mean") for r in runs])}
        budgets.append(Budget(task, model, narrowing, max=ceilings, tolerance=margin))
    return budgets


def _groups(records: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    """Runs by (task, model, the solver settings they were measured at)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        settings = json.dumps(measured_at(r), sort_keys=True, default=str)
        groups.setdefault((r["task"], r["model"], settings), []).append(r)
    return groups


def measured_at(record: dict[str, Any]) -> dict[str, Any]:
    """The solver settings that decide a run's NFE (declared so, as all but ``max_nfe`` are),
    as a budget line's ``solver:``: method, tolerances, adjoint, backend and options, but not
    the tolerances when the method takes fixed steps
    (:func:`harness.solvers.built_in.uses_tolerance`) nor options left empty."""
    solver = record.get("config", {}).get("solver", {})
    ignored = () if uses_tolerance(solver) else TOLERANCES
    return {key: solver[key] for key, spec in SOLVER_SETTINGS.items()
            if spec.metadata["decides_nfe"] and key not in ignored and key in solver
            and solver[key] != {}}


def _round(value: float, bound: str) -> float:
    """Up (ceilings) or down (floors) to 3 significant digits, so a re-check passes."""
    if value == 0:
        return 0.0
    scale = 10 ** (math.floor(math.log10(abs(value))) - 2)
    rounded = (math.ceil if bound == "max" else math.floor)(value / scale) * scale
    return float(f"{rounded:.6g}")


def write_budgets(path: str | Path, budgets: list[Budget], tolerance: float) -> None:
    document = {"tolerance": tolerance,
                "budgets": [budget.as_yaml(tolerance) for budget in budgets]}
    header = ("# NFE budgets, checked by `harness check RESULTS --budgets THIS_FILE`;\n"
              "# refreshed from measured values by adding `--update`.\n")
    path = Path(path)  # replaced whole or not at all (Ctrl-C, a full disk), no link followed
    Folder(path.parent).write(path.name, header + yaml.safe_dump(document, sort_keys=False))
