"""SONODE (Norcliffe et al. 2020): h' = v, v' = f([h, v], t); f reads both parts (n* = 2n)."""
from __future__ import annotations

import torch
from torch import Tensor

from harness import Family, hookimpl
from harness.contract import VectorField


class SONODE(Family):
    name = "sonode"
    parts = ("h", "v")
    f_input_parts = 2
    initial_state = "network"

    def derivatives(self, t: Tensor, state: tuple[Tensor, ...], f: VectorField) -> tuple[Tensor, ...]:
        h, v = state
        return v, f(t, torch.cat([h, v], dim=1))


@hookimpl
def harness_model_families() -> list[type[Family]]:
    return [SONODE]
