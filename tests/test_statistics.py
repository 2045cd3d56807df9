"""The statistics behind tables, claims and compare, against values worked by hand or printed in
textbooks: the t interval of a mean, Welch's test, the seeds for 80 % power (Cohen's tables),
Holm's adjusted p-values."""
from __future__ import annotations

import math

import pytest

from harness.reports.aggregate import stat
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


def test_no_effect_needs_no_number_of_seeds() -> None:
    assert seeds_for_power(welch([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])) is None


def test_holms_adjusted_p_values() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 → 0.02, 0.03, 0.06, 0.04 → monotone 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0] and holm([]) == []
