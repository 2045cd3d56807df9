"""Where and on what a claim's check is decided (docs/claims.md): the groups of runs split by
suite and setting (a *context*), each model's numbers in one with its failed runs accounted for
(:class:`Sample`), and the configuration keys on which two models' runs differ (runs are
compared only when every setting but the model and the seed is equal)."""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.reports.aggregate import Group, flatten, run_value, setting_label

#: The failure kind of a run stopped at ``solver.max_nfe``: its NFE is at least the cap.
NFE_CAP = "nfe_cap"
#: Configuration keys that are the model or the seed, not the conditions it ran under.
_MODEL_KEYS = ("task", "model", "kind", "seed", "model_options", "widths")


@dataclass
class Sample:
    """One model's numbers over seeds in one context: ``values`` per seed (+inf for a run failed
    at the NFE cap when the value is an NFE: censored, above every run that finished), the
    runs that failed by kind and whether they entered, and the ok runs without the value."""

    model: str
    runs: int
    values: list[float] = field(default_factory=list)
    seeds: list[Any] = field(default_factory=list)
    censored: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    lacking: int = 0

    @property
    def complete(self) -> bool:
        """Every failed run entered (as a censored value)."""
        return sum(self.failed.values()) == self.censored

    @property
    def finite(self) -> list[float]:
        return [v for v in self.values if math.isfinite(v)]

    def failures(self) -> str:
        """How many runs failed, why and how they entered: '' when none did."""
        if not self.failed:
            return ""
        kinds = ", ".join(f"{n} {kind}" for kind, n in self.failed.items())
        total = sum(self.failed.values())
        if self.complete:
            how = "entered as censored NFE, ranked above every run that finished"
        elif self.censored:
            how = (f"{self.censored} entered as censored NFE, the others cannot enter a test: "
                   "incomplete")
        else:
            how = "they cannot enter a test: incomplete"
        return f"{self.model}: {total} of {self.runs} runs failed ({kinds}); {how}"


def sample(group: Group, value: str, at: str, censor: bool = True) -> Sample:
    """The group's per-seed numbers of ``value`` (:func:`run_value`); with ``censor``, a run
    failed at the NFE cap enters an NFE value (``*_nfe``) as +inf."""
    result = Sample(group.model, len(group.runs))
    for run in group.ok:
        number = run_value(run, value, at)
        if number is None or not math.isfinite(number):
            result.lacking += 1
        else:
            result.values.append(float(number))
            result.seeds.append(run.get("seed"))
    for run in group.failed:
        kind = str(run.get("failure_kind") or "error")
        result.failed[kind] = result.failed.get(kind, 0) + 1
        if censor and kind == NFE_CAP and value.endswith("_nfe"):
            result.values.append(math.inf)
            result.seeds.append(run.get("seed"))
            result.censored += 1
    return result


def contexts(groups: Sequence[Group], strip: tuple[str, ...] = (),
             by: Callable[[Group], Any] = lambda g: g.model) -> list[tuple[str, dict[Any, Group]]]:
    """Groups split by suite and setting (less the ``strip`` keys), each as (label,
    {by(group): group}); the label names the suite and setting where there are several."""
    found: dict[Any, tuple[str, dict[str, Any], dict[Any, Group]]] = {}
    for group in groups:
        setting = {k: v for k, v in group.setting.items() if k not in strip}
        entry = found.setdefault((group.suite, _key(setting)), (group.suite, setting, {}))
        entry[2][by(group)] = group
    suites = {suite for suite, _, _ in found.values()}
    labelled = []
    for suite, setting, members in found.values():
        parts = ([suite] if len(suites) > 1 else []) + ([setting_label(setting)] if setting else [])
        labelled.append((f"[{', '.join(parts)}] " if parts else "", members))
    return labelled


def differing(a: Group, b: Group, compared: str | None = None) -> list[str]:
    """The configuration keys on which the runs of ``a`` and ``b`` differ, each as ``key (x vs
    y)``, the model's own keys, the seed and the ``compared`` key aside: a key differs when a
    seed both ran has two values of it, or when each group has one value of it and they are
    not the same."""
    runs_a, runs_b = _conditions(a, compared), _conditions(b, compared)
    shared = set(runs_a) & set(runs_b)
    keys = dict.fromkeys([k for config in (*runs_a.values(), *runs_b.values()) for k in config])
    found = []
    for key in keys:
        values_a = {config.get(key) for config in runs_a.values()}
        values_b = {config.get(key) for config in runs_b.values()}
        per_seed = any(runs_a[s].get(key) != runs_b[s].get(key) for s in shared)
        if per_seed or (len(values_a) == len(values_b) == 1 and values_a != values_b):
            found.append(f"{key} ({' / '.join(sorted(map(_text, values_a)))} vs "
                         f"{' / '.join(sorted(map(_text, values_b)))})")
    return found


def _conditions(group: Group, compared: str | None = None) -> dict[Any, dict[str, Any]]:
    """Per seed, the run's flat configuration less the model's and the seed's keys (and the
    ``compared`` one), each value hashable (a mapping as its JSON text)."""
    return {run.get("seed"): {key: _hashable(value)
                              for key, value in flatten(run.get("config", {})).items()
                              if key.split(".")[0] not in _MODEL_KEYS and key != compared}
            for run in group.runs}


def compared_contexts(groups: Sequence[Group], by: str | None,
                      where: dict[str, list[Any]]) -> list[tuple[str, dict[Any, Group]]]:
    """:func:`contexts` of the groups whose runs all have a ``where`` value of each key; with
    ``by``, per model, keyed by the group's value of that configuration key (as text) instead of
    the model."""
    kept = kept_where(groups, where)
    if by is None:
        return contexts(kept)
    found = []
    for model in dict.fromkeys(group.model for group in kept):
        mine = [group for group in kept if group.model == model]
        for label, members in contexts(mine, strip=(by,), by=lambda g: _text(g.setting.get(by))):
            found.append((f"[{model}{', ' + label[1:-2] if label else ''}] ", members))
    return found


def kept_where(groups: Sequence[Group], where: dict[str, list[Any]]) -> list[Group]:
    """The groups whose runs all have one of the ``where`` values of each key."""
    return [group for group in groups
            if all(all(flatten(run.get("config", {})).get(key) in values for run in group.runs)
                   for key, values in where.items())]


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, dict) else value


def _text(value: Any) -> str:
    return "—" if value is None else value if isinstance(value, str) else json.dumps(value)


def _key(setting: dict[str, Any]) -> str:
    return repr(sorted(setting.items(), key=lambda item: item[0]))
