"""Solver backends: what integrates a run's ODEs, chosen per suite entry (``solver.backend``).

A backend is an object with a ``name``, the ``package`` whose version the record names, the
``methods`` it has, ``check(config)`` and ``solve(func, z0, t, config)``, which integrates
``func`` from z0 over t = [t0, t1] and returns the state at t1, gradients included (with the
adjoint when ``config.adjoint``). A backend with statistics of its own (the proximal backend's
outer steps and inner iterations) overrides ``solve_noting``, which the ODE block calls and
which hands them to the run's record. A backend that reads ``config.options`` (into step
control, an inner solver's settings) overrides ``bind(config)``, which the ODE block calls once
when it is built, so that no solve reads them again. It calls ``func(t, z)`` like torchdiffeq
does, so NFE counting, per-element time scaling and NFE caps (which wrap ``func``) work for
every backend.

Every backend solves ensembles too (:meth:`Bound.solve_members`): by default member by member
through its ordinary solve, each member with its own parameters, NFE count and cap, so each
takes its solo run's steps. A backend that steps M members at once, each with its own step
control (the fast backend), overrides ``solve_members`` and ``through_members`` on its bound
object (:mod:`harness.solvers.members`).

Built in (:mod:`harness.solvers.built_in`): ``torchdiffeq`` (:mod:`harness.solvers.torchdiffeq_backend`,
the reference, and the default), ``fast`` (:mod:`harness.solvers.fast.backend`, the same steps on one
flat state) and ``torchode`` (:mod:`harness.solvers.torchode_backend`, when the optional torchode
package is installed). Plugins add more through the ``harness_solver_backends`` hook, as they
add models: the hook returns the classes, which the registry instantiates once (without
arguments) when the plugins load; a run uses the backend of the registry it was built with (``registry.backends``),
which hands it to the run's ODE blocks.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from importlib.metadata import PackageNotFoundError, version
from typing import Callable, ClassVar, Mapping

import torch
from torch import Tensor, nn

from harness.solvers.members import MemberODE, one_by_one
from harness.solvers.settings import SolverConfig

Note = Callable[[Mapping[str, float]], None]
"""Takes one solve's statistics, {name: number}, into the current phase of the run's record."""


class SolverBackend(ABC):
    """Integrates an ODE block's dynamics; see the module's docstring."""

    name: ClassVar[str]
    package: ClassVar[str]
    methods: ClassVar[tuple[str, ...]]

    @property
    def version(self) -> str | None:
        try:
            return version(self.package)
        except PackageNotFoundError:
            return None

    def check(self, config: SolverConfig) -> None:
        """Raise ValueError when this backend cannot solve with ``config``."""
        if config.method not in self.methods:
            raise ValueError(f"solver backend {self.name!r} has no method {config.method!r}; "
                             f"valid: {', '.join(self.methods)}")

    @abstractmethod
    def solve(self, func: nn.Module, z0: Tensor, t: Tensor, config: SolverConfig) -> Tensor:
        """The state at t[-1]."""

    def solve_noting(self, func: nn.Module, z0: Tensor, t: Tensor, config: SolverConfig,
                     note: Note | None) -> Tensor:
        """:meth:`solve`, handing ``note`` the statistics of each solve it makes (the forward
        one and, with the adjoint, the backward one). The default has none to hand."""
        return self.solve(func, z0, t, config)

    def solve_through(self, func: nn.Module, z0: Tensor, t: Tensor, config: SolverConfig,
                      note: Note | None) -> Tensor:
        """The states at each of t[1:] (len(t) − 1, *z0.shape) of the trajectory from z0 at
        t[0]. The default: one solve per interval, each from the state the last one reached;
        a backend that outputs at several times from one solve (torchdiffeq) overrides it."""
        return self.bind(config).through(func, z0, t, note)

    def bind(self, config: SolverConfig) -> "Bound":
        """This backend with one run's settings, what an ODE block solves with: made once, when
        the block is built, so that a backend reading ``config.options`` (into step control, an
        inner solver's settings) overrides this to read them there, not on every solve."""
        return Bound(self, config)


class Bound:
    """A backend bound to one run's solver settings (:meth:`SolverBackend.bind`). The default
    hands each solve to the backend's :meth:`~SolverBackend.solve_noting` and
    :meth:`~SolverBackend.solve_through`."""

    def __init__(self, backend: SolverBackend, config: SolverConfig) -> None:
        self.backend, self.config = backend, config

    def solve(self, func: nn.Module, z0: Tensor, t: Tensor, note: Note | None) -> Tensor:
        """The state at t[-1] (:meth:`SolverBackend.solve_noting`)."""
        return self.backend.solve_noting(func, z0, t, self.config, note)

    def through(self, func: nn.Module, z0: Tensor, t: Tensor, note: Note | None) -> Tensor:
        """The states at t[1:] (:meth:`SolverBackend.solve_through`): the backend's own when it
        has one, else one :meth:`solve` per interval, each from the state the last reached."""
        if type(self.backend).solve_through is not SolverBackend.solve_through:
            return self.backend.solve_through(func, z0, t, self.config, note)
        return per_interval(lambda z, span: self.solve(func, z, span, note), z0, t)

    def solve_members(self, ode: MemberODE, z0: Tensor, t: Tensor) -> Tensor:
        """Every member's state at t[-1] (z0 and the result hold member m's rows at
        [m·B, (m+1)·B)), each member as its solo run's :meth:`solve`. The default: the members
        one by one, each through :meth:`solve`."""
        return one_by_one(ode, z0, lambda func, start: self.solve(func, start, t, None))

    def through_members(self, ode: MemberODE, z0: Tensor, t: Tensor) -> Tensor:
        """Every member's states at t[1:] (len(t) − 1, M·B, …), each member as its solo run's
        :meth:`through`. The default: the members one by one, each through :meth:`through`."""
        return one_by_one(ode, z0, lambda func, start: self.through(func, start, t, None),
                          len(t) - 1)


def per_interval(solve: Callable[[Tensor, Tensor], Tensor], z0: Tensor, t: Tensor) -> Tensor:
    """The states at t[1:] by one ``solve(z, [t_i, t_i+1])`` per interval, each from the state
    the last one reached."""
    states, z = [], z0
    for t0, t1 in zip(t[:-1], t[1:]):
        z = solve(z, torch.stack([t0, t1]))
        states.append(z)
    return torch.stack(states)


class PerElementTime:
    """Marks a dynamics wrapper whose calls read per-element times or an input signal (the
    ODE block's per-element durations, an input-fed right-hand side): a backend that cannot
    carry those through its adjoint refuses a ``func`` holding one."""
