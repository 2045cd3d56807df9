"""The ODE block's batched change of time interval against a solve per element."""
from __future__ import annotations

import torch
from torch import nn

from harness.solvers.settings import SolverConfig
from harness.toolkit.networks import Autonomous
from harness.toolkit.nfe import NFECounter
from harness.toolkit.ode import ODEBlock
from harness_plugins.models.hbnode import HBNODE

SOLVER = SolverConfig(method="dopri5", rtol=1e-8, atol=1e-8, adjoint=True)


def block() -> ODEBlock:
    torch.manual_seed(0)
    f = Autonomous(nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 3)))
    return ODEBlock(HBNODE(), f, 3, SOLVER, NFECounter())


def per_element(ode: ODEBlock, z0: torch.Tensor, gaps: torch.Tensor) -> torch.Tensor:
    """Each element solved on its own interval [0, gap], without the change of variable."""
    from torchdiffeq import odeint_adjoint
    outs = [odeint_adjoint(ode.dynamics, z[None], torch.tensor([0.0, float(g)]), rtol=1e-8,
                           atol=1e-8, method="dopri5")[-1] for z, g in zip(z0, gaps)]
    return torch.cat(outs)


def test_batched_rescaled_solve_equals_each_elements_own_solve():
    ode = block()
    z0 = torch.randn(4, 6)
    gaps = torch.tensor([0.1, 0.5, 1.0, 2.3])
    torch.testing.assert_close(ode(z0, duration=gaps), per_element(ode, z0, gaps),
                               rtol=1e-5, atol=1e-6)


def test_adjoint_gradients_through_rescaled_solves_match_direct_backprop():
    """Irregular gaps, two solves in a row, gradients from the adjoint = backprop through the
    solver (the authors' ODE-RNN got this wrong by keeping the gap on the module)."""
    def gradients(adjoint: bool):
        ode = block()
        ode.solver = SolverConfig(method="dopri5", rtol=1e-9, atol=1e-9, adjoint=adjoint)
        z = torch.randn(3, 6, generator=torch.Generator().manual_seed(1))
        for gaps in (torch.tensor([0.2, 0.7, 1.5]), torch.tensor([1.1, 0.3, 0.05])):
            z = ode(z, duration=gaps)
        z.pow(2).sum().backward()
        return [p.grad.clone() for p in ode.parameters()]

    for adjoint_grad, direct_grad in zip(gradients(True), gradients(False)):
        torch.testing.assert_close(adjoint_grad, direct_grad, rtol=1e-4, atol=1e-6)
