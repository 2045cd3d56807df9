"""Solver settings, the one entry point of every solve (dispatching to the run's solver
backend, :mod:`harness.backends`), and the one place the harness calls torchdiffeq."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torchdiffeq import odeint, odeint_adjoint
from torchdiffeq._impl.odeint import SOLVERS

#: Solver names a suite may use (torchdiffeq's).
METHODS = tuple(sorted(SOLVERS))

#: Messages torchdiffeq raises (as AssertionError) when a solve cannot go on.
_SOLVER_FAILURES = ("underflow in dt", "max_num_steps exceeded", "non-finite values")


class SolverFailure(RuntimeError):
    """A solve that could not finish: step size underflow, too many steps, non-finite state."""


@dataclass(frozen=True)
class SolverConfig:
    """How every ODE of a run is solved. ``adjoint`` picks odeint_adjoint over odeint (or the
    backend's own adjoint); ``backend`` names the solver backend."""

    method: str = "dopri5"
    rtol: float = 1e-7
    atol: float = 1e-7
    adjoint: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    max_nfe: int | None = None
    """Fail a solve (forward or adjoint, each counted on its own) past this many evaluations."""
    backend: str = "torchdiffeq"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def solve(func: nn.Module, z0: Tensor, t: Tensor, config: SolverConfig) -> Tensor:
    """Integrate ``func`` from z0 over the times t with the config's backend; return the state
    at t[-1]."""
    from harness.backends import backend  # the backends build on this module
    return backend(config.backend).solve(func, z0, t, config)


def torchdiffeq_solve(func: nn.Module, z0: Tensor, t: Tensor, config: SolverConfig) -> Tensor:
    """The torchdiffeq backend: integrate ``func`` from z0 over the times t; return the state
    at t[-1].

    With the adjoint, the gradient w.r.t. ``func``'s parameters comes from the adjoint solve
    that runs inside ``loss.backward()``.
    """
    kwargs = dict(rtol=config.rtol, atol=config.atol, method=config.method,
                  options=dict(config.options) or None)
    try:
        if config.adjoint:
            z = odeint_adjoint(func, z0, t, adjoint_params=tuple(func.parameters()), **kwargs)
        else:
            z = odeint(func, z0, t, **kwargs)
    except AssertionError as error:
        raise as_solver_failure(error) from error
    return z[-1]


def as_solver_failure(error: BaseException) -> BaseException:
    """Turn torchdiffeq's assertion for a failed solve into a :class:`SolverFailure`."""
    message = re.sub(r"tensor\((\d+), dtype=torch\.int32\)", r"\1", str(error))  # step cap
    if isinstance(error, AssertionError) and message.startswith(_SOLVER_FAILURES):
        return SolverFailure(message.split(":")[0] if "non-finite" in message else message)
    return error


def interval_tensor(t0: float, t1: float, like: Tensor) -> Tensor:
    return torch.tensor([t0, t1], dtype=like.dtype, device=like.device)
