"""The host's own solver backends, contributed through the ``harness_solver_backends`` hook
like a plugin's (:func:`harness.plugins.load_registry` registers this module)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from harness.contract import hookimpl
from harness.solvers.backends import SolverBackend
from harness.solvers.fast.backend import FastBackend
from harness.solvers.proximal.backend import ProximalBackend
from harness.solvers.proximal.schemes import ORDERS
from harness.solvers.settings import FIXED_GRID_METHODS
from harness.solvers.torchdiffeq_backend import TorchdiffeqBackend
from harness.solvers.torchode_backend import TorchodeBackend

#: The built-in backends' methods whose steps are fixed, so that rtol and atol do not act on
#: them: torchdiffeq's fixed-grid solvers (the fast backend's euler and rk4 among them) and the
#: proximal backend's implicit schemes.
FIXED_STEP_METHODS = FIXED_GRID_METHODS | frozenset(ORDERS)


def uses_tolerance(solver: Mapping[str, Any]) -> bool:
    """Whether a run's solver settings (a record's ``config.solver``) adapt their steps to
    ``rtol``/``atol``: not for a fixed-step method."""
    return solver.get("method") not in FIXED_STEP_METHODS


@hookimpl
def harness_solver_backends() -> Sequence[type[SolverBackend]]:
    return (TorchdiffeqBackend, FastBackend, TorchodeBackend, ProximalBackend)
