"""Node classification by continuous graph diffusion: GRAND and GRAND++ (the dissertation's
chapter 4; docs/grandpp.md), and the trained stiff task of the proximal study (§5.4.3).

The graph (:mod:`harness_plugins.tasks.graph_data`): by default a generated contextual
stochastic block model (no download), or ``dataset:`` one of the chapter's real sets (Cora,
CiteSeer, PubMed, Coauthor-CS, Amazon Computers and Photo) read from their published files
under the data root. ``train_per_class`` labelled nodes per class train — the first of each
class (``split: first``) or drawn at random (``split: random``, from ``split_seed``, or from the
run's seed when it is null, so seeds are splits × initialisations) — and every other labelled
node is the test set. The whole graph is one full batch; the loss is cross-entropy on the
labelled nodes, accuracy is counted on the test nodes. The input of a node is its features and
a last column marking the labelled nodes (the source term's I).

The model: a dense embedding φ (features → n, ReLU), the family's ODE whose f is the diffusion
``dynamics`` (:mod:`harness_plugins.tasks.graph_dynamics`) over the unit interval, scaled by
``end_time`` (the same as t ∈ [0, T]), then a dense classifier on the readout part. With
``fixed`` the ODE holds no parameter (the stiff study's task); with attention or the source
term f reads the raw features and the mask too (through :func:`harness.toolkit.solve_with_input`).

After the epochs in ``energy_epochs`` the record holds the over-smoothing curve: the Dirichlet
energy of the readout part at ``energy_points`` times from T/2^(k−1) to T (and at t = 0), each
the end of a solve of that length (for a family whose dynamics read t, not the state at t of
the full solve), as ``dirichlet_energy`` and ``energy_time``, and its last value as
``energy_end``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from harness import (BuildContext, DataNotFound, Task, TaskData, WidthNames,
                     data_root_or_default, hookimpl)
from harness.toolkit import TensorBatches, solve_with_input, solve_with_network
from harness_plugins.tasks import graph_files
from harness_plugins.tasks.graph_data import UNLABELLED, NodeGraph, csbm, from_files, split
from harness_plugins.tasks.graph_dynamics import (DYNAMICS, Attention, GraphDiffusion,
                                                  SourcedDiffusion, dirichlet_energy,
                                                  initial_condition)


class DiffusionClassifier(nn.Module):
    """[features, mask] → φ → initial state (§4.5's with the source term) → solve → head."""

    def __init__(self, graph: NodeGraph, ctx: BuildContext, n: int) -> None:
        super().__init__()
        options = ctx.options
        attention, self.source = DYNAMICS[options["dynamics"]]
        features = graph.features.shape[1]
        self.input_fed = attention or self.source
        # made in the order of version 1's modules, whose initialisation `fixed` keeps
        self.velocity = nn.Linear(n, ctx.velocity_channels(n, n)) if ctx.uses_velocity_net else None
        if self.input_fed:
            self.encoder = nn.Sequential(nn.Linear(features, n), nn.ReLU())
            field: nn.Module = SourcedDiffusion(
                graph.adjacency, self.encoder,
                Attention(graph.edges, n, options["heads"]) if attention else None,
                self.source, options["end_time"], n, features)
            self.ode = ctx.ode(field, n)
        else:
            self.ode = ctx.ode(GraphDiffusion(graph.adjacency, options["end_time"], n), n)
            self.encoder = nn.Sequential(nn.Linear(features, n), nn.ReLU())
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(n, graph.classes))
        self.register_buffer("edges", graph.edges)
        self.register_buffer("degrees", graph.degrees)

    def initial(self, x: Tensor) -> Tensor:
        """The initial state from the input [features, mask]."""
        x0 = self.encoder(x[:, :-1])
        if self.source:
            x0 = initial_condition(x0, x[:, -1] > 0.5, self.degrees)
        return self.ode.initial_state(x0, self.velocity)

    def solve(self, x: Tensor, z0: Tensor, duration: Tensor | None = None) -> Tensor:
        """The state at T (or per node at ``duration``): f's coefficients computed from x once
        for the solve, unless the adjoint differentiates it (then at every call, so that their
        gradients reach the encoder and the attention)."""
        if not self.input_fed:
            return self.ode(z0, duration)
        field = self.ode.dynamics.f
        if torch.is_grad_enabled() and self.ode.solver.adjoint:
            return solve_with_input(self.ode, lambda t: x, z0, duration)
        return solve_with_network(self.ode, field.fixed(x[:, :-1], x[:, -1] > 0.5), z0, duration)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.ode.part(self.solve(x, self.initial(x))))

    def energy_curve(self, x: Tensor, points: int) -> tuple[list[float], list[float]]:
        """(fractions of T, Dirichlet energy of the readout part there): t = 0, then T/2^(k−1)
        … T/2, T for k = ``points``."""
        z0 = self.initial(x)
        fractions = [0.0] + [2.0 ** -k for k in reversed(range(points))]
        energies = [dirichlet_energy(self.edges, self.ode.part(z0))]
        for fraction in fractions[1:]:
            z = self.solve(x, z0, torch.full((len(x),), fraction, dtype=x.dtype))
            energies.append(dirichlet_energy(self.edges, self.ode.part(z)))
        return fractions, energies


