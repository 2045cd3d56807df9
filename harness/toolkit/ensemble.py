"""M models that differ only in their seed, as one model whose members sit in the batch dimension.

:func:`stack_models` takes the M models a task built (each seeded as its solo run is) and
returns one module of the same structure in which every ``nn.Linear`` holds its M copies stacked
(:class:`~harness.toolkit.stacking.StackedLinear`: weights (M, out, in), one batched matmul),
every zero-padded ``nn.Conv2d`` too (:class:`~harness.toolkit.stacking.StackedConv2d`: one
grouped convolution), and every ODE block is a
:class:`MemberODEBlock`: the family's scalar parameters stacked, each member solved as alone by
the run's backend (:mod:`harness.solvers.members`: all members in one batched call where the
backend steps them side by side, the fast one; each member's own modules, unstacked for the
solve, on every other). An input of M·B rows (member m's batch at rows [m·B, (m+1)·B)) gives
member m's predictions in the same rows, computed as its solo model would: nothing mixes rows
across members. In a batched call the dynamics see t with one value per row (shape (M·B, 1, …)),
which an autonomous network ignores and a field marked
:class:`~harness.toolkit.networks.RowwiseTime` reads row by row; what differs per call (which
members, their parameters and times) is handed to the call, never set on the modules. Where the
family's VJP serves members (:meth:`~harness.contract.Family.has_member_vjp`) and f is a stack of
a plain MLP (:class:`~harness.toolkit.pullbacks.PlainMLP`), the adjoint's vector-Jacobian
products are taken by hand, for all members in one call, as a solo run's are.

:class:`Members` is what the runner and the solves share: which members are alive, why the
others failed, and each member's NFE per phase (an evaluation counts for the members it
advanced). A model that holds anything else with parameters or buffers (a normalisation, a
recurrent cell of its own kind) cannot be stacked: :class:`NotStackable` says what and where.
:func:`load_member` copies one member back into a model built as its solo run builds it.
"""
from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from harness.contract import Family, Pullback, VectorField
from harness.solvers.members import MemberODE, Running
from harness.solvers.settings import NFECapExceeded
from harness.toolkit.networks import Autonomous, RowwiseTime
from harness.toolkit.nfe import PHASES, NFECounter
from harness.toolkit.ode import Dynamics, ODEBlock
from harness.toolkit.pullbacks import PlainMLP, Weights
from harness.toolkit.stacking import (StackedConv2d, StackedLinear, member_of, member_parameter,
                                      of_members)


class NotStackable(ValueError):
    """Why runs of this model cannot train as members of one ensemble."""


class Members(NFECounter):
    """An ensemble's members during training: ``alive`` (a bool per member), ``failures`` (the
    error that stopped each other member) and the NFE counts, one per member and phase."""

    __slots__ = ("size", "alive", "failures")

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.alive = np.ones(size, dtype=bool)
        self.failures: dict[int, BaseException] = {}
        self.counts = self._zeros()

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


def with_parameters(family: Family, values: dict[str, Tensor]) -> Family:
    """A copy of an ensemble's family reading ``values`` as its parameters (the members' values
    repeated per row for one call, or one member's own parameters for its solo solve): the
    family itself is left as it is."""
    copied = copy.copy(family)
    copied._parameters = dict(values)
    return copied


class MemberCount:
    """One member's share of an ensemble's NFE counts (:class:`~harness.toolkit.nfe.Ticks`):
    what its own dynamics tick when the backend solves it alone."""

    def __init__(self, members: Members, index: int) -> None:
        self.members, self.index = members, index

    @property
    def phase(self) -> str:
        return self.members.phase

    def tick(self) -> None:
        self.members.counts[self.members.phase][self.index] += 1


