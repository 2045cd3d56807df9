"""The ODE-RNN hybrid (harness.toolkit.odernn) and the adjoint probe (harness.toolkit.adjoint_probe)."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn
from torchdiffeq import odeint

from harness import Family
from harness.solvers.fast.backend import FastBackend
from harness.solvers.backends import SolverBackend
from harness.solvers.settings import SolverConfig
from harness.solvers.torchdiffeq_backend import TORCHDIFFEQ
from harness.toolkit.adjoint_probe import adjoint_norms, decay_summary
from harness.toolkit.networks import Autonomous
from harness.toolkit.nfe import NFECounter
from harness.toolkit.ode import ODEBlock
from harness.toolkit.odernn import ODERNN, InitialState
from harness_plugins.models.hbnode import HBNODE
from harness_plugins.models.node import NODE
from harness_plugins.models.sonode import SONODE

TIGHT = SolverConfig(method="dopri5", rtol=1e-9, atol=1e-9, adjoint=True)
K = 2  # features per observation


class ThreeParts(Family):
    """A third-party-style family with three state parts: h' = m, m' = v, v' = f(h) − v."""

    name = "three_parts"
    parts = ("h", "m", "v")
    initial_state = {"h": "input+network", "m": "network", "v": "network"}

    def derivatives(self, t, state, f):
        h, m, v = state
        return m, v, f(t, h) - v


def hybrid(family: Family, n: int = 3, solver: SolverConfig = TIGHT, seed: int = 0,
           backend: SolverBackend = TORCHDIFFEQ) -> ODERNN:
    torch.manual_seed(seed)
    f_in = family.f_input_parts * n
    f = Autonomous(nn.Sequential(nn.Linear(f_in, 8), nn.Tanh(), nn.Linear(8, n)))
    state = len(family.parts) * n
    ode = ODEBlock(family, f, n, solver, NFECounter(), backend)
    return ODERNN(ode, nn.Sequential(nn.Linear(state + K, state), nn.Tanh())).double()


