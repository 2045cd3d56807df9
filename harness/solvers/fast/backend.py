"""The ``fast`` solver backend: torchdiffeq's dopri5, euler and rk4 steps on one flat state
(:mod:`harness.solvers.fast.integrators`), with a flat-state adjoint (:mod:`harness.solvers.fast.adjoint`)."""
from __future__ import annotations

from torch import Tensor, nn

from harness.solvers.backends import SolverBackend
from harness.solvers.fast.adjoint import solve_flat
from harness.solvers.fast.integrators import METHOD_OPTIONS, integrator
from harness.solvers.settings import SolverConfig


class FastBackend(SolverBackend):
    """dopri5, euler and rk4 taking torchdiffeq's steps, with a flat-state adjoint."""

    name, package, methods = "fast", "harness", tuple(METHOD_OPTIONS)

    def check(self, config: SolverConfig) -> None:
        integrator(config.method, config.rtol, config.atol, config.options)

    def solve(self, func: nn.Module, z0: Tensor, t: Tensor, config: SolverConfig) -> Tensor:
        t0, t1 = t.tolist()
        integrate = integrator(config.method, config.rtol, config.atol, config.options)
        return solve_flat(func, z0, t0, t1, integrate, config.adjoint)
