"""Claims: every check kind gives ✓, ✗ and not run on records built for each case; claims
files are checked with clear errors; the shipped paper claims load and name real plugins."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.reports.claim_verdicts import FAIL, NOT_RUN, PASS, evaluate
from harness.reports.claims import ClaimsError, copy_suite_claims, load_claims, paper_claims_path
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


def test_compare(tmp_path: Path) -> None:
    fewer = _nfe("hbnode", [10.0, 20.0], seeds=(0, 1)) + _nfe("node", [30.0, 30.0]) \
        + _nfe("anode", [16.0, 16.0])
    verdict, evidence = _verdict(tmp_path, COMPARE, fewer)
    assert verdict == PASS
    assert evidence == ["hbnode 15 ± 0 (n=2), node 30 (n=1), anode 16 (n=1)"]
    more = _nfe("hbnode", [10.0, 20.0]) + _nfe("node", [30.0]) + _nfe("anode", [14.0])
    assert _verdict(tmp_path, COMPARE, more)[0] == FAIL
    missing = _nfe("hbnode", [10.0]) + _nfe("node", [30.0])
    assert _verdict(tmp_path, COMPARE, missing) == (NOT_RUN, ["no ok run of anode"])
    assert _verdict(tmp_path, COMPARE, []) == (NOT_RUN, ["no run of this task"])
    failed = missing + [record("pc", "anode", 0, [], status="failed")]
    assert _verdict(tmp_path, COMPARE, failed)[0] == NOT_RUN


def test_compare_holds_only_when_it_holds_in_every_setting(tmp_path: Path) -> None:
    records = (_nfe("hbnode", [10.0], tol=1e-3) + _nfe("node", [30.0], tol=1e-3)
               + _nfe("anode", [30.0], tol=1e-3) + _nfe("hbnode", [50.0], tol=1e-5)
               + _nfe("node", [30.0], tol=1e-5) + _nfe("anode", [60.0], tol=1e-5))
    verdict, evidence = _verdict(tmp_path, COMPARE, records)
    assert verdict == FAIL
    assert evidence == ["[tol 0.001] hbnode 10 (n=1), node 30 (n=1), anode 30 (n=1)",
                        "[tol 1e-05] hbnode 50 (n=1), node 30 (n=1), anode 60 (n=1)"]
    higher = "      - compare: {value: backward_nfe, at: last, higher: [node], than: [hbnode]}\n"
    assert _verdict(tmp_path, higher, records[:2])[0] == PASS


def test_threshold(tmp_path: Path) -> None:
    check = "      - threshold: {value: accuracy, models: [node], below: 1.0}\n"
    runs = [curve_run("pc", "node", seed, {"accuracy": [0.5, acc]})
            for seed, acc in ((0, 1.0), (1, 0.9))]
    assert _verdict(tmp_path, check, runs) == (PASS, ["node 0.95 ± 0.071 (n=2) < 1"])
    assert _verdict(tmp_path, check, runs[:1])[0] == FAIL      # last epoch, not the mean
    assert _verdict(tmp_path, check, _nfe("node", [1.0]))[0] == NOT_RUN  # no accuracy field
    above = "      - threshold: {value: accuracy, at: mean, models: [node], above: 0.7}\n"
    assert _verdict(tmp_path, above, runs)[0] == PASS


def test_trend(tmp_path: Path) -> None:
    check = "      - trend: {value: forward_nfe, models: [node], direction: rises}\n"
    assert _verdict(tmp_path, check, _nfe("node", [20.0, 26.0, 60.0])) == (
        PASS, ["node: first 20 (n=1) → last 60 (n=1)"])
    assert _verdict(tmp_path, check, _nfe("node", [20.0, 26.0, 20.0]))[0] == FAIL
    falls = check.replace("rises", "falls")
    assert _verdict(tmp_path, falls, _nfe("node", [20.0, 10.0]))[0] == PASS
    assert _verdict(tmp_path, check, _nfe("hbnode", [20.0, 60.0]))[0] == NOT_RUN
    assert _verdict(tmp_path, check, _nfe("node", [20.0]))[0] == NOT_RUN  # one epoch: no trend


def test_params(tmp_path: Path) -> None:
    check = "      - params: {counts: {node: 525, sonode: 528}}\n"
    runs = [record("pc", "node", 0, [epoch(1)], params=525),
            record("pc", "sonode", 0, [epoch(1)], params=527)]
    assert _verdict(tmp_path, check, runs) == (PASS, ["node: 525 vs paper 525 (exact)",
                                                      "sonode: 527 vs paper 528 (-0.19%)"])
    runs[1]["params"] = 600
    assert _verdict(tmp_path, check, runs)[0] == FAIL
    strict = "      - params: {counts: {sonode: 528}, tolerance: 0}\n"
    assert _verdict(tmp_path, strict, [record("pc", "sonode", 0, [], params=527)])[0] == FAIL
    assert _verdict(tmp_path, check, [record("pc", "anode", 0, [epoch(1)])])[0] == NOT_RUN


def test_advantage_grows(tmp_path: Path) -> None:
    check = "      - advantage_grows: {value: backward_nfe, lower: [hbnode], than: [node]}\n"

    def sweep(node: list[float], hbnode: list[float]) -> list:
        return [run for tol, n, h in zip((1e-2, 1e-3, 1e-4), node, hbnode)
                for run in _nfe("node", [n], tol=tol) + _nfe("hbnode", [h], tol=tol)]
    verdict, evidence = _verdict(tmp_path, check, sweep([20.0, 40.0, 90.0], [10.0, 15.0, 30.0]))
    assert (verdict, evidence) == (PASS, ["ratio 3 at tol 0.0001, 2.67 at tol 0.001, "
                                          "2 at tol 0.01"])
    assert _verdict(tmp_path, check, sweep([20.0, 40.0, 40.0], [10.0, 15.0, 30.0]))[0] == FAIL
    one_tolerance = _nfe("node", [20.0]) + _nfe("hbnode", [10.0])
    assert _verdict(tmp_path, check, one_tolerance)[0] == NOT_RUN


def test_a_claim_fails_on_any_failed_check_else_is_not_run_on_any_missing(tmp_path: Path) -> None:
    runs = _nfe("hbnode", [10.0]) + _nfe("node", [30.0])
    holds = "      - compare: {value: backward_nfe, lower: [hbnode], than: [node]}\n"
    fails = "      - compare: {value: forward_nfe, higher: [hbnode], than: [node]}\n"
    absent = "      - compare: {value: forward_nfe, lower: [hbnode], than: [sonode]}\n"
    assert _verdict(tmp_path, holds + absent, runs)[0] == NOT_RUN
    assert _verdict(tmp_path, holds + absent + fails, runs)[0] == FAIL
    path = tmp_path / "two.yaml"
    path.write_text("claims:\n  - id: c\n    claim: x\n    tasks: [pc, other]\n    checks:\n"
                    + holds)
    assert [(r.task, r.verdict) for r in evaluate(load_claims(path), runs)] == [
        ("pc", PASS), ("other", NOT_RUN)]


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
    assert copy_suite_claims(suite, tmp_path / "out") is None
    (tmp_path / "s.claims.yaml").write_text("claims:\n  - {id: a, claim: b, task: t, "
                                            "checks: [{params: {counts: {node: 1}}}]}\n")
    copy = copy_suite_claims(suite, tmp_path / "out")
    assert copy == tmp_path / "out" / "claims.yaml" and load_claims(copy).claims[0].id == "a"
    (tmp_path / "s.claims.yaml").write_text("claims: 3\n")
    assert main(["run", str(suite), "--out", str(tmp_path / "out2"), "--quiet"]) == 2
    assert "s.claims.yaml: claims: 3 is not a list of claims" in capsys.readouterr().err
    assert not (tmp_path / "out2" / "results.jsonl").exists()