def inputs(batch: int, stamps: int, state: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    z0 = torch.randn(batch, state, generator=g, dtype=torch.float64)
    features = torch.randn(batch, stamps, K, generator=g, dtype=torch.float64)
    gaps = torch.rand(batch, stamps, generator=g, dtype=torch.float64) * 2 + 0.05
    return z0, features, gaps


def per_element(model: ODERNN, z0, features, gaps) -> torch.Tensor:
    """Each element alone, each gap a direct solve on [0, gap] (no change of variable)."""
    finals = []
    for b in range(len(z0)):
        z = z0[b:b + 1]
        for i in range(features.shape[1]):
            span = torch.tensor([0.0, float(gaps[b, i])], dtype=z.dtype)
            z = odeint(model.ode.dynamics, z, span, rtol=1e-9, atol=1e-9)[-1]
            z = model.cell(torch.cat([z, features[b:b + 1, i]], dim=1))
        finals.append(z)
    return torch.cat(finals)


@pytest.mark.parametrize("family", [NODE(), HBNODE(), SONODE(), ThreeParts()],
                         ids=lambda f: f.name)
def test_batched_gaps_equal_each_elements_own_solves(family):
    model = hybrid(family)
    z0, features, gaps = inputs(3, 4, model.state_width)
    with torch.no_grad():
        trajectory = model(z0, features, gaps)
        torch.testing.assert_close(trajectory.after[-1], per_element(model, z0, features, gaps),
                                   rtol=1e-6, atol=1e-7)


def test_adjoint_gradients_through_the_hybrid_match_backprop_on_irregular_gaps():
    def gradients(adjoint: bool) -> list[torch.Tensor]:
        solver = SolverConfig(method="dopri5", rtol=1e-9, atol=1e-9, adjoint=adjoint)
        model = hybrid(HBNODE(), solver=solver)
        z0, features, gaps = inputs(3, 5, model.state_width)
        model(z0, features, gaps).after[-1].pow(2).sum().backward()
        return [p.grad for p in model.parameters()]

    for with_adjoint, direct in zip(gradients(True), gradients(False)):
        torch.testing.assert_close(with_adjoint, direct, rtol=1e-5, atol=1e-8)


def test_observations_with_no_elapsed_time_cost_no_solve():
    model = hybrid(HBNODE())
    z0, features, gaps = inputs(2, 3, model.state_width)
    gaps[:, 0] = 0.0
    counter = model.ode.dynamics.counter
    with torch.no_grad():
        assert torch.equal(model.evolve(z0, gaps[:, 0]), z0)
        assert counter.take()["forward"] == 0
        trajectory = model(z0, features, gaps)
    assert torch.equal(trajectory.before[0], z0)
    assert counter.take()["forward"] > 0


def test_carry_reaches_every_span_in_one_solve():
    model = hybrid(HBNODE())
    z0, _, _ = inputs(2, 1, model.state_width)
    spans = torch.tensor([[0.5, 1.0, 2.5], [1.5, 0.2, 3.0]], dtype=torch.float64)
    with torch.no_grad():
        reached = model.carry(z0, spans)
        for j in range(spans.shape[1]):
            torch.testing.assert_close(reached[:, j], model.evolve(z0, spans[:, j]),
                                       rtol=1e-6, atol=1e-7)
    assert reached.shape == (2, 3, model.state_width)


def test_read_gives_h_of_any_state_shape():
    model = hybrid(HBNODE(), n=3)
    states = torch.arange(2 * 4 * 6, dtype=torch.float64).reshape(2, 4, 6)
    assert torch.equal(model.read(states), states[..., :3])


class ReadsV(ThreeParts):
    name = "reads_v"
    readout = "v"


def test_read_gives_the_familys_readout_part():
    model = hybrid(ReadsV(), n=3)
    states = torch.arange(2 * 4 * 9, dtype=torch.float64).reshape(2, 4, 9)
    assert torch.equal(model.read(states), states[..., 6:])


def test_initial_state_layer_fills_its_channels_and_zeros_the_rest():
    torch.manual_seed(0)
    initial = InitialState(reads=10, channels=3, state_width=8)
    z = initial(torch.randn(4, 10))
    assert z.shape == (4, 8) and torch.all(z[:, 3:] == 0) and torch.all(z[:, :3] != 0)
    none = InitialState(reads=10, channels=0, state_width=8)
    assert none.layer is None and torch.all(none(torch.randn(4, 10)) == 0)
    with pytest.raises(ValueError, match="supplies 9 channels"):
        InitialState(reads=10, channels=9, state_width=8)


# --- The adjoint probe on linear ODEs whose adjoint is known in closed form -------------------


def linear_hybrid(family: Family, n: int, rate: float) -> ODERNN:
    """f(h) = −rate·h, and a cell that hands the state on unchanged (ignoring the features)."""
    f = nn.Linear(n, n, bias=False)
    state = len(family.parts) * n
    cell = nn.Linear(state + K, state)
    with torch.no_grad():
        f.weight.copy_(-rate * torch.eye(n))
        cell.weight.copy_(torch.cat([torch.eye(state), torch.zeros(state, K)], dim=1))
        cell.bias.zero_()
    ode = ODEBlock(family, Autonomous(f), n, TIGHT, NFECounter())
    return ODERNN(ode, cell).double()


def probe(model: ODERNN, batch: int = 3, stamps: int = 6):
    z0, features, gaps = inputs(batch, stamps, model.state_width)
    trajectory = model(z0, features, gaps)
    last = trajectory.after[-1]
    norms = adjoint_norms(0.5 * last.pow(2).sum(), trajectory.after)
    # time from each stamp's update to the last one, per element
    remaining = gaps.flip(1).cumsum(1).flip(1)[:, 1:]
    remaining = torch.cat([remaining, torch.zeros(batch, 1, dtype=gaps.dtype)], dim=1)
    return norms, last.detach(), remaining


def test_node_adjoint_norm_decays_as_exp_of_minus_rate_times_elapsed_time():
    rate = 0.7
    norms, last, remaining = probe(linear_hybrid(NODE(), n=2, rate=rate))
    # a_i = ∂L/∂s_i = exp(−rate·(T − t_i)) · s_T, element by element
    expected = [(torch.exp(-rate * remaining[:, i])[:, None] * last).norm().item()
                for i in range(remaining.shape[1])]
    assert norms == pytest.approx(expected, rel=1e-6)


def test_hbnode_adjoint_is_the_transposed_propagator_of_h_and_m_together():
    n, a = 2, 1.3
    model = linear_hybrid(HBNODE(), n=n, rate=a)
    gamma = model.ode.family.gamma.item()
    norms, last, remaining = probe(model)
    matrix = torch.kron(torch.tensor([[0.0, 1.0], [-a, -gamma]], dtype=torch.float64),
                        torch.eye(n, dtype=torch.float64))
    expected = []
    for i in range(remaining.shape[1]):
        propagators = torch.linalg.matrix_exp(matrix * remaining[:, i, None, None])
        adjoint = torch.einsum("bji,bj->bi", propagators, last)  # Pᵀ a_T
        expected.append(adjoint.norm().item())
    assert norms == pytest.approx(expected, rel=1e-6)


def test_decay_summary_recovers_the_rate_per_stamp():
    norms = [3.0 * math.exp(-0.4 * (9 - i)) for i in range(10)]
    summary = decay_summary(norms)
    assert summary["adjoint_decay_rate"] == pytest.approx(0.4)
    assert summary["adjoint_ratio"] == pytest.approx(math.exp(-3.6))
    assert decay_summary([0.0, 0.0, 1.0]) == {"adjoint_ratio": 0.0, "adjoint_decay_rate": None}


def test_through_is_one_solve_on_torchdiffeq_and_one_per_interval_on_other_backends():
    """``ODERNN.through`` (the authors' forecast): the states at each offset, from one
    torchdiffeq solve over the whole span (its NFE are those of a solve to the last offset
    alone: the inner states are interpolated); a backend without such a solve (fast) makes one
    solve per interval, and both reach the states of consecutive unit solves."""
    offsets = torch.arange(8, dtype=torch.float64)
    model = hybrid(HBNODE())
    z = inputs(4, 1, model.state_width)[0]
    counter = model.ode.dynamics.counter
    counter.take()
    states = model.through(z, offsets)
    nfe = counter.take()["forward"]
    odeint(model.ode.dynamics, z, offsets[[0, -1]], rtol=TIGHT.rtol, atol=TIGHT.atol)
    assert states.shape == (4, 7, model.state_width) and nfe == counter.take()["forward"]
    expected, reached = [], z
    for _ in range(7):
        reached = model.evolve(reached, torch.ones(4, dtype=torch.float64))
        expected.append(reached)
    unit_solves = counter.take()["forward"]
    torch.testing.assert_close(states, torch.stack(expected, dim=1), rtol=1e-6, atol=1e-7)
    fast = hybrid(HBNODE(), solver=replace(TIGHT, backend="fast"), backend=FastBackend())
    fast_states = fast.through(z, offsets)
    assert fast.ode.dynamics.counter.take()["forward"] == unit_solves
    torch.testing.assert_close(fast_states, states, rtol=1e-6, atol=1e-7)
