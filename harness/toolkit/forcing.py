"""Solving a family's ODE whose network also reads an input signal u(t) (a forcing, such as
the Silverbox circuit's input voltage): f(t, [z, u(t)]).

The task makes the block with ``ctx.ode(net, n)``, where ``net`` reads [z, u] (its input is
the state's f channels plus the signal's). The signal differs from solve to solve, so it must
travel with the solve (the adjoint calls the dynamics again in ``backward()``), never sit on a
module between solves: each solve wraps the block's network with its own signal, in dynamics
sharing the block's family instance and NFE counter, solved by the block (its settings and bound
backend).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from harness.solvers.backends import PerElementTime
from harness.toolkit.ode import Dynamics, ODEBlock

Signal = Callable[[Tensor], Tensor]
"""u(t) for the time t the dynamics are called at: (batch, m) for a batch of states."""


class InputFed(PerElementTime, nn.Module):
    """f(t, [z, u(t)]) for one solve's signal u."""

    def __init__(self, net: nn.Module, signal: Signal) -> None:
        super().__init__()
        self.net = net
        self.signal = signal

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        return self.net(torch.cat([z, self.signal(t)], dim=1))


def solve_with_input(ode: ODEBlock, signal: Signal, z0: Tensor,
                     duration: Tensor | None = None) -> Tensor:
    """``ode(z0, duration)`` with the block's network fed [z, signal(t)]; NFE counted on
    ``ode``'s counter."""
    return solve_with_network(ode, InputFed(ode.dynamics.f, signal), z0, duration)


def solve_with_network(ode: ODEBlock, net: nn.Module, z0: Tensor,
                       duration: Tensor | None = None) -> Tensor:
    """``ode(z0, duration)`` with ``net`` (made for this one solve, f(t, x)) in place of the
    block's network; NFE counted on ``ode``'s counter. The adjoint differentiates ``net``'s
    parameters only: tensors it holds get no gradient from an adjoint solve."""
    return ode.solve(Dynamics(ode.family, net, ode.dynamics.counter), z0, duration)
