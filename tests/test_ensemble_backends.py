"""Ensembles on any solver backend: members are a backend capability
(:meth:`~harness.solvers.backends.Bound.solve_members`), by default each member solved alone
through the backend's ordinary solve; in float64 every member has its solo run's NFE in every
epoch, on torchdiffeq, on a third party's backend and on the fast backend with a method other
than dopri5 (bosh3: all members stepped together, a lower order's tableau). No solve leaves state
on a module."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torchdiffeq import odeint

from harness import hookimpl
from harness.plugins import load_registry
from harness.running.ensembles import execute_ensemble
from harness.running.runner import build_run, execute_run
from harness.solvers.backends import SolverBackend
from harness.solvers.settings import SolverConfig, SolverFailure, as_solver_failure
from harness.toolkit.ensemble import Members, stack_models
from tests.conftest import CPU, make_spec
from tests.plugins_for_tests import Ensembles

pytestmark = pytest.mark.slow  # ensemble exactness

SEEDS = (0, 1, 2, 3)
TINY = {"inner": 10, "outer": 20}


class _Steps(SolverBackend):
    """A third party's backend: torchdiffeq's ``odeint`` with gradients through its steps (no
    adjoint), under a name of its own; it knows nothing of ensembles."""

    name, package, methods = "steps", "harness", ("dopri5", "bosh3")

    def solve(self, func: nn.Module, z0: Tensor, t: Tensor, config: SolverConfig) -> Tensor:
        try:
            return odeint(func, z0, t, rtol=config.rtol, atol=config.atol,
                          method=config.method)[-1]
        except AssertionError as error:
            raise as_solver_failure(error) from error


class _ProvidesSteps:
    @hookimpl
    def harness_solver_backends(self):
        return [_Steps]


@pytest.fixture(scope="module")
def registry():
    return load_registry([("ensembles", Ensembles()), ("steps-backend", _ProvidesSteps())])


def _specs(model: str, solver: dict, **settings):
    solver = {"rtol": 1e-7, "atol": 1e-7, **solver}
    return [make_spec(model=model, seed=seed, solver=solver, task_options=TINY,
                      precision="float64", **settings) for seed in SEEDS]


@pytest.mark.parametrize("solver", [{"backend": "torchdiffeq"},
                                    {"backend": "steps", "adjoint": False},
                                    {"backend": "fast", "method": "bosh3", "rtol": 1e-5,
                                     "atol": 1e-5}],
                         ids=["torchdiffeq", "third-party", "fast-bosh3"])
@pytest.mark.parametrize("model", ["sonode", "hbnode"])
def test_each_member_has_its_solo_nfe_on_any_backend(registry, solver, model):
    """Three epochs of four seeds, seed 2's loss NaN at its second iteration, on a backend
    without members of its own: every member's status, failure and forward, backward and
    evaluation NFE in every epoch are its solo run's, its losses agree to rounding."""
    specs = [replace(spec, task="one_seed_fails", epochs=3) for spec in _specs(model, solver)]
    records = execute_ensemble(specs, registry, CPU)
    for index, (record, spec) in enumerate(zip(records, specs)):
        alone = execute_run(spec, registry, CPU)
        assert record["ensemble"]["index"] == index
        assert (record["status"], record["failure_kind"]) == (alone["status"],
                                                              alone["failure_kind"])
        assert len(record["epochs"]) == len(alone["epochs"])
        for epoch, reference in zip(record["epochs"], alone["epochs"]):
            for name in ("forward_nfe", "backward_nfe", "eval_nfe", "iterations"):
                assert epoch[name] == reference[name], (index, name)
            for name in ("loss", "test_loss"):
                assert epoch[name] == pytest.approx(reference[name], rel=1e-9, abs=1e-12)
    assert [r["status"] for r in records] == ["ok", "ok", "failed", "ok"]


def _stacked(registry, specs):
    members = Members(len(specs))
    model = stack_models([build_run(spec, registry, CPU).model for spec in specs], members)
    task = registry.tasks["point_cloud"]
    batches = [next(iter(task.data({**task.options, **spec.task_options}, spec.seed, None, CPU,
                                   None).train)) for spec in specs]
    return members, model, torch.cat([x for x, _ in batches]), [y for _, y in batches]


def test_a_member_whose_solve_fails_fails_alone_on_any_backend(registry, float64):
    """On torchdiffeq, member 1's f gives NaN: its solve fails (step size underflow) and it
    is recorded failed; the others' results and NFE are those of a solve without the fault,
    to the bit (each member is solved on its own), and their gradients still come."""
    specs = _specs("hbnode", {"backend": "torchdiffeq"})[:3]
    members, model, x, targets = _stacked(registry, specs)
    with members.in_phase("forward"):
        healthy = model(x).detach().chunk(3)
    before = members.take()["forward"]
    with torch.no_grad():
        model.ode.dynamics.f.net[0].weight[1] = torch.nan
    with members.in_phase("forward"):
        result = model(x).chunk(3)
    after = members.take()["forward"]
    assert list(members.failures) == [1] and isinstance(members.failures[1], SolverFailure)
    assert "underflow" in str(members.failures[1]) and list(np.flatnonzero(members.alive)) == [0, 2]
    for m in (0, 2):
        assert torch.equal(result[m].detach(), healthy[m]) and after[m] == before[m]
    with members.in_phase("backward"):
        sum(nn.functional.mse_loss(result[m], targets[m]) for m in (0, 2)).backward()
    weight = model.ode.dynamics.f.net[0].weight
    assert weight.grad[[0, 2]].abs().sum() > 0 and members.take()["backward"][[0, 2]].min() > 0


@pytest.mark.parametrize("backend", ["fast", "torchdiffeq"])
def test_no_solve_sets_an_attribute_on_a_module(registry, float64, monkeypatch, backend):
    """Forward and adjoint solves of an ensemble, over the family's interval, with per-element
    durations and through several times, assign no attribute to any module of the model nor
    to the members' state: what differs from call to call travels as arguments."""
    specs = _specs("hbnode", {"backend": backend})[:3]
    members, model, x, targets = _stacked(registry, specs)
    watched = {id(module) for module in model.modules()} | {id(members)}
    assigned = []

    def recording(original):
        def setattr_(self, name, value):
            if id(self) in watched:
                assigned.append((type(self).__name__, name))
            original(self, name, value)
        return setattr_

    @contextmanager
    def watching():
        with monkeypatch.context() as patch:
            patch.setattr(nn.Module, "__setattr__", recording(nn.Module.__setattr__))
            patch.setattr(Members, "__setattr__", recording(object.__setattr__), raising=False)
            yield

    ode = model.ode
    z0 = ode.initial_state(x, model.velocity_net)
    duration = torch.linspace(0.0, 2.0, len(x))
    duration[:len(x) // 3] = 0.0  # member 0 does not move
    offsets = torch.tensor([0.0, 0.5, 1.5])
    with members.in_phase("forward"), watching():
        outputs = [model(x), ode(z0, duration), ode.through(z0, offsets)]
    with members.in_phase("backward"), watching():
        sum(output.square().sum() for output in outputs).backward()
    assert assigned == []
    counts = members.take()
    assert counts["forward"].min() > 0 and counts["backward"].min() > 0 and not members.failures
