"""``harness compare BASE NEW``: per (task, model), how NFE, time and the metric changed.

Groups of seeds (:mod:`harness.reports.aggregate`) are matched by suite, task, model and setting. For
each quantity, a change is *noise* when it lies within the seeds' spread — |new − base| is at
most the larger of the two standard deviations across seeds — or is smaller than
``threshold`` (relative to base; with one seed per side this is the only test). Any other
change is *better* or *worse*: fewer NFE and less time are better, the metric by its task's
``higher_is_better``. (The idea of asv's ``compare``: call a change only when it stands out
of the measurement's own noise.)
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate

from harness.reports.aggregate import Group, Stat, group_runs

BETTER, WORSE, NOISE, MISSING = "better", "worse", "noise", "missing"
DEFAULT_THRESHOLD = 0.05


@dataclass
class Change:
    """One quantity of one group in both result sets, and the verdict on its change."""

    group: str
    quantity: str
    base: Stat
    new: Stat
    verdict: str

    @property
    def relative(self) -> float | None:
        if self.base.mean is None or self.new.mean is None or self.base.mean == 0:
            return None
        return (self.new.mean - self.base.mean) / abs(self.base.mean)


@dataclass
class Comparison:
    changes: list[Change]
    only_base: list[str]
    only_new: list[str]

    @property
    def worse(self) -> list[Change]:
        return [change for change in self.changes if change.verdict == WORSE]


def compare(base: Iterable[dict[str, Any]], new: Iterable[dict[str, Any]],
            threshold: float = DEFAULT_THRESHOLD) -> Comparison:
    """Every quantity of every group found in both result sets."""
    base_groups = {_key(group): group for group in group_runs(base)}
    new_groups = {_key(group): group for group in group_runs(new)}
    changes = []
    for key, old in base_groups.items():
        if key in new_groups:
            changes += _changes(old, new_groups[key], threshold)
    return Comparison(changes, [_name(k) for k in base_groups if k not in new_groups],
                      [_name(k) for k in new_groups if k not in base_groups])


def verdict(base: Stat, new: Stat, lower_is_better: bool, threshold: float) -> str:
    """better / worse / noise for one quantity; missing when either side has no value."""
    if base.mean is None or new.mean is None:
        return MISSING
    delta = new.mean - base.mean
    spread = max(base.std or 0.0, new.std or 0.0)
    if abs(delta) <= spread or abs(delta) < threshold * abs(base.mean):
        return NOISE
    return BETTER if (delta < 0) == lower_is_better else WORSE


def render(comparison: Comparison) -> str:
    """A table of the changes, then the groups found on one side only."""
    rows = [[change.group, change.quantity, _cell(change.base), _cell(change.new),
             "—" if change.relative is None else f"{change.relative:+.1%}", change.verdict]
            for change in comparison.changes]
    lines = [tabulate(rows, ["task/model", "quantity", "base", "new", "change", "verdict"],
                      tablefmt="simple", disable_numparse=True)] if rows else []
    counts = {v: sum(c.verdict == v for c in comparison.changes)
              for v in (BETTER, WORSE, NOISE, MISSING)}
    counts[MISSING + " (a value on one side only)"] = counts.pop(MISSING)
    lines.append("quantities compared: " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    for side, groups in (("BASE", comparison.only_base), ("NEW", comparison.only_new)):
        if groups:
            lines.append(f"{len(groups)} task/model group{'s' * (len(groups) > 1)} not compared, "
                         f"only in {side}: " + ", ".join(groups))
    return "\n".join(lines)


def _changes(base: Group, new: Group, threshold: float) -> list[Change]:
    metric = base.metric
    quantities = [("forward NFE", "forward_nfe", "mean", True),
                  ("backward NFE", "backward_nfe", "mean", True),
                  ("time/epoch (s)", "train_time_s", "mean", True),
                  (f"test {metric}", f"test_{metric}", "last", not base.higher_is_better)]
    changes = []
    for label, name, at, lower_is_better in quantities:
        old, now = base.value(name, at), new.value(name, at)
        if old.n or now.n:
            changes.append(Change(_name(_key(base)), label, old, now,
                                  verdict(old, now, lower_is_better, threshold)))
    return changes


def _key(group: Group) -> tuple[str, str, str]:
    return group.suite, group.task, group.label


def _name(key: tuple[str, str, str]) -> str:
    suite, task, label = key
    return f"{task}/{label}" + (f" [{suite}]" if suite else "")


def _cell(s: Stat) -> str:
    return "—" if s.mean is None else f"{s.format()} (n={s.n})"
