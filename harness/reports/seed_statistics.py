"""Statistics over seeds, with the distributions of :mod:`scipy.stats`: the confidence interval of
a mean, Welch's t-test between two samples (its p-value, effect size and the confidence interval
of the difference), the power of Welch's test and the seeds per side that would give it 80 %
power at an observed effect (from the noncentral t distribution), and Holm's step-down
correction of a family of p-values.

``harness compare`` decides with Welch's t; claims decide with the exact tests of
:mod:`harness.reports.exact_tests` and use Welch's test here for the numbers they show and the
seeds a decision would need (docs/claims.md).
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from scipy import stats

#: The default significance level of a test, before Holm's correction.
ALPHA = 0.05
#: The level of every confidence interval shown.
CONFIDENCE = 0.95
#: The power :func:`seeds_for_power` aims for.
POWER = 0.8
#: Beyond this many seeds per side, :func:`seeds_for_power` gives up (None).
MAX_SEEDS = 100_000
#: The name of the test, as reports print it.
TEST_NAME = "Welch's t"


def mean_interval(values: Sequence[float],
                  confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The t confidence interval of the mean of ``values``; None with fewer than two."""
    n = len(values)
    if n < 2:
        return None
    mean = math.fsum(values) / n
    sem = statistics.stdev(values) / math.sqrt(n)  # exact: no precision lost to cancellation
    if sem == 0.0:
        return mean, mean
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return float(low), float(high)


@dataclass(frozen=True)
class TwoSampleTest:
    """Welch's t-test of mean(a) − mean(b) = 0, two-sided.

    ``effect`` is Cohen's d over the mean of the two variances, (mean(a) − mean(b)) /
    sqrt((var(a) + var(b)) / 2): ±inf when both samples are constant and differ, 0 when they
    are equal. ``low``/``high`` bound the difference at ``confidence``. ``share_a`` is var(a)'s
    share of var(a) + var(b), which with the effect fixes the power at any sample size.
    """

    statistic: float
    df: float
    p: float
    difference: float
    low: float
    high: float
    effect: float
    n_a: int
    n_b: int
    share_a: float
    confidence: float = CONFIDENCE

    def describe(self) -> str:
        """E.g. ``Welch's t(3.4) = -1.26, p = 0.28, d = -1.0, difference -1.3 [95% CI -4.5,
        1.8]``."""
        df = "" if math.isinf(self.df) else f"({self.df:.3g})"
        return (f"{TEST_NAME}{df} = {self.statistic:.3g}, p = {self.p:.2g}, "
                + self.describe_difference())

    def describe_difference(self) -> str:
        """E.g. ``d = -1.0, difference -1.3 [95% CI -4.5, 1.8]``."""
        return (f"d = {self.effect:.2g}, difference {self.difference:.4g} "
                f"[{self.confidence:.0%} CI {self.low:.4g}, {self.high:.4g}]")


def welch(a: Sequence[float], b: Sequence[float],
          confidence: float = CONFIDENCE) -> TwoSampleTest | None:
    """Welch's t-test of two samples; None when either has fewer than two values.

    Two constant samples have no spread to test against: the difference is exact, p is 0 when
    it is not zero and 1 when it is. The variances are computed exactly
    (:func:`statistics.variance`), so samples whose values differ only in their last digits
    give a test too, not scipy's warning of precision lost to cancellation."""
    if len(a) < 2 or len(b) < 2:
        return None
    difference = math.fsum(a) / len(a) - math.fsum(b) / len(b)
    var_a, var_b = statistics.variance(a), statistics.variance(b)
    if var_a == 0.0 and var_b == 0.0:
        effect = 0.0 if difference == 0 else math.copysign(math.inf, difference)
        return TwoSampleTest(effect, math.inf, 1.0 if difference == 0 else 0.0, difference,
                             difference, difference, effect, len(a), len(b), 0.5, confidence)
    share_a, share_b = var_a / len(a), var_b / len(b)  # each mean's variance
    error = math.sqrt(share_a + share_b)
    df = (share_a + share_b) ** 2 / (share_a ** 2 / (len(a) - 1) + share_b ** 2 / (len(b) - 1))
    statistic = difference / error
    half = float(stats.t.isf((1 - confidence) / 2, df)) * error
    return TwoSampleTest(statistic, df, float(2 * stats.t.sf(abs(statistic), df)), difference,
                         difference - half, difference + half,
                         difference / math.sqrt((var_a + var_b) / 2), len(a), len(b),
                         var_a / (var_a + var_b), confidence)


def power(effect: float, share_a: float, n: int, alpha: float = ALPHA) -> float:
    """The power of a two-sided Welch's t-test at level ``alpha`` with ``n`` values per side,
    when the true effect (Cohen's d over the mean variance) is ``effect`` and var(a) has the
    share ``share_a`` of var(a) + var(b): the statistic is noncentral t with noncentrality
    d·sqrt(n/2) and the Welch–Satterthwaite degrees of freedom
    (n − 1) / (s² + (1 − s)²)."""
    if n < 2:
        return 0.0
    if math.isinf(effect):  # no spread at all: every seed shows the difference
        return 1.0
    df = (n - 1) / (share_a ** 2 + (1 - share_a) ** 2)
    critical = stats.t.isf(alpha / 2, df)
    shift = abs(effect) * math.sqrt(n / 2)
    exact = float(stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift))
    if math.isfinite(exact):
        return exact
    # scipy's noncentral t gives NaN far in its tail (a shift of ~8 at 60 degrees of freedom,
    # where the power is 1 to many digits): the normal limit is exact enough there, and a NaN
    # would end the search for the seeds needed at once (NaN < target is false).
    return float(stats.norm.sf(critical - shift) + stats.norm.cdf(-critical - shift))


def seeds_for_power(test: TwoSampleTest, alpha: float = ALPHA,
                    target: float = POWER) -> int | None:
    """The fewest seeds per side at which Welch's t-test reaches ``target`` power at level
    ``alpha``, taking the observed effect and variances as the truth; None when the observed
    effect is zero or would need more than :data:`MAX_SEEDS`."""
    if test.effect == 0:
        return None
    return fewest_seeds(lambda n: power(test.effect, test.share_a, n, alpha), 2, target)


def fewest_seeds(power_at: Callable[[int], float], least: int = 2,
                 target: float = POWER) -> int | None:
    """The fewest n >= ``least`` with ``power_at(n) >= target`` (``power_at`` rising in n);
    None beyond :data:`MAX_SEEDS`."""
    if power_at(MAX_SEEDS) < target:
        return None
    low, high = least - 1, least  # power(low) < target <= power(high)
    while power_at(high) < target:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if power_at(middle) < target:
            low = middle
        else:
            high = middle
    return high


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: the i-th smallest of m is
    multiplied by m − i + 1 (i from 1), each kept at least the one before it, capped at 1. A test
    is significant at family-wise level α when its adjusted p-value is below α."""
    order = sorted(range(len(p_values)), key=lambda index: p_values[index])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


