"""NFE budgets: pass, fail, update, no matching run, bad files, and the pytest plugin."""
from __future__ import annotations

import pytest

from harness.cli import main
from harness.gates.budgets import BudgetError, check, load_budgets
from harness.running.store import read_records
from tests.result_records import write_records

pytest_plugins = ["pytester"]


def run_record(model: str = "hbnode", forward=(20.0, 30.0), backward=(25.0, 35.0), seed=0,
               rtol=1e-3, accuracy=0.9, status="ok"):
    epochs = [{"epoch": i + 1, "forward_nfe": f, "backward_nfe": b, "eval_nfe": f,
               "train_time_s": 0.5, "loss": 0.1, "test_accuracy": accuracy}
              for i, (f, b) in enumerate(zip(forward, backward))]
    return {"key": f"{model}-{seed}-{rtol}", "task": "point_cloud", "model": model, "seed": seed,
            "status": status, "error": None if status == "ok" else "SolverFailure: underflow in dt",
            "config": {"solver": {"method": "dopri5", "rtol": rtol, "atol": rtol}},
            "epochs": epochs}


@pytest.fixture
def results(tmp_path):
    out = tmp_path / "results"
    for record in (run_record(seed=0), run_record(seed=1, forward=(30.0, 40.0)),
                   run_record(model="node", forward=(50.0, 50.0), backward=(60.0, 60.0))):
        write_records(out, [record])
    return out


def write(tmp_path, text):
    path = tmp_path / "budgets.yaml"
    path.write_text(text)
    return path


def test_within_budget_passes(tmp_path, results, capsys):
    # hbnode forward: seeds average (25 + 35) / 2 = 30; 10 % over 28 is 30.8.
    path = write(tmp_path, """
tolerance: 0.1
budgets:
  - {task: point_cloud, model: hbnode, max: {forward_nfe: 28, backward_nfe: 30}, min: {test_accuracy: 0.9}}
  - {task: point_cloud, model: node, solver: {rtol: 1.0e-3}, max: {forward_nfe: 50}}
""")
    assert main(["check", str(results), "--budgets", str(path)]) == 0
    table = capsys.readouterr().out
    assert "point_cloud/hbnode" in table and "30.8" in table and "FAIL" not in table


def test_a_blown_budget_fails_naming_task_model_measured_and_budget(tmp_path, results, capsys):
    path = write(tmp_path, "budgets:\n  - {task: point_cloud, model: hbnode, max: {forward_nfe: 25}}\n")
    assert main(["check", str(results), "--budgets", str(path)]) == 1
    out = capsys.readouterr().out
    assert ("FAIL point_cloud/hbnode forward_nfe: measured 30 > budget 25 (+10% = 27.5)") in out


def test_floors_and_final_epoch(tmp_path, results):
    budgets, _ = load_budgets(write(tmp_path, """
budgets:
  - {task: point_cloud, model: hbnode, at: last, max: {forward_nfe: 35}, min: {test_accuracy: 0.95}, tolerance: 0.0}
"""))
    ceiling, floor = check(budgets, read_records(results))
    assert (ceiling.measured, ceiling.passed) == (35.0, True)  # final epochs 30 and 40
    assert (floor.measured, floor.passed) == (0.9, False)
    assert "measured 0.9 < floor 0.95" in floor.problem


