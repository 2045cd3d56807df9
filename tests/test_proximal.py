"""The proximal backend: its schemes converge at their order, its inner solvers reach their
tolerance, the harness counts inner × outer × per-update evaluations, its adjoint agrees with
backprop, records keep outer steps and inner iterations, and bad options are found before
training."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from harness.running.driver import check_runs
from harness.running.runner import RunConfigError, execute_run
from harness.solvers.proximal.backend import ProximalBackend
from harness.solvers.proximal.inner import minimise
from harness.solvers.proximal.options import INNER_SOLVERS, ProximalOptions
from harness.solvers.proximal.schemes import ORDERS
from harness.solvers.settings import SolverConfig
from harness.suites.loader import suite_from_document
from harness.toolkit.networks import Autonomous
from harness.toolkit.nfe import NFECounter
from harness.toolkit.ode import ODEBlock
from tests.conftest import CPU, make_spec

PROXIMAL = ProximalBackend()
RATES = torch.tensor([-1.0, -5.0], dtype=torch.float64)


class Forced(nn.Module):
    """h' = λ(h − cos t) − sin t, solved by h(t) = cos t + e^{λt}(h(0) − 1): linear, stiff for
    large |λ|, and time-dependent, so the stage times are checked too."""

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        t = torch.as_tensor(t, dtype=z.dtype)
        return RATES * (z - torch.cos(t)) - torch.sin(t)


def _error(method: str, steps: int, **options) -> float:
    config = SolverConfig(method=method, adjoint=False, backend="proximal",
                          options={"steps": steps, "inner_step": 0.5, "inner_tol": 1e-15,
                                   "inner_max_iter": 500, **options})
    z0 = torch.tensor([[2.0, 0.5]], dtype=torch.float64)
    z = PROXIMAL.solve(Forced(), z0, torch.tensor([0.0, 1.0], dtype=torch.float64), config)
    exact = math.cos(1.0) + torch.exp(RATES) * (z0 - 1)
    return float((z - exact).norm())


def _observed_order(method: str, **options) -> float:
    return math.log2(_error(method, 20, **options) / _error(method, 40, **options))


@pytest.mark.parametrize("method", ORDERS)
def test_each_method_converges_at_its_order(method):
    """Halving the step divides the error by 2^order (measured: 1.02, 2.00, 2.06, 3.11, 4.17)."""
    assert abs(_observed_order(method) - ORDERS[method]) < 0.25


def test_a_lower_order_start_costs_bdf3_and_bdf4_their_order():
    """Started by BDF1, BDF2, … on the same step the history carries a second-order error; the
    extrapolated start (the default) does not."""
    for method in ("bdf3", "bdf4"):
        assert abs(_observed_order(method, start="lower_order") - 2) < 0.3
        assert _observed_order(method, start="extrapolated") > ORDERS[method] - 0.25


def _diffusion_update(size: int = 64, s: float = 5e-4) -> tuple[Tensor, Tensor, Tensor]:
    """One backward-Euler update of a stiff periodic diffusion: (comb, matrix M = I + sL, exact
    solution of M z = comb). Curvatures 1 … 1 + 4s/Δx² ≈ 9: η = 0.1 is stable for
    all four solvers (Nesterov needs η·9 < 4/3, gradient descent η·9 < 2)."""
    n = torch.arange(size)
    laplacian = 2 * torch.eye(size, dtype=torch.float64)
    laplacian[n, (n + 1) % size] = laplacian[n, (n - 1) % size] = -1
    laplacian *= (size - 1) ** 2
    comb = torch.randn(size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    matrix = torch.eye(size, dtype=torch.float64) + s * laplacian
    return comb, matrix, torch.linalg.solve(matrix, comb)


@pytest.mark.parametrize("inner", INNER_SOLVERS)
def test_every_inner_solver_reaches_its_tolerance(inner):
    """Each stops on ‖z_{i+1} − z_i‖ ≤ tol well before its cap, and is then within
    tol/η of the exact update (‖r‖ ≤ tol/η at the stop for gradient descent; the others need
    the same order)."""
    comb, matrix, exact = _diffusion_update()
    options = ProximalOptions(steps=1, inner=inner, inner_step=0.1, inner_tol=1e-10,
                              inner_max_iter=5000)
    z, iterations = minimise(lambda z: matrix @ z - comb, comb.clone(), options)
    assert iterations < options.inner_max_iter
    assert float((z - exact).norm()) < options.inner_tol / options.inner_step


def test_fletcher_reeves_is_among_the_fastest_inner_solvers():
    """The dissertation's Fig. 5.4 finds FR best. Here (measured: GD 162, Nesterov 221,
    restart 61, FR 62 iterations) FR and restart tie, and both need well under half of GD's."""
    comb, matrix, _ = _diffusion_update()
    counts = {inner: minimise(lambda z: matrix @ z - comb, comb.clone(),
                              ProximalOptions(steps=1, inner=inner, inner_step=0.1,
                                              inner_tol=1e-10, inner_max_iter=5000))[1]
              for inner in INNER_SOLVERS}
    assert counts["fr"] <= 1.1 * min(counts.values()) and counts["fr"] < counts["gd"] / 2, counts


