"""Node classification by continuous graph diffusion, in the spirit of GRAND (Chamberlain et al.
2021; the dissertation's §5.4.3 and Fig. 5.7), on a generated stochastic block model: the
trained stiff task of the proximal study, with no download.

The graph: ``nodes`` nodes in ``classes`` equal communities, an edge inside a community with
probability ``p_in`` and across with ``p_out``; each node's ``features`` features are its
community's mean (a standard Gaussian vector per community, times ``signal``) plus standard
Gaussian noise, so single nodes are hard to classify and their neighbourhoods are not.
``train_per_class`` labelled nodes per class train; every other node is the test set.

The model: a dense embedding (features → n, ReLU), the family's ODE whose f is the diffusion
f(h) = T·(Â − I)·h over the unit interval (the same as t ∈ [0, T]; Â = D^{-1/2}(A + I)D^{-1/2},
whose eigenvalues put those of Â − I in [−2, 0], so explicit steps are bound near 1.6/T and
the problem is stiff for large T), then a dense classifier. Â is fixed (GRAND-l with a fixed
normalised adjacency, not attention): the ODE holds no parameter, and learning happens in the
embedding and the classifier. The whole graph is one full batch; the loss is cross-entropy on
the labelled nodes, and accuracy is counted on the test nodes.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from harness import BuildContext, Task, TaskData, hookimpl
from harness.toolkit import SolveThenRead, TensorBatches

UNLABELLED = -1


def block_model(options: dict[str, Any], generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """(normalised adjacency Â (nodes, nodes; sparse COO), features (nodes, features),
    labels (nodes,))."""
    nodes, classes = options["nodes"], options["classes"]
    labels = torch.arange(nodes) % classes
    same = labels[:, None] == labels[None, :]
    probability = torch.where(same, options["p_in"], options["p_out"])
    upper = torch.rand(nodes, nodes, generator=generator).triu(1) < probability.triu(1)
    adjacency = (upper | upper.T).to(torch.get_default_dtype()) + torch.eye(nodes)
    scale = adjacency.sum(1).rsqrt()
    normalised = (scale[:, None] * adjacency * scale[None, :]).to_sparse().coalesce()
    means = torch.randn(classes, options["features"], generator=generator) * options["signal"]
    features = means[labels] + torch.randn(nodes, options["features"], generator=generator)
    return normalised, features, labels


def split(labels: Tensor, per_class: int, classes: int) -> tuple[Tensor, Tensor]:
    """(training labels, test labels), each UNLABELLED outside its set: the first ``per_class``
    nodes of each class train."""
    train = torch.full_like(labels, UNLABELLED)
    for c in range(classes):
        chosen = (labels == c).nonzero().flatten()[:per_class]
        train[chosen] = c
    test = torch.where(train == UNLABELLED, labels, torch.full_like(labels, UNLABELLED))
    return train, test


class _SymmetricProduct(torch.autograd.Function):
    """Â·h for a symmetric sparse Â, whose backward is Â·grad again: autograd's own backward
    of a sparse product transposes (and coalesces) Â at every call, which dominated the cost."""

    @staticmethod
    def forward(ctx: Any, adjacency: Tensor, h: Tensor) -> Tensor:
        ctx.save_for_backward(adjacency)
        return torch.sparse.mm(adjacency, h)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor]:
        (adjacency,) = ctx.saved_tensors
        return None, _SymmetricProduct.apply(adjacency, grad)


class GraphDiffusion(nn.Module):
    """f(t, z) = T·(Â − I)·h on the h part of the state (the first ``n`` channels)."""

    def __init__(self, adjacency: Tensor, end_time: float, n: int) -> None:
        super().__init__()
        self.register_buffer("adjacency", adjacency)
        self.end_time, self.n = end_time, n

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        h = z[:, :self.n]
        return self.end_time * (_SymmetricProduct.apply(self.adjacency, h) - h)


class GraphSBM(Task):
    name = "graph_sbm"
    schedule = {"epochs": 40, "batch_size": None, "lr": 0.01,
                "solver": {"method": "dopri5", "rtol": 1e-4, "atol": 1e-4}}
    widths = {family: {"n": 16} for family in ("node", "anode", "sonode", "hbnode", "ghbnode")}
    options = {"nodes": 600, "classes": 4, "features": 32, "p_in": 0.1, "p_out": 0.002,
               "signal": 0.25, "train_per_class": 10, "end_time": 20.0, "data_seed": 0}
    tiny = {"task_options": {"nodes": 40, "classes": 2, "train_per_class": 4, "end_time": 2.0},
            "widths": {"n": 4}}

    def data(self, options: dict[str, Any], seed: int, data_root: str | None,
             device: torch.device, batch_size: int | None) -> TaskData:
        _, features, labels = self._graph(options)
        train, test = split(labels, options["train_per_class"], options["classes"])
        return TaskData(train=TensorBatches(features.to(device), train.to(device)),
                        test=TensorBatches(features.to(device), test.to(device)))

    def check_data(self, options: dict[str, Any], data_root: str | None) -> list[str]:
        """Nothing to miss: the graph is generated, no file is read."""
        return []

    def build_model(self, ctx: BuildContext) -> nn.Module:
        options = ctx.options
        adjacency, _, _ = self._graph(options)
        n = ctx.widths["n"]
        velocity = nn.Linear(n, ctx.velocity_channels(n, n)) if ctx.uses_velocity_net else None
        ode = ctx.ode(GraphDiffusion(adjacency, options["end_time"], n), n)
        return nn.Sequential(nn.Linear(options["features"], n), nn.ReLU(),
                             SolveThenRead(ode, nn.Sequential(nn.ReLU(), nn.Linear(n, options["classes"])),
                                           velocity))

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        return nn.functional.cross_entropy(prediction, target, ignore_index=UNLABELLED)

    def metrics(self, prediction: Tensor, target: Tensor) -> dict[str, float]:
        known = target != UNLABELLED
        return {"accuracy": (prediction[known].argmax(1) == target[known]).float().mean().item()}

    @staticmethod
    def _graph(options: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        """The graph of ``data_seed``: the same for every run seed (the model is built from
        it before the data is read), so seeds vary the initialisation only."""
        return block_model(options, torch.Generator().manual_seed(options["data_seed"]))


@hookimpl
def harness_tasks() -> list[type[Task]]:
    return [GraphSBM]