class MemberODEBlock(ODEBlock):
    """M ODE blocks in one: stacked f and family parameters. It solves as the ODE block does
    (durations, ``through``, the NFE cap), handing its backend each solve's members
    (:meth:`~harness.solvers.backends.Bound.solve_members`): every member steps as its solo
    run, on any backend."""

    def __init__(self, blocks: list[ODEBlock], members: Members, where: str) -> None:
        first = blocks[0]
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
        f = _stacked([block.dynamics.f for block in blocks], members, f"{where}.f")
        super().__init__(family, f, first.width, first.solver, members, first.backend)
        self.members = members
        self.family_parameters = nn.ParameterDict(stacked)

    def integrate(self, dynamics: Dynamics, z0: Tensor, t: Tensor, scale: Tensor | None,
                  through: bool = False) -> Tensor:
        """As :meth:`ODEBlock.integrate`, each member solved as alone by the bound backend's
        :meth:`~harness.solvers.backends.Bound.solve_members` (or ``through_members``). With
        ``scale``, a member whose elements all have scale 0 is not solved (its rows pass
        through, no evaluation counts for it), as its solo run's hybrid skips such a solve."""
        if dynamics is not self.dynamics:
            raise NotStackable("an ensemble's ODE block solves its own dynamics only")
        ode = self.members_solve(scale)
        if through:
            return self.bound.through_members(ode, z0, t)
        return self.bound.solve_members(ode, z0, t)

    def members_solve(self, scale: Tensor | None) -> MemberODE:
        """One solve of the members (times ``scale`` per element, when given): what the backend
        is handed."""
        return _Solve(self, scale)


class _Rows(NamedTuple):
    """What one batched evaluation of a set of members hands the dynamics besides the times:
    the family with each row's parameters, each row's scale (None: unscaled), the members
    (None: all; else their indices, as an array and as a tensor) and, where f is an intact
    plain MLP, their layers (:meth:`~harness.toolkit.pullbacks.PlainMLP.rows`)."""

    family: Family
    scale: Tensor | None
    selected: np.ndarray | None
    index: Tensor | None
    weights: Weights | None


