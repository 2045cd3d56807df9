"""GRAND++ on the graph task (docs/grandpp.md): the source term keeps node features apart where
GRAND's diffusion makes them one vector, the Dirichlet energy against a hand computation, the
generated CSBM's stated statistics, the split protocol, the real data sets' loaders on files
written here in their published formats (and their checksums enforced), and every installed
family on the new dynamics."""
from __future__ import annotations

import io
import pickle
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn
from torchdiffeq import odeint

from harness import DataNotFound
from harness.running.runner import build_run, execute_run, task_options
from harness.toolkit import solve_with_input
from harness_plugins.tasks import graph_diffusion, graph_files
from harness_plugins.tasks.graph_data import UNLABELLED, csbm, prepared, statistics
from harness_plugins.tasks.graph_diffusion import DiffusionClassifier, GraphSBM
from harness_plugins.tasks.graph_dynamics import (Attention, SourcedDiffusion, dirichlet_energy,
                                                  initial_condition, source_term)
from tests.conftest import CPU, make_spec


def _path(nodes: int):
    """A path graph 0 – 1 – … with both edge directions."""
    pairs = torch.tensor([[i, i + 1] for i in range(nodes - 1)]).T
    return torch.cat([pairs, pairs.flip(0)], dim=1)


def _cycle(nodes: int):
    """A cycle 0 – 1 – … – 0 with both edge directions: every degree the same."""
    pairs = torch.tensor([[i, (i + 1) % nodes] for i in range(nodes)]).T
    return torch.cat([pairs, pairs.flip(0)], dim=1)


def test_the_dirichlet_energy_of_a_path_signal_is_the_hand_computed_one():
    # path 0 – 1 – 2, h = ((1, 2), (0, 0), (−1, 1)): edge (0, 1) gives 1 + 4, edge (1, 2) 1 + 1
    # (each edge once; self-loops nothing)
    graph = prepared(_path(3), torch.zeros(3, 1), torch.zeros(3, dtype=torch.long), 1)
    h = torch.tensor([[1.0, 2.0], [0.0, 0.0], [-1.0, 1.0]])
    assert dirichlet_energy(graph.edges, h) == pytest.approx(7.0, abs=1e-6)
    assert dirichlet_energy(graph.edges, torch.full((3, 2), 5.0)) == 0.0  # one vector


def _solve(source: bool, end: float):
    """The fixed diffusion (with or without the source term) of 4 features on a cycle of 8
    nodes, nodes 1 and 6 labelled, from §4.5's initial condition; (graph, states at t = 0 …
    end, source C)."""
    torch.manual_seed(0)
    graph = prepared(_cycle(8), torch.randn(8, 4, dtype=torch.float64),
                     torch.zeros(8, dtype=torch.long), 1)
    graph.adjacency = graph.adjacency.double()
    labelled = torch.zeros(8, dtype=torch.bool)
    labelled[[1, 6]] = True
    field = SourcedDiffusion(graph.adjacency, nn.Identity(), None, source, 1.0, 4, 4)
    x = torch.cat([graph.features, labelled[:, None].double()], dim=1)
    h0 = initial_condition(graph.features, labelled, graph.degrees.double()) if source \
        else graph.features
    states = odeint(lambda t, h: field(torch.cat([h, x], dim=1)), h0,
                    torch.linspace(0, end, 5, dtype=torch.float64), rtol=1e-9, atol=1e-9)
    return graph, states, source_term(graph.features, labelled)


def test_grand_makes_the_features_one_vector_and_the_source_term_does_not():
    graph, grand, _ = _solve(source=False, end=400.0)
    assert dirichlet_energy(graph.edges, grand[-1]) < 1e-8 * dirichlet_energy(graph.edges, grand[0])
    graph, grandpp, source = _solve(source=True, end=400.0)
    # the fixed point: (I − Â)Z = C up to the null direction, on a cycle the constant vector,
    # which carries no energy
    laplacian = torch.eye(8, dtype=torch.float64) - graph.adjacency.to_dense()
    fixed = torch.linalg.pinv(laplacian) @ source
    expected = dirichlet_energy(graph.edges, fixed)
    assert expected > 0.1
    assert dirichlet_energy(graph.edges, grandpp[-1]) == pytest.approx(expected, rel=1e-4)
    assert dirichlet_energy(graph.edges, grandpp[-2]) == pytest.approx(expected, rel=1e-4)


