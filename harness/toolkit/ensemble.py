"""M models that differ only in their seed, as one model whose members sit in the batch dimension.

:func:`stack_models` takes the M models a task built (each seeded as its solo run is) and
returns one module of the same structure in which every ``nn.Linear`` holds its M copies stacked
(:class:`StackedLinear`: weights (M, out, in), one batched matmul), every zero-padded
``nn.Conv2d`` too (:class:`StackedConv2d`: one grouped convolution), and every ODE block is a
:class:`MemberODEBlock`: the family's scalar parameters stacked, the solve member by member
(:mod:`harness.solvers.fast.member_adjoint`). An input of M·B rows (member m's batch at rows
[m·B, (m+1)·B)) gives member m's predictions in the same rows, computed as its solo model would:
nothing mixes rows across members. The dynamics see t with one value per row (shape (M·B, 1, …)),
which an autonomous network ignores and a field marked
:class:`~harness.toolkit.networks.RowwiseTime` reads row by row.

:class:`Members` is what the runner and the solves share: which members are alive, why the
others failed, and each member's NFE per phase (an evaluation counts for the members it
advanced). A model that holds anything else with parameters or buffers (a normalisation, a
recurrent cell of its own kind) cannot be stacked: :class:`NotStackable` says what and where.
:func:`load_member` copies one member back into a model built as its solo run builds it.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from harness.solvers.fast.member_adjoint import MemberField, solve_members
from harness.solvers.fast.members import Running, member_integrator
from harness.solvers.settings import NFECapExceeded, interval_tensor
from harness.toolkit.networks import Autonomous, RowwiseTime
from harness.toolkit.nfe import PHASES, NFECounter
from harness.toolkit.ode import ODEBlock


class NotStackable(ValueError):
    """Why runs of this model cannot train as members of one ensemble."""


class Members(NFECounter):
    """An ensemble's members during training: ``alive`` (a bool per member), ``failures`` (the
    error that stopped each other member) and the NFE counts, one per member and phase."""

    __slots__ = ("size", "alive", "failures", "selected")

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.alive = np.ones(size, dtype=bool)
        self.failures: dict[int, BaseException] = {}
        self.counts = self._zeros()
        #: The members a call of the dynamics computes, when not all (their rows only).
        self.selected: Tensor | None = None

    def _zeros(self) -> dict[str, np.ndarray]:
        return {phase: np.zeros(self.size, dtype=np.int64) for phase in PHASES}

    def tick(self, active: np.ndarray | None = None) -> None:
        """One evaluation, counted for the ``active`` members (default: the alive ones)."""
        self.counts[self.phase] += self.alive if active is None else active

    def take(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        counts, self.counts = self.counts, self._zeros()
        return counts

    def fail(self, member: int, error: BaseException) -> None:
        """Mark ``member`` failed with ``error`` (a member's first failure is the one kept)."""
        if self.alive[member]:
            self.alive[member] = False
            self.failures[member] = error

    def take_failures(self, running: Running) -> None:
        for member, error in running.failures.items():
            self.fail(member, error)


class StackedLinear(nn.Module):
    """M ``nn.Linear`` layers in one: member m's rows of the input go through layer m (inside
    the dynamics, the rows of the members ``members.selected`` only)."""

    def __init__(self, layers: list[nn.Linear], members: Members) -> None:
        super().__init__()
        self.members = members
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]))
        self.bias = (nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]))
                     if layers[0].bias is not None else None)

    def forward(self, x: Tensor) -> Tensor:
        selected = self.members.selected
        weight, bias = ((self.weight, self.bias) if selected is None
                        else (self.weight[selected], None if self.bias is None
                              else self.bias[selected]))
        rows = x.reshape(len(weight), -1, x.shape[-1])
        weight = weight.transpose(1, 2)
        y = (torch.bmm(rows, weight) if bias is None
             else torch.baddbmm(bias.unsqueeze(1), rows, weight))
        return y.reshape(*x.shape[:-1], y.shape[-1])


