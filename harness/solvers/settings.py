"""Solver settings and failures: what every backend (:mod:`harness.solvers.backends`) is handed and
raises, shared by the suite, the records and the ODE block. Nothing of the harness here."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor
from torchdiffeq._impl.odeint import SOLVERS
from torchdiffeq._impl.solvers import FixedGridODESolver

#: Solver names a suite may use (torchdiffeq's).
METHODS = tuple(sorted(SOLVERS))

#: torchdiffeq's methods that step on a fixed grid (``options: {step_size: …}``): rtol and atol
#: do not act on them.
FIXED_GRID_METHODS = frozenset(name for name, solver in SOLVERS.items()
                               if issubclass(solver, FixedGridODESolver))

#: Messages torchdiffeq raises (as AssertionError) when a solve cannot go on.
_SOLVER_FAILURES = ("underflow in dt", "max_num_steps exceeded", "non-finite values")


class SolverFailure(RuntimeError):
    """A solve that could not finish: step size underflow, too many steps, non-finite state."""


class NFECapExceeded(SolverFailure):
    """One solve needed more function evaluations than the suite's ``solver.max_nfe``."""


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
        """The settings as a mapping, ``options`` deep-copied (faster than ``asdict``: a suite's
        planning calls it for every run)."""
        settings = {spec.name: getattr(self, spec.name) for spec in fields(self)}
        return {**settings, "options": copy.deepcopy(self.options)}


def as_solver_failure(error: BaseException) -> BaseException:
    """Turn torchdiffeq's assertion for a failed solve into a :class:`SolverFailure`."""
    message = re.sub(r"tensor\((\d+), dtype=torch\.int32\)", r"\1", str(error))  # step cap
    if isinstance(error, AssertionError) and message.startswith(_SOLVER_FAILURES):
        return SolverFailure(message.split(":")[0] if "non-finite" in message else message)
    return error


def interval_tensor(t0: float, t1: float, like: Tensor) -> Tensor:
    return torch.tensor([t0, t1], dtype=like.dtype, device=like.device)
