"""The graph task's graphs: a generated contextual stochastic block model (CSBM) or a real
data set read by :mod:`harness_plugins.tasks.graph_files`, prepared for diffusion, and the
labelled-split protocol.

The CSBM: ``nodes`` nodes in ``classes`` equal communities (node i in community i mod classes);
an edge inside a community with probability ``p_in`` and across with ``p_out`` (the edges'
signal: their ratio), each node's ``features`` features its community's mean — a standard
Gaussian vector per community times ``signal`` — plus standard Gaussian noise (the features'
signal-to-noise ratio: ``signal``). Drawn from ``data_seed``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from harness_plugins.tasks import graph_files

UNLABELLED = -1


@dataclass
class NodeGraph:
    """A graph ready for diffusion: Â = D^{-1/2}(A + I)D^{-1/2} (sparse COO), the edges with
    self-loops (2, E) as (node, neighbour), the degrees d with the self-loop, the node features,
    the labels (UNLABELLED where unknown) and the number of classes."""

    adjacency: Tensor
    edges: Tensor
    degrees: Tensor
    features: Tensor
    labels: Tensor
    classes: int


def prepared(edges: Tensor, features: Tensor, labels: Tensor, classes: int) -> NodeGraph:
    """The graph of undirected ``edges`` (both directions, no self-loops) with self-loops
    added and Â normalised."""
    nodes = len(features)
    loops = torch.arange(nodes).repeat(2, 1)
    edges = torch.cat([edges, loops], dim=1)
    degrees = torch.zeros(nodes).index_add(0, edges[0], torch.ones(edges.shape[1]))
    scale = degrees.rsqrt()
    values = scale[edges[0]] * scale[edges[1]]
    adjacency = torch.sparse_coo_tensor(edges, values, (nodes, nodes),
                                        check_invariants=True).coalesce()
    return NodeGraph(adjacency, edges, degrees, features, labels, classes)


def csbm(options: dict[str, Any], generator: torch.Generator) -> NodeGraph:
    """The contextual stochastic block model of the options (the module's docstring)."""
    nodes, classes = options["nodes"], options["classes"]
    labels = torch.arange(nodes) % classes
    same = labels[:, None] == labels[None, :]
    probability = torch.where(same, options["p_in"], options["p_out"])
    upper = torch.rand(nodes, nodes, generator=generator).triu(1) < probability.triu(1)
    edges = (upper | upper.T).nonzero().T
    means = torch.randn(classes, options["features"], generator=generator) * options["signal"]
    features = means[labels] + torch.randn(nodes, options["features"], generator=generator)
    return prepared(edges, features, labels, classes)


def from_files(graph: graph_files.Graph) -> NodeGraph:
    """A graph read from a real data set's files, in the run's default dtype."""
    labels = torch.from_numpy(graph.labels)
    return prepared(torch.from_numpy(graph.edges), torch.tensor(graph.features,
                                                                 dtype=torch.get_default_dtype()),
                    labels, int(labels.max()) + 1)


def split(labels: Tensor, per_class: int, classes: int,
          generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """(training labels, test labels), each UNLABELLED outside its set: ``per_class`` nodes of
    each class train — the first ones, or, with a generator, a random draw — and every other
    labelled node is tested. A ValueError when a class has too few nodes."""
    train = torch.full_like(labels, UNLABELLED)
    for c in range(classes):
        members = (labels == c).nonzero().flatten()
        if len(members) <= per_class:
            raise ValueError(f"task option train_per_class={per_class}: class {c} has only "
                             f"{len(members)} nodes; valid: fewer than {len(members)}")
        if generator is not None:
            members = members[torch.randperm(len(members), generator=generator)]
        train[members[:per_class]] = c
    test = torch.where(train == UNLABELLED, labels, torch.full_like(labels, UNLABELLED))
    return train, test


def statistics(graph: NodeGraph) -> dict[str, float]:
    """What a CSBM's options state, measured: mean degree (self-loop aside), the fraction of
    edges inside a class, and the distance between class means of the features over the
    noise's standard deviation (per feature, averaged over class pairs)."""
    i, j = graph.edges[:, graph.edges[0] != graph.edges[1]]
    same = (graph.labels[i] == graph.labels[j]).double().mean().item()
    means = torch.stack([graph.features[graph.labels == c].mean(0) for c in range(graph.classes)])
    noise = (graph.features - means[graph.labels]).std().item()
    pairs = [(a, b) for a in range(graph.classes) for b in range(a + 1, graph.classes)]
    gap = np.mean([((means[a] - means[b]).pow(2).mean().sqrt() / noise).item() for a, b in pairs])
    return {"degree": len(i) / len(graph.labels), "intra_fraction": same, "feature_gap": gap}
