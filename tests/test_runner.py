"""The runner: failures become records and the suite goes on; finished runs are not rerun."""
from __future__ import annotations

import json

import pytest

from harness import hookimpl
from harness.cli import main
from harness.plugins import load_registry
from harness.running.driver import run_suite
from harness.running.runner import RunConfigError
from harness.running.store import read_records, results_path
from harness.suites.loader import load_suite
from tests.conftest import CPU, make_spec
from tests.plugins_for_tests import Misbehaving

RK4 = {"method": "rk4", "options": {"step_size": 0.5}}


@pytest.fixture(scope="module")
def registry_with_misfits():
    return load_registry([("misbehaving", Misbehaving())])


def write_suite(tmp_path, text: str):
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_failures_are_recorded_and_the_suite_goes_on(tmp_path, registry_with_misfits):
    suite = load_suite(write_suite(tmp_path, """
runs:
  - task: point_cloud
    models: [node, sonode, blowup, hbnode]
    epochs: 2
    solver: {tol: 1.0e-3}
    overrides:
      sonode: {solver: {options: {max_num_steps: 1}}}
  - task: nan_loss
    model: node
    epochs: 2
"""), registry_with_misfits)
    outcome = run_suite(suite.runs, registry_with_misfits, tmp_path / "out", CPU)
    records = {(r["task"], r["model"]): r for r in read_records(tmp_path / "out")}
    assert len(records) == 5
    assert records["point_cloud", "node"]["status"] == "ok"
    assert records["point_cloud", "hbnode"]["status"] == "ok"  # ran after the failures
    steps = records["point_cloud", "sonode"]
    assert (steps["status"], steps["failure_kind"]) == ("failed", "solver")
    assert "max_num_steps exceeded" in steps["error"] and steps["epochs"] == []
    blowup = records["point_cloud", "blowup"]
    assert (blowup["status"], blowup["failure_kind"]) == ("failed", "solver")
    assert "underflow in dt" in blowup["error"] or "non-finite" in blowup["error"]
    nan = records["nan_loss", "node"]
    assert (nan["status"], nan["failure_kind"]) == ("failed", "non_finite")
    assert "training loss is nan" in nan["error"]
    assert len(outcome.failed) == 3


def test_a_rerun_skips_finished_runs_and_retries_failed_ones(tmp_path, registry):
    runs = [make_spec(model=m, epochs=1, solver=RK4) for m in ("node", "hbnode")]
    failing = make_spec(model="sonode", epochs=1, solver={"options": {"max_num_steps": 1}})
    out = tmp_path / "out"
    first = run_suite([*runs, failing], registry, out, CPU)
    assert (len(first.records), first.skipped) == (3, 0)
    second = run_suite([*runs, failing], registry, out, CPU)
    assert (len(second.records), second.skipped) == (1, 2)  # only the failed run again
    forced = run_suite(runs, registry, out, CPU, force=True)
    assert (len(forced.records), forced.skipped) == (2, 0)
    lines = results_path(out).read_text().splitlines()
    assert len(lines) == 6 and all(json.loads(line) for line in lines)


