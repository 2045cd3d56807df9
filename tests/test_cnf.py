"""The CNF toy task: its exact log-likelihood, Hutchinson's estimator, the refusal of families
whose density is not exact, the generated data's stated statistics, the planar baseline's
log-determinant and inverse, NFE counting, and NLL falling in a tiny run."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from harness.plugins import load_registry
from harness.reports.aggregate import group_runs
from harness.reports.claim_verdicts import evaluate
from harness.reports.claims import load_claims
from harness.reports.density_figures import densities
from harness.running.driver import check_runs, run_suite
from harness.running.records import new_record
from harness.running.runner import RunConfigError
from harness.solvers.settings import SolverConfig
from harness.solvers.torchdiffeq_backend import TORCHDIFFEQ
from harness.suites.loader import load_suite, suite_from_document
from harness.toolkit import Autonomous, ODEBlock
from harness.toolkit.nfe import NFECounter
from harness_plugins.models.anode import ANODE
from harness_plugins.models.hbnode import HBNODE
from harness_plugins.models.node import NODE
from harness_plugins.models.sonode import SONODE
from harness_plugins.tasks.cnf_data import sample, shares
from harness_plugins.tasks.cnf_flows import (CNF, HyperField, PlanarFlow, jacobian_trace,
                                             standard_normal_log_density)
from harness_plugins.tasks.cnf_toy import CNFToy
from tests.result_records import epoch


def linear_cnf(a: torch.Tensor, trace: str = "exact", **solver) -> CNF:
    field = nn.Linear(2, 2, bias=False)
    field.weight.data.copy_(a)
    config = SolverConfig(**{"method": "dopri5", "rtol": 1e-10, "atol": 1e-10, **solver})
    return CNF(ODEBlock(NODE(), Autonomous(field), 2, config, NFECounter()), 2, trace, probes=1)


def test_the_log_likelihood_of_a_linear_flow_is_the_closed_form(float64):
    """F(z) = Az over [0, 1]: z(1) = e^A x and log p(x) = log N(e^A x) + tr A."""
    a = torch.tensor([[0.3, -1.2], [0.8, -0.5]])
    x = torch.randn(64, 2)
    exact = standard_normal_log_density(x @ torch.linalg.matrix_exp(a).T) + a.trace()
    model = linear_cnf(a).eval()
    with torch.no_grad():
        assert torch.allclose(model(x), exact, atol=1e-7)
    assert not torch.allclose(model(x), standard_normal_log_density(x @ torch.linalg.matrix_exp(
        a).T), atol=1e-3)  # the trace term matters here: tr A = −0.2


def test_hutchinson_is_unbiased_around_the_exact_trace(float64):
    torch.manual_seed(0)
    field = HyperField(2, 8, 8)
    z = torch.randn(5, 2, requires_grad=True)
    dz = field(torch.tensor(0.3), z)
    exact = jacobian_trace(dz, z, None, create_graph=False)
    probes = torch.randint(0, 2, (4000, 5, 2)).double() * 2 - 1
    each = torch.stack([jacobian_trace(dz, z, eps.unsqueeze(0), create_graph=False)
                        for eps in probes])
    spread = each.std(0) / math.sqrt(len(probes))
    assert (spread > 0).all()  # a nonlinear field: single probes scatter
    assert ((each.mean(0) - exact).abs() < 4 * spread).all()
    assert torch.allclose(jacobian_trace(dz, z, probes[:50], create_graph=False),
                          each[:50].mean(0))  # several probes in one call: their mean


def test_the_task_refuses_families_whose_density_is_not_exact():
    task = CNFToy()
    assert task.refusal(NODE, {"n": 2}) is None
    assert task.refusal(ANODE, {"n": 2}) is None  # no augmentation: NODE itself
    assert "1 channel(s) of zeros" in task.refusal(ANODE, {"n": 3})
    for family in (HBNODE, SONODE):
        reason = task.refusal(family, {"n": 2})
        assert "2 channel(s) from the initial-velocity network" in reason, reason
        assert "marginal" in reason
    assert "more than part 'h'" in task.refusal(NODE, {"n": 1})


def test_refused_families_stop_the_suite_before_training_with_the_reason():
    registry = load_registry()
    runs = suite_from_document({"name": "c", "runs": [
        {"task": "cnf_toy", "models": ["node", "anode", "hbnode"], "baselines": ["planar"]}]},
        Path("c.yaml"), registry).runs
    with pytest.raises(RunConfigError) as error:
        check_runs(runs, registry)
    lines = str(error.value).splitlines()
    assert [line.split(":")[0] for line in lines] == ["cnf_toy/anode/seed0", "cnf_toy/hbnode/seed0"]
    assert all("refuses model" in line and "marginal" in line for line in lines)


@pytest.mark.parametrize("name, radii", [("two_circles", (3.0, 1.5)),
                                         ("rings", (0.75, 1.5, 2.25, 3.0))])
def test_circles_have_their_stated_radii_and_shares(name, radii):
    points = sample(name, 10_001, 0.0, torch.Generator().manual_seed(1))
    radius = points.norm(dim=1)
    counts = shares(10_001, len(radii))
    assert sum(counts) == 10_001 and max(counts) - min(counts) <= 1
    for r, piece in zip(radii, radius.split(counts)):
        assert torch.allclose(piece, torch.full_like(piece, r), atol=1e-5)
    noise = (sample(name, 20_000, 0.1, torch.Generator().manual_seed(1))
             - sample(name, 20_000, 0.0, torch.Generator().manual_seed(1)))  # same components
    assert torch.allclose(noise.std(0), torch.tensor([0.1, 0.1]), atol=0.003)
    assert torch.allclose(noise.mean(0), torch.zeros(2), atol=0.003)


def test_moons_have_their_stated_mean_and_box():
    points = sample("two_moons", 20_000, 0.0, torch.Generator().manual_seed(2))
    assert torch.allclose(points.mean(0), torch.tensor([0.0, 0.3]), atol=0.05)  # std 1.4 / √20000
    assert points.abs().max() <= 3.0
    upper, lower = points.split(shares(20_000, 2))
    assert torch.allclose(((upper + torch.tensor([1.0, 0.2])) / 2).norm(dim=1),
                          torch.ones(len(upper)), atol=1e-5)  # on the unit arc, scaled
    assert torch.equal(points, sample("two_moons", 20_000, 0.0, torch.Generator().manual_seed(2)))
    assert not torch.equal(points, sample("two_moons", 20_000, 0.0,
                                          torch.Generator().manual_seed(3)))


def test_planar_log_determinants_are_autograds_and_sampling_inverts_the_flow(float64):
    torch.manual_seed(0)
    flow = PlanarFlow(2, 6)
    with torch.no_grad():
        flow.u.normal_(0, 1.5)  # far from the identity: the constraint on u matters
    z = torch.randn(7, 2)
    for k in range(6):
        out, log_det = flow.layer(k, z)
        for row in range(len(z)):
            jacobian = torch.autograd.functional.jacobian(lambda p: flow.layer(k, p[None])[0][0],
                                                          z[row])
            assert torch.isclose(log_det[row], torch.linalg.slogdet(jacobian)[1], atol=1e-10)
        z = out.detach()
    base = torch.randn(50, 2)
    x = flow.sample(base)
    with torch.no_grad():
        forward = x
        for k in range(6):
            forward, _ = flow.layer(k, forward)
    assert torch.allclose(forward, base, atol=1e-8)


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_nfe_counts_evaluations_of_the_augmented_dynamics(trace):
    """rk4 with 4 steps over [0, 1]: 16 calls of [F, −tr] forward, 16 in the adjoint,
    whatever vector-Jacobian products the trace takes inside each."""
    model = linear_cnf(torch.eye(2), trace, method="rk4", options={"step_size": 0.25})
    counter = model.block.dynamics.counter
    with counter.in_phase("forward"):
        loss = model(torch.randn(3, 2)).sum()
    with counter.in_phase("backward"):
        loss.backward()
    counts = counter.take()
    assert (counts["forward"], counts["backward"]) == (16, 16)


def test_nll_falls_in_a_tiny_run_for_the_cnf_and_the_planar_baseline(tmp_path):
    registry = load_registry()
    runs = suite_from_document({"name": "cnf-tiny", "defaults": {"epochs": 4, "lr": 0.01}, "runs": [
        {"task": "cnf_toy", "model": "node", "baselines": ["planar"], "batch_size": 100,
         "widths": None, "solver": {"tol": 1.0e-3},
         "overrides": {"node": {"widths": {"n": 2, "M": 8, "h": 8}},
                       "planar": {"widths": {"K": 8}}},
         "task_options": {"train_points": 400, "test_points": 200, "figure_every": 4,
                          "figure_grid": 5, "figure_samples": 10}}]},
        Path("c.yaml"), registry).runs
    records = run_suite(runs, registry, tmp_path).records
    for record in records:
        assert record["status"] == "ok", record.get("error")
        first, last = record["epochs"][0], record["epochs"][-1]
        assert last["test_nll"] < first["test_nll"], record["model"]
        assert len(last["density_grid"]) == 5 and len(last["model_samples"]) == 10
        assert "density_grid" not in first  # only every figure_every-th epoch
    node, planar = records
    assert node["epochs"][-1]["forward_nfe"] > 0 and node["epochs"][-1]["trace_vjps"] == 2
    assert planar["kind"] == "baseline" and planar["epochs"][-1]["forward_nfe"] is None
    figure = densities(group_runs(records), tmp_path / "figures", ("png",))
    assert [(row.label, row.epoch) for row in figure.panels] == [("node", 4),
                                                                 ("planar (baseline)", 4)]
    assert figure.panels[1].log_density == planar["epochs"][-1]["density_grid"]
    assert [path.name for path in figure.files] == ["density.png"]


def test_the_paper_suite_pairs_each_cnf_with_the_planar_flow_of_its_size(registry):
    """suites/cnf-paper.yaml's claim (the CNF of width M against the planar flow of K = M
    layers, per data set) is decided in each of its 9 settings: records planted from its runs,
    each CNF's NLL below its planar flow's, make it hold there. With the two models' widths in
    separate grids, no setting held both and the claim could only read incomplete."""
    root = Path(__file__).resolve().parents[1] / "suites"
    runs = load_suite(root / "cnf-paper.yaml", registry).runs
    records = []
    for spec in runs:
        record = new_record(spec, registry, torch.device("cpu"), TORCHDIFFEQ)
        nll = 2.0 + 0.01 * spec.seed + (0.5 if spec.baseline else 0.0)
        record.update(epochs=[epoch(1, test_nll=nll)], wall_time_s=1.0)
        records.append(record)
    [result] = evaluate(load_claims(root / "cnf-paper.claims.yaml"), records)
    evidence = [line for check in result.checks for line in check.evidence]
    settings = [line for line in evidence if "node < planar:" in line]
    assert result.verdict == "holds", evidence
    assert len(settings) == 9 and all("p = 0.0079" in line for line in settings), evidence


def test_hutchinsons_probes_stay_fixed_through_the_adjoints_solve(float64):
    """With Hutchinson's estimator the adjoint's backward solve uses the forward solve's probes:
    its parameter gradients are those of backpropagating through the solver (one draw of the
    probes, the same seed). Probes drawn anew in the backward would estimate another trace."""
    torch.manual_seed(0)
    field, x = HyperField(2, 4, 8), torch.randn(16, 2)
    gradients = []
    for adjoint in (True, False):
        config = SolverConfig(method="dopri5", rtol=1e-10, atol=1e-10, adjoint=adjoint)
        model = CNF(ODEBlock(NODE(), field, 2, config, NFECounter()), 2, "hutchinson", probes=1)
        field.zero_grad()
        torch.manual_seed(1)
        model(x).mean().backward()
        gradients.append(torch.cat([p.grad.reshape(-1) for p in field.parameters()]))
    assert gradients[0].abs().max() > 1e-3
    difference = (gradients[0] - gradients[1]).abs().max()
    assert difference < 1e-7, difference  # 5e-3 with the backward's own probes
