"""The members' adjoint writes each stage's augmented derivative straight into k's row (the
integrator hands it as ``Running.out``), the same values as the tensor it makes otherwise, and
the stages keep a row so written without copying it; a field's tensor of its own is copied."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from harness.solvers.fast.backend import FastBackend
from harness.solvers.fast.member_adjoint import MemberProblem
from harness.solvers.fast.stages import StepBuffers, run_stages, stage_times
from harness.solvers.fast.tableaux import TABLEAUX
from harness.solvers.members import Running
from harness.solvers.settings import SolverConfig
from harness.toolkit.ensemble import Members, stack_models
from harness.toolkit.networks import Autonomous
from harness.toolkit.nfe import NFECounter
from harness.toolkit.ode import ODEBlock
from harness_plugins.models.hbnode import HBNODE

SIZE, ROWS, WIDTH = 3, 4, 2


def _problem() -> MemberProblem:
    solver = SolverConfig(backend="fast", rtol=1e-7, atol=1e-7)
    blocks = []
    for seed in range(SIZE):
        torch.manual_seed(seed)
        f = Autonomous(nn.Sequential(nn.Linear(WIDTH, 8), nn.ELU(), nn.Linear(8, WIDTH)))
        blocks.append(ODEBlock(HBNODE(), f, WIDTH, solver, NFECounter(),
                               FastBackend()).to(torch.float64))
    block = stack_models(blocks, Members(SIZE))
    z0 = torch.zeros(SIZE * ROWS, 2 * WIDTH, dtype=torch.float64)
    return MemberProblem(block.members_solve(None), z0, 0.0, 1.0, integrate=None)


@pytest.mark.parametrize("by_hand", [True, False])
def test_the_adjoints_derivative_is_written_into_the_row_handed(by_hand):
    problem = _problem()
    assert problem.ode.has_vjp
    problem.ode.has_vjp = by_hand  # else autograd's VJP
    n = ROWS * 2 * WIDTH
    width = 2 * n + sum(p[0].numel() for p in problem.params) + 1
    state = torch.randn(SIZE, width, dtype=torch.float64)
    augmented = problem._augmented(n)
    s = np.full(SIZE, -0.5)
    running = Running(np.ones(SIZE, dtype=bool))
    fresh = augmented(s, state, running)
    k = torch.full((3, SIZE, width), torch.nan, dtype=torch.float64)
    running.out = k[1]
    got = augmented(s, state, running)
    assert got is running.out
    assert torch.equal(k[1], fresh)
    assert k[0].isnan().all() and k[2].isnan().all()


@pytest.mark.parametrize("own", [False, True])
def test_the_stages_keep_a_row_written_and_copy_a_tensor_of_the_fields(own):
    tableau = TABLEAUX["dopri5"]
    weights = tableau.weights.to(torch.float64)[:, :, None, None]
    y = torch.randn(2, 3, dtype=torch.float64)
    field, handed = torch.tanh, []

    def row_func(t: np.ndarray, y: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
        handed.append(row)
        return field(y) if own else torch.tanh(y, out=row)

    step = torch.full((2, 1), 0.1, dtype=torch.float64)
    expected = StepBuffers(tableau, weights, 3, reuse=True).step(step, field(y))
    solution = run_stages(lambda t, y: field(y), stage_times(
        np.array(tableau.alpha), np.zeros(2), np.full(2, 0.1), np.full(2, 0.1)), tableau,
        expected, y, 3)
    views = StepBuffers(tableau, weights, 3, reuse=True).step(step, field(y))
    got = run_stages(lambda t, y: pytest.fail("f called where k has rows"), stage_times(
        np.array(tableau.alpha), np.zeros(2), np.full(2, 0.1), np.full(2, 0.1)), tableau,
        views, y, 3, row_func)
    assert torch.equal(got, solution) and torch.equal(views.k, expected.k)
    assert all(row is k_row for row, k_row in zip(handed, views.rows[1:], strict=True))