def test_a_budget_matching_no_run_or_only_failed_runs_fails(tmp_path, results, capsys):
    write_records(results, [run_record(model="sonode", status="failed")])
    path = write(tmp_path, """
budgets:
  - {task: point_cloud, model: ghbnode, max: {forward_nfe: 100}}
  - {task: point_cloud, model: hbnode, solver: {rtol: 1.0e-7}, max: {forward_nfe: 100}}
  - {task: point_cloud, model: sonode, max: {forward_nfe: 100}}
""")
    assert main(["check", str(results), "--budgets", str(path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL point_cloud/ghbnode forward_nfe: no run matches this budget" in out
    assert "FAIL point_cloud/hbnode [rtol=1e-07] forward_nfe: no run matches this budget" in out
    assert "FAIL point_cloud/sonode forward_nfe: 1 of 1 matching runs failed: SolverFailure" in out


def test_update_writes_budgets_that_then_pass_and_catch_a_regression(tmp_path, results, capsys):
    path = tmp_path / "new.yaml"
    assert main(["check", str(results), "--budgets", str(path), "--update", "--margin", "0.05"]) == 0
    budgets, tolerance = load_budgets(path)
    assert tolerance == 0.05
    lines = {b.model: b for b in budgets}
    assert lines["hbnode"].max == {"forward_nfe": 30.0, "backward_nfe": 30.0, "eval_nfe": 30.0}
    assert lines["node"].max["forward_nfe"] == 50.0
    assert main(["check", str(results), "--budgets", str(path)]) == 0
    # A tighter tolerance raises NFE: the same budgets now fail.
    regressed = tmp_path / "regressed"
    for seed in (0, 1):
        write_records(regressed, [run_record(seed=seed, forward=(40.0, 44.0))])
    capsys.readouterr()
    assert main(["check", str(regressed), "--budgets", str(path)]) == 1
    assert ("FAIL point_cloud/hbnode [method=dopri5, rtol=0.001, atol=0.001] forward_nfe: "
            "measured 42 > budget 30 (+5% = 31.5)") in capsys.readouterr().out


def test_update_keeps_hand_written_bounds_and_splits_solver_settings(tmp_path, results):
    write_records(results, [run_record(model="node", rtol=1e-5, forward=(80.0, 80.0))])
    path = write(tmp_path, "budgets:\n  - {task: point_cloud, model: hbnode, min: {test_accuracy: 0.5}}\n")
    assert main(["check", str(results), "--budgets", str(path), "--update"]) == 0
    budgets, _ = load_budgets(path)
    hbnode = [b for b in budgets if b.model == "hbnode"]
    assert len(hbnode) == 1 and hbnode[0].min == {"test_accuracy": 0.9} and not hbnode[0].max
    node = sorted((b.solver["rtol"], b.max["forward_nfe"]) for b in budgets if b.model == "node")
    assert node == [(1e-5, 80.0), (1e-3, 50.0)]


@pytest.mark.parametrize("text, expected", [
    ("budgets: []", "budgets: [] is not a non-empty list"),
    ("budgetz: []", "budgetz: unknown key 'budgetz'; valid: budgets, tolerance (did you mean 'budgets'?)"),
    ("budgets: [{task: t, model: m, max: {forward_nef: 3}}]",
     "budgets[0].max.forward_nef: unknown field 'forward_nef'"),
    ("budgets: [{task: t, model: m, max: {forward_nfe: -3}}]",
     "budgets[0].max.forward_nfe: -3 is not > 0"),
    ("budgets: [{task: t, model: m}]", "budgets[0]: no bounds"),
    ("budgets: [{model: m, max: {eval_nfe: 3}}]", "budgets[0].task: missing"),
    ("tolerance: 2\nbudgets: [{task: t, model: m, max: {eval_nfe: 3}}]", "tolerance: 2 is not from 0 to 1"),
    ("budgets: [{task: t, model: m, at: final, max: {eval_nfe: 3}}]",
     "budgets[0].at: 'final' is not a way to summarise epochs; valid: first, last, mean"),
])
def test_bad_budget_files_are_clear_errors(tmp_path, text, expected):
    path = write(tmp_path, text + "\n")
    with pytest.raises(BudgetError) as error:
        load_budgets(path)
    assert f"{path}: {expected}" in str(error.value)


@pytest.mark.slow  # a pytest session of its own, end to end
def test_the_pytest_plugin_gates_nfe_in_a_users_test(pytester):
    pytester.makepyfile("""
        SETTINGS = dict(epochs=1, solver={"method": "rk4", "options": {"step_size": 0.5}})

        def test_within(harness_budget):
            result = harness_budget.run(task="point_cloud", model="hbnode", **SETTINGS)
            result.within(forward_nfe=8, backward_nfe=8, eval_nfe=8)

        def test_blown(harness_budget):
            harness_budget.run(task="point_cloud", model="node", **SETTINGS).within(forward_nfe=4)
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*FAIL point_cloud/node forward_nfe: measured 8 > budget 4 (+0% = 4)*"])


def test_a_value_recorded_as_no_number_fails_the_budget(tmp_path, capsys):
    """A run whose NFE is NaN (or inf) is not within budget: the gate cannot read it."""
    out = tmp_path / "results"
    write_records(out, [run_record(seed=0), run_record(seed=1, forward=(float("nan"), 30.0)),
                        run_record(model="node", forward=(float("inf"), 20.0))])
    path = write(tmp_path, """
budgets:
  - {task: point_cloud, model: hbnode, max: {forward_nfe: 1000, backward_nfe: 1000}}
  - {task: point_cloud, model: node, at: first, max: {forward_nfe: 1000}}
""")
    assert main(["check", str(out), "--budgets", str(path)]) == 1
    printed = capsys.readouterr().out
    assert ("FAIL point_cloud/hbnode forward_nfe: 1 of 2 matching runs record forward_nfe as no "
            "number (NaN or ±inf)") in printed
    assert "FAIL point_cloud/node forward_nfe: 1 of 1 matching runs record" in printed
    assert "hbnode backward_nfe" not in printed  # the readable bound still passes


def test_update_writes_the_solver_settings_lines_were_measured_at(tmp_path, results):
    """A new line names the method, tolerances, adjoint and backend of its runs, so it does not
    judge runs at another tolerance; a fixed-step method's line names its options instead of
    tolerances; ``backend`` and ``options`` are budget solver keys."""
    rk4 = run_record(model="anode", forward=(12.0, 12.0))
    rk4["config"]["solver"] = {"method": "rk4", "rtol": 1e-7, "atol": 1e-7, "adjoint": True,
                               "backend": "fast", "options": {"step_size": 0.1}}
    write_records(results, [rk4])
    path = tmp_path / "new.yaml"
    assert main(["check", str(results), "--budgets", str(path), "--update"]) == 0
    lines = {b.model: b for b in load_budgets(path)[0]}
    assert lines["hbnode"].solver == {"method": "dopri5", "rtol": 1e-3, "atol": 1e-3}
    assert lines["anode"].solver == {"method": "rk4", "adjoint": True, "backend": "fast",
                                     "options": {"step_size": 0.1}}
    looser = tmp_path / "looser"
    write_records(looser, [run_record(seed=0, rtol=1e-2, forward=(90.0, 90.0))])
    verdicts = check([lines["hbnode"]], read_records(looser))
    assert {v.problem for v in verdicts} == {"no run matches this budget"}
    written = write(tmp_path, "budgets: [{task: t, model: m, solver: {backend: fast}, "
                              "max: {eval_nfe: 3}}]\n")
    assert load_budgets(written)[0][0].solver == {"backend": "fast"}


def test_update_writes_no_bound_from_a_value_recorded_as_no_number(tmp_path):
    """A NaN forward NFE neither crashes ``--update`` nor becomes a bound: the line keeps its
    old ceiling for it and takes the readable ones."""
    out = tmp_path / "results"
    write_records(out, [run_record(seed=0, forward=(float("nan"), 30.0))])
    path = write(tmp_path, """
budgets:
  - {task: point_cloud, model: hbnode, max: {forward_nfe: 1000, backward_nfe: 1000}}
""")
    assert main(["check", str(out), "--budgets", str(path), "--update"]) in (0, 1)
    (line,) = load_budgets(path)[0]
    assert line.max["forward_nfe"] == 1000
    assert line.max["backward_nfe"] == 30.0
