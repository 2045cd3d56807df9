"""The neural ODE paper's image classifier (Chen et al. 2018, §3, Table 1) on MNIST, Fashion-MNIST
and CIFAR10: ``mnist_odenet``, ``fashion_mnist_odenet``, ``cifar10_odenet``.

The model is the authors' ODE-Net (:mod:`harness_plugins.tasks.odenet_networks`): the input
downsampled twice to 64 channels, an ODE block, pooling and a linear layer. A family's dynamics
go into the ODE block: its state starts from the 64 downsampled channels (NODE at n = 64 is the
paper's ODE-Net; ANODE pads zeros to n; SONODE, HBNODE and GHBNODE take their other channels
from an initial-velocity network on the features), f is the paper's field with f_input_parts·n
channels in, h hidden and n out, and the head reads the readout part at T = 1.

Baselines (``baselines: [resnet, rknet]``): the paper's ResNet — the same network with 6
residual blocks in place of the ODE block — and its RK-Net — the ODE block's field integrated by
RK4 in a fixed number of steps and backpropagated through. RK-Net counts its evaluations: its
records hold forward and evaluation NFE (4 per step), no backward NFE (its backward pass is
backpropagation through those evaluations, evaluating f no more). Neither uses the run's solver
settings. The data (files, options, subsets) is the image tasks' (:mod:`.images`), plus one option
of these tasks, ``downscale``: every network first averages the image over k × k blocks (28 × 28
→ 14 × 14 at k = 2), a CPU-sized input with the same networks and parameter counts (the
features the ODE block sees shrink from 6 × 6 to 3 × 3). docs/odenet.md has the parameter counts
against the paper's and what differs from its training.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from harness import BuildContext, Task, WidthNames, hookimpl
from harness.toolkit import SolveThenRead
from harness_plugins.tasks.images import (CIFAR10Task, FashionMNISTTask, ImageTask, MNISTTask,
                                          velocity_net)
from harness_plugins.tasks.odenet_networks import (FEATURES, ODEFunc, downsampling, head, resnet,
                                                   rk_net)

#: ODE-Net's widths (n = h = 64, the authors' ODEfunc) for NODE; the paper has no other family.
#: ANODE adds 16 zero channels; the second-order families keep n = 64 (their velocity network's
#: 64 channels come on top), so parameter counts differ from NODE's (docs/odenet.md).
WIDTHS = {"node": {"n": FEATURES, "h": FEATURES}, "anode": {"n": FEATURES + 16, "h": FEATURES},
          "sonode": {"n": FEATURES, "h": FEATURES}, "hbnode": {"n": FEATURES, "h": FEATURES},
          "ghbnode": {"n": FEATURES, "h": FEATURES}}
#: The paper's baselines: 6 residual blocks; RK-Net with ODE-Net's field and 4 RK4 steps (the
#: paper gives no step count; 16 evaluations, about what dopri5 takes at tol 1e-3 early on).
BASELINES = {"resnet": {"n": FEATURES, "blocks": 6},
             "rknet": {"n": FEATURES, "h": FEATURES, "steps": 4}}


class ODENetTask(ImageTask):
    """The paper's ODE-Net on an image set; the data set comes from the second base class."""

    widths = WIDTHS
    paper_params: dict[str, int] = {}  # the paper rounds: 0.22 M, 0.60 M (docs/odenet.md)
    baselines = BASELINES
    #: Each baseline reads exactly its widths' names (n and h: the ODE-Net's, from ImageTask).
    baseline_width_names = {name: WidthNames(required=set(widths))
                            for name, widths in BASELINES.items()}
    #: The authors' code: batch 128, dopri5 at tol 1e-3 with the adjoint (the paper's §3), 160
    #: epochs. They train by SGD with momentum 0.9 from lr 0.1 (decayed ×0.1 at epochs 60, 100,
    #: 140) on randomly cropped images; the harness has no momentum setting and no augmentation,
    #: so Adam at lr 1e-3 (the image tasks') — docs/odenet.md.
    schedule = {"epochs": 160, "batch_size": 128, "lr": 1e-3, "optimizer": "adam",
                "solver": {"method": "dopri5", "rtol": 1e-3, "atol": 1e-3, "adjoint": True}}
    #: Group normalisation holds parameters, which an ensemble cannot stack.
    joins_ensembles = False
    #: ``downscale``: the networks read the image averaged over k × k blocks (1: as it is).
    options = {**ImageTask.options, "downscale": 1}

    def build_model(self, ctx: BuildContext) -> nn.Module:
        n, h = ctx.widths["n"], ctx.widths["h"]
        f = ODEFunc(ctx.family.f_input_parts * n, h, n)
        velocity = (velocity_net(FEATURES, h, ctx.velocity_channels(n, FEATURES))
                    if ctx.uses_velocity_net else None)
        return nn.Sequential(*self.downscaling(ctx.options), downsampling(self.channels),
                             SolveThenRead(ctx.ode(f, n), head(n), velocity))

    def downscaling(self, options: dict[str, Any]) -> list[nn.Module]:
        """The layer averaging k × k blocks of pixels for task option ``downscale`` k (none
        for 1); a k that is no integer >= 1 dividing the image side is refused."""
        k = options["downscale"]
        if not isinstance(k, int) or isinstance(k, bool) or k < 1 or self.size % k:
            raise ValueError(f"task {self.name!r}: task option downscale is {k!r}; valid: an "
                             f"integer >= 1 dividing the image side {self.size} (1: the images "
                             f"as they are; 2: {self.size // 2} × {self.size // 2})")
        return [nn.AvgPool2d(k)] if k > 1 else []

    def build_baseline(self, name: str, widths: dict[str, int],
                       options: dict[str, Any]) -> nn.Module:
        if set(widths) != set(BASELINES[name]):
            raise ValueError(f"task {self.name!r}, baseline {name!r}: widths {widths}; valid: "
                             f"exactly the keys {', '.join(BASELINES[name])} (default "
                             f"{BASELINES[name]})")
        network = (resnet(self.channels, widths["n"], widths["blocks"]) if name == "resnet" else
                   rk_net(self.channels, widths["n"], widths["h"], widths["steps"]))
        return nn.Sequential(*self.downscaling(options), *network)


class MNISTODENetTask(ODENetTask, MNISTTask):
    name = "mnist_odenet"


class FashionMNISTODENetTask(ODENetTask, FashionMNISTTask):
    name = "fashion_mnist_odenet"


class CIFAR10ODENetTask(ODENetTask, CIFAR10Task):
    name = "cifar10_odenet"


@hookimpl
def harness_tasks() -> list[type[Task]]:
    return [MNISTODENetTask, FashionMNISTODENetTask, CIFAR10ODENetTask]
