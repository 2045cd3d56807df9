"""Claims: every verdict (holds, refuted, inconclusive, incomplete, not run) from records planted
for it, the tests and Holm's correction behind compare checks; claims files are checked with
clear errors; the shipped paper claims load and name real plugins."""
from __future__ import annotations

from pathlib import Path

import pytest
from scipy import stats

from harness.cli import main
from harness.reports.claim_results import HOLDS, INCOMPLETE, INCONCLUSIVE, NOT_RUN, REFUTED
from harness.reports.claim_verdicts import evaluate
from harness.reports.claims import ClaimsError, checked_suite_claims, load_claims, paper_claims_path
from harness.reports.seed_statistics import seeds_for_power, welch
from tests.result_records import curve_run, epoch, record

REPO = Path(__file__).resolve().parent.parent


def _claims(tmp_path: Path, checks: str, task: str = "pc") -> Path:
    path = tmp_path / "claims.yaml"
    path.write_text(f"paper: Test paper\nclaims:\n  - id: c\n    claim: a claim\n"
                    f"    task: {task}\n    checks:\n{checks}")
    return path


def _verdict(tmp_path: Path, checks: str, records: list) -> tuple[str, list]:
    [result] = evaluate(load_claims(_claims(tmp_path, checks)), records)
    return result.verdict, [line for check in result.checks for line in check.evidence]


def _nfe(model: str, values: list[float], seeds=(0,), **options) -> list:
    return [curve_run("pc", model, seed, {"backward_nfe": values, "forward_nfe": values},
                      **options) for seed in seeds]


COMPARE = "      - compare: {value: backward_nfe, lower: [hbnode], than: [node, anode]}\n"


def _seeds(model: str, values: list[float], **options) -> list:
    """One single-epoch run per value: seed i has backward and forward NFE ``values[i]``."""
    return [run for seed, value in enumerate(values)
            for run in _nfe(model, [value], seeds=(seed,), **options)]


def _evaluate(tmp_path: Path, checks: str, records: list):
    [result] = evaluate(load_claims(_claims(tmp_path, checks)), records)
    return result


FEWER = [10.0, 12.0, 11.0, 13.0, 9.0]
MORE = [30.0, 33.0, 29.0, 31.0, 32.0]


def test_compare_holds_when_every_pair_is_significant_in_the_claimed_direction(
        tmp_path: Path) -> None:
    records = _seeds("hbnode", FEWER) + _seeds("node", MORE) + _seeds("anode", MORE[::-1])
    result = _evaluate(tmp_path, COMPARE, records)
    assert result.verdict == HOLDS and result.checks[0].verdict == HOLDS
    evidence = result.checks[0].evidence
    assert evidence[0].startswith("hbnode 11 ± 1.6 (n=5, 95% CI [9.037, 12.96]), node 31 ± 1.6")
    expected = stats.ttest_ind(FEWER, MORE, equal_var=False)
    line = evidence[1]
    assert line.startswith(f"    hbnode < node: Welch's t({expected.df:.3g}) = "
                           f"{expected.statistic:.3g}, p = {expected.pvalue:.2g}, d = ")
    assert "difference -20 [95% CI " in line and line.endswith("→ holds")
    assert f"Holm p = {min(1.0, 2 * expected.pvalue):.2g}" in line  # two tests in the claim


def test_compare_is_refuted_when_some_pair_is_significant_the_other_way(tmp_path: Path) -> None:
    records = _seeds("hbnode", FEWER) + _seeds("node", MORE) + _seeds("anode", [5.0, 6.0, 4.0])
    result = _evaluate(tmp_path, COMPARE, records)
    assert result.verdict == REFUTED
    assert result.checks[0].evidence[2].endswith("→ refuted")  # hbnode < anode