def test_the_initial_condition_sums_to_the_labelled_nodes_weighted_source():
    x0, labelled = torch.randn(6, 3, dtype=torch.float64), torch.tensor([1, 0, 0, 1, 1, 0]) > 0
    degrees = torch.tensor([2.0, 3, 3, 2, 4, 2], dtype=torch.float64)
    z0 = initial_condition(x0, labelled, degrees)
    centre = x0[labelled].mean(0)
    torch.testing.assert_close(z0.sum(0), ((x0[labelled] - centre) / degrees[labelled, None]).sum(0))
    torch.testing.assert_close(z0 - x0, (z0 - x0)[:1].expand(6, 3))  # one shift c for all


def test_the_generated_csbm_has_its_stated_statistics():
    options = dict(GraphSBM.options, nodes=2000, classes=4, features=256, p_in=0.05,
                   p_out=0.005, signal=0.5)
    found = statistics(csbm(options, torch.Generator().manual_seed(3)))
    inside, across = 0.05 * (500 - 1), 0.005 * 1500  # expected neighbours of a node
    assert found["degree"] == pytest.approx(inside + across, rel=0.03)
    assert found["intra_fraction"] == pytest.approx(inside / (inside + across), abs=0.01)
    # class means signal·g_c, g_c standard normal: RMS gap of two over the unit noise √2·signal
    assert found["feature_gap"] == pytest.approx(0.5 * 2 ** 0.5, rel=0.1)
    assert statistics(csbm(dict(options, signal=0.0), torch.Generator().manual_seed(3))
                      )["feature_gap"] < 0.1


def test_random_splits_follow_the_seed_or_the_split_seed():
    graph = GraphSBM().graph(dict(GraphSBM.options), None)
    options = dict(GraphSBM.options, split="random", train_per_class=3)
    first, _ = GraphSBM.labelled(graph, options, 0)
    again, _ = GraphSBM.labelled(graph, options, 0)
    other, _ = GraphSBM.labelled(graph, options, 1)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert [(first == c).sum().item() for c in range(4)] == [3, 3, 3, 3]
    pinned = dict(options, split_seed=7)
    assert torch.equal(GraphSBM.labelled(graph, pinned, 0)[0], GraphSBM.labelled(graph, pinned, 1)[0])
    with pytest.raises(ValueError, match="train_per_class=200: class 0 has only 150"):
        GraphSBM.labelled(graph, dict(options, train_per_class=200), 0)


# --- the real data sets' files -----------------------------------------------------------------


def _pickled(value) -> bytes:
    return pickle.dumps(value, protocol=2)


def _one_hot(labels, classes: int = 3) -> np.ndarray:
    return np.eye(classes)[labels]


def _write_planetoid(folder: Path, stem: str) -> dict[str, str]:
    """A 6-node Planetoid data set: 2 training nodes (x, y), 4 in allx, 2 test nodes given in
    reverse order by test.index; returns the files' blob ids."""
    features = np.arange(6 * 3, dtype=float).reshape(6, 3)
    labels = np.array([0, 1, 2, 0, 2, 1])
    graph = defaultdict(list, {0: [1], 1: [0, 2], 2: [1, 5], 3: [4], 4: [3], 5: [2]})
    parts = {"x": _pickled(sp.csr_matrix(features[:2])), "y": _pickled(_one_hot(labels[:2])),
             "allx": _pickled(sp.csr_matrix(features[:4])),
             "ally": _pickled(_one_hot(labels[:4])),
             "tx": _pickled(sp.csr_matrix(features[[5, 4]])),
             "ty": _pickled(_one_hot(labels[[5, 4]])), "graph": _pickled(graph),
             "test.index": b"5\n4\n"}
    folder.mkdir(parents=True, exist_ok=True)
    for part, data in parts.items():
        (folder / f"ind.{stem}.{part}").write_bytes(data)
    return {f"ind.{stem}.{part}": graph_files.blob_id(data) for part, data in parts.items()}


def test_a_planetoid_data_set_is_read_as_the_published_loader_reads_it(tmp_path: Path):
    checksums = _write_planetoid(tmp_path / "planetoid", "cora")
    graph = graph_files.load("cora", tmp_path, checksums)
    np.testing.assert_array_equal(graph.features, np.arange(18, dtype=float).reshape(6, 3))
    np.testing.assert_array_equal(graph.labels, [0, 1, 2, 0, 2, 1])
    edges = {tuple(e) for e in graph.edges.T}
    assert edges == {(0, 1), (1, 0), (1, 2), (2, 1), (2, 5), (5, 2), (3, 4), (4, 3)}


def test_a_file_failing_its_checksum_is_refused_naming_it(tmp_path: Path):
    checksums = _write_planetoid(tmp_path / "planetoid", "cora")
    target = tmp_path / "planetoid" / "ind.cora.ty"
    target.write_bytes(target.read_bytes()[:-1] + b"\x00")
    with pytest.raises(DataNotFound, match=r"ind\.cora\.ty fails its checksum: git blob id "):
        graph_files.load("cora", tmp_path, checksums)


