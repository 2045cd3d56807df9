"""SONODE (Norcliffe et al. 2020): h' = v, v' = f([h, v], t); f reads both parts (n* = 2n)."""
from __future__ import annotations

import torch
from torch import Tensor

from harness import Family, hookimpl
from harness import DifferentiableField, VectorField


class SONODE(Family):
    name = "sonode"
    parts = ("h", "v")
    f_input_parts = 2
    initial_state = "network"

    def derivatives(self, t: Tensor, state: tuple[Tensor, ...], f: VectorField) -> tuple[Tensor, ...]:
        h, v = state
        return v, f(t, torch.cat([h, v], dim=1))

    def derivatives_vjp(self, t: Tensor, state: tuple[Tensor, ...], cotangent: tuple[Tensor, ...],
                        f: DifferentiableField) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...],
                                                         dict[Tensor, Tensor]]:
        (h, v), (a_h, a_v) = state, cotangent
        value, pullback = f(t, torch.cat([h, v], dim=1))
        a_x, grads = pullback(a_v)
        a_xh, a_xv = a_x.chunk(2, dim=1)
        return (v, value), (a_xh, a_h + a_xv), grads


@hookimpl
def harness_model_families() -> list[type[Family]]:
    return [SONODE]
