"""The members' times an ensemble's fast solve hands its field: in the state's precision, whatever
the integrator's array holds (a fixed grid's times come as float64), so a field that reads t
row by row computes in float32 as its solo run does."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from harness.solvers.fast.backend import FastBackend
from harness.solvers.fast.member_adjoint import MemberProblem
from harness.solvers.settings import SolverConfig
from harness.toolkit.ensemble import Members, stack_models
from harness.toolkit.networks import Autonomous
from harness.toolkit.nfe import NFECounter
from harness.toolkit.ode import ODEBlock
from harness_plugins.models.hbnode import HBNODE

SIZE, ROWS, WIDTH = 3, 4, 2


def _problem(dtype: torch.dtype) -> MemberProblem:
    solver = SolverConfig(backend="fast", rtol=1e-7, atol=1e-7)
    blocks = []
    for seed in range(SIZE):
        torch.manual_seed(seed)
        f = Autonomous(nn.Sequential(nn.Linear(WIDTH, 8), nn.ELU(), nn.Linear(8, WIDTH)))
        blocks.append(ODEBlock(HBNODE(), f, WIDTH, solver, NFECounter(), FastBackend()).to(dtype))
    block = stack_models(blocks, Members(SIZE))
    z0 = torch.zeros(SIZE * ROWS, 2 * WIDTH, dtype=dtype)
    return MemberProblem(block.members_solve(None), z0, 0.0, 1.0, integrate=None)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("given", [np.float32, np.float64])
def test_the_members_times_are_in_the_states_precision(dtype, given):
    times = np.array([0.0, 0.1, 1 / 3], dtype=given)
    got = _problem(dtype).times(times)
    assert got.dtype == dtype
    assert torch.equal(got, torch.tensor(times.tolist(), dtype=dtype))