class StackedConv2d(nn.Module):
    """M ``nn.Conv2d`` layers (zero padding) in one grouped convolution: member m's rows of the
    input go through layer m (inside the dynamics, the rows of ``members.selected`` only)."""

    def __init__(self, layers: list[nn.Conv2d], members: Members) -> None:
        super().__init__()
        first = layers[0]
        self.members = members
        self.stride, self.padding, self.dilation = first.stride, first.padding, first.dilation
        self.groups = first.groups
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]))
        self.bias = (nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]))
                     if first.bias is not None else None)

    def forward(self, x: Tensor) -> Tensor:
        selected = self.members.selected
        weight, bias = ((self.weight, self.bias) if selected is None
                        else (self.weight[selected], None if self.bias is None
                              else self.bias[selected]))
        count, channels = len(weight), x.shape[1]
        rows = x.reshape(count, -1, *x.shape[1:]).transpose(0, 1)  # (B, M, C, H, W)
        y = F.conv2d(rows.reshape(rows.shape[0], count * channels, *x.shape[2:]),
                     weight.flatten(0, 1), None if bias is None else bias.flatten(),
                     self.stride, self.padding, self.dilation, self.groups * count)
        y = y.reshape(y.shape[0], count, -1, *y.shape[2:]).transpose(0, 1)
        return y.reshape(-1, *y.shape[2:])


class MemberODEBlock(ODEBlock):
    """M ODE blocks in one: stacked f and family parameters, each member solved on its own by
    the fast backend's ensemble integrators."""

    def __init__(self, blocks: list[ODEBlock], members: Members, where: str) -> None:
        first = blocks[0]
        if first.solver.backend != "fast":
            raise NotStackable(f"ensembles solve with the fast backend (solver.backend: fast); "
                               f"this run's is {first.solver.backend!r}")
        if not isinstance(first.dynamics.f, (Autonomous, RowwiseTime)):
            raise NotStackable(f"{where}: the vector field is a {type(first.dynamics.f).__name__}, "
                               f"neither an Autonomous network nor marked RowwiseTime (reading "
                               f"each member's own time row by row)")
        family = copy.deepcopy(first.family)
        stacked = {}
        for name, parameter in first.family.named_parameters():
            if "." in name or parameter.dim() != 0:
                raise NotStackable(f"{where}: family {family.name!r} parameter {name!r} is not a "
                                   f"scalar of the family itself; only those are stacked")
            stacked[name] = nn.Parameter(torch.stack(
                [block.family._parameters[name].detach() for block in blocks]))
            del family._parameters[name]
            setattr(family, name, parameter.detach())
        f = _stacked([block.dynamics.f for block in blocks], members, f"{where}.f")
        super().__init__(family, f, first.width, first.solver, NFECounter(), first.backend)
        self.members = members
        self.family_parameters = nn.ParameterDict(stacked)
        self.integrate = member_integrator(self.solver.method, self.solver.rtol,
                                           self.solver.atol, self.solver.options)

    def forward(self, z0: Tensor, duration: Tensor | None = None) -> Tensor:
        """As :meth:`ODEBlock.forward`, each member solved on its own. With ``duration``, a
        member whose elements all have duration 0 is not solved (its rows pass through, no
        evaluation counts for it), as its solo run's hybrid skips such a solve."""
        t = interval_tensor(*self.family.interval, like=z0)
        scale = moving = None
        if duration is not None:
            scale = (duration / (t[1] - t[0])).reshape(-1, *([1] * (z0.dim() - 1)))
            moving = duration.reshape(self.members.size, -1).ne(0).any(dim=1).cpu().numpy()
        t0, t1 = t.tolist()
        return self._solve(z0, t0, t1, scale, moving)

    def through(self, z0: Tensor, offsets: Tensor) -> Tensor:
        """As :meth:`ODEBlock.through` on the fast backend: one solve per interval between the
        offsets, in unscaled time from the start of the family's interval."""
        t0 = self.family.interval[0]
        times = ((offsets - offsets[0]).to(z0) + t0).tolist()
        states, z = [], z0
        for start, end in zip(times, times[1:]):
            z = self._solve(z, start, end, None, None)
            states.append(z)
        return torch.stack(states)

    def _solve(self, z0: Tensor, t0: float, t1: float, scale: Tensor | None,
               moving: np.ndarray | None) -> Tensor:
        params = (*self.family_parameters.values(),
                  *(p for p in self.dynamics.f.parameters() if p.requires_grad and p.numel()))
        return solve_members(self._field(scale), z0, t0, t1, self.integrate, self.solver.adjoint,
                             params, self.members.alive, self.members.take_failures, moving)

    def _field(self, scale: Tensor | None) -> MemberField:
        """The dynamics of all members at their times t (M,), counted per member, each solve
        (forward or adjoint, told apart by the phase) capped at ``solver.max_nfe`` per member."""
        members, cap, family = self.members, self.solver.max_nfe, self.dynamics.family
        calls = {"phase": None, "count": np.zeros(members.size, dtype=np.int64)}

        def field(t: Tensor, z: Tensor, running: Running) -> Tensor:
            counted = np.zeros(members.size, dtype=bool)
            counted[running.rows] = running.active[running.rows]
            if cap:
                if calls["phase"] != members.phase:
                    calls["phase"], calls["count"] = members.phase, np.zeros_like(calls["count"])
                calls["count"] += counted
                for member in np.flatnonzero(counted & (calls["count"] > cap)):
                    running.fail(int(member), NFECapExceeded(
                        f"one {members.phase} solve needed more than {cap} evaluations "
                        f"(solver.max_nfe)"))
            members.tick(counted)
            selected = (None if len(running.rows) == members.size
                        else torch.from_numpy(running.rows).to(z.device))
            rows = z.shape[0] // len(running.rows)
            shape = (-1, *([1] * (z.dim() - 1)))
            for name, parameter in self.family_parameters.items():
                values = parameter if selected is None else parameter[selected]
                setattr(family, name, values.repeat_interleave(rows).view(shape))
            members.selected = selected
            try:
                derivative = self.dynamics(t.repeat_interleave(rows).view(shape), z)
            finally:
                members.selected = None
            if scale is None:
                return derivative
            return derivative * (scale if selected is None else
                                 scale.view(members.size, rows, *scale.shape[1:])[selected]
                                 .reshape(-1, *scale.shape[1:]))
        return field


