"""The inner solvers: argmin_z G(z) for one implicit update z = comb + c·s·f(t, z).

∇G(z) = (z − comb)/(c·s) − f(t, z) (§5.2: comb the combination of past states, c the
scheme's weight of f, s the outer step). The solvers step along the residual
r(z) = c·s·∇G(z) = z − comb − c·s·f(t, z) instead, so the inner step η is dimensionless: η = 1
solves the update in one step when f does not depend on z, and gradient descent converges
when η·(1 + c·s·λ) < 2 for every eigenvalue λ of −∂f/∂z. (On ∇G itself the dissertation's
η = 0.1 at s = 1/2000 would diverge even for f = 0.) Every evaluation of r is one evaluation
of f, so the solve's NFE is its inner iterations. The iteration stops when ‖z_{i+1} − z_i‖
(the 2-norm over the whole state) is at most the tolerance, or at the iteration cap.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from harness.solvers.proximal.options import ProximalOptions
from harness.solvers.settings import SolverFailure

Residual = Callable[[Tensor], Tensor]
"""r(z) = z − comb − c·s·f(t, z): one evaluation of f."""


def minimise(residual: Residual, z: Tensor, options: ProximalOptions) -> tuple[Tensor, int]:
    """(the approximate minimiser started from ``z``, inner iterations taken)."""
    solver = {"gd": _gradient_descent, "fr": _fletcher_reeves,
              "nesterov": _nesterov, "restart": _nesterov_restart}[options.inner]
    return solver(residual, z, options)


def _converged(step: Tensor, iteration: int, options: ProximalOptions) -> bool:
    size = float(torch.linalg.vector_norm(step.detach()))
    if size != size or size == float("inf"):
        raise SolverFailure(f"non-finite values in the proximal inner solve ({options.inner}, "
                            f"inner_step {options.inner_step}); a smaller inner_step or outer "
                            f"step may converge")
    return size <= options.inner_tol or iteration >= options.inner_max_iter


def _gradient_descent(residual: Residual, z: Tensor, options: ProximalOptions) -> tuple[Tensor, int]:
    """z_{i+1} = z_i − η·r(z_i) (eq. 5.7)."""
    iteration = 0
    while True:
        iteration += 1
        step = options.inner_step * residual(z)
        z = z - step
        if _converged(step, iteration, options):
            return z, iteration


def _fletcher_reeves(residual: Residual, z: Tensor, options: ProximalOptions) -> tuple[Tensor, int]:
    """p_i = r(z_i) + β_i·p_{i−1}, z_{i+1} = z_i − η·p_i, β_i = ‖r_i‖²/‖r_{i−1}‖², β_0 = 0
    (eqs. 5.8–5.9; the ratio is the same on ∇G and on r)."""
    direction: Tensor | None = None
    previous = z.new_zeros(())
    iteration = 0
    while True:
        iteration += 1
        r = residual(z)
        squared = r.pow(2).sum()
        direction = r if direction is None else r + squared / previous * direction
        previous = squared
        step = options.inner_step * direction
        z = z - step
        if _converged(step, iteration, options):
            return z, iteration


def _nesterov(residual: Residual, z: Tensor, options: ProximalOptions) -> tuple[Tensor, int]:
    """Nesterov's accelerated gradient: y = z_i + k/(k+3)·(z_i − z_{i−1}), z_{i+1} = y − η·r(y)."""
    return _accelerated(residual, z, options, restart=False)


def _nesterov_restart(residual: Residual, z: Tensor, options: ProximalOptions) -> tuple[Tensor, int]:
    """Nesterov's accelerated gradient whose momentum restarts when the step goes against the
    gradient, r(y)·(z_{i+1} − z_i) > 0 (O'Donoghue and Candès' gradient restart)."""
    return _accelerated(residual, z, options, restart=True)


def _accelerated(residual: Residual, z: Tensor, options: ProximalOptions,
                 restart: bool) -> tuple[Tensor, int]:
    previous, momentum, iteration = z, 0, 0
    while True:
        iteration += 1
        y = z + momentum / (momentum + 3) * (z - previous)
        r = residual(y)
        new = y - options.inner_step * r
        step = new - z
        momentum = 0 if restart and float((r * step).sum()) > 0 else momentum + 1
        previous, z = z, new
        if _converged(step, iteration, options):
            return z, iteration