def test_a_pickle_building_anything_but_arrays_is_refused_even_when_checked(tmp_path: Path):
    checksums = _write_planetoid(tmp_path / "planetoid", "cora")
    # builtins.print, a callable and not data, written out: pickle.dumps(print) names whatever
    # print is at the time (ray, once imported, replaces it with its own)
    evil = b"\x80\x02c__builtin__\nprint\nq\x00."
    (tmp_path / "planetoid" / "ind.cora.graph").write_bytes(evil)
    checksums["ind.cora.graph"] = graph_files.blob_id(evil)
    with pytest.raises(DataNotFound, match="refusing to load __builtin__.print"):
        graph_files.load("cora", tmp_path, checksums)


def test_missing_files_are_named_with_where_to_get_them(tmp_path: Path):
    options = dict(GraphSBM.options, dataset="citeseer")
    missing = GraphSBM().check_data(options, str(tmp_path))
    assert len(missing) == 8 and missing[0].endswith("planetoid/ind.citeseer.x")
    with pytest.raises(DataNotFound, match="kimiyoung/planetoid/af6abf4"):
        graph_files.load("citeseer", tmp_path)


def test_a_gnn_benchmark_npz_is_read(tmp_path: Path):
    adjacency = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=float))
    attributes = sp.csr_matrix(np.array([[1.0, 0], [0, 2], [3, 0]]))
    buffer = io.BytesIO()
    np.savez(buffer, adj_data=adjacency.data, adj_indices=adjacency.indices,
             adj_indptr=adjacency.indptr, adj_shape=adjacency.shape, attr_data=attributes.data,
             attr_indices=attributes.indices, attr_indptr=attributes.indptr,
             attr_shape=attributes.shape, labels=np.array([1, 0, 1]))
    folder = tmp_path / "gnn-benchmark"
    folder.mkdir()
    (folder / "amazon_electronics_photo.npz").write_bytes(buffer.getvalue())
    checksums = {"amazon_electronics_photo.npz": graph_files.blob_id(buffer.getvalue())}
    graph = graph_files.load("photo", tmp_path, checksums)
    np.testing.assert_array_equal(graph.features, attributes.toarray())
    np.testing.assert_array_equal(graph.labels, [1, 0, 1])
    assert {tuple(e) for e in graph.edges.T} == {(0, 1), (1, 0), (1, 2), (2, 1)}


def test_a_run_trains_on_a_written_planetoid_set(registry, tmp_path: Path, monkeypatch):
    for name, blob in _write_planetoid(tmp_path / "planetoid", "pubmed").items():
        monkeypatch.setitem(graph_files.BLOB_IDS, name, blob)
    spec = make_spec(task="graph_sbm", model="node", epochs=1,
                     task_options={"dataset": "pubmed", "train_per_class": 1,
                                   "dynamics": "grand++-l", "end_time": 2.0,
                                   "energy_epochs": [1], "energy_points": 2},
                     widths={"n": 4})
    record = execute_run(replace(spec, data_root=str(tmp_path)), registry, CPU)
    assert record["status"] == "ok", record.get("error")
    last = record["epochs"][-1]
    assert last["energy_time"] == [0.0, 1.0, 2.0] and len(last["dirichlet_energy"]) == 3


# --- every family on the new dynamics ----------------------------------------------------------


@pytest.mark.parametrize("dynamics", ["grand-l", "grand++-l"])
def test_every_installed_family_trains_on_grand_and_grandpp(registry, dynamics: str):
    for family in sorted(registry.families):
        spec = make_spec(task="graph_sbm", model=family, epochs=1,
                         task_options={**GraphSBM.tiny["task_options"], "dynamics": dynamics,
                                       "energy_epochs": [1], "energy_points": 2},
                         widths=GraphSBM.tiny["widths"])
        record = execute_run(spec, registry, CPU)
        assert record["status"] == "ok", f"{family}: {record.get('error')}"
        last = record["epochs"][-1]
        assert last["forward_nfe"] > 0 and last["energy_end"] == last["dirichlet_energy"][-1]


def test_a_run_builds_its_graph_once_and_the_next_run_on_it_none(registry, monkeypatch):
    built = []

    def counted(options, generator):
        built.append(options["data_seed"])
        return csbm(options, generator)

    monkeypatch.setattr(graph_diffusion, "csbm", counted)
    options = {**GraphSBM.tiny["task_options"], "data_seed": 1234, "dynamics": "grand-l"}
    for seed in (0, 1):
        spec = make_spec(task="graph_sbm", model="node", seed=seed, epochs=1,
                         task_options=options, widths=GraphSBM.tiny["widths"])
        assert execute_run(spec, registry, CPU)["status"] == "ok"
    assert built == [1234]  # the model and the data of both runs from one graph
    spec = make_spec(task="graph_sbm", model="node", epochs=1, widths=GraphSBM.tiny["widths"],
                     task_options={**options, "data_seed": 1235})
    assert execute_run(spec, registry, CPU)["status"] == "ok"
    assert built == [1234, 1235]  # another graph's options build it


