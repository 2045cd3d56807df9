"""The host's own solver backends, contributed through the ``harness_solver_backends`` hook
like a plugin's (:func:`harness.plugins.load_registry` registers this module)."""
from __future__ import annotations

from typing import Sequence

from harness.contract import hookimpl
from harness.solvers.backends import SolverBackend
from harness.solvers.fast.backend import FastBackend
from harness.solvers.proximal.backend import ProximalBackend
from harness.solvers.torchdiffeq_backend import TorchdiffeqBackend
from harness.solvers.torchode_backend import TorchodeBackend


@hookimpl
def harness_solver_backends() -> Sequence[type[SolverBackend]]:
    return (TorchdiffeqBackend, FastBackend, TorchodeBackend, ProximalBackend)
