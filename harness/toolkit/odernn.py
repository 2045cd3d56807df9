"""The ODE-RNN hybrid for any model family (the paper's §5.3–5.4 and appendices E.4–E.5).

Between observations the family's ODE carries the whole state (all P parts, P·n channels)
across the elapsed time; at an observation the task's RNN cell reads [state, features] and
writes the whole state back. A batch whose elements have different gaps is carried in one
solve by the change of time interval (``ODEBlock.forward(z, duration=gaps)``): the gaps are an
argument of that solve, never something left on a module for the adjoint to read later.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from harness.toolkit.ode import ODEBlock, part_of


@dataclass
class Trajectory:
    """The states around each observation, as the tensors of the autograd graph (so a probe
    can take gradients with respect to them): ``before[i]`` is the state carried to stamp i,
    ``after[i]`` the state once the cell has read observation i."""

    before: list[Tensor]
    after: list[Tensor]


class ODERNN(nn.Module):
    """An ODE block and an RNN cell; the cell maps (batch, P·n + k) to (batch, P·n)."""

    def __init__(self, ode: ODEBlock, cell: nn.Module) -> None:
        super().__init__()
        self.ode = ode
        self.cell = cell

    @property
    def state_width(self) -> int:
        return len(self.ode.family.parts) * self.ode.width

    def forward(self, z: Tensor, features: Tensor, gaps: Tensor) -> Trajectory:
        """Run from state z (batch, P·n) through observations (batch, T, k) with gaps (batch, T)."""
        before, after = [], []
        for i in range(features.shape[1]):
            z = self.evolve(z, gaps[:, i])
            before.append(z)
            z = self.cell(torch.cat([z, features[:, i]], dim=1))
            after.append(z)
        return Trajectory(before, after)

    def evolve(self, z: Tensor, duration: Tensor) -> Tensor:
        """Each element carried across its own duration in one solve (none if all are 0)."""
        if not bool((duration != 0).any()):
            return z
        return self.ode(z, duration=duration)

    def carry(self, z: Tensor, durations: Tensor) -> Tensor:
        """States (batch, H, P·n) reached from z across each of H durations (batch, H), all in
        one solve: the batch repeated H times, each copy with its own span."""
        batch, horizon = durations.shape
        reached = self.evolve(z.repeat_interleave(horizon, dim=0), durations.reshape(-1))
        return reached.reshape(batch, horizon, -1)

    def through(self, z: Tensor, offsets: Tensor) -> Tensor:
        """States (batch, H − 1, P·n) at offsets[1:] (H, the same for every element) after
        z's stamp at offsets[0], from one solve through them all where the backend can."""
        return self.ode.through(z, offsets).transpose(0, 1)

    def read(self, z: Tensor) -> Tensor:
        """The family's readout part of states shaped (…, P·n)."""
        return part_of(self.ode.family, z, None, dim=-1)


class InitialState(nn.Module):
    """The hybrid's starting state: a dense layer reading what the task gives it (a flattened
    input window, a first observation) supplies the first ``channels`` channels of the state,
    the rest start at zero; with ``channels = 0`` there is no layer and the state is all zero."""

    def __init__(self, reads: int, channels: int, state_width: int) -> None:
        super().__init__()
        if not 0 <= channels <= state_width:
            raise ValueError(f"the initial-state layer supplies {channels} channels; the state "
                             f"has {state_width}")
        self.layer = nn.Linear(reads, channels) if channels else None
        self.state_width = state_width

    def forward(self, seen: Tensor) -> Tensor:
        zeros = seen.new_zeros(seen.shape[0], self.state_width)
        if self.layer is None:
            return zeros
        supplied = self.layer(seen)
        return torch.cat([supplied, zeros[:, supplied.shape[1]:]], dim=1)
