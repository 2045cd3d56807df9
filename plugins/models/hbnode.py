"""HBNODE (Xia et al. 2021): h' = m, m' = −γ·m + f(h, t), with γ = sigmoid(ω), ω learnable;
[h0, m0] = [x, v(x)]: the task's initial-velocity network v supplies every channel after x's c.

With ``xi_init`` given, m' also has GHBNODE's −ξ·h, ξ = softplus(χ) learnable from χ = xi_init:
the HBNODE-RNN of the authors' plane-vibration code carries it (docs/profiles.md)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from harness import VJP, DifferentiableField, Family, State, VectorField, hookimpl


class HBNODE(Family):
    name = "hbnode"
    parts = ("h", "m")
    initial_state = {"h": "input+network", "m": "network"}

    def __init__(self, gamma_init: float = -3.0, xi_init: float | None = None) -> None:
        super().__init__()
        self.omega = nn.Parameter(torch.tensor(float(gamma_init)))
        self.chi = None if xi_init is None else nn.Parameter(torch.tensor(float(xi_init)))

    @property
    def gamma(self) -> Tensor:
        return torch.sigmoid(self.omega)

    @property
    def xi(self) -> Tensor:
        """ξ = softplus(χ) (only with a ξ term)."""
        return nn.functional.softplus(self.chi)

    def derivatives(self, t: Tensor, state: State, f: VectorField) -> State:
        h, m = state
        if self.chi is None:
            return m, f(t, h) - self.gamma * m
        return m, f(t, h) - self.gamma * m - self.xi * h

    def derivatives_vjp(self, t: Tensor, state: State, cotangent: State,
                        f: DifferentiableField) -> VJP:
        (h, m), (a_h, a_m) = state, cotangent
        value, pullback = f(t, h)  # f's value, and g ↦ (gᵀ∂f/∂h, {parameter: gradient})
        gamma = self.gamma
        a_fh, grads = pullback(a_m)  # m' reads f(h) with weight 1
        grads[self.omega] = -(a_m * m).sum() * gamma * (1 - gamma)  # γ' = γ(1 − γ)
        if self.chi is None:
            return (m, value - gamma * m), (a_fh, a_h - gamma * a_m), grads
        xi = self.xi
        grads[self.chi] = -(a_m * h).sum() * torch.sigmoid(self.chi)  # softplus' = sigmoid
        return (m, value - gamma * m - xi * h), (a_fh - xi * a_m, a_h - gamma * a_m), grads


@hookimpl
def harness_model_families() -> list[type[Family]]:
    return [HBNODE]
