"""Claims evaluated on result records (the check kinds are described in
:mod:`harness.reports.claims`), each check and each claim with one of six verdicts — holds,
refuted, inconclusive, incomplete, not comparable, not run — decided as docs/claims.md says:
the checks over seeds (compare, stalls, trend, advantage_grows) by the tests of
:mod:`harness.reports.claim_checks`, corrected and decided together per claim and task
(:mod:`harness.reports.claim_tests`); threshold, params and scaling
(:mod:`harness.reports.claim_scaling`) on the numbers.

A claim is refuted when any check is refuted; else not run when every check is not run; else
incomplete when any check is not run or incomplete; else not comparable when any check is;
else inconclusive when any check is; else it holds.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.reports.aggregate import Group, Stat, group_runs
from harness.reports.claim_checks import advantage_check, compare_check, trend_check
from harness.reports.claim_contexts import contexts, sample
from harness.reports.claim_scaling import scaling_check
from harness.reports.claim_results import (HOLDS, INCOMPLETE, INCONCLUSIVE, NOT_RUN, REFUTED,
                                           CheckResult, claim_verdict)
from harness.reports.claim_tests import PendingCheck, correct, seeds_to_decide
from harness.reports.claims import Check, Claim, ClaimsFile, models_of
from harness.reports.exact_tests import RESAMPLES
from harness.reports.seed_statistics import ALPHA

_BUILDERS = {"compare": compare_check, "stalls": compare_check, "trend": trend_check,
             "advantage_grows": advantage_check}


@dataclass
class ClaimResult:
    """The verdict of one claim on one task, with each check's verdict and numbers, and for an
    inconclusive claim decided by comparisons the seeds per model that would decide it."""

    claim: Claim
    task: str
    checks: list[CheckResult]
    seeds_needed: int | None = None

    @property
    def verdict(self) -> str:
        return claim_verdict([result.verdict for result in self.checks])


def evaluate(claims: ClaimsFile, records: Iterable[dict[str, Any]], alpha: float = ALPHA,
             resamples: int = RESAMPLES) -> list[ClaimResult]:
    """Every claim of the file on every task it names, against the records, at level
    ``alpha``; permutation tests too large to enumerate draw ``resamples`` random splits."""
    groups = group_runs(records)
    return [_evaluate_claim(claim, task, [g for g in groups if g.task == task], alpha, resamples)
            for claim in claims.claims for task in claim.tasks]


def _evaluate_claim(claim: Claim, task: str, groups: list[Group], alpha: float,
                    resamples: int) -> ClaimResult:
    """Each check's tests, Holm's correction across all of them, then each check's verdict."""
    pending = [_BUILDERS[check.kind](check, groups, resamples) if groups and check.kind in
               _BUILDERS else _evaluate_check(check, groups) for check in claim.checks]
    tests = [test for item in pending if isinstance(item, PendingCheck) for test in item.tests]
    correct(tests, alpha)
    results = [_decided(item, groups, alpha) if isinstance(item, PendingCheck) else item
               for item in pending]
    result = ClaimResult(claim, task, results)
    undecided = {r.check.kind for r in results if r.verdict == INCONCLUSIVE}
    if result.verdict == INCONCLUSIVE and undecided == {"compare"}:
        result.seeds_needed = seeds_to_decide(
            [test for item in pending if isinstance(item, PendingCheck)
             and item.check.kind == "compare" for test in item.tests], alpha)
    return result


def _decided(pending: PendingCheck, groups: list[Group], alpha: float) -> CheckResult:
    """The check's verdict; with no test and nothing not comparable, why (not run or
    incomplete)."""
    if pending.tests or pending.unequal:
        return pending.decide(alpha)
    missing = _missing(pending.check, groups)
    if missing.verdict == NOT_RUN or not pending.gaps:
        return missing
    return CheckResult(pending.check, INCOMPLETE, pending.notes + pending.gaps)


def _evaluate_check(check: Check, groups: list[Group]) -> CheckResult:
    """A check on the numbers (threshold, params, scaling): holds or refuted, else incomplete or not
    run; a failed run where a threshold needs its model makes it incomplete."""
    if not groups:
        return CheckResult(check, NOT_RUN, ["no run of this task"])
    if check.kind == "params":
        return _params(check, groups)
    if check.kind == "scaling":
        return scaling_check(check, groups)
    results = [_in_context(check, context, label) for label, context in contexts(groups)]
    ran = [result for result in results if result is not None]
    if not ran:
        return _missing(check, groups)
    evidence = [line for _, lines in ran for line in lines]
    if any(holds is False for holds, _ in ran):
        return CheckResult(check, REFUTED, evidence)
    return CheckResult(check, INCOMPLETE if None in (h for h, _ in ran) else HOLDS, evidence)


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
                label: str) -> tuple[bool | None, list[str]] | None:
    """A threshold in one context: (holds, evidence); holds is None when a model has failed
    runs (they cannot enter a mean); None when a model it names has no value there."""
    o = check.options
    values = {m: groups[m].value(o["value"], o.get("at", "mean"))
              for m in o["models"] if m in groups}
    if len(values) < len(set(o["models"])) or not all(s.n for s in values.values()):
        return None
    below = "below" in o
    bound = o["below"] if below else o["above"]
    holds = all((values[m].mean < bound) if below else (values[m].mean > bound)
                for m in o["models"])
    lines = [f"{label}" + ", ".join(f"{m} {_stat(values[m])}" for m in o["models"])
             + f" {'<' if below else '>'} {bound:g}"]
    failures = [failure for m in dict.fromkeys(o["models"])
                if (failure := sample(groups[m], o["value"], o.get("at", "mean"),
                                      censor=False).failures())]
    return (None if failures else holds), lines + [label + f for f in failures]


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


def _stat(s: Stat) -> str:
    return f"{s.format()} (n={s.n})"


def _relative(found: list[int], expected: int) -> str:
    worst = max(found, key=lambda c: abs(c - expected))
    return f"{(worst - expected) / expected:+.2%}" if worst != expected else "exact"