def test_compare_is_inconclusive_with_the_seeds_that_would_decide_it(tmp_path: Path) -> None:
    hbnode, node = [10.0, 20.0, 30.0], [14.0, 24.0, 32.0]
    check = "      - compare: {value: backward_nfe, lower: [hbnode], than: [node]}\n"
    result = _evaluate(tmp_path, check, _seeds("hbnode", hbnode) + _seeds("node", node))
    assert result.verdict == INCONCLUSIVE
    test = welch(hbnode, node)
    needed = seeds_for_power(test, 0.05)  # one test: Holm's level is α itself
    assert needed is not None and 3 < needed < 1000
    assert result.seeds_needed == result.checks[0].seeds_needed == needed
    assert result.checks[0].evidence[1].endswith(
        f"→ inconclusive; {needed} seeds per model for 80% power")
    # one seed per model: nothing to test, and no estimate
    one = _evaluate(tmp_path, check, _seeds("hbnode", [10.0]) + _seeds("node", [30.0]))
    assert one.verdict == INCONCLUSIVE and one.seeds_needed is None
    assert one.checks[0].evidence[1].endswith("no test: needs two ok seeds of each model or more")


def test_holm_correction_across_the_checks_of_a_claim_changes_a_verdict(tmp_path: Path) -> None:
    hbnode, node = [10.0, 12.0, 14.0, 11.0, 13.0], [12.5, 14.5, 16.5, 13.5, 14.5]
    p = stats.ttest_ind(hbnode, node, equal_var=False).pvalue
    assert 0.025 < p < 0.05  # significant alone, not once doubled by Holm
    alone = "      - compare: {value: backward_nfe, lower: [hbnode], than: [node]}\n"
    records = (_seeds("hbnode", hbnode) + _seeds("node", node)
               + [curve_run("pc", "sonode", seed, {"backward_nfe": [v]})
                  for seed, v in enumerate([10.0, 30.0, 20.0])])
    assert _evaluate(tmp_path, alone, records).verdict == HOLDS
    # a second check adds an undecided test (hbnode against sonode, p ≈ 1): Holm doubles p
    second = "      - compare: {value: backward_nfe, lower: [hbnode], than: [sonode]}\n"
    result = _evaluate(tmp_path, alone + second, records)
    assert [check.verdict for check in result.checks] == [INCONCLUSIVE, INCONCLUSIVE]
    assert f"Holm p = {2 * p:.2g} → inconclusive" in result.checks[0].evidence[1]


def test_missing_models_or_failed_runs_never_hold(tmp_path: Path) -> None:
    assert _verdict(tmp_path, COMPARE, []) == (NOT_RUN, ["no run of this task"])
    failed = [record("pc", model, 0, [], status="failed") for model in ("hbnode", "node", "anode")]
    assert _verdict(tmp_path, COMPARE, failed) == (NOT_RUN, [
        "every run of hbnode failed (1)", "every run of node failed (1)",
        "every run of anode failed (1)"])
    partial = _seeds("hbnode", FEWER) + _seeds("node", MORE)
    assert _verdict(tmp_path, COMPARE, partial) == (INCOMPLETE, ["no run of anode"])
    with_failure = partial + [record("pc", "anode", 0, [], status="failed")]
    assert _verdict(tmp_path, COMPARE, with_failure) == (INCOMPLETE,
                                                         ["every run of anode failed (1)"])
    no_field = partial + _seeds("anode", MORE, config={})
    for run in no_field[-5:]:
        del run["epochs"][0]["backward_nfe"]
    assert _verdict(tmp_path, COMPARE, no_field) == (INCOMPLETE,
                                                     ["no ok run of anode has backward_nfe"])


