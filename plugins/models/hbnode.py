"""HBNODE (Xia et al. 2021): h' = m, m' = −γ·m + f(h, t), γ = sigmoid(ω), [h0, m0] = [x, v(x)];
``xi_init`` adds −ξ·h, ξ = softplus(χ), as the authors' plane-vibration code (docs/profiles.md)."""
from typing import Callable

import torch
from torch import Tensor, nn

from harness import VJP, DifferentiableField, Family, State, VectorField, hookimpl


class PerValue:
    """Functions of a scalar parameter, each made once per value of it where no graph is
    recorded (a solve without one calls f hundreds of times with the same γ): kept with the
    value, dtype and device they were made from, and made again when any differs — a change
    in place, even through ``.data``, is seen. With a graph, on a non-CPU device (reading the
    value would wait for it) or for a parameter per row (an ensemble's), made on each call."""

    def __init__(self) -> None:
        self.made: dict[Callable, tuple[tuple, tuple[Tensor, ...]]] = {}

    def of(self, parameter: Tensor, function: Callable[[Tensor], tuple[Tensor, ...]]
           ) -> tuple[Tensor, ...]:
        if torch.is_grad_enabled() or parameter.dim() or parameter.device.type != "cpu":
            return function(parameter)
        key = (parameter.item(), parameter.dtype, parameter.device)
        made = self.made.get(function)
        if made is None or made[0] != key:
            made = self.made[function] = (key, function(parameter))
        return made[1]


def _gamma(omega: Tensor) -> tuple[Tensor, Tensor]:
    """γ = sigmoid(ω) and −γ′ = −γ(1 − γ)."""
    gamma = torch.sigmoid(omega)
    return gamma, -(gamma * (1 - gamma))


def _xi(chi: Tensor) -> tuple[Tensor, Tensor]:
    """ξ = softplus(χ) and −ξ′ = −sigmoid(χ)."""
    return nn.functional.softplus(chi), -torch.sigmoid(chi)


class HBNODE(Family):
    name, parts = "hbnode", ("h", "m")
    initial_state = {"h": "input+network", "m": "network"}
    vjp_unsummed = True  # ω's and χ's gradients per element: members take derivatives_vjp too

    def __init__(self, gamma_init: float = -3.0, xi_init: float | None = None) -> None:
        super().__init__()
        self.omega = nn.Parameter(torch.tensor(float(gamma_init)))
        self.chi = None if xi_init is None else nn.Parameter(torch.tensor(float(xi_init)))
        self.per_value = PerValue()

    gamma = property(lambda self: self.per_value.of(self.omega, _gamma)[0])
    xi = property(lambda self: self.per_value.of(self.chi, _xi)[0])  # only with a ξ term

    def derivatives(self, t: Tensor, state: State, f: VectorField) -> State:
        (h, m), dm = state, f(t, state[0]) - self.gamma * state[1]
        return m, dm if self.chi is None else dm - self.xi * h

    def derivatives_vjp(self, t: Tensor, state: State, cotangent: State,
                        f: DifferentiableField) -> VJP:
        (h, m), (a_h, a_m) = state, cotangent
        gamma, minus_rate = self.per_value.of(self.omega, _gamma)
        value, pullback = f(t, h)  # f's value, and g ↦ (gᵀ∂f/∂h, {parameter: gradient})
        (a_x, grads), dm = pullback(a_m), value - gamma * m  # m' reads f(h) with weight 1
        # −(a_m·m)·γ′ (unsummed), as (a_m·m)·(−γ′): rounding is sign-symmetric, the same bits
        grads[self.omega] = (a_m * m) * minus_rate
        if self.chi is not None:
            xi, minus_slope = self.per_value.of(self.chi, _xi)  # softplus' = sigmoid
            grads[self.chi] = (a_m * h) * minus_slope
            dm, a_x = dm - xi * h, a_x - xi * a_m
        return (m, dm), (a_x, a_h - gamma * a_m), grads


@hookimpl
def harness_model_families() -> list[type[Family]]:
    return [HBNODE]
