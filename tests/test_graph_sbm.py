"""The trained stiff task: a stochastic block model with a symmetric normalised adjacency whose
diffusion spectrum lies in [−2, 0], a labelled split per class, the symmetric sparse product's
gradient, and a short training run under a proximal solver that learns."""
from __future__ import annotations

import torch

from harness.running.runner import execute_run
from harness_plugins.tasks.graph_data import UNLABELLED, csbm, split
from harness_plugins.tasks.graph_diffusion import GraphSBM
from harness_plugins.tasks.graph_dynamics import GraphDiffusion
from tests.conftest import CPU, make_spec


def _graph():
    graph = csbm(dict(GraphSBM.options, nodes=120), torch.Generator().manual_seed(0))
    return graph.adjacency, graph.features, graph.labels


def test_the_graph_has_communities_and_a_diffusion_spectrum_in_minus_two_to_zero():
    adjacency, features, labels = _graph()
    dense = adjacency.to_dense()
    torch.testing.assert_close(dense, dense.T)
    eigenvalues = torch.linalg.eigvalsh(dense.double()) - 1  # of Â − I
    assert eigenvalues.min() > -2 and abs(eigenvalues.max()) < 1e-5
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~torch.eye(len(labels), dtype=torch.bool)
    assert (dense > 0)[same & off_diagonal].float().mean() > 5 * (dense > 0)[~same].float().mean()
    assert features.shape == (120, GraphSBM.options["features"])


def test_each_class_has_its_labelled_nodes_and_the_rest_is_the_test_set():
    _, _, labels = _graph()
    train, test = split(labels, 3, 4)
    assert [(train == c).sum().item() for c in range(4)] == [3, 3, 3, 3]
    assert ((train == UNLABELLED) != (test == UNLABELLED)).all()


def test_the_symmetric_product_has_the_dense_products_gradient():
    adjacency, _, _ = _graph()
    f = GraphDiffusion(adjacency.double(), 10.0, 4)
    h = torch.randn(120, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda h: f(torch.zeros(()), h), (h,))


def test_a_short_proximal_training_run_learns(registry):
    spec = make_spec(task="graph_sbm", model="node", epochs=8, lr=0.05,
                     task_options={"nodes": 200, "end_time": 5.0},
                     solver={"backend": "proximal", "method": "backward_euler", "adjoint": False,
                             "options": {"steps": 4, "inner_step": 0.3, "inner_tol": 1e-4}})
    record = execute_run(spec, registry, CPU)
    assert record["status"] == "ok", record.get("error")
    first, last = record["epochs"][0], record["epochs"][-1]
    assert last["loss"] < first["loss"] and last["test_accuracy"] > 0.5  # 4 classes: chance 0.25
    assert last["forward_outer_steps"] == 4 and last["backward_nfe"] is None
