"""Plugins that misbehave on purpose, registered directly by the tests that need them."""
from __future__ import annotations

import torch

from harness import Family, hookimpl
from harness_plugins.tasks.plane_vibration import PlaneVibration
from harness_plugins.tasks.point_cloud import PointCloud


class BlowUp(Family):
    """h' = 50·h³: finite-time blow-up well before t = 1, so the adaptive solver cannot finish."""

    name = "blowup"
    widths_like = "node"

    def derivatives(self, t, state, f):
        (h,) = state
        return (50 * h ** 3 + 0 * f(t, h),)


class GradOfEnergy(Family):
    """h' = −∂E/∂h with E = ½‖f(h)‖², by ``torch.autograd.grad`` inside the dynamics, without
    turning gradients on: it fails under ``torch.no_grad()`` (evaluation), inside torch,
    called from :meth:`energy_gradient` here."""

    name = "grad_of_energy"
    widths_like = "node"

    def derivatives(self, t, state, f):
        (h,) = state
        return (-self.energy_gradient(t, h, f),)

    def energy_gradient(self, t, h, f):
        energy = 0.5 * (f(t, h) ** 2).sum()
        (gradient,) = torch.autograd.grad(energy, h, create_graph=True)
        return gradient


class NaNLoss(PointCloud):
    """The point cloud with a loss that is NaN."""

    name = "nan_loss"

    def loss(self, prediction, target):
        return super().loss(prediction, target) * torch.tensor(float("nan"))


class Misbehaving:
    """A blow-up family, a family failing inside torch, and a NaN-loss task."""

    @hookimpl
    def harness_model_families(self):
        return [BlowUp, GradOfEnergy]

    @hookimpl
    def harness_tasks(self):
        return [NaNLoss]


class OneSeedFails(PointCloud):
    """The point cloud whose training loss turns NaN at the ``fail_at``-th iteration of the run
    with seed ``fail_seed`` (its training targets carry the count): one member of an ensemble
    fails as its solo run does."""

    name = "one_seed_fails"
    options = {**PointCloud.options, "fail_seed": 2, "fail_at": 2}

    def data(self, options, seed, data_root, device, batch_size):
        data = super().data(options, seed, data_root, device, batch_size)
        if seed == options["fail_seed"]:
            data.train.y.fail_at = options["fail_at"]
        return data

    def loss(self, prediction, target):
        loss = super().loss(prediction, target)
        if hasattr(target, "fail_at"):
            target.calls = getattr(target, "calls", 0) + 1
            if target.calls >= target.fail_at:
                return loss * float("nan")
        return loss


class OneSeedNaNWindow(PlaneVibration):
    """Plane vibration whose run with seed ``fail_seed`` has a NaN in the features of training
    window ``nan_window``: its state turns non-finite in the solve after that window's batch
    is read, and the run fails there, alone or as a member of an ensemble."""

    name = "pv_one_seed_nan"
    options = {**PlaneVibration.options, "fail_seed": 2, "nan_window": 1}

    def data(self, options, seed, data_root, device, batch_size):
        data = super().data(options, seed, data_root, device, batch_size)
        if seed == options["fail_seed"]:
            data.train.x[options["nan_window"], 5, 2] = float("nan")
        return data


class SeedSizedPointCloud(PointCloud):
    """The point cloud with ``seed`` fewer training points: runs whose data differ in size."""

    name = "seed_sized_point_cloud"

    def data(self, options, seed, data_root, device, batch_size):
        data = super().data(options, seed, data_root, device, batch_size)
        data.train.x, data.train.y = data.train.x[seed:], data.train.y[seed:]
        return data


class OutOfMemoryAbove(Family):
    """h' = f(h) on at most ``rows`` rows at once; more, and the device is out of memory
    (``torch.OutOfMemoryError``, as CUDA raises it): an ensemble too large for its GPU."""

    name = "out_of_memory_above"
    widths_like = "node"

    def __init__(self, rows: int = 60) -> None:
        super().__init__()
        self.rows = rows

    def derivatives(self, t, state, f):
        (h,) = state
        if h.shape[0] > self.rows:
            raise torch.OutOfMemoryError(f"CUDA out of memory: {h.shape[0]} rows (a test)")
        return (f(t, h),)


class Ensembles:
    """Tasks with a member that fails, and with members whose data differ in size; a family
    that runs out of memory in large ensembles."""

    @hookimpl
    def harness_model_families(self):
        return [OutOfMemoryAbove]

    @hookimpl
    def harness_tasks(self):
        return [OneSeedFails, OneSeedNaNWindow, SeedSizedPointCloud]
