"""Claims evaluated on result records (the check kinds are described in
:mod:`harness.reports.claims`), each check and each claim with one of five verdicts:

- **holds** / **refuted**: a ``compare`` check's tests over seeds (Welch's t, Holm's correction
  across every test of the claim on one task) are significant in the claimed direction for every
  pair of models it names / the other way for some pair; an ``advantage_grows`` check's
  bootstrap interval over seeds of the ratio's growth lies above / below 0; a deterministic
  check (threshold, trend, params) holds or does not on the numbers;
- **inconclusive**: a ``compare`` check its tests decide neither way (it says how many seeds per
  model would give each undecided test 80 % power at the observed effect), an
  ``advantage_grows`` check whose interval holds 0 or that has fewer than two seeds a model;
- **incomplete**: some of the models the check needs have ok runs with its value, not all;
- **not run**: none has (the task did not run, or every run failed).

A claim is refuted when any check is refuted; else not run when every check is not run; else
incomplete when any check is not run or incomplete; else inconclusive when any check is; else
it holds. Runs are compared only within one suite and setting; a check is decided on every such
context that has all the models it names.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.reports.aggregate import Group, Stat, group_runs, setting_label
from harness.reports.claim_tests import CompareTests, pair_tests
from harness.reports.claims import Check, Claim, ClaimsFile, models_of
from harness.reports.seed_statistics import ALPHA, holm, ratio_growth
from harness.reports.claim_results import (HOLDS, INCOMPLETE, INCONCLUSIVE, NOT_RUN, REFUTED,
                                           CheckResult, claim_verdict)


@dataclass
class ClaimResult:
    """The verdict of one claim on one task, with each check's verdict and numbers."""

    claim: Claim
    task: str
    checks: list[CheckResult]

    @property
    def verdict(self) -> str:
        return claim_verdict([result.verdict for result in self.checks])

    @property
    def seeds_needed(self) -> int | None:
        """For an inconclusive claim, the most seeds per model any undecided test needs for
        80 % power at its observed effect (None when no number is known)."""
        needed = [result.seeds_needed for result in self.checks
                  if result.verdict == INCONCLUSIVE and result.seeds_needed]
        return max(needed) if needed and self.verdict == INCONCLUSIVE else None


def evaluate(claims: ClaimsFile, records: Iterable[dict[str, Any]],
             alpha: float = ALPHA) -> list[ClaimResult]:
    """Every claim of the file on every task it names, against the records; ``compare``
    checks are tested at family-wise level ``alpha`` per claim and task."""
    groups = group_runs(records)
    return [_evaluate_claim(claim, task, [g for g in groups if g.task == task], alpha)
            for claim in claims.claims for task in claim.tasks]


def _evaluate_claim(claim: Claim, task: str, groups: list[Group], alpha: float) -> ClaimResult:
    """Each check's result; the compare checks' tests are corrected together (Holm) first."""
    pending = [_compare(check, groups) if check.kind == "compare"
               else _evaluate_check(check, groups) for check in claim.checks]
    tests = [pair for item in pending if isinstance(item, CompareTests) for pair in item.pairs
             if pair.test is not None]
    for pair, adjusted in zip(tests, holm([pair.test.p for pair in tests])):
        pair.p_holm = adjusted
    results = [item.decide(alpha, max(len(tests), 1)) if isinstance(item, CompareTests)
               else item for item in pending]
    return ClaimResult(claim, task, results)


def _compare(check: Check, groups: list[Group]) -> CheckResult | CompareTests:
    """The pairs to test in every context that has all the check's models, with the notes on
    contexts left out; a :class:`CheckResult` when there is nothing to test."""
    if not groups:
        return CheckResult(check, NOT_RUN, ["no run of this task"])
    o = check.options
    side = "lower" if "lower" in o else "higher"
    pairs, notes = [], []
    for label, context in _contexts(groups):
        values = {m: context[m].value(o["value"], o.get("at", "mean"))
                  for m in models_of(check) if m in context}
        absent = [m for m in dict.fromkeys(models_of(check)) if m not in values or not values[m].n]
        if absent:
            notes.append(f"{label}left out: no ok run of {', '.join(absent)} with {o['value']}")
            continue
        pairs += pair_tests(label, values, o[side], o["than"], side == "lower")
    if not pairs:
        return _missing(check, groups)
    return CompareTests(check, pairs, notes)


