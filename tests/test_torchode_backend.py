"""The optional torchode backend: the same solutions and gradients as torchdiffeq within the
tolerance (its steps differ: per-element control), NFE counted in both phases, failures as
records, and the one thing it cannot do said clearly."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from harness.running.driver import run_suite
from harness.solvers.settings import SolverConfig
from tests.conftest import CPU, FAMILIES, make_spec
from tests.test_backends import _step

pytest.importorskip("torchode", reason="the torchode extra is not installed")

TIGHT = SolverConfig(rtol=1e-7, atol=1e-7)


def _close(ours: dict, reference: dict, relative: float) -> None:
    for name, expected in reference.items():
        scale = expected.abs().max().item()
        assert (ours[name] - expected).abs().max().item() <= relative * scale + 1e-6, name


@pytest.mark.parametrize("adjoint", [False, True], ids=["backprop", "adjoint"])
@pytest.mark.parametrize("family", FAMILIES)
def test_torchode_agrees_with_torchdiffeq_and_counts_both_phases(registry, family, adjoint):
    config = replace(TIGHT, adjoint=adjoint)
    z_ref, _, grads_ref = _step(registry, family, config, False, torch.float64)
    z, nfe, grads = _step(registry, family, replace(config, backend="torchode"), False,
                          torch.float64)
    torch.testing.assert_close(z, z_ref, rtol=1e-5, atol=1e-5)
    _close(grads, grads_ref, 1e-4)
    assert nfe["forward"] > 0
    assert (nfe["backward"] > 0) == adjoint


def test_per_element_durations_solve_without_the_adjoint_and_are_refused_with_it(registry):
    config = replace(TIGHT, adjoint=False)
    z_ref, _, _ = _step(registry, "hbnode", config, True, torch.float64)
    z, _, _ = _step(registry, "hbnode", replace(config, backend="torchode"), True, torch.float64)
    torch.testing.assert_close(z, z_ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="cannot solve per-element durations or input signals"):
        _step(registry, "hbnode", replace(TIGHT, backend="torchode"), True)


def test_a_step_cap_fails_the_run_with_the_reason(tmp_path, registry):
    solver = {"backend": "torchode", "adjoint": False, "options": {"max_num_steps": 1}}
    spec = make_spec(model="sonode", epochs=1, solver=solver, task_options={"inner": 10, "outer": 20})
    (record,) = run_suite([spec], registry, tmp_path, CPU).records
    assert record["status"] == "failed"
    assert record["error"].startswith("SolverFailure: max_num_steps exceeded (torchode")
    assert record["environment"]["solver_backend"]["name"] == "torchode"


def test_a_training_epoch_runs_and_names_the_backend(tmp_path, registry):
    spec = make_spec(model="hbnode", epochs=1, solver={"backend": "torchode", "rtol": 1e-4, "atol": 1e-4},
                     task_options={"inner": 10, "outer": 20})
    (record,) = run_suite([spec], registry, tmp_path, CPU).records
    assert record["status"] == "ok", record.get("error")
    epoch = record["epochs"][-1]
    assert epoch["forward_nfe"] > 0 and epoch["backward_nfe"] > 0
    assert record["environment"]["solver_backend"]["package"] == "torchode"


def test_a_failed_adjoint_solve_raises_instead_of_returning_partial_gradients(registry):
    """torchode's backsolve ignores the status of its backward solve; the backend does not.
    Here the step cap lets the forward solve finish (5 steps) but not the adjoint one."""
    from torch import nn

    from harness.toolkit.networks import Autonomous
    from harness.toolkit.nfe import NFECounter
    from harness.toolkit.ode import ODEBlock
    from harness.solvers.settings import SolverFailure

    torch.manual_seed(0)
    f = Autonomous(nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 3)))
    config = replace(TIGHT, backend="torchode", options={"max_num_steps": 6})
    block = ODEBlock(registry.families["hbnode"](), f, 3, config, NFECounter(),
                     registry.backends["torchode"]).double()
    z = block(torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(SolverFailure, match="max_num_steps exceeded"):
        z.pow(2).sum().backward()


def test_bad_settings_are_found_before_training(registry):
    backend = registry.backends["torchode"]
    with pytest.raises(ValueError, match="no method 'rk4'"):
        backend.check(SolverConfig(method="rk4", backend="torchode"))
    with pytest.raises(ValueError, match="no option first_step; valid: max_num_steps"):
        backend.check(SolverConfig(backend="torchode", options={"first_step": 0.1}))
