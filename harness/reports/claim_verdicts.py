"""Claims evaluated on result records: each check and each claim ✓ (holds), ✗ (fails) or not
run, with the numbers behind it (the checks are described in :mod:`harness.reports.claims`)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.reports.aggregate import Group, Stat, group_runs, setting_label, stat
from harness.reports.claims import Check, Claim, ClaimsFile, models_of

PASS, FAIL, NOT_RUN = "pass", "fail", "not run"
SYMBOLS = {PASS: "✓", FAIL: "✗", NOT_RUN: "not run"}


@dataclass
class CheckResult:
    check: Check
    verdict: str
    evidence: list[str] = field(default_factory=list)


@dataclass
class ClaimResult:
    """The verdict of one claim on one task, with each check's verdict and numbers."""

    claim: Claim
    task: str
    checks: list[CheckResult]

    @property
    def verdict(self) -> str:
        verdicts = {result.verdict for result in self.checks}
        return FAIL if FAIL in verdicts else NOT_RUN if NOT_RUN in verdicts else PASS


def evaluate(claims: ClaimsFile, records: Iterable[dict[str, Any]]) -> list[ClaimResult]:
    """Every claim of the file on every task it names, against the records."""
    groups = group_runs(records)
    return [ClaimResult(claim, task, [_evaluate_check(check, [g for g in groups if g.task == task])
                                      for check in claim.checks])
            for claim in claims.claims for task in claim.tasks]


def _evaluate_check(check: Check, groups: list[Group]) -> CheckResult:
    if not groups:
        return CheckResult(check, NOT_RUN, ["no run of this task"])
    if check.kind == "params":
        return _params(check, groups)
    if check.kind == "advantage_grows":
        return _advantage(check, groups)
    results = [_in_context(check, context, label) for label, context in _contexts(groups)]
    ran = [result for result in results if result is not None]
    if not ran:
        missing = sorted(set(models_of(check)) - {g.model for g in groups if g.ok})
        why = (f"no ok run of {', '.join(missing)}" if missing
               else f"no one suite and setting has {check.options['value']} for all of "
                    f"{', '.join(dict.fromkeys(models_of(check)))}")
        return CheckResult(check, NOT_RUN, [why])
    verdict = PASS if all(holds for holds, _ in ran) else FAIL
    return CheckResult(check, verdict, [line for _, lines in ran for line in lines])


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
              for m in models_of(check) if m in groups}
    if len(values) < len(set(models_of(check))) or not all(s.n for s in values.values()):
        return None
    if check.kind == "threshold":
        below = "below" in o
        bound = o["below"] if below else o["above"]
        holds = all((values[m].mean < bound) if below else (values[m].mean > bound)
                    for m in o["models"])
        return holds, [f"{label}" + ", ".join(f"{m} {_stat(values[m])}" for m in o["models"])
                       + f" {'<' if below else '>'} {bound:g}"]
    side = "lower" if "lower" in o else "higher"
    pairs = [(a, b) for a in o[side] for b in o["than"]]
    holds = all((values[a].mean < values[b].mean) if side == "lower"
                else (values[a].mean > values[b].mean) for a, b in pairs)
    return holds, [f"{label}" + ", ".join(f"{m} {_stat(values[m])}"
                                          for m in dict.fromkeys([*o[side], *o["than"]]))]


def _epochs_with(group: Group, name: str) -> int:
    """The most epochs with a number for ``name`` in any ok run of the group."""
    return max((sum(isinstance(epoch.get(name), (int, float)) for epoch in run["epochs"])
                for run in group.ok), default=0)


def _params(check: Check, groups: list[Group]) -> CheckResult:
    counts, tolerance = check.options["counts"], check.options["tolerance"]
    evidence, holds = [], []
    for model, expected in counts.items():
        found = sorted({run["params"] for g in groups if g.model == model for run in g.runs
                        if isinstance(run.get("params"), int)})
        if not found:
            continue
        ok = all(abs(count - expected) <= tolerance * expected for count in found)
        holds.append(ok)
        evidence.append(f"{model}: {', '.join(f'{c:,}' for c in found)} vs paper {expected:,} "
                        f"({_relative(found, expected)})")
    if not holds:
        return CheckResult(check, NOT_RUN, [f"no run of {', '.join(counts)}"])
    return CheckResult(check, PASS if all(holds) else FAIL, evidence)


def _advantage(check: Check, groups: list[Group]) -> CheckResult:
    o = check.options
    models = models_of(check)
    evidence, holds = [], []
    for label, context in _contexts(groups, strip=("solver.rtol", "solver.atol"),
                                    by=lambda g: (g.model, _rtol(g))):
        ratios = {}
        for tol in sorted({tol for _, tol in context if tol is not None}):
            if any((m, tol) not in context for m in models):
                continue
            means = {m: context[(m, tol)].value(o["value"], o.get("at", "mean")).mean
                     for m in models}
            if any(v is None for v in means.values()):
                continue
            lower = stat(means[m] for m in o["lower"]).mean
            than = stat(means[m] for m in o["than"]).mean
            if lower:
                ratios[tol] = than / lower
        if len(ratios) < 2:
            continue
        small, large = min(ratios), max(ratios)
        holds.append(ratios[small] > ratios[large])
        evidence.append(f"{label}ratio " + ", ".join(f"{r:.3g} at tol {t:g}"
                                                     for t, r in sorted(ratios.items())))
    if not holds:
        return CheckResult(check, NOT_RUN, ["no suite ran every model at two tolerances or more"])
    return CheckResult(check, PASS if all(holds) else FAIL, evidence)


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
