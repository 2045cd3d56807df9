"""Verdicts over seeds on planted records with a known truth (issue 26): every case decided
right — clear differences hold, none is inconclusive, reversed is refuted; failed runs count
(censored at the NFE cap, else incomplete); no spread and few seeds tested exactly; a setting
dropped is incomplete; unequal conditions are not comparable; trends and growing advantages
are tested over seeds; stalls are a frequency; Holm only where a refutation needs it."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.reports.claim_results import (HOLDS, INCOMPLETE, INCONCLUSIVE, NOT_COMPARABLE,
                                           NOT_RUN, REFUTED)
from harness.reports.claim_tests import ClaimTest, seeds_to_decide
from harness.reports.exact_tests import two_sample
from harness.reports.seed_statistics import power, welch
from tests.claim_records import curves, failed, judge, seeds, verdict
from tests.result_records import curve_run, record

COMPARE = "      - compare: {value: backward_nfe, lower: [hbnode], than: [node, anode]}\n"
ONE_PAIR = "      - compare: {value: backward_nfe, lower: [hbnode], than: [node]}\n"
FEWER = [10.0, 12.0, 11.0, 13.0, 9.0]
MORE = [30.0, 33.0, 29.0, 31.0, 32.0]


def test_a_clear_difference_holds_by_an_exact_permutation_test(tmp_path: Path) -> None:
    result = judge(tmp_path, COMPARE, seeds("hbnode", FEWER) + seeds("node", MORE)
                   + seeds("anode", MORE[::-1]))
    assert result.verdict == HOLDS
    evidence = result.checks[0].evidence
    assert evidence[0].startswith("hbnode 11 ± 1.6 (n=5, 95% CI [9.037, 12.96]), node 31 ± 1.6")
    # 5 against 5 seeds fully separated: 2 of the C(10, 5) = 252 splits are as extreme
    assert evidence[1].startswith("    hbnode < node: d = ")
    assert evidence[1].endswith(f"permutation test of Welch's t = -20, p = {2 / 252:.2g} "
                                f"(exact, 252 splits) → holds")


def test_no_difference_is_inconclusive_and_a_reversed_one_refuted(tmp_path: Path) -> None:
    same = judge(tmp_path, ONE_PAIR, seeds("hbnode", FEWER) + seeds("node", FEWER[::-1]))
    assert same.verdict == INCONCLUSIVE and same.seeds_needed is None  # no effect at all
    reversed_ = judge(tmp_path, ONE_PAIR, seeds("hbnode", MORE) + seeds("node", FEWER))
    assert reversed_.verdict == REFUTED
    assert reversed_.checks[0].evidence[1].endswith("the other way: Holm p = 0.0079 → refuted")


def test_one_seed_is_inconclusive_without_an_estimate(tmp_path: Path) -> None:
    one = judge(tmp_path, ONE_PAIR, seeds("hbnode", [10.0]) + seeds("node", [30.0]))
    assert one.verdict == INCONCLUSIVE and one.seeds_needed is None
    assert one.checks[0].evidence[1] == (
        "    hbnode < node: no test: needs two seeds of each model or more")


def test_no_spread_with_few_seeds_is_not_a_zero_p_value(tmp_path: Path) -> None:
    """NFE [14, 14] against [20, 20]: Welch's t divides by zero (p = 0 before); the exact test
    has 6 splits, 2 of them as extreme: p = 1/3."""
    two = judge(tmp_path, ONE_PAIR, seeds("hbnode", [14.0, 14.0]) + seeds("node", [20.0, 20.0]))
    assert two.verdict == INCONCLUSIVE
    assert "p = 0.33 (exact, 6 splits), cannot reach p < 0.05 → inconclusive" in \
        two.checks[0].evidence[1]
    five = judge(tmp_path, ONE_PAIR, seeds("hbnode", [14.0] * 5) + seeds("node", [20.0] * 5))
    assert five.verdict == HOLDS  # no spread at all, five seeds each: 2 of 252 splits
    ties = judge(tmp_path, ONE_PAIR, seeds("hbnode", [14.0, 14.0, 15.0, 14.0])
                 + seeds("node", [14.0, 15.0, 15.0, 15.0]))
    assert ties.verdict == INCONCLUSIVE


def test_runs_failed_at_the_nfe_cap_enter_as_censored_values(tmp_path: Path) -> None:
    """7 of 10 HBNODE runs stopped at the NFE cap, the 3 that finished have low NFE: the
    survivors alone 'held' (Holm p 0.0003); the failed runs rank above every finished one."""
    node = [30.0, 31.0, 29.0, 32.0, 28.0, 30.5, 31.5, 29.5, 30.0, 31.0]
    records = seeds("hbnode", [10.0, 11.0, 12.0], first=7) + failed("hbnode", 7, "nfe_cap") \
        + seeds("node", node)
    result = judge(tmp_path, ONE_PAIR, records)
    assert result.verdict == INCONCLUSIVE and result.seeds_needed is None
    evidence = result.checks[0].evidence
    assert evidence[0].startswith("hbnode 11 ± 1 (n=3, 95% CI [8.516, 13.48]) and 7 censored, ")
    assert "permutation test of Welch's t on ranks" in evidence[1]
    assert ("hbnode: 7 of 10 runs failed (7 nfe_cap); entered as censored NFE, ranked above "
            "every run that finished") in evidence
    # a loss has no cap: the same failures cannot enter, and the check is incomplete
    loss = "      - compare: {value: loss, lower: [hbnode], than: [node]}\n"
    assert judge(tmp_path, loss, records).verdict == INCOMPLETE
    # failures of another kind cannot enter an NFE test either
    other = seeds("hbnode", FEWER) + failed("hbnode", 2, "non_finite", first=5) \
        + seeds("node", MORE)
    assert verdict(tmp_path, ONE_PAIR, other) == (INCOMPLETE, [
        "hbnode: 2 of 7 runs failed (2 non_finite); they cannot enter a test: incomplete"])


def test_a_setting_where_a_model_failed_makes_the_check_incomplete(tmp_path: Path) -> None:
    records = (seeds("hbnode", FEWER, tol=1e-3) + seeds("node", MORE, tol=1e-3)
               + failed("hbnode", 5, tol=1e-5) + seeds("node", MORE, tol=1e-5))
    result = judge(tmp_path, ONE_PAIR, records)
    assert result.verdict == INCOMPLETE  # it held on tol 1e-3 alone before
    assert result.checks[0].evidence[-2:] == [
        "[tol 1e-05] hbnode: 5 of 5 runs failed (5 solver); they cannot enter a test: incomplete",
        "[tol 1e-05] no ok run of hbnode with backward_nfe"]
    # a setting where a model never ran is missing too; a reversal elsewhere still refutes
    never = (seeds("hbnode", FEWER, tol=1e-3) + seeds("node", MORE, tol=1e-3)
             + seeds("node", MORE, tol=1e-7))
    assert judge(tmp_path, ONE_PAIR, never).verdict == INCOMPLETE
    assert judge(tmp_path, ONE_PAIR, never + seeds("hbnode", MORE, tol=1e-5)
                 + seeds("node", FEWER, tol=1e-5)).verdict == REFUTED


def test_models_run_under_different_settings_are_not_comparable(tmp_path: Path) -> None:
    """HBNODE at tol 1e-2, NODE at 1e-5 in one suite (a per-model override): no setting varies
    within a model, so both were one group's context — and 'held'."""
    records = seeds("hbnode", FEWER, tol=1e-2) + seeds("node", MORE, tol=1e-5)
    result = judge(tmp_path, ONE_PAIR, records)
    assert result.verdict == NOT_COMPARABLE
    assert result.checks[0].evidence[1:] == [
        "hbnode and node ran under different settings, not comparable: solver.rtol (0.01 vs "
        "1e-05); solver.atol (0.01 vs 1e-05)"]
    # the model's own options and the seed are not conditions
    own = seeds("hbnode", FEWER, config={"model_options": {"gamma": 0.5}}) + seeds("node", MORE)
    assert judge(tmp_path, ONE_PAIR, own).verdict == HOLDS