class GraphSBM(Task):
    name = "graph_sbm"
    #: 2: the dynamics, the real data sets, the split protocol and the energy curve; the input
    #: carries the labelled mask.
    version = 2
    joins_ensembles = False  # the model mixes the rows of its batch: they are the graph's nodes
    schedule = {"epochs": 40, "batch_size": None, "lr": 0.01,
                "solver": {"method": "dopri5", "rtol": 1e-4, "atol": 1e-4}}
    widths = {family: {"n": 16} for family in ("node", "anode", "sonode", "hbnode", "ghbnode")}
    width_names = WidthNames(required={"n"})
    options = {"dataset": "csbm", "download": False,
               "nodes": 600, "classes": 4, "features": 32, "p_in": 0.1, "p_out": 0.002,
               "signal": 0.25, "data_seed": 0,
               "train_per_class": 10, "split": "first", "split_seed": None,
               "dynamics": "fixed", "heads": 1, "end_time": 20.0,
               "energy_epochs": [], "energy_points": 6}
    tiny = {"task_options": {"nodes": 40, "classes": 2, "train_per_class": 4, "end_time": 2.0},
            "widths": {"n": 4}}

    def data(self, options: dict[str, Any], seed: int, data_root: str | None,
             device: torch.device, batch_size: int | None) -> TaskData:
        graph = self.graph(options, data_root)
        train, test = self.labelled(graph, options, seed)
        x = torch.cat([graph.features, (train != UNLABELLED)[:, None].to(graph.features)], dim=1)
        return TaskData(train=TensorBatches(x.to(device), train.to(device)),
                        test=TensorBatches(x.to(device), test.to(device)))

    def check_data(self, options: dict[str, Any], data_root: str | None) -> list[str]:
        """The real data set's missing files; nothing for the generated graph or a download."""
        if options["dataset"] == "csbm" or options["download"]:
            return []
        folder, names, _ = graph_files.files_of(_dataset(options))
        root = data_root_or_default(data_root) / folder
        return [str(root / name) for name in names if not (root / name).is_file()]

    def build_model(self, ctx: BuildContext) -> nn.Module:
        if ctx.options["dynamics"] not in DYNAMICS:
            raise ValueError(f"task option dynamics={ctx.options['dynamics']!r}; valid: "
                             f"{', '.join(DYNAMICS)}")
        return DiffusionClassifier(self.graph(ctx.options, ctx.data_root), ctx, ctx.widths["n"])

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        return nn.functional.cross_entropy(prediction, target, ignore_index=UNLABELLED)

    def metrics(self, prediction: Tensor, target: Tensor) -> dict[str, float]:
        known = target != UNLABELLED
        return {"accuracy": (prediction[known].argmax(1) == target[known]).float().mean().item()}

    def measure(self, model: nn.Module, data: TaskData, epoch: int,
                options: dict[str, Any]) -> dict[str, Any]:
        """The over-smoothing curve after the epochs in ``energy_epochs``."""
        if epoch not in options["energy_epochs"] or not isinstance(model, DiffusionClassifier):
            return {}
        x, _ = next(iter(data.test))
        with torch.no_grad():
            fractions, energies = model.energy_curve(x, options["energy_points"])
        return {"dirichlet_energy": energies,
                "energy_time": [f * options["end_time"] for f in fractions],
                "energy_end": energies[-1]}

    def __init__(self) -> None:
        self._kept: tuple[tuple[Any, ...], NodeGraph] | None = None

    def graph(self, options: dict[str, Any], data_root: str | None) -> NodeGraph:
        """The run's graph: the CSBM of ``data_seed`` (the same for every run seed, as the
        model is built from it before the data is read), or the real data set's. Built once
        for the model and the data of a run, and for the runs after it that share it: the last
        graph built is kept, under the options that make it, the data root and the precision."""
        key = (tuple(options[name] for name in GRAPH_OPTIONS), data_root,
               torch.get_default_dtype())
        if self._kept is None or self._kept[0] != key:
            self._kept = key, self._built(options, data_root)
        return self._kept[1]

    @staticmethod
    def _built(options: dict[str, Any], data_root: str | None) -> NodeGraph:
        if options["dataset"] == "csbm":
            return csbm(options, torch.Generator().manual_seed(options["data_seed"]))
        root = data_root_or_default(data_root)
        if options["download"]:
            graph_files.download(_dataset(options), root)
        return from_files(graph_files.load(_dataset(options), root))

    @staticmethod
    def labelled(graph: NodeGraph, options: dict[str, Any], seed: int) -> tuple[Tensor, Tensor]:
        """(training labels, test labels) by the split protocol of the options."""
        if options["split"] not in ("first", "random"):
            raise ValueError(f"task option split={options['split']!r}; valid: first, random")
        generator = None
        if options["split"] == "random":
            chosen = seed if options["split_seed"] is None else options["split_seed"]
            generator = torch.Generator().manual_seed(int(chosen))
        return split(graph.labels, options["train_per_class"], graph.classes, generator)


#: The task options a graph is made from.
GRAPH_OPTIONS = ("dataset", "nodes", "classes", "features", "p_in", "p_out", "signal", "data_seed")


def _dataset(options: dict[str, Any]) -> str:
    name = options["dataset"]
    if name not in graph_files.DATASETS:
        raise DataNotFound(f"task option dataset={name!r}; valid: csbm, "
                           f"{', '.join(graph_files.DATASETS)}")
    return name


@hookimpl
def harness_tasks() -> list[type[Task]]:
    return [GraphSBM]