def test_the_graph_is_kept_under_every_option_it_is_made_from():
    read = set()

    class Recording(dict):
        def __getitem__(self, key):
            read.add(key)
            return super().__getitem__(key)

    GraphSBM().graph(Recording(GraphSBM.tiny["task_options"], **{
        k: v for k, v in GraphSBM.options.items() if k not in GraphSBM.tiny["task_options"]}), None)
    assert read - {"download"} <= set(graph_diffusion.GRAPH_OPTIONS)


def _attention_model(registry, adjoint: bool, precision: str = "float32"):
    """A GRAND++-l model of the tiny graph, its input and labels, and its attention."""
    spec = make_spec(task="graph_sbm", model="hbnode", epochs=1, precision=precision,
                     task_options={**GraphSBM.tiny["task_options"], "dynamics": "grand++-l"},
                     widths=GraphSBM.tiny["widths"], solver={"adjoint": adjoint})
    task = registry.tasks["graph_sbm"]
    model = build_run(spec, registry, CPU).model
    (x, y), = task.data(task_options(task, spec), 0, None, CPU, None).train
    return model, x, y, model.ode.dynamics.f.attention


@pytest.mark.parametrize("adjoint", [False, True])
def test_the_attention_is_computed_once_per_solve_unless_the_adjoint_needs_it_per_call(
        registry, monkeypatch, adjoint: bool):
    model, x, y, attention = _attention_model(registry, adjoint)
    calls = []
    weights = Attention.weights
    monkeypatch.setattr(Attention, "weights", lambda self, x0: calls.append(1) or weights(self, x0))
    with torch.no_grad():
        model(x)
    assert len(calls) == 1  # evaluation: once, whatever the solver
    calls.clear()
    counter = model.ode.dynamics.counter
    counter.take()
    model(x)  # training's forward solve
    nfe = counter.take()["forward"]
    assert nfe > 4 and len(calls) == (nfe if adjoint else 1)


def test_the_attention_computed_once_gives_the_recomputing_fields_values_and_gradients(
        registry, float64):
    model, x, y, attention = _attention_model(registry, adjoint=False, precision="float64")
    results = []
    for solve in (DiffusionClassifier.solve,
                  lambda self, x, z0: solve_with_input(self.ode, lambda t: x, z0)):
        model.zero_grad()
        with patch.object(DiffusionClassifier, "solve", solve):
            out = model(x)
        nn.functional.cross_entropy(out, y, ignore_index=UNLABELLED).backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    (fixed, fixed_grads), (recomputed, recomputed_grads) = results
    torch.testing.assert_close(fixed, recomputed)
    assert any(g.abs().sum() > 0 for g in attention.parameters() for g in [g.grad])
    for a, b in zip(fixed_grads, recomputed_grads):
        torch.testing.assert_close(a, b)


def test_the_labelled_mask_reaches_the_model_and_no_test_label_does(registry):
    data = GraphSBM().data(dict(GraphSBM.options, train_per_class=2), 0, None, CPU, None)
    (x, train), = data.train
    (_, test), = data.test
    assert torch.equal(x[:, -1] > 0.5, train != UNLABELLED)
    assert ((train != UNLABELLED) & (test != UNLABELLED)).sum() == 0


def test_a_download_is_checked_before_it_is_kept_and_its_failure_is_one_message(
        tmp_path: Path, monkeypatch):
    def unreachable(url, timeout):
        raise OSError("network is unreachable")

    monkeypatch.setattr(graph_files.urllib.request, "urlopen", unreachable)
    with pytest.raises(DataNotFound, match=r"downloading https://raw.githubusercontent.com/"
                                           r"shchur/gnn-benchmark/1e72912.*/ms_academic_cs.npz "
                                           r"failed: network is unreachable"):
        graph_files.download("coauthor_cs", tmp_path)

    class Tampered(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *args):
            return None

    monkeypatch.setattr(graph_files.urllib.request, "urlopen",
                        lambda url, timeout: Tampered(b"not the published file"))
    with pytest.raises(DataNotFound, match="does not match its published checksum"):
        graph_files.download("photo", tmp_path)
    assert not any((tmp_path / "gnn-benchmark").iterdir())