def _evaluate_check(check: Check, groups: list[Group]) -> CheckResult:
    """A deterministic check: holds or refuted on the numbers, else incomplete or not run."""
    if not groups:
        return CheckResult(check, NOT_RUN, ["no run of this task"])
    if check.kind == "params":
        return _params(check, groups)
    if check.kind == "advantage_grows":
        return _advantage(check, groups)
    results = [_in_context(check, context, label) for label, context in _contexts(groups)]
    ran = [result for result in results if result is not None]
    if not ran:
        return _missing(check, groups)
    verdict = HOLDS if all(holds for holds, _ in ran) else REFUTED
    return CheckResult(check, verdict, [line for _, lines in ran for line in lines])


def _missing(check: Check, groups: list[Group]) -> CheckResult:
    """Why nothing could be checked: not run when none of the check's models has an ok run with
    its value, else incomplete (some have; or no one context has all, or enough epochs)."""
    value = check.options.get("value")
    models = list(dict.fromkeys(models_of(check)))
    reasons, absent = [], []
    for model in models:
        runs = [run for g in groups if g.model == model for run in g.runs]
        ok = [g for g in groups if g.model == model and g.ok]
        if not runs:
            reasons.append(f"no run of {model}")
        elif not ok:
            reasons.append(f"every run of {model} failed ({len(runs)})")
        elif value is not None and not any(g.value(value).n for g in ok):
            reasons.append(f"no ok run of {model} has {value}")
        else:
            continue
        absent.append(model)
    if len(absent) == len(models):
        return CheckResult(check, NOT_RUN, reasons)
    if not absent:
        reasons.append("no one suite and setting has all of " + ", ".join(models)
                       + (" with two epochs or more" if check.kind == "trend" else "")
                       + (" at two tolerances or more" if check.kind == "advantage_grows"
                          else ""))
    return CheckResult(check, INCOMPLETE, reasons)


def _in_context(check: Check, groups: dict[str, Group],
                label: str) -> tuple[bool, list[str]] | None:
    """(holds, evidence) in one context, or None when a model it names has no value there."""
    o = check.options
    if check.kind == "trend":
        firsts = {m: groups[m].value(o["value"], "first") for m in o["models"] if m in groups}
        lasts = {m: groups[m].value(o["value"], "last") for m in o["models"] if m in groups}
        if len(firsts) < len(o["models"]) or not all(
                _epochs_with(groups[m], o["value"]) > 1 for m in o["models"]):
            return None
        rises = o["direction"] == "rises"
        holds = all((lasts[m].mean > firsts[m].mean) == rises and lasts[m].mean != firsts[m].mean
                    for m in o["models"])
        return holds, [f"{label}{m}: first {_stat(firsts[m])} → last {_stat(lasts[m])}"
                       for m in o["models"]]
    values = {m: groups[m].value(o["value"], o.get("at", "mean"))
              for m in o["models"] if m in groups}
    if len(values) < len(set(o["models"])) or not all(s.n for s in values.values()):
        return None
    below = "below" in o
    bound = o["below"] if below else o["above"]
    holds = all((values[m].mean < bound) if below else (values[m].mean > bound)
                for m in o["models"])
    return holds, [f"{label}" + ", ".join(f"{m} {_stat(values[m])}" for m in o["models"])
                   + f" {'<' if below else '>'} {bound:g}"]


def _epochs_with(group: Group, name: str) -> int:
    """The most epochs with a number for ``name`` in any ok run of the group."""
    return max((sum(isinstance(epoch.get(name), (int, float)) for epoch in run["epochs"])
                for run in group.ok), default=0)


def _params(check: Check, groups: list[Group]) -> CheckResult:
    """Every model's ok runs against the paper's count: refuted by any count off, incomplete
    while a model has no ok run, not run with none."""
    counts, tolerance = check.options["counts"], check.options["tolerance"]
    evidence, holds, absent = [], [], []
    for model, expected in counts.items():
        found = sorted({run["params"] for g in groups if g.model == model for run in g.ok
                        if isinstance(run.get("params"), int)})
        if not found:
            absent.append(model)
            continue
        holds.append(all(abs(count - expected) <= tolerance * expected for count in found))
        evidence.append(f"{model}: {', '.join(f'{c:,}' for c in found)} vs paper {expected:,} "
                        f"({_relative(found, expected)})")
    if not holds:
        return _missing(check, groups)
    if absent:
        evidence += _missing(check, groups).evidence
    verdict = REFUTED if not all(holds) else INCOMPLETE if absent else HOLDS
    return CheckResult(check, verdict, evidence)


