"""The ``torchdiffeq`` solver backend, the reference and the default: the one place the harness
calls torchdiffeq's ``odeint`` / ``odeint_adjoint``."""
from __future__ import annotations

from torch import Tensor, nn
from torchdiffeq import odeint, odeint_adjoint

from harness.solvers.backends import Note, SolverBackend
from harness.solvers.settings import METHODS, SolverConfig, as_solver_failure


class TorchdiffeqBackend(SolverBackend):
    """torchdiffeq's ``odeint`` / ``odeint_adjoint``.

    With the adjoint, the gradient w.r.t. ``func``'s parameters comes from the adjoint solve
    that runs inside ``loss.backward()``.
    """

    name, package, methods = "torchdiffeq", "torchdiffeq", METHODS

    def solve(self, func: nn.Module, z0: Tensor, t: Tensor, config: SolverConfig) -> Tensor:
        return self._odeint(func, z0, t, config)[-1]

    def solve_through(self, func: nn.Module, z0: Tensor, t: Tensor, config: SolverConfig,
                      note: Note | None) -> Tensor:
        """One solve over all of t: the steps run on past the inner times, whose states are
        interpolated (and, with the adjoint, the backward pass solves interval by interval)."""
        return self._odeint(func, z0, t, config)[1:]

    def _odeint(self, func: nn.Module, z0: Tensor, t: Tensor, config: SolverConfig) -> Tensor:
        kwargs = dict(rtol=config.rtol, atol=config.atol, method=config.method,
                      options=dict(config.options) or None)
        try:
            if config.adjoint:
                return odeint_adjoint(func, z0, t, adjoint_params=tuple(func.parameters()),
                                      **kwargs)
            return odeint(func, z0, t, **kwargs)
        except AssertionError as error:
            raise as_solver_failure(error) from error


#: The default backend of an ODE block built without a registry (it holds no state).
TORCHDIFFEQ = TorchdiffeqBackend()
