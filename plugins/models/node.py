"""NODE (Chen et al. 2018): h' = f(h, t), h0 = x."""
from __future__ import annotations

from torch import Tensor

from harness import Family, hookimpl
from harness.contract import VectorField


class NODE(Family):
    name = "node"

    def derivatives(self, t: Tensor, state: tuple[Tensor, ...], f: VectorField) -> tuple[Tensor, ...]:
        (h,) = state
        return (f(t, h),)


@hookimpl
def harness_model_families() -> list[type[Family]]:
    return [NODE]