def _advantage(check: Check, groups: list[Group]) -> CheckResult:
    """Decided in each suite and setting by the bootstrap interval over seeds of how much the
    ratio mean(``than``) / mean(``lower``) grows from the largest tolerance to the smallest:
    holds when it lies above 0 in every one, refuted when below 0 in any, else inconclusive."""
    o = check.options
    models = [*o["lower"], *o["than"]]
    evidence, verdicts = [], []
    for label, context in _contexts(groups, strip=("solver.rtol", "solver.atol"),
                                    by=lambda g: (g.model, _rtol(g))):
        values = {}
        for tol in sorted({tol for _, tol in context if tol is not None}):
            if any((m, tol) not in context for m in models):
                continue
            seeds = [context[(m, tol)].value(o["value"], o.get("at", "mean")).values
                     for m in models]
            if all(seeds) and math.fsum(map(_mean, seeds[:len(o["lower"])])):
                values[tol] = seeds
        if len(values) < 2:
            continue
        ratios = {tol: _ratio(seeds, len(o["lower"])) for tol, seeds in values.items()}
        line = f"{label}ratio " + ", ".join(f"{r:.3g} at tol {t:g}"
                                            for t, r in sorted(ratios.items()))
        growth = ratio_growth(values[min(values)], values[max(values)], len(o["lower"]))
        if growth is None:
            verdicts.append(INCONCLUSIVE)
            line += "; no test: needs two ok seeds of each model at both tolerances or more"
        else:
            verdicts.append(HOLDS if growth.low > 0 else REFUTED if growth.high < 0
                            else INCONCLUSIVE)
            line += f"; {growth.describe()} → {verdicts[-1]}"
        evidence.append(line)
    if not verdicts:
        return _missing(check, groups)
    verdict = (REFUTED if REFUTED in verdicts else
               HOLDS if all(v == HOLDS for v in verdicts) else INCONCLUSIVE)
    return CheckResult(check, verdict, evidence)


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _ratio(seeds: list[Sequence[float]], lowers: int) -> float:
    """mean of the numerator models' means / mean of the denominator's (the first ``lowers``)."""
    means = [_mean(values) for values in seeds]
    return (math.fsum(means[lowers:]) / (len(means) - lowers)) / (
        math.fsum(means[:lowers]) / lowers)


def _contexts(groups: Sequence[Group], strip: tuple[str, ...] = (),
              by: Callable[[Group], Any] = lambda g: g.model) -> list[tuple[str, dict[Any, Group]]]:
    """Groups split by suite and setting (less the ``strip`` keys), each as (label,
    {by(group): group}); the label names the suite and setting where there are several."""
    contexts: dict[Any, tuple[str, dict[str, Any], dict[Any, Group]]] = {}
    for group in groups:
        setting = {k: v for k, v in group.setting.items() if k not in strip}
        entry = contexts.setdefault((group.suite, _key(setting)), (group.suite, setting, {}))
        entry[2][by(group)] = group
    suites = {suite for suite, _, _ in contexts.values()}
    labelled = []
    for suite, setting, members in contexts.values():
        parts = ([suite] if len(suites) > 1 else []) + ([setting_label(setting)] if setting else [])
        labelled.append((f"[{', '.join(parts)}] " if parts else "", members))
    return labelled


def _key(setting: dict[str, Any]) -> str:
    return repr(sorted(setting.items(), key=lambda item: item[0]))


def _rtol(group: Group) -> float | None:
    values = {run.get("config", {}).get("solver", {}).get("rtol") for run in group.runs}
    return values.pop() if len(values) == 1 else None


def _stat(s: Stat) -> str:
    return f"{s.format()} (n={s.n})"


def _relative(found: list[int], expected: int) -> str:
    worst = max(found, key=lambda c: abs(c - expected))
    return f"{(worst - expected) / expected:+.2%}" if worst != expected else "exact"