def test_holds_needs_no_correction_and_refuted_gets_it(tmp_path: Path) -> None:
    """Holds is an intersection-union test (every pair must pass): each at α, no Holm; refuted
    (any pair the other way) is Holm-corrected over the tests that can reach α at all."""
    both = ONE_PAIR + ONE_PAIR.replace("backward_nfe", "forward_nfe")
    hbnode, node = [10.0, 12.0, 14.0, 11.0, 13.0], [13.0, 15.0, 16.5, 13.5, 14.5]
    result = judge(tmp_path, both, seeds("hbnode", hbnode) + seeds("node", node))
    # p = 0.04 in each check (Welch's 0.029): Holm across the two made it 'inconclusive'
    assert result.verdict == HOLDS and "p = 0.04 (exact, 252 splits) → holds" in \
        result.checks[1].evidence[1]
    low, high = [10.0, 11.0, 12.0, 13.0], [20.0, 21.0, 22.0, 23.0]  # 4 v 4: p = 2/70 = 0.029
    reversed_ = seeds("hbnode", high) + seeds("node", low)
    assert judge(tmp_path, ONE_PAIR, reversed_).verdict == REFUTED
    # two reversals at p = 0.029 each: Holm's 0.057 refutes neither
    assert judge(tmp_path, both, reversed_).verdict == INCONCLUSIVE
    # a test that cannot reach α (3 seeds against 3: p ≥ 0.1) does not widen the family
    sonode = [run for seed, v in enumerate([20.0, 21.0, 22.0])
              for run in [curve_run("pc", "sonode", seed, {"forward_nfe": [v]})]]
    against_sonode = ONE_PAIR + "      - compare: {value: forward_nfe, lower: [hbnode], " \
        "than: [sonode]}\n"
    three = seeds("hbnode", high) + seeds("node", low) + sonode
    result = judge(tmp_path, against_sonode, three)
    assert result.verdict == REFUTED
    assert result.checks[1].evidence[1].endswith("cannot reach p < 0.05 → inconclusive")


