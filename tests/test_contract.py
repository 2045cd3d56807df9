"""What a family means (harness.contract): where each part of the initial state starts, the
readout part, widths chosen from a family's structure, and the data contract's set_epoch."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from harness import Family, TaskData, hookimpl
from harness.plugins import load_registry
from harness.running.runner import RunConfigError, build_run, execute_run, widths_for
from harness.solvers.settings import SolverConfig
from harness.toolkit import Autonomous, TensorBatches
from harness.toolkit.nfe import NFECounter
from harness.toolkit.ode import ODEBlock
from tests.conftest import CPU, make_spec

TINY = {"inner": 10, "outer": 20}


class MomentumAndRest(Family):
    """h' = m, m' = f(h) − m, z' = −z + h: m starts from the initial-velocity network, z at
    zero, h as x padded with zeros."""

    name = "momentum_and_rest"
    parts = ("h", "m", "z")
    initial_state = {"h": "input+zeros", "m": "network", "z": "zeros"}

    def derivatives(self, t, state, f):
        h, m, z = state
        return m, f(t, h) - m, h - z


class PositionMomentum(Family):
    """q' = p, p' = f(q): parts named q and p, read out at q."""

    name = "position_momentum"
    parts = ("q", "p")
    readout = "q"
    initial_state = {"q": "input+network", "p": "network"}

    def derivatives(self, t, state, f):
        q, p = state
        return p, f(t, q)


class ReadsBoth(PositionMomentum):
    """f reads both parts, as SONODE's does."""

    name = "reads_both"
    f_input_parts = 2

    def derivatives(self, t, state, f):
        q, p = state
        return p, f(t, torch.cat([q, p], dim=1))


class Provides:
    @hookimpl
    def harness_model_families(self):
        return [MomentumAndRest, PositionMomentum, ReadsBoth]


@pytest.fixture(scope="module")
def registry():
    registry = load_registry([("contract-test-families", Provides())])
    assert registry.failures == []
    return registry


def test_each_part_starts_where_the_family_says():
    block = ODEBlock(MomentumAndRest(), Autonomous(nn.Linear(3, 3)), 3, SolverConfig(),
                     NFECounter())
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    network = nn.Linear(2, 3)
    assert MomentumAndRest.network_channels(3, 2) == 3  # m's n channels, not P·n − c = 7
    z = block.initial_state(x, network)
    h, m, rest = z.chunk(3, dim=1)
    assert torch.equal(h, torch.tensor([[1.0, 2.0, 0.0], [3.0, 4.0, 0.0]]))
    assert torch.equal(m, network(x))
    assert torch.equal(rest, torch.zeros(2, 3))


def test_the_papers_rule_is_x_then_the_network_across_h_and_m(registry):
    hbnode = registry.families["hbnode"]
    assert hbnode.initial_layout(5, 2) == (("input", 2), ("network", 8))
    assert registry.families["anode"].initial_layout(3, 2) == (("input", 2), ("zeros", 1))
    assert registry.families["node"].initial_layout(2, 2) == (("input", 2),)
    assert MomentumAndRest.initial_layout(3, 2) == (("input", 2), ("zeros", 1), ("network", 3),
                                                   ("zeros", 3))
    with pytest.raises(ValueError, match="the input has 4 channels, more than part 'h'"):
        hbnode.initial_layout(3, 4)


def test_a_family_with_a_network_part_and_a_zero_part_trains(registry):
    spec = make_spec(model="momentum_and_rest", epochs=1, task_options=TINY)
    built = build_run(spec, registry, CPU)
    x = torch.randn(5, 2)
    z = built.model.ode.initial_state(x, built.model.velocity_net)
    n = built.widths["n"]
    assert z.shape == (5, 3 * n) and torch.equal(z[:, 2 * n:], torch.zeros(5, n))
    assert torch.equal(z[:, n:2 * n], built.model.velocity_net(x))
    record = execute_run(spec, registry, CPU)
    assert record["status"] == "ok", record["error"]
    assert record["epochs"][-1]["forward_nfe"] > 0


def test_the_model_reads_the_declared_readout_part(registry):
    spec = make_spec(model="position_momentum", epochs=1, task_options=TINY)
    built = build_run(spec, registry, CPU)
    z = torch.arange(12.0).reshape(3, 4)  # n = 2: q = channels 0–1, p = 2–3
    assert torch.equal(built.model.ode.part(z), z[:, :2])
    assert torch.equal(built.model.ode.part(z, "p"), z[:, 2:])
    record = execute_run(spec, registry, CPU)
    assert record["status"] == "ok", record["error"]


class ReadsP(PositionMomentum):
    name = "reads_p"
    readout = "p"


def test_the_readout_need_not_be_the_first_part():
    block = ODEBlock(ReadsP(), Autonomous(nn.Linear(2, 2)), 2, SolverConfig(), NFECounter())
    z = torch.arange(12.0).reshape(3, 4)
    assert torch.equal(block.part(z), z[:, 2:])


def test_widths_come_from_the_task_table_else_the_closest_structure(registry):
    def widths(model: str, task: str = "point_cloud") -> dict[str, int]:
        return widths_for(make_spec(task=task, model=model), registry)

    table = registry.tasks["point_cloud"].widths
    assert widths("anode") == table["anode"]  # listed: the paper's own
    assert widths("momentum_and_rest") == table["hbnode"]  # f reads 1 part, a network, 3 parts
    assert widths("position_momentum") == table["hbnode"]
    assert widths("reads_both") == table["sonode"]  # f reads 2 parts, as SONODE's
    assert widths("reads_both", "walker2d") == registry.tasks["walker2d"].widths["sonode"]


def test_widths_like_overrides_the_structure(registry):
    class LikeAnode(PositionMomentum):
        widths_like = "anode"

    task = registry.tasks["point_cloud"]
    assert task.widths_for(LikeAnode, registry.families) == task.widths["anode"]


def test_a_task_that_lists_no_widths_asks_the_suite_for_them(registry):
    class NoWidths(type(registry.tasks["point_cloud"])):
        name = "no_widths"
        widths = {}

    class ProvidesTask:
        @hookimpl
        def harness_tasks(self):
            return [NoWidths]

    with_task = load_registry([("no-widths", ProvidesTask())])
    with pytest.raises(RunConfigError, match="task 'no_widths' has no widths for family 'hbnode'; "
                                             "give `widths:` for it in the suite"):
        widths_for(make_spec(task="no_widths"), with_task)
    assert widths_for(make_spec(task="no_widths", widths={"n": 2, "h": 3}), with_task) == {
        "n": 2, "h": 3}


def test_training_data_must_take_the_epoch():
    x, y = torch.zeros(4, 2), torch.zeros(4, 1)
    with pytest.raises(TypeError, match="TaskData.train is a list without set_epoch"):
        TaskData(train=[(x, y)], test=[(x, y)])
    TaskData(train=TensorBatches(x, y), test=[(x, y)])


def test_the_runner_tells_the_training_data_each_epoch(registry, monkeypatch):
    seen = []
    monkeypatch.setattr(TensorBatches, "set_epoch", lambda self, epoch: seen.append(epoch))
    record = execute_run(make_spec(model="node", epochs=3, task_options=TINY), registry, CPU)
    assert record["status"] == "ok" and seen == [1, 2, 3]
