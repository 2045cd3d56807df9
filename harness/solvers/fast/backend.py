"""The ``fast`` solver backend: torchdiffeq's dopri5, bosh3, fehlberg2, adaptive_heun, euler and
rk4 steps on one flat state (:mod:`harness.solvers.fast.integrators`), with a flat-state adjoint
(:mod:`harness.solvers.fast.adjoint`); for an ensemble, the same steps for every member at once,
each under its own step control (:mod:`harness.solvers.fast.members`,
:mod:`harness.solvers.fast.member_adjoint`)."""
from __future__ import annotations

from torch import Tensor, nn

from harness.solvers.backends import Bound, Note, SolverBackend, per_interval
from harness.solvers.fast.adjoint import solve_flat
from harness.solvers.fast.integrators import METHOD_OPTIONS, integrator
from harness.solvers.fast.member_adjoint import solve_members
from harness.solvers.fast.members import member_integrator
from harness.solvers.members import MemberODE
from harness.solvers.settings import SolverConfig


class FastBackend(SolverBackend):
    """torchdiffeq's adaptive Runge–Kutta methods, euler and rk4, taking its steps, with a
    flat-state adjoint."""

    name, package, methods = "fast", "harness", tuple(METHOD_OPTIONS)

    def check(self, config: SolverConfig) -> None:
        integrator(config.method, config.rtol, config.atol, config.options)

    def solve(self, func: nn.Module, z0: Tensor, t: Tensor, config: SolverConfig) -> Tensor:
        return self.bind(config).solve(func, z0, t, None)

    def bind(self, config: SolverConfig) -> Bound:
        return _Fast(self, config)


class _Fast(Bound):
    """The fast backend with a run's integrators, solo and per member, its options read once."""

    def __init__(self, backend: FastBackend, config: SolverConfig) -> None:
        super().__init__(backend, config)
        self.integrate = integrator(config.method, config.rtol, config.atol, config.options)
        self.integrate_members = member_integrator(config.method, config.rtol, config.atol,
                                                   config.options)

    def solve(self, func: nn.Module, z0: Tensor, t: Tensor, note: Note | None) -> Tensor:
        t0, t1 = t.tolist()
        return solve_flat(func, z0, t0, t1, self.integrate, self.config.adjoint)

    def solve_members(self, ode: MemberODE, z0: Tensor, t: Tensor) -> Tensor:
        """All members in one solve, each member's steps its own (its solo run's)."""
        t0, t1 = t.tolist()
        return solve_members(ode, z0, t0, t1, self.integrate_members, self.config.adjoint)

    def through_members(self, ode: MemberODE, z0: Tensor, t: Tensor) -> Tensor:
        """One :meth:`solve_members` per interval, as the fast backend's solo ``through``."""
        return per_interval(lambda z, span: self.solve_members(ode, z, span), z0, t)