class _Solve(MemberODE):
    """One solve of a :class:`MemberODEBlock`'s members: what its backend is handed."""

    def __init__(self, block: MemberODEBlock, scale: Tensor | None) -> None:
        members = self.members = block.members
        self.block, self.scale, self.size, self.alive = block, scale, members.size, members.alive
        self.moving = (None if scale is None
                       else scale.reshape(self.size, -1).ne(0).any(dim=1).cpu().numpy())
        self.params = (*block.family_parameters.values(),
                       *(p for p in block.dynamics.f.parameters() if p.requires_grad and p.numel()))
        self.has_vjp = type(block.family).has_member_vjp() and block.dynamics.has_vjp
        self.cap = block.solver.max_nfe
        self.phase, self.calls = None, np.zeros(self.size, dtype=np.int64)
        self.views: dict[bytes, nn.Module] = {}  # f of some members, by their indices
        self.read = tuple(block.parameters())  # all a _Rows gathers from
        # Read at every evaluation: looked up once (a module's attributes are slow to reach).
        self.dynamics, self.plain = block.dynamics, block.dynamics.plain_f
        self.family_parameters = tuple(block.family_parameters.items())
        self.last: tuple[tuple, _Rows] | None = None  # the last member set's, by its key

    def fail(self, member: int, error: BaseException) -> None:
        self.members.fail(member, error)

    def field(self, t: Tensor | None, z: Tensor, running: Running) -> Tensor:
        """All members' dynamics at their times t (M,) in one call, counted per member, each
        solve (forward or adjoint, told apart by the phase) capped at ``solver.max_nfe`` per
        member; t None for dynamics that read no time (:attr:`has_vjp`)."""
        call = self._call(z, running)
        if t is not None:
            t = t.repeat_interleave(z.shape[0] // len(running.rows)).view(
                -1, *([1] * (z.dim() - 1)))
        derivative = self.dynamics.evaluate(t, z, call.family, self._f(call))
        return derivative if call.scale is None else derivative * call.scale

    def field_vjp(self, t: Tensor | None, z: Tensor, a: Tensor, running: Running
                  ) -> tuple[Tensor, Tensor, dict[Tensor, Tensor]]:
        """:meth:`field` and its VJP by hand (:attr:`has_vjp`): the family's
        ``derivatives_vjp`` around the stacked network's pullback, a solo run's VJP for all
        members at once; each family parameter's gradient summed over each member's elements
        in one reduction, as its solo run's ``sum()`` sums them (bit for bit: rows
        first, then their sums, would round otherwise, and take a slow pass over short rows).
        The derivatives' VJP reads no time (:meth:`~harness.contract.Family.derivatives_vjp`):
        t is not spread over the rows."""
        call = self._call(z, running)
        plain = self.plain

        def f(t: Tensor | None, x: Tensor) -> tuple[Tensor, Pullback]:
            return plain.vjp(x, call.index, call.weights)
        derivative, cotangent, grads = self.dynamics.evaluate_vjp(
            None, z, a if call.scale is None else a * call.scale, call.family, f)
        for name, stacked in self.family_parameters:
            per_row = call.family._parameters[name]
            if per_row in grads:  # else the adjoint says which gradient is missing
                each = grads.pop(per_row).unflatten(0, (len(running.rows), -1))
                grads[stacked] = each.sum(dim=tuple(range(1, each.dim())))
        return (derivative if call.scale is None else derivative * call.scale), cotangent, grads

    def _call(self, z: Tensor, running: Running) -> _Rows:
        """One evaluation of the members ``running.rows``, counted (and capped) for those still
        active: what they hand the dynamics besides their times."""
        self._count(running)
        rows = z.shape[0] // len(running.rows)
        shape = (-1, *([1] * (z.dim() - 1)))
        return self._of_set(running.rows, rows, shape, z.device)

    def _count(self, running: Running) -> None:
        """One evaluation for each member in ``running.rows`` still active; past the cap, the
        member is stopped."""
        members = self.members
        counted = np.zeros(self.size, dtype=bool)
        counted[running.rows] = running.active[running.rows]
        if self.cap:
            if self.phase != members.phase:
                self.phase, self.calls = members.phase, np.zeros_like(self.calls)
            self.calls += counted
            for member in np.flatnonzero(counted & (self.calls > self.cap)):
                running.fail(int(member), NFECapExceeded(
                    f"one {members.phase} solve needed more than {self.cap} evaluations "
                    f"(solver.max_nfe)"))
        members.tick(counted)

    def _of_set(self, members: np.ndarray, rows: int, shape: tuple[int, ...],
                device: torch.device) -> _Rows:
        """The :class:`_Rows` of ``members`` (``rows`` rows each). Without a graph it is made
        once for a set of members and kept until the set changes or a parameter the block
        holds is changed in place (its version moves: an optimizer's step)."""
        if torch.is_grad_enabled():
            return self._gather(members, rows, shape, device)
        key = (members.tobytes(), rows, shape, tuple(p._version for p in self.read))
        if self.last is None or self.last[0] != key:
            self.last = key, self._gather(members, rows, shape, device)
        return self.last[1]

    def _gather(self, members: np.ndarray, rows: int, shape: tuple[int, ...],
                device: torch.device) -> _Rows:
        """The :class:`_Rows` of ``members``, gathered now."""
        selected = None if len(members) == self.size else members
        index = None if selected is None else torch.from_numpy(selected).to(device)
        family = with_parameters(self.block.family, {
            name: (parameter if index is None else parameter[index]).repeat_interleave(rows)
            .view(shape) for name, parameter in self.family_parameters})
        scale = (self.scale if self.scale is None or index is None else
                 self.scale.view(self.size, rows, *self.scale.shape[1:])[index]
                 .reshape(-1, *self.scale.shape[1:]))
        plain = self._straight()
        return _Rows(family, scale, selected, index, None if plain is None else plain.rows(index))

    def _straight(self) -> PlainMLP | None:
        """The plain MLP whose layers serve this call straight: only without a graph, and
        while nothing has changed it (:meth:`~harness.toolkit.pullbacks.PlainMLP.intact`)."""
        plain = self.plain
        return (plain if plain is not None and plain.intact() and not torch.is_grad_enabled()
                else None)

    def _f(self, call: _Rows) -> VectorField:
        """The stacked network, or the one of the members ``call.selected`` (made once per
        solve); without a graph, a plain MLP's layers straight, as a solo run's dynamics take
        them."""
        plain = self._straight()
        if plain is not None:
            return lambda t, x: plain(x, call.index, call.weights)
        if call.selected is None:
            return self.dynamics.f
        key = call.selected.tobytes()
        if key not in self.views:
            self.views[key] = of_members(self.dynamics.f, call.index)
        return self.views[key]

    def member(self, index: int) -> tuple[nn.Module, tuple[Tensor, ...]]:
        block, made = self.block, {}
        f = member_of(block.dynamics.f, index, made)
        family = with_parameters(block.family, {
            name: member_parameter(parameter, index, made)
            for name, parameter in block.family_parameters.items()})
        count = MemberCount(self.members, index)
        scale = None if self.scale is None else self.scale.chunk(self.size)[index]
        func = block.per_solve(Dynamics(family, f, count), scale, count)
        return func, tuple(made[parameter] for parameter in self.params)


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
        return StackedLinear(modules)
    if type(first) is nn.Conv2d and first.padding_mode == "zeros" and isinstance(first.padding,
                                                                                  tuple):
        return StackedConv2d(modules)
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
