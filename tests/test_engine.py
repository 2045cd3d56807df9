"""One unit-execution path for solo runs and ensembles (harness.running.engine): epoch records
built once (the same fields, solve notes included) and ``lr_restarts`` in an ensemble, each
member's optimizer restarted as its solo run's (float64: NFE equal, losses and parameters to
rounding)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from harness.plugins import load_registry
from harness.running import member_epochs, runner
from harness.running.checkpoints import Checkpoints
from harness.running.driver import run_suite
from harness.running.ensembles import execute_ensemble
from harness.running.runner import execute_run
from tests.conftest import CPU, make_spec
from tests.plugins_for_tests import Ensembles

pytestmark = pytest.mark.slow  # ensemble exactness

TINY = {"inner": 10, "outer": 20}
RESTARTS = {2: 0.002, 3: 0.03}


@pytest.fixture(scope="module")
def with_failing_seed():
    return load_registry([("ensembles", Ensembles())])


def _specs(model: str, seeds=(0, 1, 2, 3), **settings):
    return [make_spec(model=model, seed=seed, task_options=TINY, precision="float64",
                      solver={"backend": "fast", "rtol": 1e-7, "atol": 1e-7}, **settings)
            for seed in seeds]


def assert_trained_as_alone(record, alone):
    """A member's record against its solo run's: the same outcome, and in every epoch the same
    fields, counts (NFE, iterations) equal and losses and metrics to rounding."""
    assert (record["status"], record["failure_kind"], record["error"]) == (
        alone["status"], alone["failure_kind"], alone["error"])
    assert len(record["epochs"]) == len(alone["epochs"]) and record["params"] == alone["params"]
    for epoch, reference in zip(record["epochs"], alone["epochs"]):
        assert epoch.keys() == reference.keys()
        for name, value in reference.items():
            if name.endswith("_nfe") or name in ("epoch", "iterations"):
                assert epoch[name] == value, (epoch["epoch"], name)
            elif not name.endswith("_time_s"):
                assert epoch[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


@pytest.mark.parametrize("model", ["node", "hbnode"])
def test_each_member_of_an_lr_restarts_ensemble_restarts_as_its_solo_run(with_failing_seed,
                                                                          model, tmp_path):
    """Three epochs (full batch), fresh optimizers at epochs 2 and 3 at new rates, seed 2's
    loss NaN at its second iteration: every member has its solo run's status, NFE in every
    epoch and phase, losses and metrics to rounding, and its final parameters."""
    registry = with_failing_seed
    specs = [replace(spec, task="one_seed_fails", epochs=3)
             for spec in _specs(model, lr_restarts=RESTARTS)]
    checkpoints = Checkpoints(tmp_path)  # each keeps its last epoch's parameters
    records = execute_ensemble(specs, registry, CPU, checkpoints=checkpoints)
    for index, (spec, record) in enumerate(zip(specs, records)):
        assert (record["ensemble"]["index"], record["status"]) == (
            index, "failed" if index == 2 else "ok")
        assert_trained_as_alone(record, execute_run(spec, registry, CPU, checkpoints=checkpoints))
    saved = checkpoints.read(records[0]["ensemble"]["id"], specs)
    assert saved["optimizer"]["param_groups"][0]["lr"] == RESTARTS[3]
    assert {int(state["step"]) for state in saved["optimizer"]["state"].values()} == {1}
    for index in (0, 1, 3):  # member 2 failed: its slice holds what its masked steps left
        alone = {name.replace("dynamics.family.", "family_parameters."): value for name, value
                 in checkpoints.read(specs[index].key, [specs[index]])["model"].items()}
        member = {name: saved["model"][name][index] for name in alone}
        torch.testing.assert_close(member, alone, rtol=1e-9, atol=1e-12)


def test_a_suite_with_lr_restarts_trains_its_seeds_as_one_ensemble(registry, tmp_path):
    """``execution: {ensemble: 2}`` takes runs with ``lr_restarts`` (they used to run alone);
    resumed after the epoch of a restart, each member still trains as its solo run."""
    runs = _specs("hbnode", seeds=(0, 1), epochs=3, lr_restarts=RESTARTS)

    class Interrupt(BaseException):
        """Stops the ensemble after epoch 2 (its checkpoint written), as Ctrl-C would."""

    def stop_after_epoch_2(event, spec, **details):
        if event == "epoch_finished" and details["epoch"]["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        execute_ensemble(runs, registry, CPU, stop_after_epoch_2,
                         Checkpoints(tmp_path / "checkpoints"))
    outcome = run_suite(runs, registry, tmp_path, CPU, ensemble=2)
    assert [(r["ensemble"]["size"], r.get("resumed_from_epoch")) for r in outcome.records] == [
        (2, 2), (2, 2)]
    for record, spec in zip(outcome.records, runs):
        assert_trained_as_alone(record, execute_run(spec, registry, CPU))


def test_solo_and_member_epochs_carry_the_same_fields_and_solve_notes(registry, monkeypatch):
    """A backend's solve notes (here one number per member and solve) reach each member's
    epoch record as its own, in the fields a solo run's notes take, in training and
    evaluation alike."""
    def noting(model, note):
        forward = model.forward

        def noted(x):
            y = forward(x)
            note()
            return y
        model.forward = noted
        return model

    build_run, stack_models = runner.build_run, member_epochs.stack_models

    def solo_build(spec, registry, device):
        built = build_run(spec, registry, device)
        noting(built.model, lambda: built.counter.note({"outer_steps": 7.0}))
        return built

    def member_stack(models, members):
        return noting(stack_models(models, members),
                      lambda: members.note({"outer_steps": np.arange(members.size) + 7.0}))

    monkeypatch.setattr(runner, "build_run", solo_build)
    monkeypatch.setattr(member_epochs, "stack_models", member_stack)
    specs = _specs("node", seeds=(0, 1), epochs=2, eval_every=2)
    alone = execute_run(specs[0], registry, CPU)
    records = execute_ensemble(specs, registry, CPU)
    for index, record in enumerate(records):
        for epoch, reference in zip(record["epochs"], alone["epochs"]):
            assert epoch.keys() == reference.keys()
            assert epoch["forward_outer_steps"] == 7.0 + index
        assert record["epochs"][-1]["eval_outer_steps"] == 7.0 + index
    assert "eval_outer_steps" not in records[0]["epochs"][0]  # epoch 1 is not evaluated
    assert alone["epochs"][-1]["eval_outer_steps"] == 7.0
