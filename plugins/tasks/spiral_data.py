"""The bidirectional spirals of the neural ODE paper's latent-ODE experiment (Chen et al. 2018,
§5.1), generated and seeded, and packed as the ``spirals`` task's batches.

Each spiral is Archimedean, r = a + b·θ, traversed at unit angular speed from its own start
angle θ_s (uniform in [start_min, start_max]): counterclockwise (x, y) = r(cos θ, sin θ), or
clockwise, its mirror image (x, −y). Exactly ⌊N/2⌋ of the N spirals are clockwise (a seeded
permutation says which). Time is measured from each spiral's window start, so all spirals share
one set of stamps: ``stamps`` irregular times (sorted uniform draws in [0, span]) in the
observation window, and as many in the held-out window (span, 2·span] that follows. Each spiral
keeps a random ``observations`` of its window's stamps (n = 30, 50 or 100 in the paper), its own
subset; every value is observed with Gaussian noise of standard deviation ``noise``.

A batch is packed as the runner hands it over, one tensor per side, row for row:

* x (batch, rows, 4): ``[time, observed, x, y]``; the observed rows first (``observed`` = 1,
  the noisy point), then query rows (``observed`` = 0, zeros) at the stamps to predict;
* y (batch, rows, 6): ``[role, std, noisy x, noisy y, clean x, clean y]``; role
  :data:`OBSERVED` rows enter the likelihood (with observation std ``std``), role
  :data:`HELD_OUT` rows are scored by the predictive RMSE.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

OBSERVED, HELD_OUT = 0, 1

#: The data's options (``task_options``) and their defaults.
SPIRAL_OPTIONS: dict[str, Any] = {
    "spirals": 1000,          # how many spirals (the paper: 1,000)
    "stamps": 100,            # irregular stamps in the observation window and in the held-out one
    "observations": 30,       # stamps each spiral keeps of its window (the paper: 30, 50, 100)
    "noise": 0.1,             # std of the Gaussian observation noise
    "span": 2.0,              # length of each window in time (radians of the spiral)
    "a": 0.0, "b": 0.3,       # r = a + b·θ
    "start_min": math.pi, "start_max": 4 * math.pi,  # the start angle θ_s's range
    "data_seed": None,        # seed of the spirals and their subsets; None: the run's
}


@dataclass
class Spirals:
    """Generated spirals: the shared stamps (2·stamps: window, then held-out), every spiral's
    clean and noisy points at them (N, 2·stamps, 2), its direction and its observed stamps
    (N, observations) as sorted indices into the window."""

    times: Tensor
    clean: Tensor
    noisy: Tensor
    clockwise: Tensor
    observed: Tensor
    noise: float


def check_options(options: dict[str, Any]) -> None:
    """A ValueError naming the task option and what is valid, before anything is drawn."""
    for key in ("spirals", "stamps", "observations"):
        if not isinstance(options[key], int) or options[key] < 1:
            raise ValueError(f"task_options.{key}: {options[key]!r} is not valid; valid: an "
                             f"integer >= 1")
    if options["observations"] > options["stamps"]:
        raise ValueError(f"task_options.observations: {options['observations']} is more than "
                         f"the window's {options['stamps']} stamps; valid: 1 to "
                         f"{options['stamps']}")
    for key in ("noise", "span"):
        if not options[key] > 0:
            raise ValueError(f"task_options.{key}: {options[key]!r} is not valid; valid: a "
                             f"number > 0")
    if not options["start_min"] <= options["start_max"]:
        raise ValueError(f"task_options.start_min: {options['start_min']} is above start_max "
                         f"({options['start_max']}); valid: start_min <= start_max")


def spiral_points(theta: Tensor, clockwise: Tensor, a: float, b: float) -> Tensor:
    """Points (…, 2) of the spirals r = a + b·θ at angles θ (N, T); clockwise rows mirrored."""
    radius = a + b * theta
    sign = 1.0 - 2.0 * clockwise.to(theta.dtype)[:, None]
    return torch.stack([radius * torch.cos(theta), sign * radius * torch.sin(theta)], dim=-1)


def generate(options: dict[str, Any], data_seed: int) -> Spirals:
    """The spirals the options describe, drawn from ``data_seed`` alone."""
    check_options(options)
    generator = torch.Generator().manual_seed(data_seed)
    dtype = torch.get_default_dtype()
    count, stamps, span = options["spirals"], options["stamps"], options["span"]

    def uniform(*shape: int, low: float = 0.0, high: float = 1.0) -> Tensor:
        return low + (high - low) * torch.rand(*shape, generator=generator, dtype=dtype)

    window = uniform(stamps, high=span).sort().values
    held_out = span + (span - uniform(stamps, high=span)).sort().values  # in (span, 2·span]
    times = torch.cat([window, held_out])
    clockwise = torch.randperm(count, generator=generator) < count // 2
    start = uniform(count, 1, low=options["start_min"], high=options["start_max"])
    clean = spiral_points(start + times, clockwise, options["a"], options["b"])
    noisy = clean + options["noise"] * torch.randn(clean.shape, generator=generator, dtype=dtype)
    observed = torch.stack([torch.randperm(stamps, generator=generator)[:options["observations"]]
                            for _ in range(count)]).sort(dim=1).values
    return Spirals(times, clean, noisy, clockwise, observed, float(options["noise"]))


def pack(spirals: Spirals, queries: Tensor) -> tuple[Tensor, Tensor]:
    """(x, y) for every spiral: its observed rows, then query rows at the stamps ``queries``
    (indices into ``spirals.times``, the same for every spiral; empty for none)."""
    count = len(spirals.clean)
    rows = torch.arange(count)[:, None]
    stamps = torch.cat([spirals.observed, queries.expand(count, -1)], dim=1)
    times = spirals.times[stamps]
    observed = torch.zeros_like(times)
    observed[:, :spirals.observed.shape[1]] = 1.0
    noisy, clean = spirals.noisy[rows, stamps], spirals.clean[rows, stamps]
    x = torch.cat([times[..., None], observed[..., None], noisy * observed[..., None]], dim=-1)
    role = torch.where(observed > 0.5, float(OBSERVED), float(HELD_OUT))
    std = torch.full_like(role, spirals.noise)
    y = torch.cat([role[..., None], std[..., None], noisy, clean], dim=-1)
    return x, y


def held_out_stamps(spirals: Spirals) -> Tensor:
    """The indices of the held-out window's stamps."""
    stamps = len(spirals.times) // 2
    return torch.arange(stamps, 2 * stamps)
