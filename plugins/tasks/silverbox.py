"""The Silverbox initialisation study (HBNODE paper §3, Fig. 2; appendix E.1, Table 3).

How fast does ‖h(t)‖ grow in each family before any training? The Silverbox circuit (input
voltage V1, output V2, both ×``rescale``; 100 as in the authors' code, the paper says
nothing) drives every family with f one dense layer reading the state's f channels plus
V1(t): fc_n on [h (or [h, v] for SONODE), V1(t)]. h0 = V2(start), padded with zeros by ANODE
(n = 2), completed by a dense layer fc_{P·n−1} of V2(start) for SONODE, HBNODE and GHBNODE
(the paper's "augmented with a dense network"; Table 3's h = 22 belongs to no layer it
describes). The state is carried sample by sample over ``horizon`` samples (one sample is one
unit of time), with V1 linear between samples.

Run it with ``epochs: 0`` (the schedule's default): the record's epoch 0 holds the curve
``h_norm`` (and ``state_norm``, over all parts, as the authors' plot code takes it) at every
sample, and their summaries. For the paper's setting give GHBNODE ``sigma: hardtanh``
(ξ = ln 2 and γ = sigmoid(−3) are the families' initial values). The test loss is the MSE of
the readout part's (h's) first channel against V2 — meaningless before training, kept so
training works too.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from harness import BuildContext, Task, TaskData, WidthNames, hookimpl
from harness.toolkit import exponential_rate, ODEBlock, Signal, solve_with_input, TensorBatches
from harness_plugins.tasks.sequence_files import locate, missing_file, read_silverbox


def linear_signal(start: Tensor, end: Tensor, interval: tuple[float, float]) -> Signal:
    """u(t) going linearly from ``start`` to ``end`` (each (batch,)) across ``interval``."""
    t0, t1 = interval

    def signal(t: Tensor) -> Tensor:  # t: 0-dim, or one time per element (batch, 1)
        return (start + (t.reshape(-1) - t0) / (t1 - t0) * (end - start))[:, None]
    return signal


class ForcedTrajectory(nn.Module):
    """x (batch, samples, 2) of [V1, V2] → the readout part at every sample (batch, samples,
    n); :meth:`states` gives the whole state."""

    def __init__(self, ode: ODEBlock, velocity_net: nn.Module | None) -> None:
        super().__init__()
        self.ode = ode
        self.velocity_net = velocity_net

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self.states(x))

    def states(self, x: Tensor) -> Tensor:
        """The state at every sample (batch, samples, P·n)."""
        v1 = x[..., 0]
        z = self.ode.initial_state(x[:, 0, 1:], self.velocity_net)
        states = [z]
        for i in range(x.shape[1] - 1):
            signal = linear_signal(v1[:, i], v1[:, i + 1], self.ode.family.interval)
            z = solve_with_input(self.ode, signal, z)
            states.append(z)
        return torch.stack(states, dim=1)

    def readout(self, states: Tensor) -> Tensor:
        """The family's readout part (h for the paper's) of states (batch, samples, P·n)."""
        return self.ode.part(states.flatten(0, 1)).unflatten(0, states.shape[:2])

    def h_norms(self, states: Tensor) -> tuple[list[float], list[float]]:
        """Mean over the batch of ‖h(t)‖ (the readout part's) and of ‖state(t)‖ at every sample."""
        h = self.readout(states)
        return h.norm(dim=-1).mean(dim=0).tolist(), states.norm(dim=-1).mean(dim=0).tolist()


class SilverboxInit(Task):
    name = "silverbox_init"
    schedule = {"epochs": 0, "batch_size": None,
                "solver": {"method": "dopri5", "rtol": 1e-7, "atol": 1e-7, "adjoint": False}}
    widths = {"node": {"n": 1}, "anode": {"n": 2}, "sonode": {"n": 1}, "hbnode": {"n": 1},
              "ghbnode": {"n": 1}}
    width_names = WidthNames(required={"n"})
    options = {"start": 0, "horizon": 64, "rescale": 100.0}
    tiny = {"task_options": {"horizon": 8}}
    metric = "mse"
    higher_is_better = False

    def data(self, options: dict[str, Any], seed: int, data_root: str | None,
             device: torch.device, batch_size: int | None) -> TaskData:
        path = locate(data_root, "silverbox", "sb.csv")
        signals = read_silverbox(path) * options["rescale"]
        start, horizon = options["start"], options["horizon"]
        segment = signals[start:start + horizon + 1]
        if start < 0 or horizon < 1 or len(segment) < horizon + 1:
            raise ValueError(f"silverbox_init: samples {start}…{start + horizon} are not all in "
                             f"the {len(signals)} of {path}")
        x, y = segment[None].to(device), segment[None, :, 1:].to(device)
        return TaskData(train=TensorBatches(x, y), test=TensorBatches(x, y))

    def check_data(self, options: dict[str, Any], data_root: str | None) -> list[str]:
        return missing_file(data_root, "silverbox", "sb.csv")

    def build_model(self, ctx: BuildContext) -> nn.Module:
        n = ctx.widths["n"]
        net = nn.Linear(ctx.family.f_input_parts * n + 1, n)
        velocity = nn.Linear(1, ctx.velocity_channels(n, 1)) if ctx.uses_velocity_net else None
        return ForcedTrajectory(ctx.ode(net, n), velocity)

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        return nn.functional.mse_loss(prediction[..., :1], target)

    def metrics(self, prediction: Tensor, target: Tensor) -> dict[str, float]:
        return {"mse": self.loss(prediction, target).item()}

    def measure(self, model: nn.Module, data: TaskData, epoch: int,
                options: dict[str, Any]) -> dict[str, Any]:
        assert isinstance(model, ForcedTrajectory)
        x, _ = next(iter(data.test))
        with torch.no_grad():
            h_norm, state_norm = model.h_norms(model.states(x))
        growth = (math.log10(h_norm[-1] / h_norm[0])
                  if h_norm[0] > 0 and h_norm[-1] > 0 and math.isfinite(h_norm[-1]) else None)
        return {"h_norm": h_norm, "state_norm": state_norm, "h_norm_log10_growth": growth,
                "h_norm_growth_rate": exponential_rate(h_norm)}


@hookimpl
def harness_tasks() -> list[type[SilverboxInit]]:
    return [SilverboxInit]
