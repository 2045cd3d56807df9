"""1-D diffusion, the stiff reference problem of the dissertation's §5.4.1 (Fig. 5.3, Table 5.2).

dh/dt = −κ·L·h on a periodic grid of 128 points, L the cyclic graph's Laplacian scaled by
1/Δx² with Δx = 1/127, h(0) standard Gaussian (seeded), t ∈ [0, 1], κ = 1. L's eigenvalues
reach 4/Δx² ≈ 64516, so an explicit method's step is bound by stability near 1e-4 or below,
whatever the tolerance, while the solution's slowest nonconstant mode decays like e^{−39t}.
L is circulant, so the exact solution comes from the discrete Fourier transform.

NODE solves exactly this; the other families run it too (ANODE with no augmentation, the
second-order ones from rest), but only NODE's record is the benchmark. It is a pure solve: with ``epochs: 0`` a run evaluates the untrained model once, and its record
keeps the error at t = 1 (``test_error``, the 2-norm of the difference from the exact solution),
the evaluation NFE and the solve's time. κ is a parameter (log-scale, so the runner has one to
give its optimizer), and a run with epochs fits it to the exact end state. Its schedule runs it
in float64 (``precision``): the errors of interest go below float32's rounding. The exact
solution is computed in float64 whatever the precision.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from harness import BuildContext, Task, TaskData, WidthNames, hookimpl
from harness.toolkit import SolveThenRead, TensorBatches


def eigenvalues(points: int, dx: float) -> Tensor:
    """L's eigenvalues in the DFT's order: (2 − 2 cos(2πj/points))/Δx²."""
    j = torch.arange(points, dtype=torch.float64)
    return (2 - 2 * torch.cos(2 * math.pi * j / points)) / dx ** 2


def exact_solution(h0: Tensor, t: float, dx: float) -> Tensor:
    """h(t) = exp(−tL)·h(0) along the last dimension, by the DFT."""
    decay = torch.exp(-t * eigenvalues(h0.shape[-1], dx)).to(h0.device)
    return torch.fft.ifft(torch.fft.fft(h0) * decay).real


class Diffusion(nn.Module):
    """f(t, h) = −κ·L·h, L applied by shifts: (2h_i − h_{i−1} − h_{i+1})/Δx². For a family
    whose f also sees the velocity (SONODE), f reads the first ``points`` channels, h."""

    def __init__(self, points: int) -> None:
        super().__init__()
        self.points, self.dx = points, 1 / (points - 1)
        self.log_diffusivity = nn.Parameter(torch.zeros(()))

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        h = z[:, :self.points]
        laplacian = (2 * h - h.roll(1, dims=-1) - h.roll(-1, dims=-1)) / self.dx ** 2
        return -self.log_diffusivity.exp() * laplacian


class AtRest(nn.Module):
    """The initial velocity or momentum of a second-order family: zero, so that its state
    starts at h(0) at rest (those families then solve a damped wave, not the diffusion)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0], self.channels)


class Diffusion1D(Task):
    name = "diffusion1d"
    schedule = {"epochs": 0, "batch_size": None, "lr": 0.01, "precision": "float64",
                "solver": {"method": "dopri5", "rtol": 1e-6, "atol": 1e-6, "adjoint": False}}
    widths = {family: {"n": 128} for family in ("node", "anode", "sonode", "hbnode", "ghbnode")}
    width_names = WidthNames(required={"n"})  # checked against task_options.points
    options = {"points": 128, "data_seed": None}
    tiny = {"task_options": {"points": 16}, "widths": {"n": 16}}
    metric = "error"
    higher_is_better = False

    def data(self, options: dict[str, Any], seed: int, data_root: str | None,
             device: torch.device, batch_size: int | None) -> TaskData:
        points = options["points"]
        if points < 3:
            raise ValueError(f"task_options.points: {points} is too few; valid: an integer >= 3")
        data_seed = seed if options["data_seed"] is None else options["data_seed"]
        h0 = torch.randn(1, points, generator=torch.Generator().manual_seed(data_seed),
                         dtype=torch.float64)
        h1 = exact_solution(h0, 1.0, 1 / (points - 1))
        batches = TensorBatches(*(x.to(device, torch.get_default_dtype()) for x in (h0, h1)))
        return TaskData(train=batches, test=batches)

    def check_data(self, options: dict[str, Any], data_root: str | None) -> list[str]:
        """Nothing to miss: the initial state is drawn, no file is read."""
        return []

    def build_model(self, ctx: BuildContext) -> nn.Module:
        """The state is the grid, so its width follows ``task_options.points``: a suite need
        not restate it (``ctx.widths`` is updated, so the record says the width used)."""
        points = ctx.options["points"]
        if ctx.widths["n"] not in (points, self.options["points"]):
            raise ValueError(f"widths.n: {ctx.widths['n']} must equal task_options.points "
                             f"({points}): the state is the grid (leave widths out and it "
                             f"follows points)")
        ctx.widths["n"] = points
        velocity = AtRest(ctx.velocity_channels(points, points)) if ctx.uses_velocity_net else None
        return SolveThenRead(ctx.ode(Diffusion(points), points), nn.Identity(), velocity)

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        return nn.functional.mse_loss(prediction, target)

    def metrics(self, prediction: Tensor, target: Tensor) -> dict[str, float]:
        return {"error": torch.linalg.vector_norm(prediction - target, dim=-1).mean().item()}


@hookimpl
def harness_tasks() -> list[type[Task]]:
    return [Diffusion1D]
