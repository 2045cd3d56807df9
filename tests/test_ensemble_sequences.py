"""Ensembles on a sequence task (plane vibration's ODE-RNN): every member trains, evaluates
and is measured (validation, adjoint decay) as its solo run, in float64 to the same NFE; a
member whose state turns non-finite fails as alone; members whose data differ run alone."""
from __future__ import annotations

import logging

import pytest
import torch

from harness.plugins import load_registry
from harness.running.ensembles import execute_ensemble
from harness.running.grouping import execute_unit
from harness.running.observers import Observers
from harness.running.runner import build_run, execute_run
from harness.toolkit.ensemble import Members, NotStackable, stack_models
from tests.conftest import CPU, FAMILIES, make_spec
from tests.plugins_for_tests import Ensembles
from tests.sequence_files import trust_written, write_plane_vibration

pytestmark = pytest.mark.slow  # ensemble exactness

#: Eight training windows in batches of four (two iterations, each member in its own order),
#: two validation and test windows, the adjoint-decay probe after epoch 1 on two windows.
OPTIONS = {"train_windows": 8, "eval_windows": 2, "adjoint_epochs": [1], "adjoint_windows": 2}
EXACT = ("forward_nfe", "backward_nfe", "eval_nfe", "iterations", "epoch")


@pytest.fixture(scope="module")
def registry():
    return load_registry([("ensembles", Ensembles())])


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """pv.csv in its real format, 1,500 stamps: every seed's split keeps more windows than the
    options take, so every member has the same number of each."""
    write_plane_vibration(tmp_path, 1500)
    trust_written(monkeypatch, tmp_path)
    monkeypatch.setenv("HARNESS_DATA_ROOT", str(tmp_path))
    return tmp_path


def _specs(task: str, model: str, **options):
    """Seeds 0, 1, 2: a member before and one after any failing member (seed 1)."""
    return [make_spec(task=task, model=model, seed=seed, epochs=1, batch_size=4, lr=1e-3,
                      task_options={**OPTIONS, **options},
                      solver={"backend": "fast", "rtol": 1e-3, "atol": 1e-3},
                      precision="float64") for seed in range(3)]


@pytest.mark.parametrize("model", FAMILIES)
def test_each_member_trains_and_is_measured_as_its_solo_run(registry, data_root, model):
    """Three seeds, seed 1 with a NaN in a training window (its step size underflows in the
    next solve): every member's record has its solo run's status and failure, the same NFE in
    every phase, and its losses, validation and adjoint-decay curve to rounding."""
    specs = _specs("pv_one_seed_nan", model, fail_seed=1)
    solo = [execute_run(spec, registry, CPU) for spec in specs]
    records = execute_ensemble(specs, registry, CPU)
    assert [r["status"] for r in records] == [r["status"] for r in solo] == [
        "ok", "failed", "ok"]
    assert (records[1]["failure_kind"], records[1]["error"]) == (
        solo[1]["failure_kind"], solo[1]["error"]) == ("solver", "SolverFailure: underflow in dt 0.0")
    for index, (record, alone) in enumerate(zip(records, solo)):
        assert record["ensemble"]["index"] == index and record["params"] == alone["params"]
        assert len(record["epochs"]) == len(alone["epochs"])
        for epoch, reference in zip(record["epochs"], alone["epochs"]):
            assert set(epoch) == set(reference)
            for name in EXACT:
                assert epoch[name] == reference[name], (index, name)
            for name in ("loss", "forecast_mse", "test_loss", "val_loss", "adjoint_ratio"):
                assert epoch[name] == pytest.approx(reference[name], rel=1e-9), (index, name)
            assert epoch["adjoint_norm"] == pytest.approx(reference["adjoint_norm"], rel=1e-9)
        if record["status"] == "ok":
            assert record["epochs"][0]["forward_nfe"] > 0 and "val_loss" in record["epochs"][0]


def test_members_whose_data_differ_in_size_run_alone(registry, caplog):
    """Seed s drops s training points: side by side, batches would not split by member, so
    the unit runs its seeds alone, saying why, and each record is its solo run's."""
    specs = [make_spec(task="seed_sized_point_cloud", model="node", seed=seed, epochs=1,
                       task_options={"inner": 10, "outer": 20}, solver={"backend": "fast"})
             for seed in (0, 1)]
    with pytest.raises(NotStackable, match="train data differ in size"):
        execute_ensemble(specs, registry, CPU)
    with caplog.at_level(logging.WARNING, logger="harness"):
        records = list(execute_unit(specs, registry, CPU, Observers(registry), None))
    assert "run alone" in caplog.text and "differ in size" in caplog.text
    assert [r.get("ensemble") for r in records] == [None, None]
    assert [r["epochs"][0]["loss"] for r in records] == [
        execute_run(spec, registry, CPU)["epochs"][0]["loss"] for spec in specs]


def test_a_member_whose_durations_are_all_zero_is_not_solved(float64):
    """The hybrid skips a solve whose durations are all 0; in an ensemble that holds member by
    member: member 1 (all zero) keeps its state, gets the incoming gradient back unchanged and
    counts no evaluation, while the others count their solo blocks' evaluations."""
    registry = load_registry()
    specs = [make_spec(model="hbnode", seed=seed, solver={"backend": "fast"}, precision="float64")
             for seed in (0, 1, 2)]
    builts = [build_run(spec, registry, CPU) for spec in specs]
    members = Members(3)
    stacked = stack_models([built.model for built in builts], members).ode
    z = torch.randn(3 * 5, 4, requires_grad=True)
    duration = torch.rand(3 * 5) + 0.5
    duration[5:10] = 0
    with members.in_phase("forward"):
        out = stacked(z, duration=duration)
    with members.in_phase("backward"):
        out.backward(torch.ones_like(out))
    counts = members.take()
    assert counts["forward"][1] == counts["backward"][1] == 0
    assert torch.equal(out[5:10], z[5:10]) and torch.equal(z.grad[5:10], torch.ones(5, 4))
    for m in (0, 2):
        with builts[m].counter.in_phase("forward"):
            builts[m].model.ode(z[5 * m:5 * m + 5].detach(), duration=duration[5 * m:5 * m + 5])
        assert counts["forward"][m] == builts[m].counter.take()["forward"] > 0


def test_the_authors_forecast_solves_through_the_stamps_as_alone(registry, data_root):
    """``forecast: authors`` (a solve per interval through the forecast stamps, the fast
    backend's ``through``): each member's NFE as its solo run's, its losses to rounding (no
    adjoint-decay probe: the test above covers it, and nothing here reads it)."""
    specs = _specs("plane_vibration", "hbnode", forecast="authors", adjoint_epochs=[])
    solo = [execute_run(spec, registry, CPU) for spec in specs]
    records = execute_ensemble(specs, registry, CPU)
    for record, alone in zip(records, solo):
        assert record["status"] == alone["status"] == "ok"
        for name in EXACT:
            assert record["epochs"][0][name] == alone["epochs"][0][name], name
        assert record["epochs"][0]["loss"] == pytest.approx(alone["epochs"][0]["loss"], rel=1e-9)
