"""The statistics behind tables, claims and compare, against values worked by hand or printed in
textbooks: the t interval of a mean, Welch's test, the seeds for 80 % power (Cohen's tables),
Holm's adjusted p-values, and the exact tests of claims counted by hand."""
from __future__ import annotations

import math

import pytest

from harness.reports.aggregate import stat
from harness.reports.exact_tests import fisher, least_seeds, one_sample, two_sample
from harness.reports.seed_statistics import holm, mean_interval, power, seeds_for_power, welch


def test_the_t_interval_of_a_mean() -> None:
    # mean 2, standard error 1/sqrt(3), t(0.975, 2) = 4.3027
    low, high = mean_interval([1.0, 2.0, 3.0])
    assert low == pytest.approx(2 - 4.302653 / math.sqrt(3)) and high == pytest.approx(
        2 + 4.302653 / math.sqrt(3))
    assert mean_interval([5.0]) is None
    assert mean_interval([4.0, 4.0, 4.0]) == (4.0, 4.0)
    s = stat([1.0, 2.0, 3.0, None, float("nan")])
    assert (s.n, s.values, s.low, s.high) == (3, (1.0, 2.0, 3.0), low, high)
    assert s.format_interval() == "[-0.4841, 4.484]" and stat([1.0]).format_interval() == ""


def test_welchs_test() -> None:
    # Welch: difference -4/3, variances 1 and 7/3, df = (1/3 + 7/9)^2 / ((1/3)^2/2 + (7/9)^2/2)
    test = welch([1.0, 2.0, 3.0], [2.0, 3.0, 5.0])
    se = math.sqrt(1 / 3 + 7 / 9)
    assert test.difference == pytest.approx(-4 / 3)
    assert test.statistic == pytest.approx(-4 / 3 / se)
    assert test.df == pytest.approx((1 / 3 + 7 / 9) ** 2 / ((1 / 3) ** 2 / 2 + (7 / 9) ** 2 / 2))
    assert test.effect == pytest.approx(-4 / 3 / math.sqrt((1 + 7 / 3) / 2))
    assert test.low < test.difference < test.high and 0.2 < test.p < 0.35
    assert test.share_a == pytest.approx(1 / (1 + 7 / 3))
    assert welch([1.0], [2.0, 3.0]) is None
    exact = welch([1.0, 1.0], [2.0, 2.0])  # no spread: the difference is exact
    assert (exact.p, exact.difference, exact.low, exact.high) == (0.0, -1.0, -1.0, -1.0)
    assert welch([1.0, 1.0], [1.0, 1.0]).p == 1.0


@pytest.mark.parametrize("effect, seeds", [(0.2, 394), (0.5, 64), (0.8, 26)])
def test_seeds_for_80_percent_power_match_cohens_table(effect: float, seeds: int) -> None:
    # Cohen (1988), Table 2.4.1: n per group for power 0.80, two-sided α = 0.05
    test = welch([0.0, 1.0], [0.0, 1.0])
    observed = type(test)(**{**test.__dict__, "effect": effect})
    assert seeds_for_power(observed) == seeds
    assert power(effect, 0.5, seeds) >= 0.8 > power(effect, 0.5, seeds - 1)
    assert seeds_for_power(observed, alpha=0.01) > seeds


@pytest.mark.parametrize("effect, share", [(0.106, 0.24), (1.543, 0.422), (0.72, 0.207)])
def test_power_is_a_number_rising_to_one_at_every_number_of_seeds(effect: float,
                                                                   share: float) -> None:
    """scipy's noncentral t is NaN far in its tail (d = 1.54 at 64 seeds); a NaN power made
    the 100-seed point cloud's NFE claim read "~81 seeds per model would decide it" where
    one pair (d = −0.11) needs some 1,400."""
    powers = [power(effect, share, n) for n in (2, 8, 32, 64, 81, 256, 2048, 100_000)]
    assert all(0.0 <= p <= 1.0 for p in powers)
    assert powers == sorted(powers) and powers[-1] > 0.999


def test_seeds_for_a_small_effect_are_many() -> None:
    test = welch([0.0, 1.0], [0.0, 1.0])
    observed = type(test)(**{**test.__dict__, "effect": 0.106, "share_a": 0.24})
    assert 1300 < seeds_for_power(observed) < 1500


def test_no_effect_needs_no_number_of_seeds() -> None:
    assert seeds_for_power(welch([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])) is None


def test_holms_adjusted_p_values() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 → 0.02, 0.03, 0.06, 0.04 → monotone 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0] and holm([]) == []


def test_the_two_sample_permutation_test_counts_splits() -> None:
    # 3 against 3 fully separated: 2 of the C(6, 3) = 20 splits are as extreme
    test = two_sample([1.0, 2.0, 3.0], [10.0, 11.0, 12.0])
    assert (test.p, test.min_p, test.splits, test.exact) == (pytest.approx(0.1),
                                                              pytest.approx(0.1), 20, True)
    # no spread on either side: Welch's t is ±∞ at 2 of 6 splits, 0 at the others
    flat = two_sample([14.0, 14.0], [20.0, 20.0])
    assert flat.p == pytest.approx(1 / 3) and flat.describe().startswith(
        "permutation test of Welch's t = ±∞, p = 0.33 (exact, 6 splits)")
    assert two_sample([5.0, 5.0], [5.0, 5.0]).p == 1.0 and two_sample([1.0], [2.0, 3.0]) is None
    # censored values (+inf) rank above every finite one, tied among themselves
    censored = two_sample([math.inf, math.inf, math.inf, 1.0], [2.0, 3.0, 4.0, 5.0])
    ranks = two_sample([7.0, 7.0, 7.0, 1.0], [2.0, 3.0, 4.0, 5.0])  # their pooled ranks
    assert censored.name.endswith("on ranks") and censored.p == ranks.p
    large = two_sample(list(range(20)), [v + 10.0 for v in range(20)], resamples=999)
    assert (large.splits, large.exact) == (999, False) and large.p < 0.01


def test_the_sign_flip_test_and_fishers_exact_test() -> None:
    # all three positive: 1 of 2^3 sign patterns as large, two-sided 2/8
    assert one_sample([1.0, 2.0, 3.0]).p == pytest.approx(0.25)
    assert one_sample([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).p == pytest.approx(2 / 64)
    assert one_sample([0.0, 0.0]).p == 1.0 and one_sample([1.0]) is None
    # 3 of 3 against 0 of 3: the hypergeometric tables' p = 0.1, and nothing smaller exists
    test = fisher(3, 3, 0, 3)
    assert (test.p, test.min_p) == (pytest.approx(0.1), pytest.approx(0.1))
    assert fisher(0, 5, 0, 5).p == 1.0 and fisher(0, 5, 0, 5).min_p == 1.0
    assert least_seeds(0.05) == 4 and least_seeds(0.01) == 5
