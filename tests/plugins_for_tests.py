"""Plugins that misbehave on purpose, registered directly by the tests that need them."""
from __future__ import annotations

import torch

from harness import Family, hookimpl
from harness_plugins.tasks.point_cloud import PointCloud


class BlowUp(Family):
    """h' = 50·h³: finite-time blow-up well before t = 1, so the adaptive solver cannot finish."""

    name = "blowup"
    widths_like = "node"

    def derivatives(self, t, state, f):
        (h,) = state
        return (50 * h ** 3 + 0 * f(t, h),)


class NaNLoss(PointCloud):
    """The point cloud with a loss that is NaN."""

    name = "nan_loss"

    def loss(self, prediction, target):
        return super().loss(prediction, target) * torch.tensor(float("nan"))


class Misbehaving:
    """A blow-up family and a NaN-loss task."""

    @hookimpl
    def harness_model_families(self):
        return [BlowUp]

    @hookimpl
    def harness_tasks(self):
        return [NaNLoss]
