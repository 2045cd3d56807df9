"""A check's tests and how they make its verdict (docs/claims.md).

Every check over seeds becomes a :class:`PendingCheck`: its tests (each a :class:`ClaimTest`:
one pair of models in one setting, or one model's trend, …), the gaps that keep it from being
decided (a model not run or failed where it is needed) and the settings whose runs are not
comparable. Once the claim's family is known, :func:`correct` gives each test its
Holm-adjusted p-value and :meth:`PendingCheck.decide` the verdict:

- *holds* when every test is significant at α in the claimed direction — an intersection–union
  test: all must pass, so none needs a correction;
- *refuted* when any test is significant the other way after Holm's correction across every
  test of the claim that could reach α at all (a test whose data cannot give p < α is no
  chance of a false refutation, so it does not widen the family);
- else *incomplete* (a gap), *not comparable* (conditions differ) or *inconclusive*.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.reports.claim_results import (HOLDS, INCOMPLETE, INCONCLUSIVE, NOT_COMPARABLE,
                                           REFUTED, CheckResult)
from harness.reports.claims import Check
from harness.reports.exact_tests import ExactTest, least_seeds
from harness.reports.seed_statistics import POWER, TwoSampleTest, fewest_seeds, holm, power


@dataclass
class ClaimTest:
    """One test of a check: what it compares (``line``, shown before the test), the test
    (None when there are too few seeds to test), the sign of the observed effect relative to
    the claim (+1 as claimed, −1 the other way, 0 none), and for a comparison of two models
    without censored values Welch's test of their numbers (for the seeds a decision needs)."""

    line: str
    test: ExactTest | None
    sign: int
    welch: TwoSampleTest | None = None
    p_holm: float | None = None

    def verdict(self, alpha: float) -> str:
        """Holds when p < α as claimed; refuted when the Holm-adjusted p < α the other way."""
        if self.test is None:
            return INCONCLUSIVE
        if self.sign > 0 and self.test.p < alpha:
            return HOLDS
        if self.sign < 0 and self.p_holm is not None and self.p_holm < alpha:
            return REFUTED
        return INCONCLUSIVE


@dataclass
class PendingCheck:
    """A check's lines and tests in the order shown (``items``), waiting for the claim's
    correction; ``gaps`` make it incomplete, ``unequal`` not comparable, ``notes`` (how failed
    runs entered) are shown under it."""

    check: Check
    items: list[str | ClaimTest] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    unequal: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def tests(self) -> list[ClaimTest]:
        return [item for item in self.items if isinstance(item, ClaimTest)]

    def decide(self, alpha: float) -> CheckResult:
        """Refuted when any test is; else incomplete with a gap; else not comparable; else
        holds when every test does (and there is one); else inconclusive."""
        verdicts = [test.verdict(alpha) for test in self.tests]
        verdict = (REFUTED if REFUTED in verdicts else INCOMPLETE if self.gaps else
                   NOT_COMPARABLE if self.unequal else
                   HOLDS if verdicts and all(v == HOLDS for v in verdicts) else INCONCLUSIVE)
        evidence = []
        for item in self.items:
            if isinstance(item, str) or item.test is None:
                evidence.append(item if isinstance(item, str) else item.line)
                continue
            holm_p = ("" if item.p_holm is None or item.sign >= 0 else
                      f", the other way: Holm p = {item.p_holm:.2g}")
            holm_p += "" if item.p_holm is not None else f", cannot reach p < {alpha:g}"
            evidence.append(f"{item.line}{item.test.describe()}{holm_p} → {item.verdict(alpha)}")
        return CheckResult(self.check, verdict, evidence + self.notes + self.unequal + self.gaps)


def correct(tests: Sequence[ClaimTest], alpha: float) -> None:
    """Holm's adjusted p-values across the tests that can reach ``alpha``; the others keep
    none (they can never refute)."""
    family = [test for test in tests if test.test is not None and test.test.min_p < alpha]
    for test, adjusted in zip(family, holm([test.test.p for test in family])):
        test.p_holm = adjusted


def seeds_to_decide(tests: Sequence[ClaimTest], alpha: float) -> int | None:
    """The seeds per model at which the claim's comparisons would be decided with 80 %
    power, were the observed effects and variances the truth: when every observed effect is as
    claimed, the fewest at which all hold together — the product of their powers at α, a lower
    bound of the joint power since every pair's test passes more often as its models' numbers
    move the claimed way (Harris' inequality); when some is the other way, the fewest at which
    one of those would refute it (at Holm's strictest level). None when a test has no
    estimate (a censored or too small sample, or no effect where all must hold)."""
    if not tests or any(test.welch is None for test in tests):
        return None
    against = [test.welch for test in tests if test.sign < 0]
    family = max(len(tests), 1)
    least = least_seeds(alpha)
    if against:
        def refute(n: int) -> float:
            missed = 1.0
            for welch in against:
                missed *= 1 - power(welch.effect, welch.share_a, n, alpha / family)
            return 1 - missed
        return fewest_seeds(refute, least)
    if any(test.sign == 0 for test in tests):
        return None

    def all_hold(n: int) -> float:
        joint = 1.0
        for test in tests:
            joint *= power(test.welch.effect, test.welch.share_a, n, alpha)
        return joint
    return fewest_seeds(all_hold, least, POWER)
