"""SONODE (Norcliffe et al. 2020): h' = v, v' = f([h, v], t); f reads both parts (n* = 2n);
[h0, v0] = [x, v(x)]: the task's initial-velocity network v supplies every channel after x's c."""
from __future__ import annotations

import torch
from torch import Tensor

from harness import VJP, DifferentiableField, Family, State, VectorField, hookimpl


class SONODE(Family):
    name = "sonode"
    parts = ("h", "v")
    f_input_parts = 2
    initial_state = {"h": "input+network", "v": "network"}
    vjp_unsummed = True  # no family parameters: members take derivatives_vjp too

    def derivatives(self, t: Tensor, state: State, f: VectorField) -> State:
        h, v = state
        return v, f(t, torch.cat([h, v], dim=1))

    def derivatives_vjp(self, t: Tensor, state: State, cotangent: State,
                        f: DifferentiableField) -> VJP:
        (h, v), (a_h, a_v) = state, cotangent
        value, pullback = f(t, torch.cat([h, v], dim=1))
        a_x, grads = pullback(a_v)
        a_xh, a_xv = a_x.chunk(2, dim=1)
        return (v, value), (a_xh, a_h + a_xv), grads


@hookimpl
def harness_model_families() -> list[type[Family]]:
    return [SONODE]