def test_records_carry_config_environment_and_epochs(tmp_path, registry):
    spec = make_spec(model="ghbnode", epochs=3, solver=RK4, eval_every=2)
    (record,) = run_suite([spec], registry, tmp_path, CPU).records
    assert record["config"] == spec.config() and record["key"] == spec.key
    assert record["config"]["solver"]["method"] == "rk4"
    env = record["environment"]
    for key in ("python", "torch", "torchdiffeq", "harness", "device", "git_revision"):
        assert key in env
    assert env["device"] == "cpu" and env["torch"]
    assert record["params"] == 569 and record["paper_params"] == 568
    assert record["packages"] == {"task": "harness", "model": "harness"}
    epochs = record["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert ["test_accuracy" in e for e in epochs] == [False, True, True]  # every 2nd and the last
    assert all(e["train_time_s"] > 0 and e["forward_time_s"] > 0 for e in epochs)


def test_setup_problems_stop_the_suite_before_training(tmp_path, registry):
    no_widths = make_spec(model="hbnode", epochs=1)
    object.__setattr__(no_widths, "model_options", {"sigma": "relu"})
    with pytest.raises(RunConfigError, match="unexpected keyword argument 'sigma'"):
        run_suite([make_spec(model="node", epochs=1), no_widths], registry, tmp_path, CPU)
    assert not results_path(tmp_path).exists()


def test_observers_see_every_epoch_and_the_end(tmp_path):
    seen = []

    class Observer:
        @hookimpl
        def harness_run_started(self, run):
            seen.append(("start", run.model))

        @hookimpl
        def harness_epoch_finished(self, run, epoch):
            seen.append(("epoch", epoch["epoch"]))

        @hookimpl
        def harness_run_finished(self, run, record):
            seen.append(("end", record["status"]))

    registry = load_registry([("observer", Observer())])
    run_suite([make_spec(model="node", epochs=2, solver=RK4)], registry, tmp_path, CPU)
    assert seen == [("start", "node"), ("epoch", 1), ("epoch", 2), ("end", "ok")]


class RaisingObserver:
    """A logging plugin with a bug in each observer hook."""

    @hookimpl
    def harness_run_started(self, run):
        raise RuntimeError("logger down")

    @hookimpl
    def harness_epoch_finished(self, run, epoch):
        raise KeyError("step")

    @hookimpl
    def harness_run_finished(self, run, record):
        raise ValueError("no sink")


def test_a_raising_observer_changes_no_result_and_is_reported(tmp_path, caplog):
    seen = []

    class Healthy:
        @hookimpl
        def harness_epoch_finished(self, run, epoch):
            seen.append(epoch["epoch"])

    registry = load_registry([("healthy", Healthy()), ("buggy_logger", RaisingObserver())])
    runs = [make_spec(model="node", epochs=2, solver=RK4), make_spec(model="hbnode", epochs=2,
                                                                      solver=RK4)]
    outcome = run_suite(runs, registry, tmp_path, CPU)
    assert [r["status"] for r in outcome.records] == ["ok", "ok"]
    assert seen == [1, 2, 1, 2]  # the other observer still sees every epoch
    (failure,) = [f for f in registry.failures if f.plugin == "buggy_logger"]
    assert "harness_run_started raised RuntimeError('logger down')" in failure.reason
    assert "plugin buggy_logger" in caplog.text


def test_the_run_summary_names_a_raising_observer(tmp_path, capsys, monkeypatch):
    suite = tmp_path / "suite.yaml"
    suite.write_text("runs:\n  - task: point_cloud\n    model: node\n    epochs: 1\n"
                     "    solver: {method: rk4, options: {step_size: 0.5}}\n")
    monkeypatch.setenv("HARNESS_PLUGINS", "tests.test_runner")
    assert main(["run", str(suite), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert "plugin tests.test_runner" in capsys.readouterr().out


@hookimpl
def harness_epoch_finished(run, epoch):
    """This module as a plugin (``HARNESS_PLUGINS=tests.test_runner``): a broken logger."""
    raise ZeroDivisionError("oops")


def test_zero_epochs_evaluates_the_untrained_model(tmp_path, registry):
    (record,) = run_suite([make_spec(model="hbnode", epochs=0, solver=RK4)], registry, tmp_path,
                          CPU).records
    assert record["status"] == "ok"
    (epoch,) = record["epochs"]
    assert (epoch["epoch"], epoch["iterations"], epoch["eval_nfe"]) == (0, 0, 8)  # 2 rk4 steps
    assert "loss" not in epoch and "test_loss" in epoch


def test_a_width_the_task_reads_but_the_suite_lacks_fails_the_run_naming_it(tmp_path, registry):
    """A suite's `widths:` replaces the task's whole; one it lacks (a typo: `hh` for `h`) fails
    the run with the width named, the widths given and the task's own — not a bare KeyError
    from inside the task — and the rest of the suite goes on."""
    typo = make_spec(model="node", epochs=1, widths={"n": 2, "hh": 32})
    fine = make_spec(model="node", epochs=1, seed=1)
    failed, ok = run_suite([typo, fine], registry, tmp_path, CPU).records
    assert failed["status"] == "failed" and ok["status"] == "ok"
    assert ("widths has no 'h', which task 'point_cloud' reads to build family 'node' "
            "(given: {n: 2, hh: 32})") in failed["error"]
    assert "the task's own for it: {n: 2, h: " in failed["error"]


def test_a_width_a_refusal_reads_is_named_before_anything_trains(tmp_path, registry):
    """The CNF task's refusal reads `n`: without it the suite stops before training, naming
    the width (a KeyError there would have escaped the set-up check)."""
    lacking = make_spec(task="cnf_toy", model="node", epochs=1, widths={"M": 4, "h": 8})
    with pytest.raises(RunConfigError, match="widths has no 'n', which task 'cnf_toy' reads"):
        run_suite([lacking], registry, tmp_path, CPU)
