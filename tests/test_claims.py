"""Claims: the checks decided on the numbers (threshold, params) and how a claim's verdict
follows from its checks'; claims files are checked with clear errors; the shipped paper claims
load and name real plugins. The checks decided over seeds: tests/test_claim_verdicts.py."""
from __future__ import annotations

from pathlib import Path

import pytest
from harness.cli import main
from harness.reports.claim_results import (HOLDS, INCOMPLETE, INCONCLUSIVE, NOT_COMPARABLE,
                                           NOT_RUN, REFUTED)
from harness.reports.claim_verdicts import evaluate
from harness.reports.claims import (ClaimsError, checked_suite_claims, load_claims, models_of,
                                    paper_claims_path)
from tests.claim_records import curves, seeds, verdict
from tests.result_records import curve_run, epoch, record

REPO = Path(__file__).resolve().parent.parent


COMPARE = "      - compare: {value: backward_nfe, lower: [hbnode], than: [node, anode]}\n"
FEWER = [10.0, 12.0, 11.0, 13.0, 9.0]
MORE = [30.0, 33.0, 29.0, 31.0, 32.0]


def test_threshold(tmp_path: Path) -> None:
    check = "      - threshold: {value: accuracy, models: [node], below: 1.0}\n"
    runs = [curve_run("pc", "node", seed, {"accuracy": [0.5, acc]})
            for seed, acc in ((0, 1.0), (1, 0.9))]
    assert verdict(tmp_path, check, runs) == (HOLDS, ["node 0.95 ± 0.071 (n=2) < 1"])
    assert verdict(tmp_path, check, runs[:1])[0] == REFUTED      # last epoch, not the mean
    assert verdict(tmp_path, check, curves("node", [1.0]))[0] == NOT_RUN  # no accuracy field
    above = "      - threshold: {value: accuracy, at: mean, models: [node], above: 0.7}\n"
    assert verdict(tmp_path, above, runs)[0] == HOLDS
    # a failed run's accuracy is unknown: the mean of the others decides nothing
    failed = record("pc", "node", 2, [], status="failed", config={"epochs": 2})
    assert verdict(tmp_path, check, [*runs, failed]) == (INCOMPLETE, [
        "node 0.95 ± 0.071 (n=2) < 1",
        "node: 1 of 3 runs failed (1 solver); they cannot enter a test: incomplete"])


def test_params(tmp_path: Path) -> None:
    check = "      - params: {counts: {node: 525, sonode: 528}}\n"
    runs = [record("pc", "node", 0, [epoch(1)], params=525),
            record("pc", "sonode", 0, [epoch(1)], params=527)]
    assert verdict(tmp_path, check, runs) == (HOLDS, ["node: 525 vs paper 525 (exact)",
                                                      "sonode: 527 vs paper 528 (-0.19%)"])
    runs[1]["params"] = 600
    assert verdict(tmp_path, check, runs)[0] == REFUTED
    strict = "      - params: {counts: {sonode: 528}, tolerance: 0}\n"
    assert verdict(tmp_path, strict, [record("pc", "sonode", 0, [], params=527)])[0] == REFUTED
    assert verdict(tmp_path, check, [record("pc", "anode", 0, [epoch(1)])])[0] == NOT_RUN
    # the paper's sizes are not confirmed by one model, nor by runs that failed
    failed = record("pc", "sonode", 0, [], params=528, status="failed")
    assert verdict(tmp_path, check, [runs[0], failed]) == (INCOMPLETE, [
        "node: 525 vs paper 525 (exact)", "every run of sonode failed (1)"])
    assert verdict(tmp_path, check, [failed])[0] == NOT_RUN


def test_a_claims_verdict_follows_from_its_checks(tmp_path: Path) -> None:
    runs = seeds("hbnode", FEWER) + seeds("node", MORE)  # loss 1 in every run
    holds = "      - compare: {value: backward_nfe, lower: [hbnode], than: [node]}\n"
    refuted = "      - compare: {value: forward_nfe, higher: [hbnode], than: [node]}\n"
    inconclusive = "      - compare: {value: loss, lower: [hbnode], than: [node]}\n"
    incomplete = "      - compare: {value: forward_nfe, lower: [hbnode], than: [sonode]}\n"
    not_run = "      - compare: {value: forward_nfe, lower: [anode], than: [sonode]}\n"
    assert verdict(tmp_path, holds, runs)[0] == HOLDS
    assert verdict(tmp_path, holds + inconclusive, runs)[0] == INCONCLUSIVE
    unequal = "      - compare: {value: forward_nfe, lower: [hbnode], than: [ghbnode]}\n"
    runs += seeds("ghbnode", MORE, tol=1e-5)  # the others ran at tol 1e-3
    assert verdict(tmp_path, holds + inconclusive + unequal, runs)[0] == NOT_COMPARABLE
    assert verdict(tmp_path, holds + inconclusive + unequal + incomplete, runs)[0] == INCOMPLETE
    assert verdict(tmp_path, holds + not_run, runs)[0] == INCOMPLETE
    assert verdict(tmp_path, not_run, runs)[0] == NOT_RUN
    assert verdict(tmp_path, holds + incomplete + not_run + refuted, runs)[0] == REFUTED
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
     "scaling, stalls, threshold, trend (did you mean 'compare'?)"),
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
            baselines = {name for task in claim.tasks for name in registry.tasks[task].baselines}
            for check in claim.checks:
                if "by" in check.options:  # its names are values of a configuration key
                    continue
                models = set(models_of(check))
                assert models <= set(registry.families) | baselines, claim.id


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
