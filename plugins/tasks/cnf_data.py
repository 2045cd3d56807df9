"""The 2-D toy densities of the CNF experiments (Chen et al. 2018, Fig. 4; as FFJORD's toy
data), generated from a seed.

Every data set is a mixture of components drawn in equal shares (the first components take
one point more when the count does not divide), then isotropic Gaussian noise of standard
deviation ``noise`` on each coordinate:

* ``two_circles``: two concentric circles of radius 3 and 1.5 about the origin (scikit-learn's
  ``make_circles`` with factor 0.5, times 3), the angle uniform;
* ``two_moons``: the upper arc (cos θ, sin θ) and the lower arc (1 − cos θ, 0.5 − sin θ),
  θ uniform in [0, π] (``make_moons``), times 2 and shifted by (−1, −0.2): without noise the
  mean of the points is (0, 0.3) and they lie within [−3, 3]²;
* ``rings``: four concentric circles of radius 0.75, 1.5, 2.25 and 3 (the paper's "target").
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

#: Each data set's components: the radii of its circles, or None for the moons.
CIRCLE_RADII: dict[str, tuple[float, ...]] = {"two_circles": (3.0, 1.5),
                                              "rings": (0.75, 1.5, 2.25, 3.0)}
#: The moons' scale and shift (applied to the noiseless arcs, before the noise).
MOONS_SCALE, MOONS_SHIFT = 2.0, (-1.0, -0.2)
DATASETS = (*CIRCLE_RADII, "two_moons")


def shares(count: int, components: int) -> list[int]:
    """``count`` points split as evenly as possible, the first components taking the rest."""
    return [count // components + (i < count % components) for i in range(components)]


def _circles(radii: tuple[float, ...]) -> Callable[[int, torch.Generator], Tensor]:
    def draw(count: int, generator: torch.Generator) -> Tensor:
        pieces = []
        for radius, share in zip(radii, shares(count, len(radii))):
            angle = 2 * math.pi * torch.rand(share, generator=generator)
            pieces.append(radius * torch.stack([angle.cos(), angle.sin()], dim=1))
        return torch.cat(pieces)
    return draw


def _moons(count: int, generator: torch.Generator) -> Tensor:
    upper, lower = shares(count, 2)
    a = math.pi * torch.rand(upper, generator=generator)
    b = math.pi * torch.rand(lower, generator=generator)
    arcs = torch.cat([torch.stack([a.cos(), a.sin()], dim=1),
                      torch.stack([1 - b.cos(), 0.5 - b.sin()], dim=1)])
    return MOONS_SCALE * arcs + torch.tensor(MOONS_SHIFT)


_DRAW: dict[str, Callable[[int, torch.Generator], Tensor]] = {
    **{name: _circles(radii) for name, radii in CIRCLE_RADII.items()}, "two_moons": _moons}


def sample(name: str, count: int, noise: float, generator: torch.Generator) -> Tensor:
    """``count`` points (count, 2) of data set ``name`` (one of :data:`DATASETS`) with Gaussian
    noise of std ``noise``, in torch's default dtype, drawn from ``generator``."""
    if name not in _DRAW:
        raise ValueError(f"task option dataset is {name!r}; valid: {', '.join(DATASETS)}")
    points = _DRAW[name](count, generator)
    points = points + noise * torch.randn(points.shape, generator=generator)
    return points.to(torch.get_default_dtype())