def test_seeds_to_decide_is_the_joint_power_of_every_pair(tmp_path: Path) -> None:
    """All pairs must hold together: the product of their powers (a lower bound of the joint
    power); a pair with no effect makes no number of seeds enough."""
    a, b, c = [10.0, 20.0, 30.0, 15.0], [14.0, 24.0, 32.0, 20.0], [15.0, 23.0, 33.0, 19.0]
    pairs = [ClaimTest("", two_sample(a, other), 1, welch(a, other)) for other in (b, c)]
    n = seeds_to_decide(pairs, 0.05)
    joint = [power(t.welch.effect, t.welch.share_a, m) for t in pairs for m in (n - 1, n)]
    assert joint[1] * joint[3] >= 0.8 > joint[0] * joint[2]
    assert (n, [seeds_to_decide([pair], 0.05) for pair in pairs]) == (98, [74, 75])
    claim = judge(tmp_path, COMPARE, seeds("hbnode", a) + seeds("node", b) + seeds("anode", c))
    assert (claim.verdict, claim.seeds_needed) == (INCONCLUSIVE, 98)  # the page's "~98 seeds"
    zero = ClaimTest("", two_sample(a, a[::-1]), 0, welch(a, a[::-1]))
    assert seeds_to_decide([*pairs, zero], 0.05) is None


def test_a_model_missing_or_failed_never_holds(tmp_path: Path) -> None:
    assert verdict(tmp_path, COMPARE, []) == (NOT_RUN, ["no run of this task"])
    every_failed = [run for model in ("hbnode", "node", "anode") for run in failed(model, 1)]
    assert verdict(tmp_path, COMPARE, every_failed) == (NOT_RUN, [
        "every run of hbnode failed (1)", "every run of node failed (1)",
        "every run of anode failed (1)"])
    partial = seeds("hbnode", FEWER) + seeds("node", MORE)
    assert verdict(tmp_path, COMPARE, partial)[0] == INCOMPLETE  # hbnode < node holds alone
    assert verdict(tmp_path, COMPARE, partial)[1][-1] == "no run of anode here"
    assert verdict(tmp_path, COMPARE, partial + failed("anode", 1))[1][-2:] == [
        "anode: 1 of 1 runs failed (1 solver); they cannot enter a test: incomplete",
        "no ok run of anode with backward_nfe"]
    no_field = partial + seeds("anode", MORE)
    for run in no_field[-5:]:
        del run["epochs"][0]["backward_nfe"]
    assert verdict(tmp_path, COMPARE, no_field) == (INCOMPLETE, [
        "no ok run of anode with backward_nfe"])


