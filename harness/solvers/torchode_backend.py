"""The ``torchode`` solver backend (optional: ``pip install 'harness[torchode]'``).

torchode (Lienen and Günnemann, 2022) controls the step size of every batch element on its
own: each element takes the steps its own error allows and stops at its own end. The harness
still counts one NFE per call of the dynamics on the whole batch, so under this backend **NFE
is the number of batched calls, about the step count of the batch's slowest element**, where
under torchdiffeq and ``fast`` it is the step count of one controller driven by the norm over
the whole batch. Compare NFE across backends only with that in mind.

With ``adjoint: false`` gradients come from backpropagation through the solver (torchode's
``AutoDiffAdjoint``); with ``adjoint: true`` from its ``BacksolveAdjoint``, which solves the
adjoint per element under ``torch.func.vmap``. That adjoint cannot carry anything the dynamics
hold per batch element — the per-element time scaling of the ODE-RNN tasks, the input signal of
the Silverbox study: such a solve fails with a message saying so. A failed adjoint solve (step
cap, step size underflow, infinite norm) raises like a failed forward solve; torchode itself
would return its partial result as the gradient. The dynamics see t as a per-element tensor
shaped (batch, 1, …, 1), which broadcasts against the state as torchdiffeq's scalar t does.
"""
from __future__ import annotations

from importlib.util import find_spec
from typing import Any, Callable

import torch
from torch import Tensor, nn

from harness.solvers.backends import PerElementTime, SolverBackend
from harness.solvers.settings import SolverConfig, SolverFailure

#: torchode's status codes for a solve that could not finish, as the harness words them.
_FAILURES = {1: "torchode: general error", 2: "underflow in dt (torchode: reached dt_min)",
             3: "max_num_steps exceeded (torchode: reached max_steps)",
             4: "non-finite values in state `y` (torchode: infinite error norm)"}
_OPTIONS = ("max_num_steps",)
#: The methods, by the name of torchode's step class.
_STEPS = {"dopri5": "Dopri5", "tsit5": "Tsit5"}


class PerElement(nn.Module):
    """The block's dynamics on torchode's (batch, features) state, or on one element's
    (features,) state when torchode's backsolve adjoint maps over the batch."""

    def __init__(self, func: nn.Module, shape: torch.Size) -> None:
        super().__init__()
        self.func, self.shape = func, shape

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        rows = 1 if y.dim() == 1 else self.shape[0]
        ones = [1] * (len(self.shape) - 1)
        dz = self.func(t.reshape(rows, *ones), y.reshape(rows, *self.shape[1:]))
        return dz.reshape(y.shape)


class TorchodeBackend(SolverBackend):
    """torchode's dopri5 and tsit5 with per-element step control."""

    name, package, methods = "torchode", "torchode", tuple(_STEPS)

    def check(self, config: SolverConfig) -> None:
        if find_spec("torchode") is None:
            raise ValueError("solver backend 'torchode' needs the torchode package: "
                             "pip install 'harness[torchode]'")
        super().check(config)
        unknown = sorted(set(config.options) - set(_OPTIONS))
        if unknown:
            raise ValueError(f"solver backend 'torchode' has no option {', '.join(unknown)}; "
                             f"valid: {', '.join(_OPTIONS)}")

    def solve(self, func: nn.Module, z0: Tensor, t: Tensor, config: SolverConfig) -> Tensor:
        import torchode

        if config.adjoint and any(isinstance(m, PerElementTime) for m in func.modules()):
            raise ValueError("solver backend 'torchode' with adjoint: true cannot solve "
                             "per-element durations or input signals (its backsolve adjoint maps "
                             "over the batch); use adjoint: false or another backend")
        batch = z0.shape[0]
        term = torchode.ODETerm(PerElement(func, z0.shape))
        step = getattr(torchode, _STEPS[config.method])(term=term)
        control = torchode.IntegralController(atol=config.atol, rtol=config.rtol, term=term)
        cap = config.options.get("max_num_steps")
        if config.adjoint:
            solver = torchode.BacksolveAdjoint(term, step, control)
            for part in (solver.forward_adjoint, solver.backward_adjoint):
                part.max_steps = cap
            solver.backward_adjoint.solve = _raising(solver.backward_adjoint.solve)
        else:
            solver = torchode.AutoDiffAdjoint(step, control, max_steps=cap)
        problem = torchode.InitialValueProblem(
            y0=z0.reshape(batch, -1), t_start=t[0].expand(batch), t_end=t[-1].expand(batch))
        solution = solver.solve(problem)
        _raise_on_failure(solution.status)
        return solution.ys[:, -1].reshape(z0.shape)


def _raise_on_failure(status: Tensor) -> None:
    failed = int(status.max())
    if failed:
        raise SolverFailure(_FAILURES.get(failed, f"torchode status {failed}"))


def _raising(solve: Callable) -> Callable:
    """``solve``, raising on a failed solution: torchode's backsolve does not look at the
    status of its backward solve."""
    def checked(*args: Any, **kwargs: Any) -> Any:
        solution = solve(*args, **kwargs)
        _raise_on_failure(solution.status)
        return solution
    return checked