def load_member(solo: nn.Module, stacked: nn.Module, index: int) -> None:
    """Copy member ``index``'s slice of every stacked parameter into ``solo``, a model built
    as that member's solo run builds it: the member alone, for what takes one model (a task's
    :meth:`~harness.Task.measure`)."""
    with torch.no_grad():
        if isinstance(stacked, (StackedLinear, StackedConv2d)):
            solo.weight.copy_(stacked.weight[index])
            if stacked.bias is not None:
                solo.bias.copy_(stacked.bias[index])
            return
        if isinstance(stacked, MemberODEBlock):
            for name, parameter in stacked.family_parameters.items():
                solo.family._parameters[name].copy_(parameter[index])
        for name, child in stacked._modules.items():
            if child is not None and name != "family_parameters":
                load_member(solo._modules[name], child, index)


def stack_models(models: list[nn.Module], members: Members) -> nn.Module:
    """One model computing every member's model on its own rows (see the module's docstring);
    :class:`NotStackable` when some part of the models cannot be stacked."""
    return _stacked(models, members, "model")


def _stacked(modules: list[nn.Module], members: Members, where: str) -> nn.Module:
    first = modules[0]
    if type(first) is nn.Linear:
        return StackedLinear(modules, members)
    if type(first) is nn.Conv2d and first.padding_mode == "zeros" and isinstance(first.padding,
                                                                                  tuple):
        return StackedConv2d(modules, members)
    if isinstance(first, ODEBlock):
        if type(first) is not ODEBlock:
            raise NotStackable(f"{where} is a {type(first).__name__}, a kind of ODE block the "
                               f"ensemble does not know")
        return MemberODEBlock(modules, members, where)
    own = [name for name, value in (*first._parameters.items(), *first._buffers.items())
           if value is not None]
    if own:
        raise NotStackable(f"{where} ({type(first).__name__}) holds {', '.join(own)}: only "
                           f"nn.Linear layers, ODE blocks and parameter-free modules are stacked")
    stacked = copy.copy(first)
    stacked._modules = {name: None if child is None
                        else _stacked([module._modules[name] for module in modules], members,
                                      f"{where}.{name}")
                        for name, child in first._modules.items()}
    return stacked