def test_compare_is_decided_in_every_setting_that_has_all_its_models(tmp_path: Path) -> None:
    records = (_seeds("hbnode", FEWER, tol=1e-3) + _seeds("node", MORE, tol=1e-3)
               + _seeds("anode", MORE, tol=1e-3) + _seeds("hbnode", MORE, tol=1e-5)
               + _seeds("node", FEWER, tol=1e-5) + _seeds("anode", MORE, tol=1e-5)
               + _seeds("hbnode", FEWER, tol=1e-7) + _seeds("node", MORE, tol=1e-7))
    result = _evaluate(tmp_path, COMPARE, records)
    assert result.verdict == REFUTED  # hbnode > node at tol 1e-05
    evidence = result.checks[0].evidence
    assert [line for line in evidence if line.startswith("[")] == [
        line for line in evidence if line.startswith(("[tol 0.001] hbnode", "[tol 1e-05] hbnode",
                                                      "[tol 1e-07] left out"))]
    assert evidence[-1] == "[tol 1e-07] left out: no ok run of anode with backward_nfe"
    higher = "      - compare: {value: backward_nfe, at: last, higher: [node], than: [hbnode]}\n"
    assert _evaluate(tmp_path, higher, records[:10]).verdict == HOLDS


def test_threshold(tmp_path: Path) -> None:
    check = "      - threshold: {value: accuracy, models: [node], below: 1.0}\n"
    runs = [curve_run("pc", "node", seed, {"accuracy": [0.5, acc]})
            for seed, acc in ((0, 1.0), (1, 0.9))]
    assert _verdict(tmp_path, check, runs) == (HOLDS, ["node 0.95 ± 0.071 (n=2) < 1"])
    assert _verdict(tmp_path, check, runs[:1])[0] == REFUTED      # last epoch, not the mean
    assert _verdict(tmp_path, check, _nfe("node", [1.0]))[0] == NOT_RUN  # no accuracy field
    above = "      - threshold: {value: accuracy, at: mean, models: [node], above: 0.7}\n"
    assert _verdict(tmp_path, above, runs)[0] == HOLDS


def test_trend(tmp_path: Path) -> None:
    check = "      - trend: {value: forward_nfe, models: [node], direction: rises}\n"
    assert _verdict(tmp_path, check, _nfe("node", [20.0, 26.0, 60.0])) == (
        HOLDS, ["node: first 20 (n=1) → last 60 (n=1)"])
    assert _verdict(tmp_path, check, _nfe("node", [20.0, 26.0, 20.0]))[0] == REFUTED
    falls = check.replace("rises", "falls")
    assert _verdict(tmp_path, falls, _nfe("node", [20.0, 10.0]))[0] == HOLDS
    assert _verdict(tmp_path, check, _nfe("hbnode", [20.0, 60.0]))[0] == NOT_RUN
    assert _verdict(tmp_path, check, _nfe("node", [20.0])) == (INCOMPLETE, [
        "no one suite and setting has all of node with two epochs or more"])  # one epoch


def test_params(tmp_path: Path) -> None:
    check = "      - params: {counts: {node: 525, sonode: 528}}\n"
    runs = [record("pc", "node", 0, [epoch(1)], params=525),
            record("pc", "sonode", 0, [epoch(1)], params=527)]
    assert _verdict(tmp_path, check, runs) == (HOLDS, ["node: 525 vs paper 525 (exact)",
                                                      "sonode: 527 vs paper 528 (-0.19%)"])
    runs[1]["params"] = 600
    assert _verdict(tmp_path, check, runs)[0] == REFUTED
    strict = "      - params: {counts: {sonode: 528}, tolerance: 0}\n"
    assert _verdict(tmp_path, strict, [record("pc", "sonode", 0, [], params=527)])[0] == REFUTED
    assert _verdict(tmp_path, check, [record("pc", "anode", 0, [epoch(1)])])[0] == NOT_RUN
    # the paper's sizes are not confirmed by one model, nor by runs that failed
    failed = record("pc", "sonode", 0, [], params=528, status="failed")
    assert _verdict(tmp_path, check, [runs[0], failed]) == (INCOMPLETE, [
        "node: 525 vs paper 525 (exact)", "every run of sonode failed (1)"])
    assert _verdict(tmp_path, check, [failed])[0] == NOT_RUN


