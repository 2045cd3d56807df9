"""The fast backend's solve, with or without its adjoint on one flat augmented state.

The adjoint is torchdiffeq's: after the forward solve (no graph kept), ``backward()`` solves
the state z, its adjoint a and the parameters' gradient g backwards from t1 to t0 with the same
method and tolerances, taking each vector-Jacobian product of f by hand where the dynamics
have one (:mod:`harness.toolkit.pullbacks`) and with ``torch.autograd.grad`` elsewhere — one call of f
each, so one NFE. The augmented state is one flat tensor [z, a, g, τ] (τ the
time adjoint) rather than torchdiffeq's tuple of every parameter; its error norm is
torchdiffeq's default adjoint norm (the largest of |τ| and the RMS norms of z, of a and of each
parameter's gradient), taken in one segmented reduction, so the backward solve takes the same
steps, for time-dependent families too.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch._utils import _flatten_dense_tensors as flatten

from harness.solvers.fast.integrators import FlatFunc, Integrate, Norm, rms_norm


class FlatProblem:
    """One solve of ``func`` over [t0, t1]: the function on the flat state, forwards and for
    the adjoint backwards."""

    def __init__(self, func: nn.Module, z0: Tensor, t0: float, t1: float, integrate: Integrate,
                 params: tuple[nn.Parameter, ...]) -> None:
        self.func, self.shape, self.t0, self.t1 = func, z0.shape, t0, t1
        self.integrate, self.params = integrate, params
        self.dtype, self.device = z0.dtype, z0.device

    def time(self, t: Any) -> Tensor:
        return torch.scalar_tensor(float(t), dtype=self.dtype, device=self.device)

    def field(self) -> FlatFunc:
        """f on the flat state, bound for this solve where the dynamics offer it
        (``bind_field``). Dynamics with a hand-written VJP do not read t (their families'
        contract: :meth:`~harness.contract.Family.derivatives_vjp`), so they get None for it,
        without a tensor made per call."""
        bind, shape = getattr(self.func, "bind_field", None), self.shape
        func = self.func if bind is None else bind()
        if getattr(self.func, "has_vjp", False):
            return lambda t, z: func(None, z.view(shape)).reshape(-1)
        return lambda t, z: func(self.time(t), z.view(shape)).reshape(-1)

    def forward(self, z0: Tensor) -> Tensor:
        return self.integrate(self.field(), z0.reshape(-1), self.t0, self.t1, rms_norm,
                              None).view(self.shape)

    def backward(self, z1: Tensor, grad: Tensor) -> tuple[Tensor, ...]:
        """(dL/dz0, dL/dθ for each parameter) from the backward solve started at (z1, dL/dz1)."""
        n = z1.numel()
        sizes = [p.numel() for p in self.params]
        state = torch.cat([z1.reshape(-1), grad.reshape(-1), z1.new_zeros(sum(sizes) + 1)])
        end = self.integrate(self._augmented(n), state, -self.t1, -self.t0,
                             _adjoint_norm([n, n, *sizes], z1.device), 2 * n)  # f reads z and a
        gradients = end[2 * n:-1].split(sizes)
        return (end[n:2 * n].view(self.shape),
                *(g.view_as(p) for g, p in zip(gradients, self.params)))

    def _augmented(self, n: int) -> FlatFunc:
        """d[z, a, g, τ]/ds in reversed time s = −t: [−f, aᵀ∂f/∂z, aᵀ∂f/∂θ, aᵀ∂f/∂t]. τ, the
        time adjoint, is 0 for autonomous dynamics; it is carried only because torchdiffeq's
        step control takes it into its norm, so that time-dependent families step alike.

        Dynamics with a hand-written VJP (``func.has_vjp``, autonomous by contract) take it
        instead of autograd: the same values, at about a third of the cost."""
        if getattr(self.func, "has_vjp", False):
            return self._augmented_by_hand(n)

        def augmented(s: Any, state: Tensor) -> Tensor:
            z = state[:n].view(self.shape).detach().requires_grad_(True)
            a = state[n:2 * n].view(self.shape)
            t = self.time(-s).requires_grad_(True)
            with torch.enable_grad():
                fz = self.func(t, z)
                vjp_t, *vjps = torch.autograd.grad(fz, (t, z, *self.params), a, allow_unused=True,
                                                   materialize_grads=True)
            return torch.cat([fz.detach().neg().reshape(-1), *(v.reshape(-1) for v in vjps),
                              vjp_t.reshape(1)])
        return augmented

    def _augmented_by_hand(self, n: int) -> FlatFunc:
        """:meth:`_augmented` by the dynamics' VJP bound for this solve (``bind_vjp``: what a
        solve cannot change looked up once), with t None (they do not read it), in as few
        torch calls as the values allow: the grad mode switched only where a graph would be
        recorded, z and a as the two halves of one view, and the pieces flattened and joined in
        one call (torch's ``_flatten_dense_tensors``, the cat of their flat views that DDP's
        buckets use: the same values as ``reshape`` + ``cat``, five torch calls fewer)."""
        time_adjoint = torch.zeros(1, dtype=self.dtype, device=self.device)
        vjp, shape, params = self.func.bind_vjp(), self.shape, self.params

        def augmented(s: Any, state: Tensor) -> Tensor:
            if torch.is_grad_enabled():
                with torch.no_grad():
                    return augmented(s, state)
            fz, vjp_z, grads = vjp(None, *state[:2 * n].view(2, *shape).unbind())
            return flatten([fz.neg(), vjp_z, *parameter_gradients(grads, params), time_adjoint])
        return augmented


def parameter_gradients(grads: dict[Tensor, Tensor], params: tuple[Tensor, ...]) -> list[Tensor]:
    """The gradients of ``params`` from a hand-written VJP's {parameter: gradient}; a clear
    error naming the shape of a parameter it left out."""
    try:
        return [grads[p] for p in params]
    except KeyError as missing:
        raise ValueError(
            f"the family's derivatives_vjp gave no gradient for a parameter of shape "
            f"{tuple(missing.args[0].shape)}; harness.conformance.family_checks finds "
            f"which") from None


def _adjoint_norm(sizes: list[int], device: torch.device) -> Norm:
    """max(|τ|, rms(z), rms(a), rms of each parameter's gradient) over [z, a, g, τ]:
    torchdiffeq's default adjoint norm."""
    lengths = torch.tensor(sizes, device=device)

    def norm(x: Tensor) -> Tensor:
        squares = x[:-1].pow(2)  # x², bit for bit |x|², one pass fewer
        rms = torch.segment_reduce(squares, "mean", lengths=lengths).max().sqrt()
        return torch.maximum(rms, x[-1].abs())
    return norm


class AdjointSolve(torch.autograd.Function):
    """z1 = ``problem.forward(z0)`` without a graph; in backward, the gradients of z0 and of the
    parameters from ``problem.backward(z1, grad)``: the adjoint solve. Any problem with those
    two methods (a flat state's, :class:`FlatProblem`; an ensemble's, member by member)."""

    @staticmethod
    def forward(ctx: Any, problem: Any, z0: Tensor, *params: Tensor) -> Tensor:
        with torch.no_grad():
            z1 = problem.forward(z0)
        ctx.problem = problem
        ctx.save_for_backward(z1)
        return z1

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        (z1,) = ctx.saved_tensors
        return (None, *ctx.problem.backward(z1, grad))


def solve_flat(func: nn.Module, z0: Tensor, t0: float, t1: float, integrate: Integrate,
               adjoint: bool) -> Tensor:
    """The state at t1; with ``adjoint``, gradients come from the backward solve."""
    params = tuple(p for p in func.parameters() if p.requires_grad and p.numel())
    problem = FlatProblem(func, z0, t0, t1, integrate, params)
    return AdjointSolve.apply(problem, z0, *params) if adjoint else problem.forward(z0)
