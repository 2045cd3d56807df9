"""Solver backends: the fast backend takes torchdiffeq's steps, forwards and in the adjoint,
and its failures become the same records; backends are chosen per suite entry and recorded."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from harness import hookimpl
from harness.plugins import load_registry
from harness.running.driver import check_runs, run_suite
from harness.running.runner import RunConfigError
from harness.solvers.backends import SolverBackend
from harness.solvers.settings import SolverConfig
from harness.solvers.torchdiffeq_backend import TORCHDIFFEQ
from harness.suites.loader import SuiteError, suite_from_document
from harness.toolkit.networks import Autonomous
from harness.toolkit.nfe import NFECounter
from harness.toolkit.ode import ODEBlock
from tests.conftest import CPU, FAMILIES, make_spec
from tests.plugins_for_tests import Misbehaving

N = 3
SOLVERS = {
    "dopri5 tol 1e-3": SolverConfig(rtol=1e-3, atol=1e-3),
    "dopri5 tol 1e-7": SolverConfig(rtol=1e-7, atol=1e-7),
    "dopri5 tol 1e-5 no adjoint": SolverConfig(rtol=1e-5, atol=1e-5, adjoint=False),
    "euler step 0.1": SolverConfig(method="euler", options={"step_size": 0.1}),
    "rk4 step 0.3": SolverConfig(method="rk4", options={"step_size": 0.3}),
    "rk4 one step": SolverConfig(method="rk4"),
    "bosh3 tol 1e-5": SolverConfig(method="bosh3", rtol=1e-5, atol=1e-5),
    "fehlberg2 tol 1e-4": SolverConfig(method="fehlberg2", rtol=1e-4, atol=1e-4),
    "adaptive_heun tol 1e-3": SolverConfig(method="adaptive_heun", rtol=1e-3, atol=1e-3),
    "adaptive_heun tol 1e-5 no adjoint": SolverConfig(method="adaptive_heun", rtol=1e-5,
                                                      atol=1e-5, adjoint=False),
}


def _step(registry, family_name: str, config: SolverConfig, duration: bool,
          dtype: torch.dtype = torch.float32):
    """One forward and backward pass of a tiny block, solved by the registry's backend for
    ``config``: (state, NFE by phase, gradients)."""
    family = registry.families[family_name]
    counter = NFECounter()
    torch.manual_seed(0)
    f = Autonomous(nn.Sequential(nn.Linear(family.f_input_parts * N, 8), nn.Tanh(), nn.Linear(8, N)))
    block = ODEBlock(family(), f, N, config, counter, registry.backends[config.backend]).to(dtype)
    generator = torch.Generator().manual_seed(1)
    z0 = torch.randn(5, len(family.parts) * N, generator=generator, dtype=dtype).requires_grad_(True)
    spans = torch.rand(5, generator=generator, dtype=dtype) * 2 if duration else None
    with counter.in_phase("forward"):
        z = block(z0, duration=spans)
    with counter.in_phase("backward"):
        z.pow(2).sum().backward()
    gradients = {name: p.grad for name, p in block.named_parameters()} | {"z0": z0.grad}
    return z.detach(), counter.take(), gradients


@pytest.mark.parametrize("duration", [False, True], ids=["interval", "duration"])
@pytest.mark.parametrize("solver", SOLVERS, ids=str)
@pytest.mark.parametrize("family", [*FAMILIES, "nesterovnode"])  # the last: time-dependent, on [1, 2]
def test_fast_backend_takes_torchdiffeqs_steps(registry, family, solver, duration):
    """In float32 (what training uses): the same NFE in both phases and the same solution. In
    float64 the gradients agree to 1e-9 with the adjoint, and to 1e-4 relative without it (up
    to 4e-5 seen: torchdiffeq then also backpropagates through its step-size tensors; the fast
    backend's step sizes are floats): the same algorithm. In float32 they differ by up to ~3e-4 relative at
    tol 1e-3, rounding from a different summation order amplified by a loose-tolerance adjoint."""
    config = SOLVERS[solver]
    z_ref, nfe_ref, _ = _step(registry, family, config, duration)
    z, nfe, _ = _step(registry, family, replace(config, backend="fast"), duration)
    assert nfe == nfe_ref and nfe["forward"] > 0
    assert (nfe["backward"] > 0) == config.adjoint
    torch.testing.assert_close(z, z_ref, rtol=1e-6, atol=1e-6)
    _, nfe_ref, grads_ref = _step(registry, family, config, duration, torch.float64)
    _, nfe, grads = _step(registry, family, replace(config, backend="fast"), duration, torch.float64)
    assert nfe == nfe_ref
    relative = 1e-9 if config.adjoint else 1e-4
    for name, reference in grads_ref.items():
        scale = reference.abs().max().item()
        assert (grads[name] - reference).abs().max().item() <= relative * scale + 1e-12, name


@pytest.mark.parametrize("solver", ["dopri5 tol 1e-7", "rk4 step 0.3", "bosh3 tol 1e-5",
                                    "fehlberg2 tol 1e-4", "adaptive_heun tol 1e-5 no adjoint"])
def test_the_forward_solve_is_bit_identical(registry, solver):
    """The same floating-point operations in the same order, even where rounding noise decides
    whether a step is accepted (tol 1e-7 in float32)."""
    config = SOLVERS[solver]
    z_ref, _, _ = _step(registry, "hbnode", config, duration=True)
    z, _, _ = _step(registry, "hbnode", replace(config, backend="fast"), duration=True)
    assert torch.equal(z, z_ref)


@pytest.fixture(scope="module")
def misfits():
    return load_registry([("misbehaving", Misbehaving())])


def _failure(record: dict) -> tuple:
    return record["status"], record["failure_kind"], record["error"], len(record["epochs"])


@pytest.mark.parametrize("model, solver", [
    ("sonode", {"options": {"max_num_steps": 1}}),  # the step cap
    pytest.param("blowup", {}, marks=pytest.mark.slow),  # h' = 50 h³ explodes: the step
    # size underflows, after minutes of ever smaller steps on a busy machine
    ("hbnode", {"max_nfe": 10}),  # the harness's NFE cap
], ids=["max_num_steps", "exploding", "max_nfe"])
def test_failures_are_recorded_the_same_on_both_backends(tmp_path, misfits, model, solver):
    solver = solver | {"rtol": 1e-3, "atol": 1e-3}
    records = [run_suite([make_spec(model=model, epochs=1, solver={**solver, "backend": backend},
                                    task_options={"inner": 10, "outer": 20})],
                         misfits, tmp_path / backend, CPU).records[0]
               for backend in ("torchdiffeq", "fast")]
    assert records[0]["status"] == "failed"
    assert _failure(records[1]) == _failure(records[0])
    if model == "sonode":
        assert records[0]["error"] == "SolverFailure: max_num_steps exceeded (1>=1)"


def test_a_training_epoch_is_the_same_on_both_backends(tmp_path, registry):
    records = [run_suite([make_spec(model="hbnode", epochs=2, solver={"backend": backend},
                                    task_options={"inner": 10, "outer": 20})],
                         registry, tmp_path / backend, CPU).records[0]
               for backend in ("torchdiffeq", "fast")]
    for reference, fast in zip(records[0]["epochs"], records[1]["epochs"]):
        for key in ("forward_nfe", "backward_nfe", "eval_nfe"):
            assert fast[key] == reference[key]
        assert fast["loss"] == pytest.approx(reference["loss"], rel=1e-5)
    assert records[1]["config"]["solver"]["backend"] == "fast"
    assert records[1]["environment"]["solver_backend"]["name"] == "fast"
    assert records[0]["environment"]["solver_backend"] == {
        "name": "torchdiffeq", "package": "torchdiffeq",
        "version": records[0]["environment"]["torchdiffeq"]}
    assert records[0]["key"] != records[1]["key"]


def test_the_default_backend_keeps_the_keys_runs_had():
    """Runs recorded before backends existed keep their keys: for the default backend the key
    hashes the configuration without the backend field, as it was."""
    import hashlib
    import json

    spec = make_spec()
    assert spec.config()["solver"]["backend"] == "torchdiffeq"
    before = spec.config()
    for later in ("lr_restarts", "profile", "precision", "memory"):  # added later
        del before[later]
    del before["solver"]["backend"]
    text = json.dumps([before, spec.versions], sort_keys=True, default=str)
    assert spec.key == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert spec.key != make_spec(solver={"backend": "fast"}).key


def test_a_suite_chooses_the_backend_and_bad_choices_are_found_before_training(registry):
    def runs(solver: dict):
        document = {"runs": [{"task": "point_cloud", "model": "node", "solver": solver}]}
        return suite_from_document(document, Path("s.yaml"), registry).runs

    assert runs({"backend": "fast"})[0].solver.backend == "fast"
    with pytest.raises(SuiteError, match="'fsat' is not a solver backend.*fast"):
        runs({"backend": "fsat"})
    with pytest.raises(RunConfigError, match="no method 'dopri8'"):
        check_runs(runs({"backend": "fast", "method": "dopri8"}), registry)
    with pytest.raises(RunConfigError, match="takes no option perturb"):
        check_runs(runs({"backend": "fast", "method": "rk4", "options": {"perturb": True}}), registry)


class _Counting(SolverBackend):
    """A third party's backend: torchdiffeq, counting its solves."""

    name, package, methods = "counting", "harness", ("dopri5",)
    solves = 0

    def solve(self, func: nn.Module, z0: Tensor, t: Tensor, config: SolverConfig) -> Tensor:
        type(self).solves += 1
        return TORCHDIFFEQ.solve(func, z0, t, config)


class _ProvidesBackend:
    @hookimpl
    def harness_solver_backends(self):
        return [_Counting]


def test_a_plugin_adds_a_backend(tmp_path):
    registry = load_registry([("counting-backend", _ProvidesBackend())])
    assert registry.sources["backend", "counting"] == "counting-backend"
    spec = make_spec(model="node", epochs=1, solver={"backend": "counting"},
                     task_options={"inner": 10, "outer": 20})
    (record,) = run_suite([spec], registry, tmp_path, CPU).records
    assert record["status"] == "ok" and _Counting.solves > 0


def test_a_plugins_backend_stays_in_its_registry(registry):
    """Loading a registry with a plugin's backend makes it no other registry's: a suite
    checked against the plain registry does not know it."""
    load_registry([("counting-backend", _ProvidesBackend())])
    document = {"runs": [{"task": "point_cloud", "model": "node", "solver": {"backend": "counting"}}]}
    with pytest.raises(SuiteError, match="'counting' is not a solver backend"):
        suite_from_document(document, Path("s.yaml"), registry)


def test_an_ode_block_refuses_a_backend_its_settings_do_not_name(registry):
    """Without a registry a block solves with torchdiffeq, and says so when its settings name
    another backend rather than solving with the wrong one."""
    f = Autonomous(nn.Linear(N, N))
    with pytest.raises(ValueError, match="solver.backend is 'fast', but the ODE block was given "
                                         "the 'torchdiffeq' backend"):
        ODEBlock(registry.families["node"](), f, N, SolverConfig(backend="fast"), NFECounter())
