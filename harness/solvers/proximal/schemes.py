"""The outer schemes of the proximal backend on a uniform grid: backward Euler, Crank–Nicolson
and BDF2–BDF4 (§5.2), each update the minimiser of its proximal objective.

Each update solves z = comb + c·s·f(t_{k+1}, z) (:mod:`harness.solvers.proximal.inner`), started
from z_0 = h_k (Algorithm 1):

- BDFq: a·h_{k+1} = Σ_j α_j·h_{k−j} + s·f(h_{k+1}); comb = Σ_j α_j·h_{k−j} / a, c = 1/a
  (backward Euler is BDF1). The dissertation's BDF4 objective prints h_{k−2} in its last term
  where the formula needs h_{k−3}; the coefficients below are the BDF4 ones.
- Crank–Nicolson: h_{k+1} = h_k + s/2·(f(h_k) + f(h_{k+1})); comb = h_k + s/2·f(h_k), c = 1/2:
  one evaluation more per update, for f(h_k).

A solve's NFE is therefore Σ over updates of its inner iterations (+1 for Crank–Nicolson).
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor

from harness.solvers.backends import Note
from harness.solvers.proximal.inner import minimise
from harness.solvers.proximal.options import ProximalOptions

FlatFunc = Callable[[float, Tensor], Tensor]

#: BDF order → (a, (α_0, α_1, …)): a·h_{k+1} = Σ_j α_j·h_{k−j} + s·f(h_{k+1}).
BDF = {
    1: (1.0, (1.0,)),
    2: (3 / 2, (2.0, -1 / 2)),
    3: (11 / 6, (3.0, -3 / 2, 1 / 3)),
    4: (25 / 12, (4.0, -3.0, 4 / 3, -1 / 4)),
}

#: The backend's methods and their order of accuracy.
ORDERS = {"backward_euler": 1, "crank_nicolson": 2, "bdf2": 2, "bdf3": 3, "bdf4": 4}


class _Solve:
    """One solve's updates, counting its inner iterations."""

    def __init__(self, func: FlatFunc, options: ProximalOptions) -> None:
        self.func, self.options = func, options
        self.updates = self.inner = 0

    def implicit(self, comb: Tensor, weight: float, t: float, start: Tensor) -> Tensor:
        """argmin of the objective whose stationary point is z = comb + weight·f(t, z)."""
        z, iterations = minimise(lambda z: z - comb - weight * self.func(t, z), start, self.options)
        self.updates += 1
        self.inner += iterations
        return z

    def bdf(self, order: int, history: list[Tensor], t: float, s: float) -> Tensor:
        """One BDF step from ``history`` (latest first, at least ``order`` states)."""
        a, alphas = BDF[order]
        comb = sum(alpha / a * h for alpha, h in zip(alphas, history))
        return self.implicit(comb, s / a, t + s, history[0])

    def crank_nicolson(self, h: Tensor, t: float, s: float) -> Tensor:
        comb = h + s / 2 * self.func(t, h)
        return self.implicit(comb, s / 2, t + s, h)

    def extrapolated(self, h: Tensor, t: float, s: float) -> Tensor:
        """Crank–Nicolson over s and twice over s/2, combined by Richardson extrapolation
        (CN's error has even powers of the step only, so this is fourth order)."""
        whole = self.crank_nicolson(h, t, s)
        half = self.crank_nicolson(self.crank_nicolson(h, t, s / 2), t + s / 2, s / 2)
        return (4 * half - whole) / 3


def integrator(method: str, options: ProximalOptions, note: Note | None) -> Callable[..., Tensor]:
    """integrate(f, y0, t0, t1, norm, live) for the fast backend's adjoint
    (:data:`harness.solvers.fast.integrators.Integrate`): the state at t1 by ``method`` on the
    options' grid. The norm and ``live`` serve adaptive methods and are not read. ``note``
    receives each solve's outer steps and mean inner iterations per update."""
    order = ORDERS[method]

    def integrate(func: FlatFunc, y0: Tensor, t0: float, t1: float, norm: object = None,
                  live: object = None) -> Tensor:
        if not t1 > t0:
            raise ValueError(f"the proximal backend integrates forwards in time, not from {t0} to {t1}")
        steps = options.outer_steps(t1 - t0)
        s = (t1 - t0) / steps
        solve = _Solve(func, options)
        history = [y0]
        for k in range(steps):
            t = t0 + k * s
            if method == "crank_nicolson":
                h = solve.crank_nicolson(history[0], t, s)
            elif len(history) >= order:
                h = solve.bdf(order, history, t, s)
            elif options.start == "lower_order":
                h = solve.bdf(len(history), history, t, s)
            else:
                h = solve.extrapolated(history[0], t, s)
            history = [h, *history[:order - 1]]
        if note is not None:
            note({"outer_steps": steps, "inner_iterations": solve.inner / solve.updates})
        return history[0]
    return integrate