TREND = "      - trend: {value: forward_nfe, models: [node], direction: rises}\n"


def test_a_trend_is_tested_over_seeds(tmp_path: Path) -> None:
    one = curves("node", [20.0, 20.3, 20.1])
    assert verdict(tmp_path, TREND, one)[0] == INCONCLUSIVE  # one seed 'held' before
    rising = [run for seed, step in enumerate([5.0, 6.0, 7.0, 4.0, 5.5, 6.5])
              for run in curves("node", [20.0, 20.0 + step, 20.0 + 2 * step], seeds=(seed,))]
    assert verdict(tmp_path, TREND, rising)[0] == HOLDS  # 6 seeds: 2 of 64 sign patterns
    assert verdict(tmp_path, TREND.replace("rises", "falls"), rising)[0] == REFUTED
    noisy = [run for seed, step in enumerate([5.0, -6.0, 7.0, -4.0, 5.5, -6.5])
             for run in curves("node", [20.0, 20.0 + step, 20.0 + 2 * step], seeds=(seed,))]
    assert verdict(tmp_path, TREND, noisy)[0] == INCONCLUSIVE
    assert verdict(tmp_path, TREND, curves("node", [20.0]))[0] == INCOMPLETE  # one epoch
    assert verdict(tmp_path, TREND, curves("hbnode", [20.0, 60.0]))[0] == NOT_RUN


GROWS = "      - advantage_grows: {value: backward_nfe, lower: [hbnode], than: [node]}\n"


def _sweep(node: list[float], hbnode: list[float], spread=(-1.0, -0.5, 0.0, 0.5, 1.0, 1.5)
           ) -> list:
    """One run per seed, model and tolerance (1e-2, 1e-3, 1e-4); seed i's NFE are the given
    ones plus ``spread[i]`` at every tolerance (a seed's runs share its offset)."""
    return [run for tol, n, h in zip((1e-2, 1e-3, 1e-4), node, hbnode)
            for model, value in (("node", n), ("hbnode", h))
            for run in seeds(model, [value + d for d in spread], tol=tol)]


def test_a_growing_advantage_is_tested_over_seeds_at_every_tolerance(tmp_path: Path) -> None:
    grows = _sweep([20.0, 40.0, 90.0], [10.0, 15.0, 30.0])
    verdict_, evidence = verdict(tmp_path, GROWS, grows)
    assert verdict_ == HOLDS and evidence[0] == (
        "ratio 1.98 at tol 0.01, 2.64 at tol 0.001, 2.98 at tol 0.0001; per-seed growth per "
        "decade of tolerance 0.5013 ± 0.015 (n=6, 95% CI [0.486, 0.5166]); sign-flip test of "
        "the mean = 0.501, p = 0.031 (exact, 64 splits) → holds")
    shrinks = _sweep([20.0, 40.0, 40.0], [10.0, 15.0, 30.0])
    assert verdict(tmp_path, GROWS, shrinks)[0] == REFUTED  # p = 2/64 = 0.031
    # a second check refuting at 0.031 too: Holm across the claim's checks refutes neither
    both = GROWS + GROWS.replace("backward_nfe", "forward_nfe")
    assert verdict(tmp_path, both, shrinks)[0] == INCONCLUSIVE
    # a seed only one model ran is named, not paired
    extra = grows + [run for tol in (1e-2, 1e-3, 1e-4) for run in seeds("node", [50.0], 6, tol=tol)]
    assert "seeds 6 left out (not run in every cell); " in verdict(tmp_path, GROWS, extra)[1][0]
    flat = _sweep([20.0, 30.0, 40.0], [10.0, 15.0, 20.0], spread=(-3.0, 3.0, -2.0, 2.0, 1.0, -1.0))
    assert verdict(tmp_path, GROWS, flat)[0] == INCONCLUSIVE
    one_seed = _sweep([20.0, 40.0, 90.0], [10.0, 15.0, 30.0], spread=(0.0,))
    verdict_, evidence = verdict(tmp_path, GROWS, one_seed)
    assert verdict_ == INCONCLUSIVE and evidence[0].endswith(
        "no test: needs two seeds at every tolerance or more")
    one_tolerance = curves("node", [20.0]) + curves("hbnode", [10.0])
    assert verdict(tmp_path, GROWS, one_tolerance)[0] == INCOMPLETE


