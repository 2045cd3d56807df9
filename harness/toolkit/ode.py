"""An ODE block: a family's dynamics around a task's network, solved with NFE counted by the
run's solver backend."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from harness.contract import DifferentiableField, Family, VectorField
from harness.solvers.backends import PerElementTime, SolverBackend
from harness.solvers.settings import NFECapExceeded, SolverConfig, interval_tensor
from harness.solvers.torchdiffeq_backend import TORCHDIFFEQ
from harness.toolkit.nfe import NFECounter, Ticks
from harness.toolkit.pullbacks import PlainMLP

#: A solve's VJP of its dynamics (``bind_vjp``): (t, z, a) ↦ (F(z), aᵀ∂F/∂z, {parameter:
#: aᵀ∂F/∂parameter}), one function evaluation each call.
BoundVJP = Callable[[Tensor | None, Tensor, Tensor], tuple[Tensor, Tensor, dict[Tensor, Tensor]]]


class Dynamics(nn.Module):
    """The right-hand side torchdiffeq calls: one flat state in, one flat derivative out.

    The state's parts sit side by side along dim 1; every call is one function evaluation.
    When f is a plain MLP (:class:`harness.toolkit.pullbacks.PlainMLP`) and the family has a
    hand-written VJP, ``has_vjp`` is true and :meth:`vjp` serves adjoints without autograd;
    calls without a graph then skip f's module calls too.
    """

    def __init__(self, family: Family, f: nn.Module, counter: Ticks) -> None:
        super().__init__()
        self.family = family
        self.f = f
        self.counter = counter
        self.n_parts = len(family.parts)
        self.plain_f = PlainMLP.of(f)
        self.family_vjp = family.has_derivatives_vjp()

    @property
    def has_vjp(self) -> bool:
        """Whether :meth:`vjp` computes what autograd through this module would (no hooks here
        for it to skip)."""
        return self.family_vjp and self._plain() and not _hooked(self)

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        self.counter.tick()
        f = (self.f if torch.is_grad_enabled() or not self._plain()
             else self.plain_f.bind(transposed=False))
        return self.evaluate(t, z, self.family, f)

    def bind_field(self) -> VectorField:
        """:meth:`forward` as one solve calls it: without a graph, f's layers bound once
        (:meth:`PlainMLP.bind`) if it is plain when the solve starts (nothing in a solve
        registers a hook or reparametrises a weight). With hooks of its own, the module itself,
        so that they run."""
        if _hooked(self):
            return self
        tick, evaluate, family, modules = self.counter.tick, self.evaluate, self.family, self.f
        plain = self.plain_f.bind() if self._plain() else None

        def field(t: Tensor | None, z: Tensor) -> Tensor:
            tick()
            f = modules if plain is None or torch.is_grad_enabled() else plain
            return evaluate(t, z, family, f)
        return field

    def evaluate(self, t: Tensor, z: Tensor, family: Family, f: nn.Module) -> Tensor:
        """The derivative at (t, z) with ``family`` and ``f`` in place of these dynamics' own
        (an ensemble's family and network for the members of one call), counting nothing."""
        return self._join(family.derivatives(t, self._split(z), f))

    def vjp(self, t: Tensor | None, z: Tensor, a: Tensor
            ) -> tuple[Tensor, Tensor, dict[Tensor, Tensor]]:
        """(F(z), aᵀ∂F/∂z, {parameter: aᵀ∂F/∂parameter}) by hand: one function evaluation. The
        derivatives do not read t (:meth:`Family.derivatives_vjp`): it may be None."""
        return self.bind_vjp(transposed=False)(t, z, a)

    def bind_vjp(self, transposed: bool = True) -> BoundVJP:
        """:meth:`vjp` as one solve calls it (where :attr:`has_vjp` holds when the solve
        starts; nothing in a solve registers a hook or reparametrises a weight): f's layers
        (:meth:`PlainMLP.bind`) and the family's parameters, whose gradients may come unsummed,
        looked up once, not per call (``transposed``: see :meth:`PlainMLP.bind`)."""
        tick, split, join = self.counter.tick, self._split, self._join
        derivatives_vjp = self.family.derivatives_vjp
        field = self.plain_f.bind(transposed=transposed).vjp
        own = tuple((parameter, parameter.shape) for parameter in self.family.parameters())

        def vjp(t: Tensor | None, z: Tensor, a: Tensor
                ) -> tuple[Tensor, Tensor, dict[Tensor, Tensor]]:
            tick()
            derivatives, cotangent, grads = derivatives_vjp(t, split(z), split(a), field)
            for parameter, shape in own:  # a family parameter's may be unsummed
                grad = grads.get(parameter)
                if grad is not None and grad.shape != shape:  # a scalar's: sum(), the same bits
                    grads[parameter] = grad.sum_to_size(shape) if shape else grad.sum()
            return join(derivatives), join(cotangent), grads
        return vjp

    def evaluate_vjp(self, t: Tensor, z: Tensor, a: Tensor, family: Family,
                     f: DifferentiableField) -> tuple[Tensor, Tensor, dict[Tensor, Tensor]]:
        """:meth:`vjp` with ``family`` and ``f`` in place of these dynamics' own (as
        :meth:`evaluate`), counting nothing, the family's gradients as it gives them (perhaps
        unsummed: :meth:`Family.derivatives_vjp`)."""
        derivatives, cotangent, grads = family.derivatives_vjp(t, self._split(z), self._split(a), f)
        return self._join(derivatives), self._join(cotangent), grads

    def _plain(self) -> bool:
        return self.plain_f is not None and self.plain_f.intact()

    def _split(self, z: Tensor) -> tuple[Tensor, ...]:
        return (z,) if self.n_parts == 1 else z.chunk(self.n_parts, dim=1)

    def _join(self, parts: tuple[Tensor, ...]) -> Tensor:
        return parts[0] if self.n_parts == 1 else torch.cat(parts, dim=1)


class Rescaled(PerElementTime, nn.Module):
    """The dynamics times a per-element factor, made for one solve.

    The factor travels with the solve (this object is what the adjoint calls back later),
    never as state left on the block for ``backward()`` to read.
    """

    def __init__(self, dynamics: Dynamics, scale: Tensor) -> None:
        super().__init__()
        self.dynamics = dynamics
        self.scale = scale

    @property
    def has_vjp(self) -> bool:
        return self.dynamics.has_vjp

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        return self.dynamics(t, z) * self.scale

    def bind_field(self) -> VectorField:
        """:meth:`forward` for one solve (the dynamics' own binding); with hooks, the module."""
        if _hooked(self):
            return self
        field, scale = self.dynamics.bind_field(), self.scale

        def scaled(t: Tensor | None, z: Tensor) -> Tensor:
            return field(t, z) * scale
        return scaled

    def bind_vjp(self) -> BoundVJP:
        """(s·F, aᵀ∂(s·F)/∂z, …) for one solve: F's VJP at the cotangent s·a. No gradient
        reaches the durations (data, not parameters), as with autograd."""
        vjp, scale = self.dynamics.bind_vjp(), self.scale

        def scaled(t: Tensor | None, z: Tensor, a: Tensor
                   ) -> tuple[Tensor, Tensor, dict[Tensor, Tensor]]:
            derivative, cotangent, grads = vjp(t, z, a * scale)
            return derivative * scale, cotangent, grads
        return scaled


class Capped(nn.Module):
    """Fails a solve that calls the dynamics more than ``cap`` times; made for one solve, whose
    forward and adjoint passes (told apart by the counter's phase) each get the full cap."""

    def __init__(self, func: nn.Module, cap: int, counter: Ticks) -> None:
        super().__init__()
        self.func, self.cap, self.counter = func, cap, counter
        self.phase, self.calls = counter.phase, 0

    @property
    def has_vjp(self) -> bool:
        return getattr(self.func, "has_vjp", False)

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        self._count()
        return self.func(t, z)

    def bind_field(self) -> VectorField:
        """:meth:`forward` for one solve (``func``'s binding where it has one); with hooks,
        the module."""
        if _hooked(self):
            return self
        bind = getattr(self.func, "bind_field", None)
        field, count = (self.func if bind is None else bind()), self._count

        def capped(t: Tensor | None, z: Tensor) -> Tensor:
            count()
            return field(t, z)
        return capped

    def bind_vjp(self) -> BoundVJP:
        """The VJP of ``func`` for one solve, counted against the cap."""
        vjp, count = self.func.bind_vjp(), self._count

        def capped(t: Tensor | None, z: Tensor, a: Tensor
                   ) -> tuple[Tensor, Tensor, dict[Tensor, Tensor]]:
            count()
            return vjp(t, z, a)
        return capped

    def _count(self) -> None:
        if self.counter.phase != self.phase:
            self.phase, self.calls = self.counter.phase, 0
        self.calls += 1
        if self.calls > self.cap:
            raise NFECapExceeded(f"one {self.phase} solve needed more than {self.cap} evaluations "
                                 f"(solver.max_nfe)")


class ODEBlock(nn.Module):
    """Forms the initial state, solves over the family's interval with ``backend``, and reads
    parts back. ``backend`` is the one ``solver.backend`` names (a run takes it from its
    registry); without a registry, the built-in torchdiffeq one."""

    def __init__(self, family: Family, f: nn.Module, width: int, solver: SolverConfig,
                 counter: NFECounter, backend: SolverBackend = TORCHDIFFEQ) -> None:
        super().__init__()
        if backend.name != solver.backend:
            raise ValueError(f"solver.backend is {solver.backend!r}, but the ODE block was given "
                             f"the {backend.name!r} backend")
        self.dynamics = Dynamics(family, f, counter)
        self.width = width
        self.backend = backend
        self.solver = solver

    @property
    def solver(self) -> SolverConfig:
        return self.bound.config

    @solver.setter
    def solver(self, config: SolverConfig) -> None:
        """Set the settings and bind the backend to them: its options are read here, once,
        not on every solve."""
        self.bound = self.backend.bind(config)

    @property
    def family(self) -> Family:
        return self.dynamics.family

    def initial_state(self, x: Tensor, velocity_net: nn.Module | None = None) -> Tensor:
        """The initial state from x (c channels along dim 1): each part as the family's
        ``initial_state`` says (x, zeros, or its share of ``velocity_net(x)``), side by side.
        For the paper's families that is [x, zeros] or [x, velocity_net(x)]."""
        layout = self.family.initial_layout(self.width, x.shape[1])
        wanted = sum(channels for source, channels in layout if source == "network")
        network = None
        if self.family.uses_network():
            if velocity_net is None:
                raise ValueError(f"family {self.family.name!r} needs an initial-velocity network")
            network = velocity_net(x)
            if network.shape[1] != wanted:
                raise ValueError(f"initial-velocity network gives {network.shape[1]} channels; "
                                 f"family {self.family.name!r} with n={self.width} and a "
                                 f"{x.shape[1]}-channel input needs {wanted}")
        pieces, used = [], 0
        for source, channels in layout:
            if source == "input":
                pieces.append(x)
            elif source == "network":
                pieces.append(network[:, used:used + channels] if channels != wanted else network)
                used += channels
            else:
                pieces.append(x.new_zeros((x.shape[0], channels, *x.shape[2:])))
        return torch.cat(pieces, dim=1) if len(pieces) > 1 else pieces[0]

    def forward(self, z0: Tensor, duration: Tensor | None = None) -> Tensor:
        """The state at the end of the family's interval.

        With ``duration`` (one length per batch element), each element is carried across its
        own time span in one batched solve, by the change of time interval: g' = s·F(g) on the
        family's interval, s = duration / interval length. f then sees the rescaled time τ.
        """
        return self.solve(self.dynamics, z0, duration)

    def solve(self, dynamics: Dynamics, z0: Tensor, duration: Tensor | None = None) -> Tensor:
        """:meth:`forward` with ``dynamics`` in place of the block's own (the same family and
        counter with another network: an input-fed one, :mod:`harness.toolkit.forcing`)."""
        t = interval_tensor(*self.family.interval, like=z0)
        scale = (None if duration is None
                 else (duration / (t[1] - t[0])).reshape(-1, *([1] * (z0.dim() - 1))))
        return self.integrate(dynamics, z0, t, scale)

    def through(self, z0: Tensor, offsets: Tensor) -> Tensor:
        """The states (len(offsets) − 1, batch, …) at offsets[1:] of the trajectory from z0 at
        offsets[0] (1-D, increasing, the same for every element), in one solve where the
        backend can (:meth:`~harness.solvers.backends.SolverBackend.solve_through`). Time runs
        unscaled from the start of the family's interval (t0 + offsets − offsets[0]): the
        solver's first step depends on the time scale, and this is the scale of the offsets
        themselves, not of the interval."""
        times = (offsets - offsets[0]).to(z0) + self.family.interval[0]
        return self.integrate(self.dynamics, z0, times, None, through=True)

    def integrate(self, dynamics: Dynamics, z0: Tensor, t: Tensor, scale: Tensor | None,
                  through: bool = False) -> Tensor:
        """``dynamics`` (times ``scale``, per element, when given) solved by the bound backend
        from z0 at t[0]: the state at t[-1], or with ``through`` the states at t[1:]."""
        func = self.per_solve(dynamics, scale, self.dynamics.counter)
        note = self.dynamics.counter.note
        if through:
            return self.bound.through(func, z0, t, note)
        return self.bound.solve(func, z0, t, note)

    def per_solve(self, dynamics: nn.Module, scale: Tensor | None, counter: Ticks) -> nn.Module:
        """``dynamics`` as one solve calls them: times ``scale`` when given, failing past
        ``solver.max_nfe`` evaluations (counted on ``counter``) when that is set."""
        func = dynamics if scale is None else Rescaled(dynamics, scale)
        if self.solver.max_nfe:
            return Capped(func, self.solver.max_nfe, counter)
        return func

    def part(self, z: Tensor, name: str | None = None) -> Tensor:
        """One part of states z (batch, P·n, …): the family's ``readout`` part unless named."""
        return part_of(self.family, z, name, dim=1)


def _hooked(module: nn.Module) -> bool:
    """Whether ``module`` has hooks of its own, which a call past ``module(…)`` would skip."""
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or module._backward_pre_hooks)


def part_of(family: Family, z: Tensor, name: str | None, dim: int) -> Tensor:
    """The part ``name`` (by default the family's readout) of states z, whose parts lie side
    by side along ``dim``."""
    return z.chunk(len(family.parts), dim=dim)[family.parts.index(name or family.readout)]
