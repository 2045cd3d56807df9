"""The ``scaling`` check: how a value grows with a configuration key, as the exponent k of
value ∝ key^k (the least-squares slope of log value against log key over the key's values),
per model in every suite and setting of the other keys. It is decided on the numbers, like a
threshold: the claim's bounds on k hold for every model, or some model's k is outside them.

It checks claims such as the adjoint's O(1) memory against backpropagation's O(L): the peak
bytes of a step (``backward_memory_bytes``, deterministic for a fixed-step solver) against
``solver.options.step_size``, k ≈ 0 with the adjoint and k ≈ −1 (bytes ∝ steps = T / h)
without it (suites/memory-cpu.claims.yaml, docs/memory.md).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.reports.aggregate import Group, format_number
from harness.reports.claim_checks import slope
from harness.reports.claim_contexts import contexts, kept_where
from harness.reports.claim_results import HOLDS, INCOMPLETE, NOT_RUN, REFUTED, CheckResult
from harness.reports.claims import Check


def scaling_check(check: Check, groups: Sequence[Group]) -> CheckResult:
    """Every model's exponent in every context that has it at two values of ``over`` or more:
    refuted when one is outside the bounds; incomplete where a model ran at one value only,
    has failed runs (their numbers are unknown) or no positive number; not run with none."""
    o = check.options
    over, models = o["over"], list(dict.fromkeys(o["models"]))
    low, high = o["exponent"].get("min", -math.inf), o["exponent"].get("max", math.inf)
    evidence, gaps, verdicts = [], [], []
    kept = [group for group in kept_where(groups, o.get("where", {})) if group.model in models]
    for label, context in contexts(kept, strip=(over,),
                                   by=lambda g: (g.model, g.setting.get(over))):
        for model in models:
            points = sorted((x, group) for (name, x), group in context.items()
                            if name == model and _positive(x))
            problem = _problem(points, o["value"], o.get("at", "mean"), over)
            if problem:
                gaps.append(f"{label}{model}: {problem}")
                continue
            xs = [x for x, _ in points]
            ys = [group.value(o["value"], o.get("at", "mean")).mean for _, group in points]
            exponent = slope(np.log(xs), np.log(ys))
            verdicts.append(low <= exponent <= high)
            evidence.append(f"{label}{model}: " + ", ".join(
                f"{y:.4g} at {format_number(x)}" for x, y in zip(xs, ys))
                + f"; exponent {exponent:+.3f} ({_bounds(low, high)})")
    if not verdicts:
        return CheckResult(check, NOT_RUN if not gaps else INCOMPLETE,
                           gaps or [f"no run of {', '.join(models)} with {over}"])
    verdict = REFUTED if not all(verdicts) else INCOMPLETE if gaps else HOLDS
    return CheckResult(check, verdict, evidence + gaps)


def _problem(points: list[tuple[float, Group]], value: str, at: str, over: str) -> str | None:
    """Why a model's points cannot give an exponent, or None."""
    if len(points) < 2:
        return f"ran at {len(points)} positive value(s) of {over}; an exponent needs two or more"
    failed = sum(len(group.failed) for _, group in points)
    if failed:
        return f"{failed} runs failed: their {value} is unknown"
    means = [group.value(value, at).mean for _, group in points]
    if any(mean is None or not mean > 0 for mean in means):
        return f"no positive {value} at every value of {over}"
    return None


def _positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0


def _bounds(low: float, high: float) -> str:
    if math.isinf(low):
        return f"claimed ≤ {high:g}"
    return f"claimed ≥ {low:g}" if math.isinf(high) else f"claimed in [{low:g}, {high:g}]"
