"""The fast backend's solve for an ensemble, with or without its adjoint, member by member.

As :mod:`harness.solvers.fast.adjoint` does for one run, with M members side by side: the
forward solve is each member's own (:mod:`harness.solvers.fast.members`), and the adjoint solve
runs backwards on rows [z, a, g, τ] that are each member's solo augmented state — its state, its
adjoint, the gradient of its slice of every stacked parameter, its time adjoint — with the
member's own norm (torchdiffeq's default adjoint norm over its row), so every member takes the
backward steps of its solo adjoint. The vector-Jacobian products are taken by hand where the
members' dynamics offer it (:meth:`MemberODE.field_vjp`: a family's ``derivatives_vjp`` around
the stacked network's pullback, as a solo run's), else from autograd; either way one call of
the field for all members per evaluation.

Members that fail a solve are frozen and reported to the :class:`MemberODE` (each solve's
:class:`Running` collects them); their rows of the results are meaningless.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from harness.solvers.fast.adjoint import AdjointSolve, parameter_gradients
from harness.solvers.fast.members import MemberIntegrate, MemberNorm, rms_rows
from harness.solvers.members import MemberODE, Running


class MemberProblem:
    """One solve of ``ode``'s members over [t0, t1], forwards and for the adjoint backwards,
    through its batched field (``ode.params``: the stacked parameters it reads)."""

    def __init__(self, ode: MemberODE, z0: Tensor, t0: float, t1: float,
                 integrate: MemberIntegrate) -> None:
        self.ode, self.field, self.params = ode, ode.field, ode.params
        self.shape, self.t0, self.t1, self.integrate = z0.shape, t0, t1, integrate
        self.size = ode.size
        self.dtype, self.device, self.on_cpu = z0.dtype, z0.device, z0.device.type == "cpu"

    def times(self, t: np.ndarray) -> Tensor:
        """Each row's time (the state's precision, as the integrator's stage times are) as a
        tensor: no copy on the CPU (``from_numpy``: a third of ``as_tensor``'s overhead)."""
        times = torch.from_numpy(t)
        if times.dtype != self.dtype or not self.on_cpu:  # a fixed grid's times are float64
            times = times.to(self.device, self.dtype)
        return times

    def forward(self, z0: Tensor) -> Tensor:
        timeless = self.ode.has_vjp  # its derivatives read no time: none made (as a solo run's)

        def flat(t: np.ndarray, y: Tensor, running: Running) -> Tensor:
            return self.field(None if timeless else self.times(t), self._model_shape(y),
                              running).reshape(len(y), -1)
        return self._solve(flat, z0.reshape(self.size, -1), self.t0, self.t1, rms_rows,
                           None).view(self.shape)

    def backward(self, z1: Tensor, grad: Tensor) -> tuple[Tensor, ...]:
        """(dL/dz0, dL/dθ for each stacked parameter) from each member's backward solve."""
        rows = z1.reshape(self.size, -1)
        n = rows.shape[1]
        sizes = [p[0].numel() for p in self.params]
        state = torch.cat([rows, grad.reshape(self.size, -1),
                           rows.new_zeros(self.size, sum(sizes) + 1)], dim=1)
        end = self._solve(self._augmented(n), state, -self.t1, -self.t0,
                          _adjoint_norm([n, n, *sizes], z1.device), 2 * n)
        gradients = end[:, 2 * n:-1].split(sizes, dim=1)
        return (end[:, n:2 * n].reshape(self.shape),
                *(g.reshape(p.shape) for g, p in zip(gradients, self.params)))

    def _solve(self, func: Any, y0: Tensor, t0: float, t1: float, norm: MemberNorm,
               live: int | None) -> Tensor:
        running = Running(self.ode.solving())
        try:
            return self.integrate(func, y0, t0, t1, norm, live, running)
        finally:
            for member, error in running.failures.items():
                self.ode.fail(member, error)

    def _augmented(self, n: int) -> Any:
        """Each member's d[z, a, g, τ]/ds in reversed time s = −t: by hand where the members'
        dynamics have a VJP (``ode.has_vjp``, autonomous as a solo run's hand VJP), else by
        autograd."""
        if self.ode.has_vjp:
            return self._augmented_by_hand(n)

        def augmented(s: np.ndarray, state: Tensor, running: Running) -> Tensor:
            count = len(state)
            z = self._model_shape(state[:, :n]).detach().requires_grad_(True)
            a = self._model_shape(state[:, n:2 * n])
            t = self.times(np.negative(s)).requires_grad_(True)
            with torch.enable_grad():
                fz = self.field(t, z, running)
                vjp_t, vjp_z, *vjps = torch.autograd.grad(
                    fz, (t, z, *self.params), a, allow_unused=True, materialize_grads=True)
            rows = torch.from_numpy(running.rows).to(state.device)
            return torch.cat([fz.detach().neg().reshape(count, -1), vjp_z.reshape(count, -1),
                              *(v[rows].reshape(count, -1) for v in vjps),
                              vjp_t.reshape(count, 1)], dim=1)
        return augmented

    def _augmented_by_hand(self, n: int) -> Any:
        def augmented(s: np.ndarray, state: Tensor, running: Running) -> Tensor:
            count = len(state)
            with torch.no_grad():
                fz, vjp_z, grads = self.ode.field_vjp(  # the VJP reads no time
                    None, self._model_shape(state[:, :n]), self._model_shape(state[:, n:2 * n]),
                    running)
                return torch.cat([fz.neg().reshape(count, -1), vjp_z.reshape(count, -1),
                                  *(g.reshape(count, -1)
                                    for g in parameter_gradients(grads, self.params)),
                                  state.new_zeros(count, 1)], dim=1)
        return augmented

    def _model_shape(self, rows: Tensor) -> Tensor:
        """Rows of some members (M', N) as the model's state of those members (M'·B, …)."""
        return rows.reshape(-1, *self.shape[1:])


def _adjoint_norm(sizes: list[int], device: torch.device) -> MemberNorm:
    """Each row's max(|τ|, rms(z), rms(a), rms of each parameter's gradient): torchdiffeq's
    default adjoint norm, member by member."""
    segments = torch.tensor(sizes, device=device)
    lengths = {}  # the segments of each member count's rows, made once

    def norm(x: Tensor) -> Tensor:
        squares = x[:, :-1].pow(2).reshape(-1)  # x², bit for bit |x|², one pass fewer
        if x.shape[0] not in lengths:
            lengths[x.shape[0]] = segments.repeat(x.shape[0])
        means = torch.segment_reduce(squares, "mean", lengths=lengths[x.shape[0]])
        return torch.maximum(means.view(x.shape[0], -1).amax(dim=1).sqrt(), x[:, -1].abs())
    return norm


def solve_members(ode: MemberODE, z0: Tensor, t0: float, t1: float, integrate: MemberIntegrate,
                  adjoint: bool) -> Tensor:
    """The members' states at t1; with ``adjoint``, gradients come from each member's backward
    solve. Only the members ``ode.solving()`` names (read at each solve: members that fail
    later are skipped by the adjoint) are solved; the others' rows pass through unchanged,
    forwards and backwards. Each failure goes to ``ode.fail`` when its solve ends."""
    problem = MemberProblem(ode, z0, t0, t1, integrate)
    return AdjointSolve.apply(problem, z0, *ode.params) if adjoint else problem.forward(z0)
