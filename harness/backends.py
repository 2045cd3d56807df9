"""Solver backends: what integrates a run's ODEs, chosen per suite entry (``solver.backend``).

A backend is an object with a ``name``, the ``package`` whose version the record names, the
``methods`` it has, ``check(config)`` and ``solve(func, z0, t, config)``, which integrates
``func`` from z0 over t = [t0, t1] and returns the state at t1, gradients included (with the
adjoint when ``config.adjoint``). It calls ``func(t, z)`` like torchdiffeq does, so NFE counting,
per-element time scaling and NFE caps (which wrap ``func``) work for every backend.

Built in: ``torchdiffeq`` (the reference, and the default), ``fast`` (:mod:`harness.fast_solver`,
the same steps on one flat state) and ``torchode`` (:mod:`harness.torchode_backend`, when the
optional torchode package is installed). Plugins add more through the ``harness_solver_backends``
hook, as they add models; loading a registry makes them available to
:func:`harness.solver.solve`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from importlib.metadata import PackageNotFoundError, version
from typing import ClassVar, Sequence

from torch import Tensor, nn

from harness.contract import hookimpl
from harness.fast_adjoint import solve_flat
from harness.fast_solver import METHOD_OPTIONS, integrator
from harness.solver import METHODS, SolverConfig, torchdiffeq_solve


class SolverBackend(ABC):
    """Integrates an ODE block's dynamics; see the module's docstring."""

    name: ClassVar[str]
    package: ClassVar[str]
    methods: ClassVar[tuple[str, ...]]

    @property
    def version(self) -> str | None:
        try:
            return version(self.package)
        except PackageNotFoundError:
            return None

    def check(self, config: SolverConfig) -> None:
        """Raise ValueError when this backend cannot solve with ``config``."""
        if config.method not in self.methods:
            raise ValueError(f"solver backend {self.name!r} has no method {config.method!r}; "
                             f"valid: {', '.join(self.methods)}")

    @abstractmethod
    def solve(self, func: nn.Module, z0: Tensor, t: Tensor, config: SolverConfig) -> Tensor:
        """The state at t[-1]."""


class TorchdiffeqBackend(SolverBackend):
    """torchdiffeq's ``odeint`` / ``odeint_adjoint``: the reference."""

    name, package, methods = "torchdiffeq", "torchdiffeq", METHODS

    def solve(self, func: nn.Module, z0: Tensor, t: Tensor, config: SolverConfig) -> Tensor:
        return torchdiffeq_solve(func, z0, t, config)


class FastBackend(SolverBackend):
    """dopri5, euler and rk4 taking torchdiffeq's steps, with a flat-state adjoint."""

    name, package, methods = "fast", "harness", tuple(METHOD_OPTIONS)

    def check(self, config: SolverConfig) -> None:
        integrator(config.method, config.rtol, config.atol, config.options)

    def solve(self, func: nn.Module, z0: Tensor, t: Tensor, config: SolverConfig) -> Tensor:
        t0, t1 = t.tolist()
        integrate = integrator(config.method, config.rtol, config.atol, config.options)
        return solve_flat(func, z0, t0, t1, integrate, config.adjoint)


BUILT_IN: tuple[SolverBackend, ...] = (TorchdiffeqBackend(), FastBackend())

#: Every backend :func:`harness.solver.solve` can use: the built-in ones and those of the
#: plugins of any registry loaded in this process.
AVAILABLE: dict[str, SolverBackend] = {backend.name: backend for backend in BUILT_IN}


def backend(name: str) -> SolverBackend:
    try:
        return AVAILABLE[name]
    except KeyError:
        raise ValueError(f"unknown solver backend {name!r}; valid: {', '.join(sorted(AVAILABLE))}") from None


def install(found: dict[str, SolverBackend]) -> None:
    """Make a registry's backends available to :func:`harness.solver.solve`."""
    AVAILABLE.update(found)


@hookimpl
def harness_solver_backends() -> Sequence[SolverBackend]:
    from harness.torchode_backend import TorchodeBackend  # it builds on this module
    return (*BUILT_IN, TorchodeBackend())
