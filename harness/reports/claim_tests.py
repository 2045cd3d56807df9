"""A ``compare`` check decided by tests over seeds: one Welch's t-test per pair of models it
orders (:mod:`harness.reports.seed_statistics`) in each suite and setting, its p-value corrected with
Holm's method across every test of the claim (by the caller), then the check's verdict from the
pairs' (:meth:`CompareTests.decide`) and, when inconclusive, the seeds per model that would
decide it."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.reports.aggregate import Stat
from harness.reports.claim_results import HOLDS, INCONCLUSIVE, REFUTED, CheckResult
from harness.reports.claims import Check
from harness.reports.seed_statistics import POWER, TwoSampleTest, seeds_for_power, welch


@dataclass
class PairTest:
    """The claim ``model`` < ``than`` (``lower``) or > in one context (``label``): both
    models' numbers over seeds, the test (None below two seeds on a side) and its p-value after
    Holm's correction (set by the caller once the claim's family of tests is known)."""

    label: str
    model: str
    than: str
    lower: bool
    model_stat: Stat
    than_stat: Stat
    test: TwoSampleTest | None
    p_holm: float | None = None

    def verdict(self, alpha: float) -> str:
        """Holds (refuted) when the corrected p-value is below ``alpha`` and the difference
        has the claimed (the other) sign; else inconclusive."""
        if self.test is None or self.p_holm is None or self.p_holm >= alpha:
            return INCONCLUSIVE
        return HOLDS if (self.test.difference < 0) == self.lower else REFUTED


def pair_tests(label: str, values: dict[str, Stat], models: Sequence[str], than: Sequence[str],
               lower: bool) -> list[PairTest]:
    """One test for every (model, than) pair of one context."""
    return [PairTest(label, a, b, lower, values[a], values[b],
                     welch(values[a].values, values[b].values))
            for a in models for b in than]


@dataclass
class CompareTests:
    """A ``compare`` check's tests, waiting for Holm's correction across the claim, and the
    notes on the settings left out (a model missing there)."""

    check: Check
    pairs: list[PairTest]
    notes: list[str]

    def decide(self, alpha: float, family: int) -> CheckResult:
        """Refuted when any pair is, holds when every pair does, else inconclusive with the
        seeds per model that would give each undecided test 80 % power at its observed effect,
        at level ``alpha / family`` (Holm's strictest step, for a family of ``family`` tests)."""
        verdicts = [pair.verdict(alpha) for pair in self.pairs]
        verdict = (REFUTED if REFUTED in verdicts else
                   HOLDS if all(v == HOLDS for v in verdicts) else INCONCLUSIVE)
        evidence, needed = [], []
        for label in dict.fromkeys(pair.label for pair in self.pairs):
            stats = {}
            for pair in self.pairs:
                if pair.label == label:
                    stats.update({pair.model: pair.model_stat, pair.than: pair.than_stat})
            evidence.append(label + ", ".join(f"{m} {_stat(s)}" for m, s in stats.items()))
            for pair, pair_verdict in zip(self.pairs, verdicts):
                if pair.label != label:
                    continue
                line = f"    {pair.model} {'<' if pair.lower else '>'} {pair.than}: "
                if pair.test is None:
                    line += "no test: needs two ok seeds of each model or more"
                else:
                    line += (f"{pair.test.describe()}, Holm p = {pair.p_holm:.2g} → "
                             f"{pair_verdict}")
                if verdict == INCONCLUSIVE and pair_verdict == INCONCLUSIVE and pair.test:
                    seeds = seeds_for_power(pair.test, alpha / family)
                    needed.append(seeds)
                    line += (f"; {seeds} seeds per model for {POWER:.0%} power" if seeds else
                             "; no number of seeds would decide the observed effect")
                evidence.append(line)
        known = [seeds for seeds in needed if seeds]
        return CheckResult(self.check, verdict, evidence + self.notes,
                           max(known) if known else None)


def _stat(s: Stat) -> str:
    interval = s.format_interval()
    return f"{s.format()} (n={s.n}" + (f", 95% CI {interval})" if interval else ")")
