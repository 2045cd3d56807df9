"""Building blocks tasks compose their models from."""
from __future__ import annotations

from torch import Tensor, nn

from harness.contract import ODEBlockLike


def mlp(sizes: list[int], activation: type[nn.Module]) -> nn.Sequential:
    """fc → activation → … → fc through the given sizes, no activation after the last layer."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class Autonomous(nn.Module):
    """Gives a network that ignores time the f(t, z) signature the dynamics call."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        return self.net(z)


class RowwiseTime:
    """Marks a vector field f(t, z) whose row i reads t only through t's row i when t comes
    with one value per row (shape (rows, 1, …)): so members of an ensemble, each at its own
    time, may share one call (an :class:`Autonomous` network needs no mark: it ignores t)."""


class SolveThenRead(nn.Module):
    """x → initial state (x, zeros, the initial-velocity net's output, as the family says) →
    solve → head(readout part at T)."""

    def __init__(self, ode: ODEBlockLike, head: nn.Module,
                 velocity_net: nn.Module | None = None) -> None:
        super().__init__()
        self.ode = ode
        self.head = head
        self.velocity_net = velocity_net

    def forward(self, x: Tensor) -> Tensor:
        z = self.ode(self.ode.initial_state(x, self.velocity_net))
        return self.head(self.ode.part(z))
