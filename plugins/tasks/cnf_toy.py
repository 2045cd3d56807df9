"""Continuous normalizing flows on 2-D toy densities (Chen et al. 2018, §4, Fig. 4).

Maximum-likelihood density estimation of two circles, two moons or rings (generated from the
seed: :mod:`harness_plugins.tasks.cnf_data`). A family's model is the paper's CNF
(:class:`~harness_plugins.tasks.cnf_flows.CNF`): its dynamics around the paper's
hypernetwork vector field of width M, the state carrying the log-density change
(d log p/dt = −tr(∂F/∂z)); the baseline ``planar`` is a discrete planar flow of K layers. The
loss and the metric ``nll`` are the mean negative log-likelihood in nats per point. Families
whose state is more than the data are refused (:meth:`CNFToy.refusal`); the details, how NFE
count the trace, and the paper's results beside ours are in docs/cnf.md.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from harness import BuildContext, Family, Task, TaskData, WidthNames, hookimpl
from harness.toolkit import TensorBatches
from harness_plugins.tasks.cnf_data import DATASETS, sample
from harness_plugins.tasks.cnf_flows import CNF, TRACES, HyperField, PlanarFlow

DIM = 2
#: What a state channel that is not the data holds, by its source in a family's layout.
_SOURCES = {"zeros": "of zeros", "network": "from the initial-velocity network"}
#: The square [−EXTENT, EXTENT]² the density figure's grid covers (every data set lies in it).
EXTENT = 4.0


class CNFToy(Task):
    name = "cnf_toy"
    # torchdiffeq's examples/cnf.py: Adam, lr 1e-3, batches of 512, dopri5 at 1e-5, adjoint.
    schedule = {"epochs": 100, "batch_size": 500, "lr": 1e-3,
                "solver": {"method": "dopri5", "rtol": 1e-5, "atol": 1e-5, "adjoint": True}}
    widths = {"node": {"n": 2, "M": 64, "h": 32}, "anode": {"n": 3, "M": 64, "h": 32}}
    width_names = WidthNames(required={"n", "M", "h"})
    baseline_width_names = {"planar": WidthNames(required={"K"})}
    baselines = {"planar": {"K": 64}}
    options = {"dataset": "two_moons", "train_points": 5000, "test_points": 2000,
               "noise": 0.1, "data_seed": None, "trace": "exact", "probes": 1,
               "figure_every": 50, "figure_grid": 40, "figure_samples": 500}
    tiny = {"task_options": {"train_points": 64, "test_points": 32, "figure_every": 1,
                             "figure_grid": 4, "figure_samples": 8},
            "batch_size": 32}
    joins_ensembles = False  # one solve per batch with a trace: not stacked member by member
    metric = "nll"
    higher_is_better = False

    def refusal(self, family: type[Family], widths: Mapping[str, int]) -> str | None:
        """A family runs when its state is the data itself (one part, n = 2, started from x):
        then −tr(∂F/∂z) of its whole dynamics F gives the density exactly. Any other channel
        (ANODE's zeros, a second-order family's velocity from the initial-velocity network)
        makes the readout part's density a marginal of the joint density over those channels,
        which the trace of the joint dynamics does not give."""
        try:
            layout = family.initial_layout(widths["n"], DIM)
        except ValueError as error:
            return str(error)
        extra = [f"{channels} channel(s) {_SOURCES[source]}" for source, channels in layout
                 if source != "input"]
        if not extra and len(family.parts) == 1:
            return None
        return (f"its state holds {' and '.join(extra) or 'more parts'} beside the data's {DIM}: "
                f"the density of the readout part alone is then a marginal of the joint density, "
                f"which d log p/dt = -tr(dF/dz) does not give (it is exact only when the state "
                f"is the data itself: one part of n = {DIM} channels started from x, as NODE)")

    def data(self, options: dict[str, Any], seed: int, data_root: str | None,
             device: torch.device, batch_size: int | None) -> TaskData:
        _check(options)
        data_seed = seed if options["data_seed"] is None else options["data_seed"]
        generator = torch.Generator().manual_seed(data_seed)
        train, test = (sample(options["dataset"], options[key], options["noise"], generator)
                       for key in ("train_points", "test_points"))
        pairs = [(x.to(device), torch.zeros(len(x), 1, device=device)) for x in (train, test)]
        return TaskData(train=TensorBatches(*pairs[0], batch_size, shuffle=True, seed=data_seed),
                        test=TensorBatches(*pairs[1]))

    def check_data(self, options: dict[str, Any], data_root: str | None) -> list[str]:
        """Nothing to miss: the points are drawn, no file is read."""
        return []

    def build_model(self, ctx: BuildContext) -> nn.Module:
        _check(ctx.options)
        field = HyperField(DIM, ctx.widths["M"], ctx.widths["h"])
        return CNF(ctx.ode(field, ctx.widths["n"]), DIM, ctx.options["trace"],
                   ctx.options["probes"])

    def build_baseline(self, name: str, widths: dict[str, int],
                       options: dict[str, Any]) -> nn.Module:
        return PlanarFlow(DIM, widths["K"])

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        return -prediction.mean()

    def metrics(self, prediction: Tensor, target: Tensor) -> dict[str, float]:
        return {"nll": -prediction.mean().item()}

    def measure(self, model: nn.Module, data: TaskData, epoch: int,
                options: dict[str, Any]) -> dict[str, Any]:
        """How many vector-Jacobian products each counted evaluation took for the trace
        (``trace_vjps``, in training; evaluation's trace is exact: 2); at every
        ``figure_every``-th epoch, the figure's numbers: log p on a grid over
        [−4, 4]² (``density_grid``, rows from y = −4 up), samples of the model
        (``model_samples``, from fixed base points) and of the test data (``target_samples``,
        a fixed random choice of its points)."""
        measured: dict[str, Any] = {}
        if isinstance(model, CNF):
            measured["trace_vjps"] = DIM if model.trace == "exact" else model.probes
        if options["figure_every"] and epoch % options["figure_every"] == 0:
            measured.update(figure_numbers(model, data, options["figure_grid"],
                                           options["figure_samples"]))
        return measured


def figure_numbers(model: nn.Module, data: TaskData, grid: int, count: int) -> dict[str, Any]:
    """The density on a grid and samples of the model and of the test data, as lists."""
    parameter = next(model.parameters())
    axis = torch.linspace(-EXTENT, EXTENT, grid, dtype=parameter.dtype, device=parameter.device)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    points = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)
    base = torch.randn(count, DIM, generator=torch.Generator().manual_seed(0)).to(parameter)
    test = torch.cat([x for x, _ in data.test])  # in component order: a fixed draw of it
    target = test[torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:count]]
    with torch.no_grad():
        log_density = model(points).reshape(grid, grid)
        samples = model.sample(base)
    return {"density_grid": _rounded(log_density), "density_extent": EXTENT,
            "model_samples": _rounded(samples), "target_samples": _rounded(target)}


def _rounded(values: Tensor) -> list:
    """Nested lists of 4-significant-digit floats (records stay small)."""
    return [[float(f"{v:.4g}") for v in row] for row in values.tolist()]


def _check(options: dict[str, Any]) -> None:
    """Bad task options, named with what is valid, before anything is drawn or built."""
    if options["dataset"] not in DATASETS:
        raise ValueError(f"task option dataset is {options['dataset']!r}; valid: "
                         f"{', '.join(DATASETS)}")
    if options["trace"] not in TRACES:
        raise ValueError(f"task option trace is {options['trace']!r}; valid: {', '.join(TRACES)}")
    for key in ("train_points", "test_points", "probes", "figure_grid", "figure_samples"):
        if not isinstance(options[key], int) or options[key] < 1:
            raise ValueError(f"task option {key} is {options[key]!r}; valid: an integer >= 1")
    if not isinstance(options["figure_every"], int) or options["figure_every"] < 0:
        raise ValueError(f"task option figure_every is {options['figure_every']!r}; valid: an "
                         f"integer >= 0 (0: no figure numbers)")


@hookimpl
def harness_tasks() -> list[type[Task]]:
    return [CNFToy]