def test_advantage_grows(tmp_path: Path) -> None:
    """Decided by the bootstrap interval over seeds of the ratio's growth from the largest
    tolerance to the smallest: holds above 0, refuted below, inconclusive across 0 or with one
    seed a model."""
    check = "      - advantage_grows: {value: backward_nfe, lower: [hbnode], than: [node]}\n"

    def sweep(node: list[float], hbnode: list[float], spread=(-1.0, 0.0, 1.0)) -> list:
        """Three seeds per model and tolerance, around the given NFE by ``spread``."""
        return [run for tol, n, h in zip((1e-2, 1e-3, 1e-4), node, hbnode)
                for model, value in (("node", n), ("hbnode", h))
                for run in _seeds(model, [value + d for d in spread], tol=tol)]
    verdict, evidence = _verdict(tmp_path, check, sweep([20.0, 40.0, 90.0], [10.0, 15.0, 30.0]))
    assert verdict == HOLDS and evidence[0].startswith(
        "ratio 3 at tol 0.0001, 2.67 at tol 0.001, 2 at tol 0.01; growth 3 − 2 = 1 [95% "
        "bootstrap CI ") and evidence[0].endswith("→ holds")
    assert _verdict(tmp_path, check, sweep([20.0, 40.0, 40.0], [10.0, 15.0, 30.0]))[0] == REFUTED
    noisy = sweep([20.0, 40.0, 21.0], [10.0, 15.0, 10.0], spread=(-8.0, 0.0, 8.0))
    assert _verdict(tmp_path, check, noisy)[0] == INCONCLUSIVE  # 2.1 vs 2, seeds ±8
    one_seed = sweep([20.0, 40.0, 90.0], [10.0, 15.0, 30.0], spread=(0.0,))
    assert _verdict(tmp_path, check, one_seed) == (INCONCLUSIVE, [
        "ratio 3 at tol 0.0001, 2.67 at tol 0.001, 2 at tol 0.01; no test: needs two ok seeds "
        "of each model at both tolerances or more"])
    one_tolerance = _nfe("node", [20.0]) + _nfe("hbnode", [10.0])
    assert _verdict(tmp_path, check, one_tolerance) == (INCOMPLETE, [
        "no one suite and setting has all of hbnode, node at two tolerances or more"])
    assert _verdict(tmp_path, check, _nfe("node", [20.0]))[0] == INCOMPLETE


def test_a_claims_verdict_follows_from_its_checks(tmp_path: Path) -> None:
    runs = _seeds("hbnode", FEWER) + _seeds("node", MORE)  # loss 1 in every run
    holds = "      - compare: {value: backward_nfe, lower: [hbnode], than: [node]}\n"
    refuted = "      - compare: {value: forward_nfe, higher: [hbnode], than: [node]}\n"
    inconclusive = "      - compare: {value: loss, lower: [hbnode], than: [node]}\n"
    incomplete = "      - compare: {value: forward_nfe, lower: [hbnode], than: [sonode]}\n"
    not_run = "      - compare: {value: forward_nfe, lower: [anode], than: [sonode]}\n"
    assert _verdict(tmp_path, holds, runs)[0] == HOLDS
    assert _verdict(tmp_path, holds + inconclusive, runs)[0] == INCONCLUSIVE
    assert _verdict(tmp_path, inconclusive, runs)[1][1].endswith(
        "no number of seeds would decide the observed effect")  # equal losses: no effect
    assert _verdict(tmp_path, holds + inconclusive + incomplete, runs)[0] == INCOMPLETE
    assert _verdict(tmp_path, holds + not_run, runs)[0] == INCOMPLETE
    assert _verdict(tmp_path, not_run, runs)[0] == NOT_RUN
    assert _verdict(tmp_path, holds + incomplete + not_run + refuted, runs)[0] == REFUTED
    path = tmp_path / "two.yaml"
    path.write_text("claims:\n  - id: c\n    claim: x\n    tasks: [pc, other]\n    checks:\n"
                    + holds)
    assert [(r.task, r.verdict) for r in evaluate(load_claims(path), runs)] == [
        ("pc", HOLDS), ("other", NOT_RUN)]


