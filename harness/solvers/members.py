"""An ensemble's solve: what a backend is handed to solve M members at once, each as its solo
run is solved (:meth:`harness.solvers.backends.Bound.solve_members`), and the default that every
backend has: the members one by one through the backend's ordinary solve.

The state holds the members side by side along dim 0 (member m's rows at [m·B, (m+1)·B)). A
:class:`MemberODE` offers the members two ways: each member's solo dynamics as a module of its
own (:meth:`MemberODE.member`: its own parameters, counting its own NFE and capped as its solo
run's), which any backend solves as it solves a solo run, and all members' dynamics in one
batched call (:meth:`MemberODE.field`), for a backend with per-member step control of its own
(the fast backend's, :mod:`harness.solvers.fast.members`). Either way a member's solve fails
on its own: the member is marked failed, its rows of the result are meaningless, and the others
go on.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import nullcontext
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from harness.solvers.settings import SolverFailure, as_solver_failure


class Running:
    """Which members a batched solve still advances (``active``), the failures it met, by
    member, and which members the rows handed to the field belong to (``rows``, set before
    each call)."""

    def __init__(self, active: np.ndarray) -> None:
        self.active = np.array(active, dtype=bool)
        self.failures: dict[int, BaseException] = {}
        self.rows = np.flatnonzero(self.active)

    def fail(self, member: int, error: BaseException) -> None:
        """Stop ``member`` with ``error`` (the first error of a member is the one kept)."""
        if self.active[member]:
            self.active[member] = False
            self.failures[member] = error


class MemberODE(ABC):
    """One solve of an ensemble's dynamics (made per solve by the ensemble's ODE block)."""

    #: M, the number of members.
    size: int
    #: The members alive, a bool each: read when a solve starts (forwards and, for the
    #: adjoint, backwards), so a member that failed since is not solved again.
    alive: np.ndarray
    #: The members this solve moves at all (None: every one); the others' rows pass through.
    moving: np.ndarray | None
    #: The stacked parameters the dynamics read that take gradients (first dimension M).
    params: tuple[Tensor, ...]
    #: Whether :meth:`field_vjp` takes the field's vector-Jacobian products by hand (else an
    #: adjoint takes them from autograd through :meth:`field`).
    has_vjp: bool = False

    def solving(self) -> np.ndarray:
        """The members to solve now: alive and moving."""
        return self.alive.copy() if self.moving is None else self.alive & self.moving

    @abstractmethod
    def fail(self, member: int, error: BaseException) -> None:
        """Record that ``member``'s solve failed with ``error``."""

    @abstractmethod
    def field(self, t: Tensor | None, z: Tensor, running: Running) -> Tensor:
        """The derivative of the members ``running.rows`` (z holds their rows only, t one time
        per member; None where :attr:`has_vjp`, whose derivatives read no time), one evaluation
        counted for each of them still in ``running.active``; a member past ``solver.max_nfe``
        is stopped through ``running.fail``."""

    def field_vjp(self, t: Tensor | None, z: Tensor, a: Tensor, running: Running
                  ) -> tuple[Tensor, Tensor, dict[Tensor, Tensor]]:
        """Only where :attr:`has_vjp`: :meth:`field` (counted alike), aᵀ∂field/∂z, and
        {stacked parameter: aᵀ∂field/∂parameter for the members ``running.rows``, (M', …)}."""
        raise NotImplementedError

    @abstractmethod
    def member(self, index: int) -> tuple[nn.Module, tuple[Tensor, ...]]:
        """Member ``index``'s dynamics as its solo run's block solves them (made for one solve:
        its own parameters, its own NFE count and cap), and those of its parameters that stand
        for ``params``' slices ``index``, in ``params``' order."""


Solve = Callable[[nn.Module, Tensor], Tensor]
"""solve(func, z0): one member's result, by the backend's ordinary solve (or through)."""


def one_by_one(ode: MemberODE, z0: Tensor, solve: Solve, times: int | None = None) -> Tensor:
    """Each member solved alone by ``solve`` from its rows of z0: the members' states side by
    side, or with ``times``, their states at that many times, (times, M·B, …). Gradients reach
    the stacked parameters through each member's own solve: its adjoint, when the backend has
    one, runs for it alone in ``backward()``, with its own parameters, so it takes its solo
    run's steps."""
    if torch.is_grad_enabled() and (z0.requires_grad or any(p.requires_grad for p in ode.params)):
        return _OneByOne.apply(ode, solve, times, z0, *ode.params)
    return _solve_each(ode, z0, solve, times, None)


Graphs = dict[int, tuple[Tensor, Tensor, tuple[Tensor, ...]]]
"""Each solved member's result, start and parameters, by member, with the graph between them."""


def _solve_each(ode: MemberODE, z0: Tensor, solve: Solve, times: int | None,
                graphs: Graphs | None) -> Tensor:
    """The members' results (a member not solved keeps its rows); with ``graphs``, solved with
    a graph, kept there."""
    results = []
    for index, (rows, solving) in enumerate(zip(z0.chunk(ode.size), ode.solving())):
        result = None
        if solving:
            start = rows.detach().requires_grad_(graphs is not None and z0.requires_grad)
            func, params = ode.member(index)
            try:
                with torch.enable_grad() if graphs is not None else nullcontext():
                    result = solve(func, start)
            except Exception as error:
                _failed(ode, index, error)
            else:
                if graphs is not None:
                    graphs[index] = (result, start, params)
        if result is None:
            result = rows if times is None else rows.expand(times, *rows.shape)
        results.append(result.detach())
    return torch.cat(results, dim=0 if times is None else 1)


def _failed(ode: MemberODE, index: int, error: Exception) -> None:
    """Mark the member failed when ``error`` is a failed solve; raise anything else."""
    failure = as_solver_failure(error)
    if not isinstance(failure, SolverFailure):
        raise error
    ode.fail(index, failure)


class _OneByOne(torch.autograd.Function):
    """The members one by one (:func:`one_by_one`), each member's graph kept; in backward,
    each member still alive gets the gradients of its own solve, in its slices."""

    @staticmethod
    def forward(ctx: Any, ode: MemberODE, solve: Solve, times: int | None, z0: Tensor,
                *params: Tensor) -> Tensor:
        ctx.ode, ctx.dim, ctx.graphs = ode, 0 if times is None else 1, {}
        ctx.z0 = (z0.shape, z0.requires_grad)
        return _solve_each(ode, z0, solve, times, ctx.graphs)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        ode, (shape, z0_grad), graphs = ctx.ode, ctx.z0, ctx.graphs
        ctx.graphs = {}
        grad_z0 = grad.new_zeros(shape) if z0_grad else None
        grad_params = [p.new_zeros(p.shape) if p.requires_grad else None for p in ode.params]
        for index, (result, start, params) in graphs.items():
            if not ode.alive[index]:
                continue  # failed since: its gradients would be meaningless
            inputs = [start] * z0_grad + [p for p in params if p.requires_grad]
            try:
                grads = list(torch.autograd.grad(result, inputs,
                                                 grad.chunk(ode.size, ctx.dim)[index],
                                                 allow_unused=True))
            except Exception as error:
                _failed(ode, index, error)
                continue
            if z0_grad:
                grad_z0.chunk(ode.size)[index].copy_(_or_zero(grads.pop(0), start))
            for param, stacked in zip(params, grad_params):
                if param.requires_grad:
                    stacked[index] = _or_zero(grads.pop(0), param)
        return (None, None, None, grad_z0, *grad_params)


def _or_zero(grad: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if grad is None else grad
