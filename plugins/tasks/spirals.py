"""Latent ODE on irregularly sampled bidirectional spirals (Chen et al. 2018, §5.1, Table 2).

The data (:mod:`harness_plugins.tasks.spiral_data`): 1,000 2-D spirals, half clockwise, at 100
irregular stamps with Gaussian noise, each keeping a random n of them (``observations``: 30, 50
or 100 in the paper). The model (:mod:`harness_plugins.tasks.latent_ode`): an RNN of 25 units
run backwards over the observations gives q(z0), a 4-dimensional latent state; the family's
dynamics f (one hidden layer of 20 units, ELU) carry it; a decoder with one hidden layer of 20
(ReLU) reads the point from the readout part. The loss is the negative ELBO per spiral; the
metric ``rmse`` the predictive RMSE at the 100 held-out stamps after the observation window,
against the clean spiral, evaluated on the spirals trained on (the paper's protocol: the
future of the series, not other series).

Every family runs it: the latent state z0 is the family's input x (``ctx.ode`` with part width
n; NODE's h = z0), ANODE adds n − 4 zero channels, and the second-order families take their
other parts from a dense layer reading z0 (the initial-velocity network). The solve runs
through the sorted union of the batch's stamps (one ``through`` per batch).

Figures: with ``figure_epochs`` listing epochs, the first ``figure_spirals`` spirals' observed
points, clean path and the model's reconstruction (window) and extrapolation (held-out) are
recorded after those epochs as ``spiral_paths``; the report draws them.

Baselines (:mod:`harness_plugins.tasks.spiral_baselines`): ``rnn`` and ``rnn_dt``, the
paper's RNN and RNN with time differences, forecasting each stamp from the ones before.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from harness import BuildContext, Task, TaskData, WidthNames, hookimpl
from harness.toolkit import Autonomous, TensorBatches, mlp
from harness_plugins.tasks.latent_ode import (BackwardRNN, LatentODE, negative_elbo,
                                              spiral_metrics)
from harness_plugins.tasks.spiral_baselines import BASELINES, SeriesRNN
from harness_plugins.tasks.spiral_data import SPIRAL_OPTIONS, Spirals, generate, held_out_stamps, pack

FEATURES = 2
#: The paper's widths: latent 4, dynamics hidden 20, recognition RNN 25, decoder hidden 20.
PAPER_WIDTHS = {"latent": 4, "n": 4, "h": 20, "rnn": 25, "decoder": 20}


@dataclass
class SpiralData(TaskData):
    """The batches, and the spirals whose paths are recorded for the figure."""

    spirals: Spirals | None = None


class SpiralsTask(Task):
    name = "spirals"
    schedule = {"epochs": 2000, "batch_size": None, "lr": 0.01,
                "solver": {"method": "dopri5", "rtol": 1e-5, "atol": 1e-5}}
    widths = {"node": dict(PAPER_WIDTHS), "anode": {**PAPER_WIDTHS, "n": 5},
              "sonode": dict(PAPER_WIDTHS), "hbnode": dict(PAPER_WIDTHS),
              "ghbnode": dict(PAPER_WIDTHS)}
    #: The paper's baselines: an RNN, and the RNN with time differences concatenated.
    width_names = WidthNames(required=set(PAPER_WIDTHS))
    baselines = BASELINES
    baseline_width_names = {name: WidthNames(required=set(widths))
                            for name, widths in BASELINES.items()}
    options = {**SPIRAL_OPTIONS, "figure_epochs": [], "figure_spirals": 4}
    tiny = {"task_options": {"spirals": 16, "stamps": 20, "observations": 10}}
    #: A batch's solve runs through the union of its rows' stamps and z0 is sampled from
    #: torch's global generator: members of an ensemble would change each other's numbers.
    joins_ensembles = False
    metric = "rmse"
    higher_is_better = False

    def data(self, options: dict[str, Any], seed: int, data_root: str | None,
             device: torch.device, batch_size: int | None) -> SpiralData:
        figure_epochs = options["figure_epochs"]
        if not isinstance(figure_epochs, list) or not all(isinstance(e, int)
                                                           for e in figure_epochs):
            raise ValueError(f"task_options.figure_epochs: {figure_epochs!r} is not valid; "
                             f"valid: a list of epoch numbers")
        data_seed = seed if options["data_seed"] is None else options["data_seed"]
        spirals = generate(options, data_seed)
        train = pack(spirals, torch.empty(0, dtype=torch.long))
        test = pack(spirals, held_out_stamps(spirals))
        to = lambda xy: tuple(t.to(device) for t in xy)  # noqa: E731
        return SpiralData(train=TensorBatches(*to(train), batch_size, shuffle=True,
                                              seed=data_seed),
                          test=TensorBatches(*to(test)), spirals=spirals)

    def check_data(self, options: dict[str, Any], data_root: str | None) -> list[str]:
        """Nothing to miss: the spirals are drawn, no file is read."""
        return []

    def build_model(self, ctx: BuildContext) -> nn.Module:
        w = ctx.widths
        latent, n = w["latent"], w["n"]
        f = mlp([ctx.family.f_input_parts * n, w["h"], n], nn.ELU)
        velocity = (nn.Linear(latent, ctx.velocity_channels(n, latent))
                    if ctx.uses_velocity_net else None)
        decoder = mlp([n, w["decoder"], FEATURES], nn.ReLU)
        return LatentODE(BackwardRNN(FEATURES, w["rnn"], latent), ctx.ode(Autonomous(f), n),
                         decoder, velocity)

    def build_baseline(self, name: str, widths: dict[str, int],
                       options: dict[str, Any]) -> nn.Module:
        return SeriesRNN(FEATURES, widths["hidden"], with_time=name == "rnn_dt")

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        return negative_elbo(prediction, target)

    def metrics(self, prediction: Tensor, target: Tensor) -> dict[str, float]:
        return spiral_metrics(prediction, target)

    def measure(self, model: nn.Module, data: TaskData, epoch: int,
                options: dict[str, Any]) -> dict[str, Any]:
        if epoch not in options["figure_epochs"] or not isinstance(data, SpiralData):
            return {}
        return {"spiral_paths": spiral_paths(model, data.spirals, options["figure_spirals"])}


def spiral_paths(model: nn.Module, spirals: Spirals, count: int) -> list[dict[str, Any]]:
    """The first ``count`` spirals as the figure draws them: every stamp's time, the observed
    points, the clean path and the model's prediction at every stamp of both windows (the
    observation window's reconstructed, the held-out one's extrapolated), rounded to 4 places."""
    first = Spirals(spirals.times, spirals.clean[:count], spirals.noisy[:count],
                    spirals.clockwise[:count], spirals.observed[:count], spirals.noise)
    x, _ = pack(first, torch.arange(len(spirals.times)))
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        predicted = model(x.to(device))[:, first.observed.shape[1]:, :2].cpu()
    rows = torch.arange(len(first.clean))[:, None]
    observed = first.noisy[rows, first.observed]
    round4 = lambda t: [[round(float(v), 4) for v in point] for point in t]  # noqa: E731
    return [{"clockwise": bool(first.clockwise[i]), "split": len(spirals.times) // 2,
             "times": [round(float(t), 4) for t in spirals.times],
             "observed": round4(observed[i]), "clean": round4(first.clean[i]),
             "predicted": round4(predicted[i])} for i in range(len(first.clean))]


@hookimpl
def harness_tasks() -> list[type[Task]]:
    return [SpiralsTask]