def test_a_growing_advantage_with_an_end_tolerance_failed_is_incomplete(tmp_path: Path) -> None:
    """NODE's runs at the smallest tolerance all failed: the next tolerance stood in for it
    before ('holds')."""
    records = [run for run in _sweep([20.0, 40.0, 90.0], [10.0, 15.0, 30.0])
               if not (run["model"] == "node" and run["config"]["solver"]["rtol"] == 1e-4)]
    records += failed("node", 6, tol=1e-4)
    verdict_, evidence = verdict(tmp_path, GROWS, records)
    assert verdict_ == INCOMPLETE
    assert "[tol 0.0001] node: 6 of 6 runs failed (6 solver); they cannot enter a test: " \
           "incomplete" in evidence
    missing = [run for run in records if run["status"] == "ok"]  # never run there: the same
    assert verdict(tmp_path, GROWS, missing)[0] == INCOMPLETE


STALLS = "      - stalls: {value: loss, above: 0.01, more: [anode], than: [hbnode]}\n"


def _losses(model: str, losses: list[float]) -> list:
    return [curve_run("pc", model, seed, {"loss": [1.0, loss]}) for seed, loss in
            enumerate(losses)]


def test_stalling_is_a_frequency_decided_by_fishers_exact_test(tmp_path: Path) -> None:
    often = _losses("anode", [0.3] * 8 + [1e-4] * 2) + _losses("hbnode", [1e-4] * 10)
    verdict_, evidence = verdict(tmp_path, STALLS, often)
    assert verdict_ == HOLDS
    assert evidence[1].startswith("    anode more than hbnode: 8 of 10 vs 0 of 10 seeds with "
                                  "loss > 0.01; Fisher's exact test")
    # both converged, one to a lower loss: no seed stalls, nothing is shown (was 'refuted')
    converged = _losses("anode", [8.6e-7] * 5) + _losses("hbnode", [1.3e-5] * 5)
    assert verdict(tmp_path, STALLS, converged)[0] == INCONCLUSIVE
    few = _losses("anode", [0.3] * 3) + _losses("hbnode", [1e-4] * 3)
    assert verdict(tmp_path, STALLS, few)[0] == INCONCLUSIVE  # 3 of 3 vs 0 of 3: p = 0.1
    assert verdict(tmp_path, STALLS.replace("more:", "fewer:"), often)[0] == REFUTED


@pytest.mark.parametrize("checks", [ONE_PAIR, TREND, GROWS, STALLS])
def test_every_kind_over_seeds_with_every_run_failed_is_not_run(tmp_path: Path,
                                                                checks: str) -> None:
    runs = [record("pc", model, 0, [], status="failed", tol=tol)
            for model in ("hbnode", "node", "anode") for tol in (1e-2, 1e-3)]
    assert verdict(tmp_path, checks, runs)[0] == NOT_RUN


@pytest.mark.parametrize("checks, records", [
    (ONE_PAIR, lambda: seeds("hbnode", FEWER) + seeds("node", MORE) + failed("node", 1, first=5)),
    (TREND, lambda: [run for seed, step in enumerate([5.0, 6.0, 7.0, 4.0, 5.5, 6.5])
                     for run in curves("node", [20.0, 20.0 + step, 20.0 + 2 * step],
                                       seeds=(seed,))] + failed("node", 1, first=6, epochs=3)),
    (GROWS, lambda: _sweep([20.0, 40.0, 90.0], [10.0, 15.0, 30.0])
     + failed("node", 1, first=6, tol=1e-2)),
    (STALLS, lambda: _losses("anode", [0.3] * 8 + [1e-4] * 2) + _losses("hbnode", [1e-4] * 10)
     + failed("hbnode", 1, first=10, epochs=2)),
])
def test_one_failed_run_where_a_check_needs_it_makes_it_incomplete(tmp_path: Path, checks: str,
                                                                   records) -> None:
    """Each planted case holds without its failed run; with it, the check cannot hold."""
    planted = records()
    assert verdict(tmp_path, checks, planted[:-1])[0] == HOLDS
    verdict_, evidence = verdict(tmp_path, checks, planted)
    assert verdict_ == INCOMPLETE
    assert any("1 of " in line and "runs failed (1 solver); they cannot enter a test" in line
               for line in evidence)