@pytest.mark.parametrize("method, start, per_solve", [
    ("backward_euler", "extrapolated", 7 * 10),
    ("crank_nicolson", "extrapolated", (7 + 1) * 10),  # f(h_k) once more per update
    ("bdf2", "lower_order", 7 * 10),                   # BE, then BDF2: 7 each
    ("bdf2", "extrapolated", 1 * 3 * (7 + 1) + 9 * 7),  # one starting step of three CN updates
    ("bdf4", "extrapolated", 3 * 3 * (7 + 1) + 7 * 7),
])
def test_the_harness_counts_inner_times_outer_times_per_update(registry, method, start, per_solve):
    """With inner_tol 0 every update takes inner_max_iter (7) iterations, one evaluation each:
    the NFE the harness counts is that times the outer steps (10), plus Crank–Nicolson's extra
    evaluation per update; the noted statistics say 10 outer steps and 7 inner iterations."""
    counter = NFECounter()
    torch.manual_seed(0)
    f = Autonomous(nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 3)))
    config = SolverConfig(method=method, adjoint=False, backend="proximal",
                          options={"steps": 10, "inner_tol": 0, "inner_max_iter": 7,
                                   "start": start})
    block = ODEBlock(registry.families["node"](), f, 3, config, counter, PROXIMAL)
    with counter.in_phase("forward"):
        block(torch.randn(4, 3))
    notes = counter.take_notes()
    assert counter.take()["forward"] == per_solve
    assert notes == {"forward_outer_steps": 10, "forward_inner_iterations": 7}


def _gradients(registry, family: str, adjoint: bool, steps: int) -> tuple[dict[str, Tensor], dict[str, int]]:
    counter = NFECounter()
    torch.manual_seed(0)
    parts = registry.families[family].f_input_parts
    f = Autonomous(nn.Sequential(nn.Linear(parts * 3, 8), nn.Tanh(), nn.Linear(8, 3)))
    config = SolverConfig(method="bdf2", adjoint=adjoint, backend="proximal",
                          options={"steps": steps, "inner_tol": 1e-10, "inner_max_iter": 400,
                                   "inner_step": 0.3})
    block = ODEBlock(registry.families[family](), f, 3, config, counter, PROXIMAL).double()
    n_state = len(registry.families[family].parts) * 3
    z0 = torch.randn(5, n_state, generator=torch.Generator().manual_seed(1),
                     dtype=torch.float64).requires_grad_(True)
    with counter.in_phase("forward"):
        z = block(z0)
    with counter.in_phase("backward"):
        z.pow(2).sum().backward()
    return ({name: p.grad for name, p in block.named_parameters()} | {"z0": z0.grad},
            counter.take())


def _adjoint_gap(registry, family: str, steps: int) -> float:
    """The largest relative difference, over z0 and every parameter, between the adjoint's
    gradient and backprop's; checks that only the adjoint spends backward NFE."""
    backprop, nfe_backprop = _gradients(registry, family, False, steps)
    adjoint, nfe_adjoint = _gradients(registry, family, True, steps)
    assert nfe_backprop["backward"] == 0 and nfe_adjoint["backward"] > 0
    return max(float((adjoint[name] - reference).abs().max() / reference.abs().max())
               for name, reference in backprop.items())


