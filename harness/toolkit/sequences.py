"""Irregularly sampled sequences as the runner sees them: packed (x, y) tensors, and the loss
and metrics on packed targets.

The runner hands a model one tensor x and a task's loss one tensor y per batch, so a sequence
task packs what belongs together into each, row by row:

* **inputs** x, shape (batch, rows, 2 + k): ``[elapsed, observed, features…]``. Observation
  rows (``observed`` = 1) come first; ``elapsed`` is the time since the previous observation
  (for the first row, since the time the initial state stands for). Query rows
  (``observed`` = 0, features 0) follow; their ``elapsed`` is the time from the last
  observation to a stamp the model is asked to forecast.
* **targets** y, shape (batch, rows', 2 + k): ``[role, weight, values…]`` with role
  :data:`ONE_STEP`, :data:`FORECAST` or :data:`RECONSTRUCTION` (an observation read back from
  the state that has just read it); ``weight`` is that role's weight in the loss.

A prediction is (batch, rows', k), row for row with y. The layout is the same for every
element of a batch.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

ONE_STEP, FORECAST, RECONSTRUCTION = 0, 1, 2
ROLE_NAMES = {ONE_STEP: "one_step_mse", FORECAST: "forecast_mse",
              RECONSTRUCTION: "reconstruction_mse"}


class Inputs(NamedTuple):
    """An unpacked input batch."""

    features: Tensor
    """(batch, T, k): the observations."""
    gaps: Tensor
    """(batch, T): time elapsed before each observation."""
    queries: Tensor
    """(batch, H): time from the last observation to each forecast stamp (H may be 0)."""


def pack_inputs(features: Tensor, gaps: Tensor, queries: Tensor | None = None) -> Tensor:
    """x from observations (W, T, k), their gaps (W, T) and forecast spans (W, H)."""
    observed = torch.cat([gaps[..., None], torch.ones_like(gaps[..., None]), features], dim=-1)
    if queries is None or queries.shape[1] == 0:
        return observed
    rows = torch.zeros(*queries.shape, observed.shape[-1], dtype=features.dtype)
    rows[..., 0] = queries
    return torch.cat([observed, rows], dim=1)


def unpack_inputs(x: Tensor) -> Inputs:
    observations = int((x[0, :, 1] > 0.5).sum())
    return Inputs(features=x[:, :observations, 2:], gaps=x[:, :observations, 0],
                  queries=x[:, observations:, 0])


def pack_targets(values: Tensor, roles: list[int], weights: dict[int, float]) -> Tensor:
    """y from target values (W, R, k), the role of each of the R rows and each role's weight."""
    role = torch.tensor(roles, dtype=values.dtype).expand(values.shape[0], -1)
    weight = torch.tensor([weights[r] for r in roles], dtype=values.dtype).expand_as(role)
    return torch.cat([role[..., None], weight[..., None], values], dim=-1)


def target_values(target: Tensor) -> Tensor:
    """The values (batch, rows', k) of packed targets."""
    return target[..., 2:]


def _per_role(prediction: Tensor, target: Tensor) -> dict[int, tuple[Tensor, Tensor]]:
    """Per role: the MSE of its rows, and its weight."""
    squared = (prediction - target_values(target)).pow(2).mean(dim=-1)
    roles = target[0, :, 0].round().long()
    result = {}
    for role in roles.unique().tolist():
        rows = roles == role
        result[role] = (squared[:, rows].mean(), target[0, rows, 1][0])
    return result


def sequence_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Σ over roles of weight × MSE over that role's rows (features, stamps, batch)."""
    return sum(weight * mse for mse, weight in _per_role(prediction, target).values())


def sequence_metrics(prediction: Tensor, target: Tensor) -> dict[str, float]:
    """``one_step_mse`` and, where there are such rows, ``forecast_mse`` and
    ``reconstruction_mse``."""
    return {ROLE_NAMES[role]: mse.item()
            for role, (mse, _) in _per_role(prediction, target).items()}
