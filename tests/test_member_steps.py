"""The fast backend's ensemble integrator against its solo integrator, member by member: each
member's evaluations, failure and end state those of its own solo solve, bit for bit, with each
adaptive method (tableau),
while the others step, reject, finish, fail or are dropped from the rows computed around it."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import Tensor

from harness.solvers.fast.integrators import (StepControl, adaptive, all_finite, first_guess,
                                              optimal_step, rms_norm, second_guess)
from harness.solvers.fast.members import (adaptive_members, first_guesses, optimal_steps,
                                          rms_rows, second_guesses)
from harness.solvers.fast.tableaux import TABLEAUX
from harness.solvers.members import Running
from harness.solvers.settings import SolverFailure

#: Each member's decay rate (×10 after t = 0.5, so steps are rejected there): easy members
#: finish in a few steps, a stiff one runs out of steps, one turns NaN, one does not run.
RATES = (1.0, 2.0, 3.0, 0.5, 20.0, 4000.0, 1.5, 2.5)
NAN_MEMBER, IDLE_MEMBER, STIFF_MEMBER = 6, 7, 5
CONTROL = StepControl(rtol=1e-5, atol=1e-6, max_num_steps=100)
#: Each method's step limit in these tests: the easy members finish within it, the stiff one not.
MAX_STEPS = {"dopri5": 100, "bosh3": 400, "fehlberg2": 400, "adaptive_heun": 2000}


def _derivative(member: int, t: float, y: Tensor) -> Tensor:
    """Member ``member``'s field at time t (the state's precision): the same operations alone
    and in a batch."""
    rate = RATES[member] * (10.0 if t > 0.5 else 1.0)
    value = y * -rate + 0.25
    return value * math.nan if member == NAN_MEMBER and t > 0.3 else value


@pytest.mark.parametrize("method", sorted(TABLEAUX))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("graph", [True, False], ids=["graph", "no-graph"])
def test_each_member_steps_as_its_solo_integrator(dtype, method, graph):
    """Recording a graph or not (without, both integrators take their step buffers once per
    solve, as in the adjoint's solves)."""
    with torch.set_grad_enabled(graph):
        _each_member_steps_as_its_solo_integrator(dtype, method)


def _each_member_steps_as_its_solo_integrator(dtype: torch.dtype, method: str) -> None:
    tableau, control = TABLEAUX[method], replace(CONTROL, max_num_steps=MAX_STEPS[method])
    generator = torch.Generator().manual_seed(0)
    y0 = torch.randn(len(RATES), 5, generator=generator, dtype=dtype)
    counts = np.zeros(len(RATES), dtype=np.int64)

    def members(t: np.ndarray, y: Tensor, running: Running) -> Tensor:
        counts[running.rows] += running.active[running.rows]
        return torch.stack([_derivative(int(m), float(ti), row)
                            for m, ti, row in zip(running.rows, t, y)])

    running = Running(np.arange(len(RATES)) != IDLE_MEMBER)
    result = adaptive_members(members, y0, 0.0, 1.0, tableau, control, rms_rows, None, running)
    assert sorted(running.failures) == [STIFF_MEMBER, NAN_MEMBER]
    assert counts[IDLE_MEMBER] == 0 and torch.equal(result[IDLE_MEMBER], y0[IDLE_MEMBER])
    for member in range(len(RATES) - 1):
        calls = [0]

        def alone(t: float, y: Tensor, member: int = member) -> Tensor:
            calls[0] += 1
            return _derivative(member, float(t), y)
        try:
            expected = adaptive(alone, y0[member], 0.0, 1.0, tableau, control, rms_norm)
        except SolverFailure as error:
            assert str(running.failures[member]) == str(error), member
        else:
            assert member not in running.failures
            assert torch.equal(result[member], expected), member
        assert counts[member] == calls[0], member
    others = [counts[m] for m in range(len(RATES)) if m != STIFF_MEMBER]
    assert counts[STIFF_MEMBER] > max(others)  # it ran on long after the others finished,
    assert list(running.rows) == [STIFF_MEMBER]  # alone in the rows computed at the end


@pytest.mark.parametrize("method", sorted(TABLEAUX))
def test_only_the_members_stepping_are_computed(method):
    """An evaluation is handed the rows of the members still stepping only: once a member
    finished or failed, no later evaluation computes its row, so the rows computed add up to
    the members' evaluations (not their number times the slowest member's)."""
    tableau, control = TABLEAUX[method], replace(CONTROL, max_num_steps=MAX_STEPS[method])
    y0 = torch.randn(len(RATES), 5, generator=torch.Generator().manual_seed(0),
                     dtype=torch.float64)
    handed: list[np.ndarray] = []  # the members whose rows each evaluation computed

    def members(t: np.ndarray, y: Tensor, running: Running) -> Tensor:
        assert len(y) == len(running.rows)
        assert running.active[running.rows].all(), (running.rows, running.active)
        handed.append(running.rows.copy())
        return torch.stack([_derivative(int(m), float(ti), row)
                            for m, ti, row in zip(running.rows, t, y)])

    running = Running(np.arange(len(RATES)) != IDLE_MEMBER)
    adaptive_members(members, y0, 0.0, 1.0, tableau, control, rms_rows, None, running)
    sizes = [len(rows) for rows in handed]
    assert sizes[0] == len(RATES) - 1 and sizes[-1] == 1  # all but the idle one, then the stiff
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) > 3  # dropped one by one


