"""HBNODE (Xia et al. 2021): h' = m, m' = −γ·m + f(h, t), with γ = sigmoid(ω), ω learnable."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from harness import Family, hookimpl
from harness.contract import VectorField


class HBNODE(Family):
    name = "hbnode"
    parts = ("h", "m")
    initial_state = "network"

    def __init__(self, gamma_init: float = -3.0) -> None:
        super().__init__()
        self.omega = nn.Parameter(torch.tensor(float(gamma_init)))

    @property
    def gamma(self) -> Tensor:
        return torch.sigmoid(self.omega)

    def derivatives(self, t: Tensor, state: tuple[Tensor, ...], f: VectorField) -> tuple[Tensor, ...]:
        h, m = state
        return m, f(t, h) - self.gamma * m


@hookimpl
def harness_model_families() -> list[type[Family]]:
    return [HBNODE]
