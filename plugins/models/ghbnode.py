"""GHBNODE (Xia et al. 2021): h' = σ(m), m' = −γ·m + f(h, t) − ξ·h.

γ = sigmoid(ω) and ξ = softplus(χ) are learnable (ω starts at −3, χ at 0 so ξ = ln 2);
σ is tanh in the paper's experiments and hardtanh[−5, 5] in its initialisation study.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from harness import Family, hookimpl
from harness import DifferentiableField, VectorField
from harness_plugins.models.hbnode import HBNODE

aten = torch.ops.aten

#: σ by name: (σ(m), and (g, m, σ(m)) ↦ g·σ'(m), autograd's backward formula).
SIGMAS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor, Tensor, Tensor], Tensor]]] = {
    "tanh": (torch.tanh, lambda g, m, y: aten.tanh_backward(g, y)),
    "hardtanh": (lambda m: F.hardtanh(m, -5.0, 5.0), lambda g, m, y: aten.hardtanh_backward(g, m, -5.0, 5.0)),
    "identity": (lambda m: m, lambda g, m, y: g),
}


class GHBNODE(HBNODE):
    name = "ghbnode"

    def __init__(self, gamma_init: float = -3.0, xi_init: float = 0.0, sigma: str = "tanh") -> None:
        super().__init__(gamma_init)
        if sigma not in SIGMAS:
            raise ValueError(f"sigma must be one of {', '.join(SIGMAS)}, not {sigma!r}")
        self.chi = nn.Parameter(torch.tensor(float(xi_init)))
        self.sigma, self.sigma_backward = SIGMAS[sigma]

    @property
    def xi(self) -> Tensor:
        return F.softplus(self.chi)

    def derivatives(self, t: Tensor, state: tuple[Tensor, ...], f: VectorField) -> tuple[Tensor, ...]:
        h, m = state
        return self.sigma(m), f(t, h) - self.gamma * m - self.xi * h

    def derivatives_vjp(self, t: Tensor, state: tuple[Tensor, ...], cotangent: tuple[Tensor, ...],
                        f: DifferentiableField) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...],
                                                         dict[Tensor, Tensor]]:
        (h, m), (a_h, a_m) = state, cotangent
        value, pullback = f(t, h)
        gamma, xi, sigma_m = self.gamma, self.xi, self.sigma(m)
        a_fh, grads = pullback(a_m)
        grads[self.omega] = -(a_m * m).sum() * gamma * (1 - gamma)  # γ' = γ(1 − γ)
        grads[self.chi] = -(a_m * h).sum() * torch.sigmoid(self.chi)  # softplus' = sigmoid
        return ((sigma_m, value - gamma * m - xi * h),
                (a_fh - xi * a_m, self.sigma_backward(a_h, m, sigma_m) - gamma * a_m), grads)


@hookimpl
def harness_model_families() -> list[type[Family]]:
    return [GHBNODE]
