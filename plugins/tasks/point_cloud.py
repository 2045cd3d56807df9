"""Point-cloud separation (HBNODE paper §3.1, appendix E.2).

120 points in the plane: 40 uniform in the disc ‖r‖ < 0.5 (label +1) and 80 uniform in the
annulus 0.85 < ‖r‖ < 1 (label −1). The model maps a point to a number in (−1, 1) through
Tanh; the loss is the MSE against the label; accuracy counts points on the right side of 0.
NODE cannot separate the classes (its flow preserves topology); the others can.

``train_points`` (0: as many as the test set, inner + outer) draws that many training points
instead, split between disc and annulus in the ratio inner : outer. Under the ``authors-code``
profile (docs/profiles.md): 50 training points, as the authors' notebooks train on, and GHBNODE
with ξ = 2 fixed and σ = identity, as their point-cloud GHBNODE is.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from harness import BuildContext, Task, TaskData, WidthNames, hookimpl
from harness.toolkit import Autonomous, mlp, SolveThenRead, TensorBatches

INPUT_DIM = 2


def sample_points(inner: int, outer: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Points uniform by area in the disc and the annulus, with labels +1 and −1 (shape (N, 1))."""
    def ring(count: int, r_min: float, r_max: float) -> Tensor:
        u, angle = torch.rand(2, count, generator=generator)
        radius = torch.sqrt(r_min ** 2 + u * (r_max ** 2 - r_min ** 2))
        angle = angle * 2 * math.pi
        return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)

    x = torch.cat([ring(inner, 0.0, 0.5), ring(outer, 0.85, 1.0)])
    y = torch.cat([torch.ones(inner, 1), -torch.ones(outer, 1)])
    return x, y


class HardTanh5(nn.Hardtanh):
    def __init__(self) -> None:
        super().__init__(-5.0, 5.0)


class PointCloud(Task):
    name = "point_cloud"
    schedule = {"epochs": 300, "batch_size": None, "lr": 0.01,
                "solver": {"method": "dopri5", "rtol": 1e-7, "atol": 1e-7}}
    widths = {"node": {"n": 2, "h": 20}, "anode": {"n": 3, "h": 20}, "sonode": {"n": 2, "h": 13},
              "hbnode": {"n": 2, "h": 14}, "ghbnode": {"n": 2, "h": 14}}
    width_names = WidthNames(required={"n", "h"})
    paper_params = {"node": 525, "anode": 567, "sonode": 528, "hbnode": 568, "ghbnode": 568}
    options = {"inner": 40, "outer": 80, "data_seed": None, "train_points": 0}
    profiles = {"authors-code": {
        "task_options": {"train_points": 50},
        "models": {"ghbnode": {"model_options": {"sigma": "identity", "xi": 2.0}}}}}
    tiny = {"task_options": {"inner": 10, "outer": 20}}
    metric = "accuracy"

    def data(self, options: dict[str, Any], seed: int, data_root: str | None,
             device: torch.device, batch_size: int | None) -> TaskData:
        data_seed = seed if options["data_seed"] is None else options["data_seed"]
        generator = torch.Generator().manual_seed(data_seed)
        inner, outer = options["inner"], options["outer"]
        if options["train_points"]:  # the same shares of disc and annulus
            inner = round(options["train_points"] * inner / (inner + outer))
            outer = options["train_points"] - inner
        train = sample_points(inner, outer, generator)
        test = sample_points(options["inner"], options["outer"], generator)
        to = lambda xy: tuple(t.to(device) for t in xy)  # noqa: E731
        return TaskData(train=TensorBatches(*to(train), batch_size, shuffle=True, seed=data_seed),
                        test=TensorBatches(*to(test)))

    def check_data(self, options: dict[str, Any], data_root: str | None) -> list[str]:
        """Nothing to miss: the points are drawn, no file is read."""
        return []

    def build_model(self, ctx: BuildContext) -> nn.Module:
        n, h = ctx.widths["n"], ctx.widths["h"]
        f = mlp([ctx.family.f_input_parts * n, h, h, n], nn.ELU)
        velocity = (mlp([INPUT_DIM, h, h, ctx.velocity_channels(n, INPUT_DIM)], HardTanh5)
                    if ctx.uses_velocity_net else None)
        head = nn.Sequential(nn.Linear(n, 1), nn.Tanh())
        return SolveThenRead(ctx.ode(Autonomous(f), n), head, velocity)

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        return nn.functional.mse_loss(prediction, target)

    def metrics(self, prediction: Tensor, target: Tensor) -> dict[str, float]:
        return {"accuracy": (torch.sign(prediction) == target).float().mean().item()}


@hookimpl
def harness_tasks() -> list[type[Task]]:
    return [PointCloud]
