"""NODE (Chen et al. 2018): h' = f(h, t), h0 = x."""
from __future__ import annotations

from torch import Tensor

from harness import VJP, DifferentiableField, Family, State, VectorField, hookimpl


class NODE(Family):
    name = "node"
    parts = ("h",)
    initial_state = {"h": "input+zeros"}  # h0 = x when n = c (ANODE's n > c: zeros after x)
    vjp_unsummed = True  # no family parameters: members take derivatives_vjp too

    def derivatives(self, t: Tensor, state: State, f: VectorField) -> State:
        (h,) = state
        return (f(t, h),)

    def derivatives_vjp(self, t: Tensor, state: State, cotangent: State,
                        f: DifferentiableField) -> VJP:
        (h,), (a,) = state, cotangent
        value, pullback = f(t, h)
        a_h, grads = pullback(a)
        return (value,), (a_h,), grads


@hookimpl
def harness_model_families() -> list[type[Family]]:
    return [NODE]
