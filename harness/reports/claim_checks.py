"""The checks decided over seeds, each built into a :class:`PendingCheck` of tests
(docs/claims.md has the per-seed quantity, the test and the unit of resampling of each):

- ``compare``: per pair of models in each suite and setting, the permutation test of Welch's t
  over seeds (on ranks when a run failed at the NFE cap);
- ``stalls``: per pair, Fisher's exact test of how many seeds end beyond a threshold;
- ``trend``: per model, each seed's least-squares slope of the value against the epoch, the
  slopes tested by sign flips;
- ``advantage_grows``: per seed, the ratio of the ``than`` models' numbers to the ``lower``
  models' at every tolerance and its slope against −log10(tolerance), tested by sign flips (a
  seed's runs at every tolerance resampled together).

A context (suite and setting) that has some of a check's models needs all of them: a model not
run there, or whose failed runs cannot enter the test, is a gap (the check is incomplete); two
models whose runs differ in a setting other than the model and the seed are not comparable.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.reports.aggregate import Group, format_number, stat
from harness.reports.claim_contexts import (Sample, compared_contexts, contexts, differing,
                                            sample)
from harness.reports.claim_tests import ClaimTest, PendingCheck
from harness.reports.claims import Check, models_of
from harness.reports.exact_tests import fisher, one_sample, two_sample
from harness.reports.seed_statistics import welch

_TOLERANCE = ("solver.rtol", "solver.atol")


def compare_check(check: Check, groups: list[Group], resamples: int) -> PendingCheck:
    """A ``compare`` or ``stalls`` check's tests, one per pair of models in every context."""
    o = check.options
    side = next(key for key in ("lower", "higher", "more", "fewer") if key in o)
    claimed = -1 if side in ("lower", "fewer") else 1
    pending = PendingCheck(check)
    for label, context in compared_contexts(groups, o.get("by"), o.get("where", {})):
        samples = _samples(check, context, label, pending, censor=check.kind == "compare")
        if samples is None:
            continue
        pending.items.append(label + ", ".join(_describe(s) for s in samples.values()))
        for a in o[side]:
            for b in o["than"]:
                unequal = differing(context[a], context[b], o.get("by"))
                if unequal:
                    pending.unequal.append(f"{label}{a} and {b} ran under different settings, "
                                           f"not comparable: {'; '.join(unequal)}")
                elif check.kind == "compare":
                    pending.items.append(_pair(a, b, samples[a], samples[b], claimed, resamples))
                else:
                    pending.items.append(_stall_pair(check, a, b, samples[a], samples[b]))
    return pending


def _samples(check: Check, context: dict[Any, Group], label: str, pending: PendingCheck,
             censor: bool) -> dict[str, Sample] | None:
    """Every model's sample in the context, or None (with the gaps noted) when one is missing,
    has a failure that cannot enter, or no number; None without a note when none ran here."""
    o = check.options
    models = list(dict.fromkeys(models_of(check)))
    if not any(m in context for m in models):
        return None
    absent = [m for m in models if m not in context]
    if absent:
        pending.gaps.append(f"{label}no run of {', '.join(absent)} here")
        return None
    samples = {m: sample(context[m], o["value"], o.get("at", "mean"), censor) for m in models}
    for name, found in samples.items():
        found.model = name  # the model, or the value of the check's ``by`` key
    for s in samples.values():
        if s.failures():
            (pending.notes if s.complete else pending.gaps).append(label + s.failures())
    empty = [m for m, s in samples.items() if not s.finite]
    if empty:
        pending.gaps.append(f"{label}no ok run of {', '.join(empty)} with {o['value']}")
    return None if empty or not all(s.complete for s in samples.values()) else samples


def _describe(s: Sample) -> str:
    text = _stat(s.finite)
    return f"{s.model} {text}" + (f" and {s.censored} censored" if s.censored else "")


def _stat(values: Sequence[float]) -> str:
    numbers = stat(values)
    interval = numbers.format_interval()
    return f"{numbers.format()} (n={numbers.n}" + (f", 95% CI {interval})" if interval else ")")


def _pair(a: str, b: str, sa: Sample, sb: Sample, claimed: int, resamples: int) -> ClaimTest:
    """The test of ``a`` against ``b``: Welch's numbers shown beside it when no run is
    censored; the sign of the observed difference (of means, or of mean ranks) against the
    claim's."""
    test = two_sample(sa.values, sb.values, resamples)
    line = f"    {a} {'<' if claimed < 0 else '>'} {b}: "
    if test is None:
        return ClaimTest(line + "no test: needs two seeds of each model or more", None, 0)
    censored = bool(sa.censored or sb.censored)
    described = None if censored else welch(sa.values, sb.values)
    difference = test.statistic if censored else described.difference
    line += "" if described is None else f"{described.describe_difference()}; "
    return ClaimTest(line, test, int(np.sign(difference)) * claimed, described)


def _stall_pair(check: Check, a: str, b: str, sa: Sample, sb: Sample) -> ClaimTest:
    o = check.options
    bound, sign = (o["above"], ">") if "above" in o else (o["below"], "<")
    stalled = [sum((v > bound) if sign == ">" else (v < bound) for v in s.values)
               for s in (sa, sb)]
    test = fisher(stalled[0], len(sa.values), stalled[1], len(sb.values))
    claimed = 1 if "more" in o else -1
    word = "more" if claimed > 0 else "fewer"
    line = (f"    {a} {word} than {b}: {stalled[0]} of {len(sa.values)} vs {stalled[1]} of "
            f"{len(sb.values)} seeds with {o['value']} {sign} {bound:g}; ")
    return ClaimTest(line, test, int(np.sign(test.statistic)) * claimed)


