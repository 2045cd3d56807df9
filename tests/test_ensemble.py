"""Ensembles: runs that differ only in seed, trained as members of one stacked model, each
member as its solo run (float64: the same NFE in every solve, losses and parameters to
rounding)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from harness.plugins import load_registry
from harness.running.checkpoints import Checkpoints
from harness.running.driver import run_suite
from harness.running.ensembles import execute_ensemble
from harness.running.grouping import units
from harness.running.runner import build_run, execute_run
from harness.suites.loader import SuiteError, load_suite
from harness.toolkit.ensemble import Members, NotStackable, stack_models
from tests.conftest import CPU, FAMILIES, make_spec
from tests.plugins_for_tests import Ensembles

pytestmark = pytest.mark.slow  # ensemble exactness

SEEDS = (0, 1, 2, 3)
TINY = {"inner": 10, "outer": 20}


def _specs(model: str, **settings):
    solver = {"backend": "fast", "rtol": 1e-7, "atol": 1e-7, **settings.pop("solver", {})}
    return [make_spec(model=model, seed=seed, solver=solver, task_options=TINY,
                      precision="float64", **settings) for seed in SEEDS]


def _batch(registry, spec):
    task = registry.tasks[spec.task]
    return next(iter(task.data({**task.options, **spec.task_options}, spec.seed, None, CPU,
                               None).train))


@pytest.mark.parametrize("model", FAMILIES)
def test_one_step_of_each_member_is_its_solo_step(registry, float64, model):
    """Forward and adjoint solve: each member's NFE equal to its solo run's, predictions and
    gradients to rounding (activations round by position in a vector: ulps, not more)."""
    task, specs = registry.tasks["point_cloud"], _specs(model)
    solo = []
    for spec in specs:
        built = build_run(spec, registry, CPU)
        x, y = _batch(registry, spec)
        with built.counter.in_phase("forward"):
            prediction = built.model(x)
        with built.counter.in_phase("backward"):
            task.loss(prediction, y).backward()
        solo.append((x, y, prediction.detach(), built.counter.take(),
                     dict(built.model.named_parameters())))
    members = Members(len(specs))
    model_ = stack_models([build_run(spec, registry, CPU).model for spec in specs], members)
    with members.in_phase("forward"):
        predictions = model_(torch.cat([x for x, *_ in solo])).chunk(len(specs))
    with members.in_phase("backward"):
        sum(task.loss(p, y) for p, (_, y, *_) in zip(predictions, solo)).backward()
    counts = members.take()
    for m, (_, _, prediction, nfe, parameters) in enumerate(solo):
        assert (counts["forward"][m], counts["backward"][m]) == (nfe["forward"], nfe["backward"])
        torch.testing.assert_close(predictions[m].detach(), prediction, rtol=1e-12, atol=1e-14)
        for name, stacked in model_.named_parameters():
            reference = parameters[name.replace("ode.family_parameters", "ode.dynamics.family")]
            torch.testing.assert_close(stacked.grad[m], reference.grad, rtol=1e-9, atol=1e-13)
    assert counts["forward"].min() > 0 and not members.failures


def test_a_member_that_fails_its_solve_is_frozen_and_the_others_finish(registry, float64):
    """Member 2's f gives NaN: its error ratio is NaN, its step size underflows, and it is
    recorded failed; the others' NFE are unchanged by its failure, their results too (to
    rounding: without member 2, their rows sit elsewhere in the tensors)."""
    specs = _specs("node")
    members = Members(len(specs))
    model = stack_models([build_run(spec, registry, CPU).model for spec in specs], members)
    x = torch.cat([_batch(registry, spec)[0] for spec in specs])
    with members.in_phase("forward"):
        healthy = model(x).detach()
    before = members.take()["forward"]
    with torch.no_grad():
        model.ode.dynamics.f.net[0].weight[2] = torch.nan
    with members.in_phase("forward"):
        result = model(x).detach().chunk(len(specs))
    after = members.take()["forward"]
    assert list(members.failures) == [2] and "underflow" in str(members.failures[2])
    assert not members.alive[2] and members.alive[[0, 1, 3]].all()
    for m in (0, 1, 3):
        torch.testing.assert_close(result[m], healthy.chunk(len(specs))[m], rtol=1e-12,
                                   atol=1e-14)
        assert after[m] == before[m]


def test_models_with_parts_that_cannot_be_stacked_say_why(registry):
    members = Members(2)
    convolutions = [nn.Sequential(nn.Conv1d(1, 1, 3)) for _ in range(2)]
    with pytest.raises(NotStackable, match=r"model.0 \(Conv1d\) holds weight, bias"):
        stack_models(convolutions, members)
    assert members.alive.all() and np.all(members.take()["forward"] == 0)


@pytest.fixture(scope="module")
def with_failing_seed():
    return load_registry([("ensembles", Ensembles())])


@pytest.mark.parametrize("model", FAMILIES)
def test_each_member_trains_as_its_solo_run(with_failing_seed, model, tmp_path):
    """Three epochs (full batch: three iterations) of four seeds, seed 2's loss NaN at its
    second iteration: every member's record has its solo run's status, failure, NFE per epoch
    (forward, backward, evaluation), and losses and metrics to rounding; final parameters too."""
    registry = with_failing_seed
    specs = [replace(spec, task="one_seed_fails", epochs=3) for spec in _specs(model)]
    checkpoints = Checkpoints(tmp_path)  # each keeps its last epoch's parameters
    solo = [execute_run(spec, registry, CPU, checkpoints=checkpoints) for spec in specs]
    records = execute_ensemble(specs, registry, CPU, checkpoints=checkpoints)
    assert [r["status"] for r in records] == [r["status"] for r in solo] == [
        "ok", "ok", "failed", "ok"]
    for index, (record, alone) in enumerate(zip(records, solo)):
        assert record["ensemble"]["size"] == 4 and record["ensemble"]["index"] == index
        assert (record["failure_kind"], record["error"]) == (alone["failure_kind"], alone["error"])
        assert len(record["epochs"]) == len(alone["epochs"])
        for epoch, reference in zip(record["epochs"], alone["epochs"]):
            for name in ("forward_nfe", "backward_nfe", "eval_nfe", "iterations", "epoch"):
                assert epoch[name] == reference[name], (index, name)
            for name in ("loss", "accuracy", "test_loss", "test_accuracy"):
                assert epoch[name] == pytest.approx(reference[name], rel=1e-9, abs=1e-12)
        assert record["params"] == alone["params"]
    stacked = checkpoints.read(records[0]["ensemble"]["id"], specs)["model"]
    for index, spec in enumerate(specs):
        if index == 2:
            continue  # failed: its slice holds whatever the masked member's last steps left
        for name, value in checkpoints.read(spec.key, [spec])["model"].items():
            name = name.replace("dynamics.family.", "family_parameters.")
            torch.testing.assert_close(stacked[name][index], value, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("model", FAMILIES)
def test_each_member_takes_the_steps_of_its_solo_run_on_torchdiffeq(with_failing_seed, model):
    """The same four seeds as above, each alone on the torchdiffeq backend (odeint_adjoint):
    every member of the fast backend's ensemble has its solo torchdiffeq run's status and NFE
    in every epoch and phase, its losses to rounding."""
    registry = with_failing_seed
    specs = [replace(spec, task="one_seed_fails", epochs=3) for spec in _specs(model)]
    records = execute_ensemble(specs, registry, CPU)
    for record, spec in zip(records, specs):
        alone = execute_run(replace(spec, solver=replace(spec.solver, backend="torchdiffeq")),
                            registry, CPU)
        assert (record["status"], record["failure_kind"]) == (alone["status"],
                                                              alone["failure_kind"])
        assert len(record["epochs"]) == len(alone["epochs"])
        for epoch, reference in zip(record["epochs"], alone["epochs"]):
            for name in ("forward_nfe", "backward_nfe", "eval_nfe"):
                assert epoch[name] == reference[name], name
            assert epoch["loss"] == pytest.approx(reference["loss"], rel=1e-9)


class _Interrupt(BaseException):
    """Stops an ensemble between epochs (after its checkpoint), as Ctrl-C would."""


def test_an_interrupted_ensemble_resumes_from_its_checkpoint(with_failing_seed, tmp_path):
    """Stopped after epoch 2 of 3 (member 2 already failed at its first iteration), the rerun
    continues at epoch 3: the same records as an uninterrupted run, member 2 failed as before."""
    registry = with_failing_seed
    specs = [replace(spec, task="one_seed_fails", epochs=3,
                     task_options={**TINY, "fail_at": 1}) for spec in _specs("hbnode")]
    whole = execute_ensemble(specs, registry, CPU)

    def stop_after_epoch_2(event, spec, **details):
        if event == "epoch_finished" and details["epoch"]["epoch"] == 2:
            raise _Interrupt

    checkpoints = Checkpoints(tmp_path)
    with pytest.raises(_Interrupt):
        execute_ensemble(specs, registry, CPU, stop_after_epoch_2, checkpoints)
    resumed = execute_ensemble(specs, registry, CPU, checkpoints=checkpoints)
    for again, record in zip(resumed, whole):
        assert (again["status"], again["failure_kind"], again["error"]) == (
            record["status"], record["failure_kind"], record["error"])
        assert [e["forward_nfe"] for e in again["epochs"]] == [
            e["forward_nfe"] for e in record["epochs"]]
        assert [e["loss"] for e in again["epochs"]] == [e["loss"] for e in record["epochs"]]
    assert [r.get("resumed_from_epoch") for r in resumed] == [2, 2, 0, 2]
    assert resumed[2]["failure_kind"] == "non_finite" and resumed[2]["epochs"] == []


def test_a_suite_opts_in_on_any_backend(registry, tmp_path):
    """``execution: {ensemble: 2}``: three seeds of one model make an ensemble of two and a solo
    run; two seeds on the torchdiffeq backend make an ensemble of their own."""
    fast = {"backend": "fast", "rtol": 1e-3, "atol": 1e-3}
    runs = [make_spec(seed=seed, epochs=1, task_options=TINY, solver=fast) for seed in (0, 1, 2)]
    runs += [make_spec(model="node", seed=seed, epochs=1, task_options=TINY) for seed in (0, 1)]
    assert [len(unit) for unit in units(runs, 2)] == [2, 1, 2]
    assert [len(unit) for unit in units(runs, "auto")] == [3, 2]
    outcome = run_suite(runs, registry, tmp_path, CPU, ensemble=2)
    ensembles = [record.get("ensemble") for record in outcome.records]
    assert [e and (e["size"], e["index"]) for e in ensembles] == [(2, 0), (2, 1), None, (2, 0),
                                                                  (2, 1)]
    assert all(record["status"] == "ok" for record in outcome.records)
    assert not list((tmp_path / "checkpoints").glob("*.pt"))  # the ensemble's went with its records


@pytest.mark.parametrize("value, problem", [(0, "0 is not a number of members"),
                                            ("all", "'all' is not a number of members")])
def test_a_suites_ensemble_size_is_checked(registry, tmp_path, value, problem):
    path = tmp_path / "suite.yaml"
    runs = "runs: [{task: point_cloud, model: node}]\n"
    path.write_text(f"execution: {{ensemble: {value}}}\n{runs}")
    with pytest.raises(SuiteError, match=rf"execution.ensemble: {problem}.*integer > 0 or auto"):
        load_suite(path, registry)
    path.write_text("execution: {ensemble: auto}\nruns: [{task: point_cloud, model: node}]\n")
    assert load_suite(path, registry).execution == {"ensemble": "auto"}


def test_an_ensemble_out_of_memory_is_halved_until_it_fits(with_failing_seed, tmp_path, caplog):
    """Five seeds whose dynamics fit two members' rows at most (a GPU too small for the
    ensemble): out of memory in the first iteration, the unit runs as ensembles of 3 and 2,
    then 2, 1 and 2; every member ends ``ok`` with its solo run's NFE, and no record of the
    failed attempts is kept."""
    runs = [make_spec(model="out_of_memory_above", seed=seed, epochs=2, task_options=TINY,
                      model_options={"rows": 60}, solver={"backend": "fast"},
                      precision="float64") for seed in range(5)]
    outcome = run_suite(runs, with_failing_seed, tmp_path, CPU, ensemble="auto")
    assert [r.get("ensemble") and (r["ensemble"]["size"], r["ensemble"]["index"])
            for r in outcome.records] == [(2, 0), (2, 1), None, (2, 0), (2, 1)]
    assert "ran out of device memory" in caplog.text and "as ensembles of 3 and 2" in caplog.text
    for record, spec in zip(outcome.records, runs):
        alone = execute_run(spec, with_failing_seed, CPU)
        assert record["status"] == alone["status"] == "ok"
        assert [e["forward_nfe"] for e in record["epochs"]] == [
            e["forward_nfe"] for e in alone["epochs"]]
