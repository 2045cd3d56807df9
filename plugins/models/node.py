"""NODE (Chen et al. 2018): h' = f(h, t), h0 = x."""
from __future__ import annotations

from torch import Tensor

from harness import Family, hookimpl
from harness import DifferentiableField, VectorField


class NODE(Family):
    name = "node"

    def derivatives(self, t: Tensor, state: tuple[Tensor, ...], f: VectorField) -> tuple[Tensor, ...]:
        (h,) = state
        return (f(t, h),)

    def derivatives_vjp(self, t: Tensor, state: tuple[Tensor, ...], cotangent: tuple[Tensor, ...],
                        f: DifferentiableField) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...],
                                                         dict[Tensor, Tensor]]:
        (h,), (a,) = state, cotangent
        value, pullback = f(t, h)
        a_h, grads = pullback(a)
        return (value,), (a_h,), grads


@hookimpl
def harness_model_families() -> list[type[Family]]:
    return [NODE]
