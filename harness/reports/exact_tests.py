"""The tests that decide claims, each valid at any number of seeds, with ties and with no spread
at all (docs/claims.md): a two-sample permutation test of Welch's t (on ranks when some values
are censored: a run failed at the NFE cap ranks above every run that finished), a one-sample
sign-flip test of a mean (per-seed slopes), and Fisher's exact test of two frequencies. Each
says the smallest p-value its data could give (``min_p``): a test that cannot reach the level
is left out of the claim's correction. The permutation distributions come from
:func:`scipy.stats.permutation_test`: exact when there are at most :data:`RESAMPLES` distinct
splits or sign patterns, else that many random ones (seeded: a report is reproducible).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

#: Random splits of a permutation test too large to enumerate, and their generator's seed.
RESAMPLES, PERMUTATION_SEED = 9_999, 0
#: Welch's t of a split whose two sides have no spread and differ: larger than any with spread
#: (finite, so that scipy's tolerance for ties stays a number).
_NO_SPREAD = 1e300
#: Relative tolerance under which two values of a null distribution are the same value.
_TIE = 1e-12


@dataclass(frozen=True)
class ExactTest:
    """A test's statistic, two-sided p-value and the smallest two-sided p-value any outcome
    could give (``min_p``); ``splits`` is how many permutations made the null distribution,
    ``exact`` whether they were all of them (0 splits: not a permutation test)."""

    name: str
    statistic: float
    p: float
    min_p: float
    splits: int
    exact: bool

    def describe(self) -> str:
        """E.g. ``permutation test of Welch's t = -3.2, p = 0.008 (exact, 252 splits)``."""
        if not self.splits:  # not a permutation test
            return f"{self.name}, p = {self.p:.2g}"
        how = f"exact, {self.splits:,} splits" if self.exact else f"{self.splits:,} random splits"
        statistic = ("±∞" if abs(self.statistic) >= _NO_SPREAD else f"{self.statistic:.3g}")
        return f"{self.name} = {statistic}, p = {self.p:.2g} ({how})"


def welch_t(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Welch's t of mean(a) − mean(b) along ``axis`` (vectorised); ±:data:`_NO_SPREAD` when
    neither side has any spread and the means differ, 0 when they are equal."""
    difference = a.mean(axis=axis) - b.mean(axis=axis)
    error = np.sqrt(a.var(axis=axis, ddof=1) / a.shape[axis]
                    + b.var(axis=axis, ddof=1) / b.shape[axis])
    spread = error > 1e-12 * (np.abs(a).mean(axis=axis) + np.abs(b).mean(axis=axis) + 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = difference / np.where(spread, error, 1.0)
    return np.where(spread, t, np.sign(difference) * _NO_SPREAD)


def two_sample(a: Sequence[float], b: Sequence[float],
               resamples: int = RESAMPLES) -> ExactTest | None:
    """The permutation test of Welch's t between ``a`` and ``b`` (two-sided); on the pooled
    ranks when a value is +inf (a censored run, ranked above every finite value, ties at the
    mean rank). None when a side has fewer than two values."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2 or len(y) < 2:
        return None
    name = "permutation test of Welch's t"
    if np.isinf(x).any() or np.isinf(y).any():
        ranks = stats.rankdata(np.concatenate([x, y]))
        x, y, name = ranks[:len(x)], ranks[len(x):], name + " on ranks"
    if np.ptp(np.concatenate([x, y])) == 0:  # every value the same: every split is alike
        return ExactTest(name, 0.0, 1.0, 1.0, 1, True)
    result = stats.permutation_test((x, y), welch_t, n_resamples=resamples, vectorized=True,
                                    rng=np.random.default_rng(PERMUTATION_SEED))
    distinct = math.comb(len(x) + len(y), len(x))
    return _exact(name, result, distinct <= resamples)


def one_sample(values: Sequence[float], resamples: int = RESAMPLES) -> ExactTest | None:
    """The sign-flip test of mean(values) = 0 (two-sided): under the null each value is as
    likely negative as positive. None with fewer than two values."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return None
    name = "sign-flip test of the mean"
    if not np.any(x):
        return ExactTest(name, 0.0, 1.0, 1.0, 1, True)
    result = stats.permutation_test((x,), lambda v, axis: v.mean(axis=axis),
                                    permutation_type="samples", n_resamples=resamples,
                                    vectorized=True, rng=np.random.default_rng(PERMUTATION_SEED))
    return _exact(name, result, 2 ** len(x) <= resamples)


def _exact(name: str, result: Any, exact: bool) -> ExactTest:
    null = np.asarray(result.null_distribution)
    low, high = null.min(), null.max()
    tolerance = _TIE * max(abs(low), abs(high), 1e-300)
    min_p = 2 * min(np.mean(null <= low + tolerance), np.mean(null >= high - tolerance))
    return ExactTest(name, float(result.statistic), float(result.pvalue), float(min(min_p, 1.0)),
                     len(null), exact)


def fisher(stalled_a: int, runs_a: int, stalled_b: int, runs_b: int) -> ExactTest:
    """Fisher's exact test (two-sided) of whether a's frequency differs from b's; its statistic
    is the difference of the frequencies, ``min_p`` the p of the most extreme table with the
    same margins."""
    def p(k: int) -> float:
        total = stalled_a + stalled_b
        return float(stats.fisher_exact([[k, runs_a - k], [total - k, runs_b - total + k]]).pvalue)

    total = stalled_a + stalled_b
    extremes = (max(0, total - runs_b), min(runs_a, total))
    return ExactTest("Fisher's exact test", stalled_a / runs_a - stalled_b / runs_b,
                     p(stalled_a), min(p(k) for k in extremes), 0, True)


def least_seeds(alpha: float) -> int:
    """The fewest seeds per side at which the two-sample test can reach ``alpha`` (two of the
    C(2n, n) splits are the most extreme): 4 at α = 0.05."""
    n = 2
    while 2 / math.comb(2 * n, n) >= alpha:
        n += 1
    return n
