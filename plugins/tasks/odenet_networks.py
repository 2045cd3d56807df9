"""The networks of the neural ODE paper's MNIST experiment (Chen et al. 2018, §3 and Table 1),
as its authors' code (rtqichen/torchdiffeq, ``examples/odenet_mnist.py``) builds them.

- downsampling, the input twice: conv_{64,3} → GN → ReLU → conv_{64,4,stride 2} → GN → ReLU →
  conv_{64,4,stride 2} (28 × 28 → 26 → 13 → 6);
- the feature part: an ODE block whose field is GN → ReLU → tconv_{h,3} → GN → ReLU →
  tconv_{n,3} → GN (tconv reads a channel filled with t besides its input), or 6 residual
  blocks x + conv_3(ReLU(GN(conv_3(ReLU(GN(x)))))) (no biases), or the ODE block's field
  integrated by a fixed-step Runge–Kutta solve that is backpropagated through (RK-Net);
- the head: GN → ReLU → global average pooling → linear_10.

GN is group normalisation with min(32, d) groups, as the authors' ``norm``; for a width that 32
does not divide (an augmented family's), the largest group count dividing both.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from harness.toolkit import RowwiseTime, Ticks

#: The downsampled features' channels: the ODE block's input, the residual blocks' width.
FEATURES = 64
CLASSES = 10
#: Classical Runge–Kutta (RK4): the stages' nodes and weights; stage i evaluates at
#: z + dt · NODES[i] · k_{i−1} and time t + dt · NODES[i].
RK4_NODES = (0.0, 0.5, 0.5, 1.0)
RK4_WEIGHTS = (1 / 6, 1 / 3, 1 / 3, 1 / 6)


def norm(channels: int) -> nn.GroupNorm:
    """Group normalisation as the authors': min(32, channels) groups (the largest count that
    divides both 32 and ``channels`` when 32 does not divide it)."""
    return nn.GroupNorm(channels if channels < 32 else math.gcd(32, channels), channels)


def downsampling(channels: int) -> nn.Sequential:
    """The input's two downsamplings: ``channels`` → 64 channels, side 28 → 6 (32 → 7)."""
    return nn.Sequential(nn.Conv2d(channels, FEATURES, 3, 1), norm(FEATURES), nn.ReLU(),
                         nn.Conv2d(FEATURES, FEATURES, 4, 2, 1), norm(FEATURES), nn.ReLU(),
                         nn.Conv2d(FEATURES, FEATURES, 4, 2, 1))


def head(channels: int) -> nn.Sequential:
    """GN → ReLU → global average pooling → linear to the 10 classes."""
    return nn.Sequential(norm(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(channels, CLASSES))


class ODEFunc(RowwiseTime, nn.Module):
    """f(t, z) of the authors' ODE-Net: GN → ReLU → tconv_{hidden,3} → GN → ReLU →
    tconv_{out,3} → GN, each convolution reading a channel filled with t first (row i's with
    t's row i when t has one value per row)."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int) -> None:
        super().__init__()
        self.norms = nn.ModuleList([norm(in_channels), norm(hidden), norm(out_channels)])
        self.convs = nn.ModuleList([nn.Conv2d(in_channels + 1, hidden, 3, padding=1),
                                    nn.Conv2d(hidden + 1, out_channels, 3, padding=1)])

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        time = t.to(z.dtype).expand(z.shape[0], 1, *z.shape[2:])
        for conv, normalise in zip(self.convs, self.norms):
            z = conv(torch.cat([time, torch.relu(normalise(z))], dim=1))
        return self.norms[-1](z)


class ResBlock(nn.Module):
    """The authors' residual block: x + conv_3(ReLU(GN(conv_3(ReLU(GN(x)))))), no biases."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = norm(channels), norm(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(torch.relu(self.norm1(x)))
        return x + self.conv2(torch.relu(self.norm2(out)))


class RungeKutta(nn.Module):
    """RK-Net's feature part: z(1) from z(0) = x by ``steps`` equal steps of classical RK4 on
    [0, 1], differentiated by backpropagation through every stage (no adjoint). Counts each
    evaluation of f into the run's counter (:class:`harness.toolkit.CountsEvaluations`):
    4 · steps per forward pass, in the phase the runner sets (forward, eval, probe); its
    backward pass evaluates f no more, it only backpropagates through those evaluations."""

    def __init__(self, field: nn.Module, steps: int) -> None:
        super().__init__()
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"RK-Net's widths: steps must be an integer >= 1, not {steps!r}")
        self.field, self.steps = field, steps
        self.ticks: Ticks | None = None

    def count_with(self, ticks: Ticks) -> None:
        self.ticks = ticks

    def evaluate(self, t: float, z: Tensor) -> Tensor:
        if self.ticks is not None:
            self.ticks.tick()
        return self.field(z.new_tensor(t), z)

    def forward(self, z: Tensor) -> Tensor:
        dt = 1.0 / self.steps
        for step in range(self.steps):
            t, k, total = step * dt, None, 0
            for node, weight in zip(RK4_NODES, RK4_WEIGHTS):
                k = self.evaluate(t + node * dt, z if k is None else z + node * dt * k)
                total = total + weight * k
            z = z + dt * total
        return z


def resnet(channels: int, width: int, blocks: int) -> nn.Sequential:
    """The paper's ResNet: downsampling → ``blocks`` residual blocks → head."""
    if width != FEATURES:
        raise ValueError(f"ResNet's widths: n is the downsampled features' {FEATURES} channels, "
                         f"not {width}")
    return nn.Sequential(downsampling(channels), *(ResBlock(width) for _ in range(blocks)),
                         head(width))


def rk_net(channels: int, width: int, hidden: int, steps: int) -> nn.Sequential:
    """The paper's RK-Net: downsampling → ODE-Net's field solved by RK4 in ``steps`` steps →
    head."""
    if width != FEATURES:
        raise ValueError(f"RK-Net's widths: n is the downsampled features' {FEATURES} channels, "
                         f"not {width}")
    return nn.Sequential(downsampling(channels),
                         RungeKutta(ODEFunc(width, hidden, width), steps), head(width))
