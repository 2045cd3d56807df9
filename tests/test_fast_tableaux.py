"""The fast backend's adaptive methods are torchdiffeq's: its tableaux to the bit, and on several
fields, tolerances and step options the same evaluations (count and times) and the same end
state, bit for bit, in float32 and float64 — dopri5, bosh3, fehlberg2 and adaptive Heun through
one integrator. (Through ODE blocks, forward and adjoint, on every family:
tests/test_backends.py.)"""
from __future__ import annotations

import pytest
import torch
from torch import Tensor
from torchdiffeq import odeint
from torchdiffeq._impl.odeint import SOLVERS as TORCHDIFFEQ_SOLVERS

from harness.solvers.fast.integrators import integrator, rms_norm
from harness.solvers.fast.tableaux import TABLEAUX

METHODS = ("dopri5", "bosh3", "fehlberg2", "adaptive_heun")


@pytest.mark.parametrize("method", METHODS)
def test_each_tableau_is_torchdiffeqs(method):
    """Stage times, stage weights, solution, error and mid-point weights and the order, as
    torchdiffeq's solver class holds them (float64, compared exactly)."""
    solver = TORCHDIFFEQ_SOLVERS[method]
    ours = TABLEAUX[method]
    theirs = solver.tableau
    assert ours.order == solver.order
    assert list(ours.alpha) == theirs.alpha.tolist()
    for i, beta in enumerate(theirs.beta):
        assert torch.equal(ours.weights[i, :len(beta)], beta)
        assert not ours.weights[i, len(beta):].any()
    fsal = bool(theirs.c_sol[-1] == 0 and (theirs.c_sol[:-1] == theirs.beta[-1]).all())
    assert (ours.solution is None) == fsal
    if not fsal:
        assert torch.equal(ours.weights[ours.solution], theirs.c_sol)
    assert torch.equal(ours.weights[ours.error], theirs.c_error)
    assert torch.equal(ours.weights[ours.mid], solver.mid)


def _fields(dtype: torch.dtype) -> dict:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(8, 8, generator=generator, dtype=dtype)
    stiff = torch.diag(torch.linspace(-60, -0.5, 8, dtype=dtype))
    return {
        "tanh, time-dependent": lambda t, y: torch.tanh(y @ weight) * (1 + t),
        "stiff linear": lambda t, y: y @ stiff,
        "oscillator": lambda t, y: torch.cat([y[4:], -4 * y[:4] - 0.1 * y[4:]]),
    }


def _solve_both(method, field, dtype, tol, options, graph=True):
    """(NFE, times f saw, end state) from torchdiffeq's odeint and from the fast integrator
    (recording a graph or not: without, it takes its step buffers once per solve)."""
    y0 = torch.linspace(-1, 1, 8, dtype=dtype)
    results = []
    for fast in (False, True):
        seen: list[float] = []

        def f(t: Tensor, y: Tensor) -> Tensor:
            seen.append(float(t))
            return field(t, y)
        if fast:
            integrate = integrator(method, tol, tol, options)
            with torch.set_grad_enabled(graph):
                end = integrate(lambda t, y: f(torch.scalar_tensor(float(t), dtype=dtype), y),
                                y0, 0.25, 2.5, rms_norm, None)
        else:
            end = odeint(f, y0, torch.tensor([0.25, 2.5], dtype=torch.float64), rtol=tol,
                         atol=tol, method=method, options=options)[-1]
        results.append((len(seen), seen, end))
    return results


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("options", [{}, {"max_step": 0.05, "first_step": 0.3, "safety": 0.8,
                                          "dfactor": 0.5}], ids=["defaults", "options"])
@pytest.mark.parametrize("tol", [1e-3, 1e-6])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("graph", [True, False], ids=["graph", "no-graph"])
def test_the_same_evaluations_and_end_state_as_torchdiffeq(method, tol, options, dtype, graph):
    """Every field: the same number of evaluations at the same times and the end state to the
    bit — float32 at tol 1e-6 included, where rounding decides accept or reject. (This also
    holds torchdiffeq's quirks: adaptive Heun and fehlberg2 carry the last stage's derivative,
    not the solution's, into the next step, one evaluation a step fewer.)"""
    for name, field in _fields(dtype).items():
        (nfe_ref, times_ref, end_ref), (nfe, times, end) = _solve_both(method, field, dtype,
                                                                        tol, options, graph)
        assert nfe == nfe_ref and nfe > 2, name
        assert times == times_ref, name
        assert torch.equal(end, end_ref), (name, (end - end_ref).abs().max().item())