def trend_check(check: Check, groups: list[Group], resamples: int) -> PendingCheck:
    """Per model in each context, each seed's slope of the value against the epoch (two
    epochs or more), tested over seeds."""
    o = check.options
    claimed = 1 if o["direction"] == "rises" else -1
    pending = PendingCheck(check)
    for label, context in contexts(groups):
        if _samples(check, context, label, pending, censor=False) is None:
            continue
        for model in dict.fromkeys(o["models"]):
            slopes, firsts, lasts = [], [], []
            for run in context[model].ok:
                points = [(e["epoch"], e[o["value"]]) for e in run.get("epochs", [])
                          if _number(e.get(o["value"]))]
                if len(points) > 1:
                    slopes.append(slope(*zip(*points)))
                    firsts.append(points[0][1])
                    lasts.append(points[-1][1])
            if not slopes:
                pending.gaps.append(f"{label}no ok run of {model} has {o['value']} at two "
                                    f"epochs or more")
                continue
            test = one_sample(slopes, resamples)
            line = (f"{label}{model}: first epoch {_stat(firsts)} → last {_stat(lasts)}; "
                    f"per-seed slope per epoch {_stat(slopes)}; ")
            if test is None:
                line += "no test: needs two seeds or more"
            pending.items.append(ClaimTest(line, test, int(np.sign(np.mean(slopes))) * claimed))
    return pending


def advantage_check(check: Check, groups: list[Group], resamples: int) -> PendingCheck:
    """In each context less the tolerance, per seed: r(tol) = mean of the ``than`` models'
    numbers / mean of the ``lower`` models' at every tolerance, and its slope against
    −log10(tol) (growth per decade, tolerance decreasing), tested over seeds."""
    o = check.options
    lower, models = o["lower"], list(dict.fromkeys([*o["lower"], *o["than"]]))
    pending = PendingCheck(check)
    for label, context in contexts(groups, strip=_TOLERANCE, by=lambda g: (g.model, _rtol(g))):
        tols = sorted({tol for model, tol in context if model in models and tol is not None},
                      reverse=True)
        if not tols:
            continue
        cells: dict[tuple[str, float], Sample] = {}
        unequal = len(pending.unequal)
        for tol in tols:
            row = {m: context[(m, tol)] for m in models if (m, tol) in context}
            where = f"{label[:-2] + ', ' if label else '['}tol {format_number(tol)}] "
            found = _samples(check, row, where, pending, censor=False)
            for m in list(row)[1:]:
                keys = differing(row[models[0]], row[m]) if models[0] in row else []
                if keys:
                    pending.unequal.append(f"{where}{models[0]} and {m} ran under different "
                                           f"settings, not comparable: {'; '.join(keys)}")
            cells.update({(m, tol): s for m, s in (found or {}).items()})
        if len(cells) < len(models) * len(tols) or len(pending.unequal) > unequal:
            continue
        if len(tols) < 2:
            pending.gaps.append(f"{label}one tolerance only ({format_number(tols[0])})")
            continue
        pending.items.append(_growth(label, cells, tols, lower, models, resamples))
    return pending


def _growth(label: str, cells: dict[tuple[str, float], Sample], tols: list[float],
            lower: list[str], models: list[str], resamples: int) -> ClaimTest:
    """The per-seed slopes of the ratio over the seeds every cell has, and their test."""
    per_cell = {key: dict(zip(s.seeds, s.values)) for key, s in cells.items()}
    seeds = [seed for seed in per_cell[(models[0], tols[0])]
             if all(seed in values for values in per_cell.values())]
    x = [-math.log10(tol) for tol in tols]

    def ratio(numbers: dict[str, float]) -> float:
        down = sum(numbers[m] for m in lower) / len(lower)
        up = sum(numbers[m] for m in models if m not in lower) / (len(models) - len(lower))
        return up / down if down else math.nan

    slopes = []
    for seed in seeds:
        ratios = [ratio({m: per_cell[(m, tol)][seed] for m in models}) for tol in tols]
        if all(math.isfinite(r) for r in ratios):
            slopes.append(slope(x, ratios))
    means = [ratio({m: float(np.mean(cells[(m, tol)].values)) for m in models}) for tol in tols]
    line = (f"{label}ratio " + ", ".join(f"{r:.3g} at tol {format_number(t)}"
                                          for t, r in zip(tols, means))
            + f"; per-seed growth per decade of tolerance {_stat(slopes)}; ")
    unpaired = sorted({seed for values in per_cell.values() for seed in values} - set(seeds),
                      key=str)
    if unpaired:
        line += f"seeds {', '.join(map(str, unpaired))} left out (not run in every cell); "
    test = one_sample(slopes, resamples)
    if test is None:
        line += "no test: needs two seeds at every tolerance or more"
    return ClaimTest(line, test, int(np.sign(np.mean(slopes))) if slopes else 0)


def slope(x: Sequence[float], y: Sequence[float]) -> float:
    """The least-squares slope of y against x."""
    dx = np.asarray(x, dtype=float) - np.mean(x)
    return float(dx @ (np.asarray(y, dtype=float) - np.mean(y)) / (dx @ dx))


def _rtol(group: Group) -> float | None:
    values = {run.get("config", {}).get("solver", {}).get("rtol") for run in group.runs}
    return values.pop() if len(values) == 1 else None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