@pytest.mark.parametrize("text, message", [
    ("claims: []\n", "claims: [] is not a list of claims"),
    ("paper: x\nclaim: []\n", "unknown key 'claim'; valid: claims, figures, paper (did you mean "
                              "'claims'?)"),
    ("claims:\n  - {id: a, claim: b, task: pc, checks: [{compair: {}}]}\n",
     "claims[0].checks[0]: unknown check 'compair'; valid: advantage_grows, compare, params, "
     "threshold, trend (did you mean 'compare'?)"),
    ("claims:\n  - {id: a, claim: b, task: pc, checks: [{compare: {value: x, than: [a]}}]}\n",
     "claims[0].checks[0].compare: needs exactly one of lower or higher"),
    ("claims:\n  - {id: a, claim: b, task: pc, checks: [{compare: {lower: [a], than: b}}]}\n",
     "claims[0].checks[0].compare.value: missing"),
    ("claims:\n  - {id: a, claim: b, task: pc, checks: [{compare: {value: x, lower: [a], "
     "than: b}}]}\n", "claims[0].checks[0].compare.than: 'b' is not a list of names"),
    ("claims:\n  - {id: a, claim: b, task: pc, checks: [{threshold: {value: x, models: [a], "
     "below: low}}]}\n", "threshold.below: 'low' is not a finite number"),
    ("claims:\n  - {id: a, claim: b, checks: [{trend: {value: x, models: [a], direction: up}}]}"
     "\n", "claims[0]: needs exactly one of task, tasks"),
    ("claims:\n  - {id: a, claim: b, task: t, checks: [{trend: {value: x, models: [a], "
     "direction: up}}]}\n", "direction: 'up' is not a direction; valid: falls, rises"),
    ("claims:\n  - {id: a, claim: b, task: t, checks: [{params: {counts: {node: -1}}}]}\n",
     "counts: 'node': -1 is not a parameter count"),
    ("claims:\n  - {id: a, claim: b, task: t, checks: []}\n  - {id: a, claim: b, task: t, "
     "checks: [{params: {counts: {n: 1}}}]}\n", "claims[1].id: 'a' is used twice"),
    ("claims: [\n", "line 2, column 1: invalid YAML"),
])
def test_bad_claims_files_name_the_file_and_the_problem(tmp_path: Path, text: str,
                                                         message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ClaimsError) as error:
        load_claims(path)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)
    with pytest.raises(ClaimsError, match="nowhere.yaml: file not found"):
        load_claims(tmp_path / "nowhere.yaml")


def test_the_shipped_claims_name_real_tasks_and_models(registry) -> None:
    files = [load_claims(paper_claims_path()),
             *(load_claims(path) for path in sorted((REPO / "suites").glob("*.claims.yaml")))]
    assert files[0].paper.startswith("Heavy Ball Neural ODEs") and len(files[0].claims) >= 20
    for file in files:
        for claim in file.claims:
            assert set(claim.tasks) <= set(registry.tasks), claim.id
            for check in claim.checks:
                o = check.options
                models = {*o.get("lower", []), *o.get("higher", []), *o.get("than", []),
                          *o.get("models", []), *o.get("counts", {})}
                assert models <= set(registry.families), claim.id


def test_a_suite_carries_its_claims_into_the_results(tmp_path: Path, capsys) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("runs:\n  - {task: point_cloud, model: node, epochs: 1}\n")
    assert checked_suite_claims(suite) is None
    claims = ("claims:\n  - {id: a, claim: b, task: t, "
              "checks: [{params: {counts: {node: 1}}}]}\n")
    (tmp_path / "s.claims.yaml").write_text(claims)
    assert checked_suite_claims(suite) == claims.encode()
    assert main(["run", str(suite), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert load_claims(tmp_path / "out" / "claims.yaml").claims[0].id == "a"
    (tmp_path / "s.claims.yaml").write_text("claims: 3\n")
    assert main(["run", str(suite), "--out", str(tmp_path / "out2"), "--quiet"]) == 2
    assert "s.claims.yaml: claims: 3 is not a list of claims" in capsys.readouterr().err
    assert not (tmp_path / "out2" / "results.jsonl").exists()
