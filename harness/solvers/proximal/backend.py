"""The ``proximal`` solver backend: proximal backward Euler, Crank–Nicolson and BDF2–BDF4 with
an inner gradient solver (:mod:`harness.solvers.proximal.schemes`), backpropagated through or,
with ``adjoint: true``, differentiated by the adjoint ODE solved backwards by the same scheme
(the fast backend's flat-state adjoint, :mod:`harness.solvers.fast.adjoint`)."""
from __future__ import annotations

from torch import Tensor, nn

from harness.solvers.backends import Bound, Note, SolverBackend
from harness.solvers.fast.adjoint import solve_flat
from harness.solvers.proximal.options import ProximalOptions
from harness.solvers.proximal.schemes import ORDERS, integrator
from harness.solvers.settings import SolverConfig


class ProximalBackend(SolverBackend):
    """Implicit fixed-step methods in proximal form (the dissertation's chapter 5).

    ``solver.options``: ``step_size`` or ``steps``; ``inner`` (gd, nesterov, restart, fr),
    ``inner_step`` η, ``inner_tol``, ``inner_max_iter``; ``start`` for the BDF history.
    ``rtol`` and ``atol`` are not read. Each solve notes its outer steps and mean inner
    iterations per update.
    """

    name, package, methods = "proximal", "harness", tuple(ORDERS)

    def check(self, config: SolverConfig) -> None:
        super().check(config)
        ProximalOptions.read(config.options)

    def solve(self, func: nn.Module, z0: Tensor, t: Tensor, config: SolverConfig) -> Tensor:
        return self.bind(config).solve(func, z0, t, None)

    def solve_noting(self, func: nn.Module, z0: Tensor, t: Tensor, config: SolverConfig,
                     note: Note | None) -> Tensor:
        return self.bind(config).solve(func, z0, t, note)

    def bind(self, config: SolverConfig) -> Bound:
        return _Proximal(self, config)


class _Proximal(Bound):
    """The proximal backend with a run's options, read once."""

    def __init__(self, backend: ProximalBackend, config: SolverConfig) -> None:
        super().__init__(backend, config)
        self.options = ProximalOptions.read(config.options)

    def solve(self, func: nn.Module, z0: Tensor, t: Tensor, note: Note | None) -> Tensor:
        t0, t1 = t.tolist()
        integrate = integrator(self.config.method, self.options, note)
        return solve_flat(func, z0, t0, t1, integrate, self.config.adjoint)