@pytest.mark.parametrize("family", ["node", "hbnode"])
def test_the_adjoint_by_the_same_scheme_agrees_with_backprop(registry, family):
    """The adjoint ODE solved backwards by proximal BDF2 against backprop through the forward
    solve: both approximate the exact gradient to O(s²), so they differ by the scheme's error
    (measured at 20 steps: 1.8e-4 relative for node, 1.3e-3 for hbnode) and by four times less
    at each halving of the step (4.8e-5 and 3.5e-4 at 40). The inner tolerance is 1e-10: FR
    at 1e-12 diverged in hbnode's adjoint, its momentum growing once ‖r‖ reaches rounding."""
    coarse, fine = _adjoint_gap(registry, family, 20), _adjoint_gap(registry, family, 40)
    assert coarse < 3e-3 and fine < coarse / 3.5, (coarse, fine)


def test_a_run_records_outer_steps_and_inner_iterations(registry):
    spec = make_spec(model="node", epochs=1, solver={
        "backend": "proximal", "method": "backward_euler", "adjoint": True,
        "options": {"steps": 4, "inner_tol": 1e-4}}, task_options={"inner": 5, "outer": 10})
    record = execute_run(spec, registry, CPU)
    assert record["status"] == "ok", record.get("error")
    epoch = record["epochs"][-1]
    for phase in ("forward", "backward", "eval"):
        assert epoch[f"{phase}_outer_steps"] == 4
        assert 1 <= epoch[f"{phase}_inner_iterations"] <= 100
    # every evaluation is counted: at least one inner iteration per outer step
    assert epoch["forward_nfe"] >= 4 * epoch["forward_inner_iterations"] - 1e-9


@pytest.mark.parametrize("options, message", [
    ({}, "exactly one of step_size .* and steps"),
    ({"steps": 10, "step_size": 0.1}, "exactly one of step_size"),
    ({"steps": 10, "inner": "lbfgs"}, r"solver.options.inner: 'lbfgs' .*valid: gd, nesterov, restart, fr"),
    ({"steps": 0}, r"solver.options.steps: 0 is not an integer >= 1"),
    ({"step_size": "-1e-3"}, r"solver.options.step_size: -0.001 is not > 0"),
    ({"steps": 10, "inner_step": "fast"}, r"solver.options.inner_step: 'fast' is not a finite number"),
    ({"steps": 10, "inner_tol": -1}, r"solver.options.inner_tol: -1 is negative"),
    ({"steps": 10, "inner_max_iter": 2.5}, r"solver.options.inner_max_iter: 2.5 is not an integer"),
    ({"steps": 10, "start": "euler"}, r"solver.options.start: 'euler' .*valid: extrapolated, lower_order"),
    ({"steps": 10, "inner_tolerance": 1e-3}, r"takes no option 'inner_tolerance'; valid: step_size, steps"),
])
def test_bad_proximal_options_are_found_before_training(registry, options, message):
    """From a suite document, as a user writes them (1e-3 and -1e-3 are strings to YAML)."""
    document = {"runs": [{"task": "point_cloud", "model": "node", "solver": {
        "backend": "proximal", "method": "bdf2", "options": options}}]}
    runs = suite_from_document(document, Path("stiff.yaml"), registry).runs
    with pytest.raises(RunConfigError, match=message):
        check_runs(runs, registry)


def test_a_proximal_method_is_refused_by_other_backends_and_vice_versa(registry):
    def runs(solver: dict):
        document = {"runs": [{"task": "point_cloud", "model": "node", "solver": solver}]}
        return suite_from_document(document, Path("s.yaml"), registry).runs

    with pytest.raises(RunConfigError, match="no method 'dopri5'.*backward_euler"):
        check_runs(runs({"backend": "proximal", "method": "dopri5", "options": {"steps": 4}}),
                   registry)
    with pytest.raises(RunConfigError, match="no method 'bdf2'"):
        check_runs(runs({"method": "bdf2"}), registry)
    check_runs(runs({"backend": "proximal", "method": "bdf4",
                     "options": {"step_size": "5e-4", "inner": "restart"}}), registry)
