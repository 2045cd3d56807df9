"""Solver settings and failures: what every backend (:mod:`harness.solvers.backends`) is handed and
raises, shared by the suite, the records and the ODE block. Nothing of the harness here."""
from __future__ import annotations

import copy
import re
from dataclasses import Field, dataclass, field, fields
from typing import Any, Callable, Collection, Mapping

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


def solver_setting(default: Any, *, positive: bool = False,
                   among: Callable[[Mapping[str, Any]], Collection[str]] | None = None,
                   noun: str = "", structured: bool = False, keyed_from_default: bool = True,
                   decides_nfe: bool = True) -> Any:
    """A solver setting: a field of :class:`SolverConfig` with its default and how a suite's
    value for it is checked, declared here once for the suite's checks, the run key, budgets'
    solver matching and the report's setting labels. The check follows the field's type
    (``positive``: a number or integer > 0); ``among(backends)`` gives the names it may take
    among the registry's backends, ``noun`` says what one is; a ``structured`` one (a mapping)
    is read by the suite loader. With ``keyed_from_default=False`` the run key leaves the
    setting out while it holds its default (a setting added after records existed); with
    ``decides_nfe=False`` a budget line measured at some runs does not name it."""
    metadata = {"positive": positive, "among": among, "noun": noun, "structured": structured,
                "keyed_from_default": keyed_from_default, "decides_nfe": decides_nfe}
    if isinstance(default, dict):  # mutable: each config its own
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _methods(backends: Mapping[str, Any]) -> list[str]:
    """Every method of the registry's backends (whether the run's backend has it is checked
    with the backend before training)."""
    return sorted({method for backend in backends.values() for method in backend.methods})


@dataclass(frozen=True)
class SolverConfig:
    """How every ODE of a run is solved; each field is a setting (:func:`solver_setting`).
    ``adjoint`` picks odeint_adjoint over odeint (or the backend's own adjoint); ``backend``
    names the solver backend."""

    method: str = solver_setting("dopri5", among=_methods, noun="a solver method")
    rtol: float = solver_setting(1e-7, positive=True)
    atol: float = solver_setting(1e-7, positive=True)
    adjoint: bool = solver_setting(True)
    backend: str = solver_setting("torchdiffeq", among=lambda backends: backends,
                                  noun="a solver backend", keyed_from_default=False)
    """Keys of runs on the default backend are those they had before backends existed."""
    options: dict[str, Any] = solver_setting({}, structured=True)
    max_nfe: int | None = solver_setting(None, positive=True, decides_nfe=False)
    """Fail a solve (forward or adjoint, each counted on its own) past this many evaluations."""

    def as_dict(self) -> dict[str, Any]:
        """The settings as a mapping, ``options`` deep-copied (faster than ``asdict``: a suite's
        planning calls it for every run)."""
        settings = {name: getattr(self, name) for name in SOLVER_SETTINGS}
        return {**settings, "options": copy.deepcopy(self.options)}


#: The solver settings, by name, in the order suites and budget lines list them.
SOLVER_SETTINGS: dict[str, Field] = {spec.name: spec for spec in fields(SolverConfig)}

#: A suite's ``solver.tol`` sets both tolerances at once; a report labels a setting in which
#: they vary together ``tol``.
TOLERANCE, TOLERANCES = "tol", ("rtol", "atol")


def as_solver_failure(error: BaseException) -> BaseException:
    """Turn torchdiffeq's assertion for a failed solve into a :class:`SolverFailure`."""
    message = re.sub(r"tensor\((\d+), dtype=torch\.int32\)", r"\1", str(error))  # step cap
    if isinstance(error, AssertionError) and message.startswith(_SOLVER_FAILURES):
        return SolverFailure(message.split(":")[0] if "non-finite" in message else message)
    return error


def interval_tensor(t0: float, t1: float, like: Tensor) -> Tensor:
    return torch.tensor([t0, t1], dtype=like.dtype, device=like.device)
