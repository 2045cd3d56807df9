"""``harness compare BASE NEW``: per (task, model), how NFE, time and the metric changed.

Groups of seeds (:mod:`harness.reports.aggregate`) are matched by suite, task, model and setting,
or by the fields given (``match``: ``task,model,setting`` matches across suite names, e.g. two
suites that differ only in the solver backend). For each quantity:

- with at least :data:`MIN_SEEDS` ok seeds on both sides, Welch's t-test decides, as for the
  claims (:mod:`harness.reports.seed_statistics`): a change is *better* or *worse* when its p-value,
  Holm-corrected across every test of the comparison, is below ``alpha`` and the change is at
  least ``threshold`` (relative to base: significant but negligible is still noise); else
  *noise*;
- with fewer seeds, a time is *undecided*: one or two timings a side cannot tell a change of
  the code from the machine's load (two runs of identical code on a busy machine differed by
  half). NFE and the metric, which a fixed seed makes deterministic, are *noise* when the change
  lies within the seeds' spread — |new − base| is at most the larger of the two standard
  deviations — or is smaller than ``threshold``; with one seed per side the threshold is the
  only rule. (The idea of asv's ``compare``: call a change only when it stands out of the
  measurement's own noise.)

A value an ok run records as NaN or ±inf is *unreadable*: like *worse*, it fails
``--fail-on-worse`` (a gate must not pass what it cannot read). Fewer NFE and less time are
better, the metric by its task's ``higher_is_better``. Groups whose runs were made with another
version of the task or the model on each side are named (:attr:`Comparison.versions`): their
numbers may have changed with the plugin, not the harness.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tabulate import tabulate

from harness.reports.aggregate import VERSION_KEYS, Group, Stat, group_runs
from harness.reports.seed_statistics import ALPHA, TwoSampleTest, holm, welch

BETTER, WORSE, NOISE, MISSING = "better", "worse", "noise", "missing"
UNDECIDED, UNREADABLE = "undecided", "unreadable"
VERDICTS = (BETTER, WORSE, NOISE, UNDECIDED, UNREADABLE, MISSING)
DEFAULT_THRESHOLD = 0.05
#: What groups can be matched by, and the default (all of them).
MATCH_FIELDS = ("suite", "task", "model", "setting")
#: The fewest ok seeds on each side for a change to be decided by a test.
MIN_SEEDS = 3


class CompareError(ValueError):
    """A comparison that cannot be made as asked (an unknown or ambiguous ``match``)."""


@dataclass
class Change:
    """One quantity of one group in both result sets, the test behind it (None with fewer
    than :data:`MIN_SEEDS` seeds a side), its Holm-corrected p-value and the verdict."""

    group: str
    quantity: str
    base: Stat
    new: Stat
    verdict: str
    lower_is_better: bool = True
    test: TwoSampleTest | None = None
    p_holm: float | None = None

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
    match: tuple[str, ...] = MATCH_FIELDS
    versions: list[str] = field(default_factory=list)
    """The compared groups made with another task or model version on each side, with both."""

    @property
    def worse(self) -> list[Change]:
        return [change for change in self.changes if change.verdict == WORSE]

    @property
    def failing(self) -> list[Change]:
        """What fails ``--fail-on-worse``: changes for the worse and values that are no number."""
        return [change for change in self.changes if change.verdict in (WORSE, UNREADABLE)]

    @property
    def warning(self) -> str | None:
        """Why nothing was compared, when both sides have groups but none matched."""
        if self.changes or not self.only_base or not self.only_new:
            return None
        hint = (" (--match task,model,setting matches across suite names)"
                if "suite" in self.match else "")
        return (f"no group of BASE matches one of NEW by {', '.join(self.match)}: nothing was "
                f"compared{hint}")


def compare(base: Iterable[dict[str, Any]], new: Iterable[dict[str, Any]],
            threshold: float = DEFAULT_THRESHOLD, match: Sequence[str] = MATCH_FIELDS,
            alpha: float = ALPHA, ensemble_times: bool = False) -> Comparison:
    """Every quantity of every group found in both result sets, matched by ``match``; times of
    ensemble members only with ``ensemble_times`` (they are the ensemble's)."""
    match = tuple(match)
    unknown = [name for name in match if name not in MATCH_FIELDS]
    if unknown or not match:
        raise CompareError(f"--match {','.join(match)!r}: valid: a comma-separated subset of "
                           f"{', '.join(MATCH_FIELDS)}")
    base_groups = _by_key(group_runs(base), match, "BASE")
    new_groups = _by_key(group_runs(new), match, "NEW")
    changes, versions = [], []
    for key, old in base_groups.items():
        if key in new_groups:
            changes += _changes(old, new_groups[key], threshold, ensemble_times)
            versions += _version_change(old, new_groups[key])
    # the verdicts of the changes without a test stand; the others are redecided
    tested = [change for change in changes if change.test is not None]
    for change, adjusted in zip(tested, holm([change.test.p for change in tested])):
        change.p_holm = adjusted
        change.verdict = tested_verdict(change.test.difference, adjusted, change.base,
                                        change.lower_is_better, threshold, alpha)
    return Comparison(changes, [_name(g) for k, g in base_groups.items() if k not in new_groups],
                      [_name(g) for k, g in new_groups.items() if k not in base_groups], match,
                      versions)


def verdict(base: Stat, new: Stat, lower_is_better: bool, threshold: float) -> str:
    """better / worse / noise for one quantity without a test (fewer than :data:`MIN_SEEDS`
    seeds a side); missing when either side has no value."""
    if base.mean is None or new.mean is None:
        return MISSING
    delta = new.mean - base.mean
    spread = max(base.std or 0.0, new.std or 0.0)
    if abs(delta) <= spread or abs(delta) < threshold * abs(base.mean):
        return NOISE
    return BETTER if (delta < 0) == lower_is_better else WORSE


def tested_verdict(delta: float, p_holm: float, base: Stat, lower_is_better: bool,
                   threshold: float, alpha: float) -> str:
    """better / worse when the Holm-corrected p-value of the change ``delta`` (new − base) is
    below ``alpha`` and the change is at least ``threshold`` of the base; else noise."""
    if p_holm >= alpha or abs(delta) < threshold * abs(base.mean or 0.0):
        return NOISE
    return BETTER if (delta < 0) == lower_is_better else WORSE


def render(comparison: Comparison) -> str:
    """A table of the changes, then the groups found on one side only."""
    rows = [[change.group, change.quantity, _cell(change.base), _cell(change.new),
             "—" if change.relative is None else f"{change.relative:+.1%}", _test(change),
             change.verdict]
            for change in comparison.changes]
    lines = [tabulate(rows, ["task/model", "quantity", "base", "new", "change",
                             "Welch's t: p (Holm)", "verdict"],
                      tablefmt="simple", disable_numparse=True)] if rows else []
    counts = {v: sum(c.verdict == v for c in comparison.changes) for v in VERDICTS}
    counts[MISSING + " (a value on one side only)"] = counts.pop(MISSING)
    lines.append("quantities compared: " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    if comparison.versions:
        lines.append("made with another version of the task or model on each side (a change "
                     "there may be the plugin's): " + "; ".join(comparison.versions))
    for side, groups in (("BASE", comparison.only_base), ("NEW", comparison.only_new)):
        if groups:
            lines.append(f"{len(groups)} task/model group{'s' * (len(groups) > 1)} not compared, "
                         f"only in {side}: " + ", ".join(groups))
    return "\n".join(lines)


def _changes(base: Group, new: Group, threshold: float, ensemble_times: bool) -> list[Change]:
    metric = base.metric
    quantities = [("forward NFE", "forward_nfe", "mean", True),
                  ("backward NFE", "backward_nfe", "mean", True),
                  ("time/epoch (s)", "train_time_s", "mean", True),
                  (f"test {metric}", f"test_{metric}", "last", not base.higher_is_better)]
    name = _name(base) if base.suite == new.suite else f"{_name(base)} → [{new.suite}]"
    changes = []
    for label, field_name, at, lower_is_better in quantities:
        old = base.value(field_name, at, ensemble_times)
        now = new.value(field_name, at, ensemble_times)
        if not (old.n or now.n or old.non_finite or now.non_finite):
            continue
        tested = min(old.n, now.n) >= MIN_SEEDS
        if old.non_finite or now.non_finite:
            decided = UNREADABLE
        elif field_name.endswith("_time_s") and not tested and old.n and now.n:
            decided = UNDECIDED
        else:
            decided = verdict(old, now, lower_is_better, threshold)
        test = (welch(now.values, old.values)  # difference: new − base
                if tested and decided != UNREADABLE else None)
        changes.append(Change(name, label, old, now, decided, lower_is_better, test))
    return changes


def _version_change(base: Group, new: Group) -> list[str]:
    """``["point_cloud/hbnode [ci]: task_version 1 → 2"]`` when the two groups' runs were made
    with other versions of the task or the model (None: before versions were kept); else []."""
    before, after = base.versions(), new.versions()
    moved = [f"{name} {_version(before[name])} → {_version(after[name])}"
             for name in VERSION_KEYS if before[name] != after[name]]
    return [f"{_name(base)}: {', '.join(moved)}"] if moved else []


def _version(value: Any) -> str:
    return "unrecorded" if value is None else str(value)


def _by_key(groups: list[Group], match: tuple[str, ...], side: str) -> dict[tuple[str, ...], Group]:
    """The groups by the fields matched; two groups of one side under one key are ambiguous."""
    keyed: dict[tuple[str, ...], Group] = {}
    for group in groups:
        fields = {"suite": group.suite, "task": group.task, "model": group.model,
                  "setting": json.dumps(group.setting, sort_keys=True, default=str)}
        key = tuple(fields[name] for name in match)
        if key in keyed:
            raise CompareError(
                f"{side}: {_name(keyed[key])} and {_name(group)} both match by "
                f"{', '.join(match)}; add {' or '.join(n for n in MATCH_FIELDS if n not in match)}"
                f" to --match")
        keyed[key] = group
    return keyed


def _name(group: Group) -> str:
    return f"{group.task}/{group.label}" + (f" [{group.suite}]" if group.suite else "")


def _cell(s: Stat) -> str:
    text = "—" if s.mean is None else f"{s.format()} (n={s.n})"
    return text + (f", {s.non_finite} not a number" if s.non_finite else "")


def _test(change: Change) -> str:
    if change.test is None or change.p_holm is None:
        return "—"
    return f"{change.test.p:.2g} ({change.p_holm:.2g})"