@pytest.mark.parametrize("order", sorted({tableau.order for tableau in TABLEAUX.values()}))
def test_the_step_size_update_is_the_solo_ones_bit_for_bit(order):
    """Every branch of torchdiffeq's update (ratio 0, NaN, infinite, below and above 1) and
    ratios whose roots (each method's order) a vector pow might round otherwise."""
    ratios = np.concatenate([[0.0, math.nan, math.inf, 1.0, np.nextafter(1.0, 0.0), 1e-300],
                             np.exp(np.random.default_rng(0).uniform(-30, 10, 5000))])
    dts = np.random.default_rng(1).uniform(1e-6, 1.0, len(ratios))
    control = StepControl(rtol=1e-7, atol=1e-7, safety=0.85, ifactor=7.0, dfactor=0.3)
    steps = optimal_steps(dts, ratios, control, order)
    expected = [optimal_step(dt, ratio, control, order) for dt, ratio in zip(dts, ratios)]
    np.testing.assert_array_equal(steps, expected)


@pytest.mark.parametrize("scalar", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("order", sorted({tableau.order for tableau in TABLEAUX.values()}))
def test_the_initial_steps_are_the_solo_ones_bit_for_bit(order, scalar):
    """Every member's initial step from arrays is the solo integrator's, from each member's
    norms: both branches of each guess (norms below 1e-5 and 1e-15), NaN, ±inf, zeros, and
    roots a vector pow would round otherwise (the solo root is torch's on a 0-dim tensor)."""
    rng = np.random.default_rng(order)
    special = [0.0, 1e-16, 1e-15, 1e-6, 1e-5, 1.0, math.nan, math.inf]
    d0, d1, d2 = (np.concatenate([np.repeat(special, 64) if i == 0 else np.tile(special, 64)
                                  if i == 1 else rng.permutation(np.tile(special, 64)),
                                  np.exp(rng.uniform(-40, 20, 4000))]).astype(scalar)
                  for i in range(3))
    with np.errstate(all="ignore"):
        h0 = first_guesses(d0, d1, scalar)
        np.testing.assert_array_equal(h0, [first_guess(a, b, scalar) for a, b in zip(d0, d1)])
        assert h0.dtype == scalar
        steps = second_guesses(h0, d1, d2, scalar, order)
        expected = [second_guess(h, b, c, scalar, order) for h, b, c in zip(h0, d1, d2)]
    np.testing.assert_array_equal(steps, expected)
    assert steps.dtype == np.float64


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_norms_are_torchdiffeqs_bit_for_bit(dtype):
    """rms_norm and rms_rows take x·x for torchdiffeq's |x|², the same bits, NaN and ±inf too."""
    x = torch.randn(6, 997, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = (x * torch.logspace(-30, 30, 997, dtype=torch.float64)).to(dtype)
    x[1, 5], x[2, 7], x[3, 9], x[4, 11] = math.nan, math.inf, -math.inf, -0.0
    rows, expected_rows = rms_rows(x), x.abs().pow(2).mean(dim=1).sqrt()
    assert torch.equal(rows.isnan(), expected_rows.isnan())
    assert torch.equal(rows.nan_to_num(0.5), expected_rows.nan_to_num(0.5))
    for row in x:
        expected = row.abs().pow(2).mean().sqrt()
        assert rms_norm(row).isnan() == expected.isnan()
        assert rms_norm(row).isnan() or torch.equal(rms_norm(row), expected)


def test_a_state_whose_sum_overflows_is_still_finite():
    """Finiteness is read off a sum first; finite entries summing past float32's range are
    asked one by one, so neither integrator calls such a state non-finite."""
    y = torch.full((4,), 3e38, dtype=torch.float32)
    assert math.isinf(y.sum().item()) and all_finite(y)
    assert not all_finite(torch.tensor([1.0, math.nan])) and not all_finite(torch.tensor([math.inf]))
    y0 = torch.stack([y, torch.ones(4)])

    def members(t: np.ndarray, y: Tensor, running: Running) -> Tensor:
        return torch.zeros_like(y)

    running = Running(np.ones(2, dtype=bool))
    result = adaptive_members(members, y0, 0.0, 1.0, TABLEAUX["dopri5"], CONTROL, rms_rows,
                              None, running)
    alone = adaptive(lambda t, y: torch.zeros_like(y), y, 0.0, 1.0, TABLEAUX["dopri5"], CONTROL)
    assert not running.failures  # (the interpolant itself overflows: NaN, as torchdiffeq's)
    assert torch.equal(result[0].isnan(), alone.isnan()) and torch.equal(result[1], y0[1])
