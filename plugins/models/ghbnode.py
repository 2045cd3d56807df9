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
from harness.contract import VectorField
from harness_plugins.models.hbnode import HBNODE

SIGMAS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "hardtanh": lambda m: F.hardtanh(m, -5.0, 5.0),
    "identity": lambda m: m,
}


class GHBNODE(HBNODE):
    name = "ghbnode"

    def __init__(self, gamma_init: float = -3.0, xi_init: float = 0.0, sigma: str = "tanh") -> None:
        super().__init__(gamma_init)
        if sigma not in SIGMAS:
            raise ValueError(f"sigma must be one of {', '.join(SIGMAS)}, not {sigma!r}")
        self.chi = nn.Parameter(torch.tensor(float(xi_init)))
        self.sigma = SIGMAS[sigma]

    @property
    def xi(self) -> Tensor:
        return F.softplus(self.chi)

    def derivatives(self, t: Tensor, state: tuple[Tensor, ...], f: VectorField) -> tuple[Tensor, ...]:
        h, m = state
        return self.sigma(m), f(t, h) - self.gamma * m - self.xi * h


@hookimpl
def harness_model_families() -> list[type[Family]]:
    return [GHBNODE]
