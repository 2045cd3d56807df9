"""The fast integrator's workspaces kept between solves, and its interpolant's in-place
arithmetic: solves in turn on one bound integrator — layouts changing, a solve inside another's
f, with and without a graph — each take torchdiffeq's evaluations and end state, bit for bit;
the quartic interpolant is torchdiffeq's ``_interp_fit`` and ``_interp_evaluate`` to the bit."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch import Tensor
from torchdiffeq import odeint
from torchdiffeq._impl.interp import _interp_evaluate, _interp_fit

from harness.solvers.fast.integrators import integrator, quartic, rms_norm
from harness.solvers.fast.workspaces import KEPT_ENTRIES, KEPT_LAYOUTS, integer_factors

TOL = 1e-6


def _field(scale: float):
    def f(t: Tensor, y: Tensor) -> Tensor:
        return torch.tanh(y.flip(0) * scale) * (1 + t) - 0.3 * y
    return f


def _torchdiffeq(field, y0: Tensor, t0: float, t1: float) -> tuple[int, Tensor]:
    calls = [0]

    def f(t: Tensor, y: Tensor) -> Tensor:
        calls[0] += 1
        return field(t, y)
    end = odeint(f, y0, torch.tensor([t0, t1], dtype=torch.float64), rtol=TOL, atol=TOL)[-1]
    return calls[0], end


def _fast(integrate, field, y0: Tensor, t0: float, t1: float, inner=None) -> tuple[int, Tensor]:
    """A solve on ``integrate``; ``inner`` runs inside it, in the first step's third stage
    (after the two evaluations of the initial step and two of the step), with that step's
    buffers in use."""
    calls = [0]

    def f(t, y: Tensor) -> Tensor:
        calls[0] += 1
        if calls[0] == 5 and inner is not None:
            inner()
        return field(torch.scalar_tensor(float(t), dtype=y.dtype), y)
    end = integrate(f, y0, t0, t1, rms_norm, None)
    return calls[0], end


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("graph", [True, False], ids=["graph", "no-graph"])
def test_solves_in_turn_on_one_integrator_are_each_torchdiffeqs(dtype, graph):
    """Layouts A, B, A, A again with a solve of layout A inside it (which must not take the
    workspace the outer solve holds), then more layouts than are kept, then A: every solve's
    evaluation count and end state are torchdiffeq's, bit for bit."""
    integrate = integrator("dopri5", TOL, TOL, {})
    generator = torch.Generator().manual_seed(3)
    a, b = (torch.randn(n, generator=generator, dtype=dtype) for n in (12, 7))
    inner_results = []

    def inner() -> None:
        inner_results.append((_fast(integrate, _field(2.0), a * 0.5, 0.0, 0.7),
                              _torchdiffeq(_field(2.0), a * 0.5, 0.0, 0.7)))
    others = [torch.randn(n, generator=generator, dtype=dtype) for n in range(20, 21 + KEPT_LAYOUTS)]
    plan = [(a, _field(1.0), None), (b, _field(0.5), None), (a, _field(-1.5), None),
            (a, _field(1.2), inner), *((y, _field(0.8), None) for y in others),
            (a, _field(0.9), None)]
    with torch.set_grad_enabled(graph):
        for i, (y0, field, nested) in enumerate(plan):
            (nfe, end), (nfe_ref, end_ref) = (_fast(integrate, field, y0, 0.25, 1.5, nested),
                                              _torchdiffeq(field, y0, 0.25, 1.5))
            assert nfe == nfe_ref > 2 and torch.equal(end, end_ref), i
    ((nfe, end), (nfe_ref, end_ref)), = inner_results
    assert nfe == nfe_ref and torch.equal(end, end_ref)
    assert len(integrate.workspaces.idle) == KEPT_LAYOUTS


def test_a_large_states_workspace_is_not_kept():
    integrate = integrator("dopri5", TOL, TOL, {})
    with torch.no_grad():
        _fast(integrate, _field(1.0), torch.linspace(-1, 1, KEPT_ENTRIES + 1), 0.0, 0.1)
        assert not integrate.workspaces.idle
        _fast(integrate, _field(1.0), torch.linspace(-1, 1, KEPT_ENTRIES), 0.0, 0.1)
        assert len(integrate.workspaces.idle) == 1


def test_an_integrator_pickles_without_its_workspaces():
    integrate = integrator("dopri5", TOL, TOL, {})
    y0 = torch.linspace(-1, 1, 9)
    with torch.no_grad():
        _, end = _fast(integrate, _field(1.0), y0, 0.0, 1.0)
        copy = pickle.loads(pickle.dumps(integrate))
        assert integrate.workspaces.idle and not copy.workspaces.idle
        assert torch.equal(_fast(copy, _field(1.0), y0, 0.0, 1.0)[1], end)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("rows", [None, 5], ids=["one state", "member rows"])
def test_the_quartic_interpolant_is_torchdiffeqs_bit_for_bit(dtype, rows):
    """On values of wildly different magnitudes (and zeros), at fractions across the step: one
    state (x a scalar, dt a 0-dim tensor) and members' rows (x and dt columns)."""
    generator = torch.Generator().manual_seed(11)
    shape = (rows or 1, 4001)
    scales = torch.logspace(-20, 20, shape[1], dtype=torch.float64)

    def draw() -> Tensor:
        values = torch.randn(shape, generator=generator, dtype=torch.float64) * scales
        values[:, ::97] = 0
        return values.to(dtype)
    y0, y1, y_mid, f0, f1 = (draw() for _ in range(5))
    scalar = np.float32 if dtype == torch.float32 else np.float64
    for t0, t1, t in ((0.25, 0.6173, 0.5), (1.0, 1.0 + 2 ** -20, 1.0 + 3 ** -13), (-2.0, -0.3, -1.1)):
        steps = np.array([t1 - t0] * shape[0], dtype=scalar)
        dt = torch.from_numpy(steps).to(dtype).view(-1, 1)
        x = ((t - np.full(shape[0], t0)) / (t1 - t0)).astype(scalar)
        expected = torch.cat([_interp_evaluate(
            _interp_fit(y0[i], y1[i], y_mid[i], f0[i], f1[i], dt[i, 0]),
            torch.tensor(t0, dtype=torch.float64), torch.tensor(t1, dtype=torch.float64),
            torch.tensor(t, dtype=torch.float64)).unsqueeze(0) for i in range(shape[0])])
        if rows is None:
            got = quartic(x[0], lambda v: torch.scalar_tensor(float(v), dtype=dtype),
                          integer_factors(dtype, y0.device), dt[0, 0], y0[0], y1[0], y_mid[0],
                          f0[0], f1[0]).unsqueeze(0)
        else:
            got = quartic(x, lambda v: torch.from_numpy(v.astype(np.float64)).to(dtype).view(-1, 1),
                          integer_factors(dtype, y0.device), dt, y0, y1, y_mid, f0, f1)
        assert torch.equal(got, expected), (t0, t1, t)
