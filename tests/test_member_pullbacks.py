"""Hand-written VJPs for an ensemble's members: the stacked network's pullback and each built-in
family's ``derivatives_vjp`` give autograd's VJP for every member at once (its family
parameters' gradients summed over its own rows only), the members' adjoint takes them without
autograd, and a family whose VJP sums over the whole batch keeps autograd for its members."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from harness import VJP, DifferentiableField, State
from harness.conformance import family_checks
from harness.solvers.fast.backend import FastBackend
from harness.solvers.members import Running
from harness.solvers.settings import SolverConfig
from harness.toolkit.ensemble import Members, stack_models
from harness.toolkit.networks import Autonomous
from harness.toolkit.nfe import NFECounter
from harness.toolkit.ode import ODEBlock
from harness.toolkit.pullbacks import PlainMLP
from harness.toolkit.stacking import StackedLinear
from harness_plugins.models.anode import ANODE
from harness_plugins.models.ghbnode import GHBNODE
from harness_plugins.models.hbnode import HBNODE
from harness_plugins.models.node import NODE
from harness_plugins.models.sonode import SONODE
from tests.test_pullbacks import ACTIVATIONS

MEMBER_CHECK = "hand-written VJP serves an ensemble's members"


def _member_check(family: type) -> None:
    (check,) = [c for c in family_checks(family, tasks=[]) if c.name == MEMBER_CHECK]
    check()


@pytest.mark.parametrize("family", [NODE, ANODE, SONODE, HBNODE, GHBNODE],
                         ids=lambda family: family.name)
def test_each_built_in_familys_member_vjp_equals_autograd(family):
    """Three members with family parameters of their own, two evaluated, rates scaled: the
    members' value, state cotangent and every stacked parameter's gradient are autograd's."""
    assert family.has_member_vjp()
    _member_check(family)


class SummedOverTheBatch(HBNODE):
    """HBNODE's VJP as it was: γ's gradient summed over the whole batch before γ′ multiplies it."""

    vjp_unsummed = True  # claimed, but not so

    def derivatives_vjp(self, t: Tensor, state: State, cotangent: State,
                        f: DifferentiableField) -> VJP:
        (h, m), (a_h, a_m), gamma = state, cotangent, self.gamma
        value, pullback = f(t, h)
        a_x, grads = pullback(a_m)
        grads[self.omega] = -(a_m * m).sum() * gamma * (1 - gamma)
        return (m, value - gamma * m), (a_x, a_h - gamma * a_m), grads


def test_the_kit_catches_a_family_parameter_summed_over_all_members():
    """Summed over every member's rows, γ's gradient is right for a solo run and wrong for
    every member of an ensemble: the kit's member check fails, the solo one passes."""
    (solo,) = [c for c in family_checks(SummedOverTheBatch, tasks=[])
               if c.name == "hand-written VJP equals autograd's"]
    solo()
    with pytest.raises(AssertionError, match="family parameter omega: the members' gradients"):
        _member_check(SummedOverTheBatch)


def _stacked_block(family: type, seeds: int = 3) -> tuple[nn.Module, Members]:
    solver = SolverConfig(backend="fast", rtol=1e-7, atol=1e-7)
    blocks = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        f = Autonomous(nn.Sequential(nn.Linear(family.f_input_parts * 3, 8), nn.Tanh(),
                                     nn.Linear(8, 3)))
        blocks.append(ODEBlock(family(), f, 3, solver, NFECounter(), FastBackend()).double())
    members = Members(seeds)
    return stack_models(blocks, members), members


class Summing(HBNODE):
    """A VJP summed over the batch, without the flag: right for solo runs."""

    derivatives_vjp = SummedOverTheBatch.derivatives_vjp


class Inheriting(HBNODE):
    """HBNODE's VJP taken over without restating the flag."""

    derivatives_vjp = HBNODE.derivatives_vjp


@pytest.mark.parametrize("family", [Summing, Inheriting], ids=["summing", "not restated"])
def test_members_take_autograd_unless_the_class_defining_the_vjp_leaves_it_unsummed(family):
    """The solo path keeps the hand VJP; the members' solve offers none, so their adjoint takes
    autograd (and is right: the ensemble tests' gradients equal solo runs')."""
    block, _ = _stacked_block(family)
    assert family.has_derivatives_vjp() and not family.has_member_vjp()
    assert block.dynamics.has_vjp and not block.members_solve(None).has_vjp
    assert _stacked_block(HBNODE)[0].members_solve(None).has_vjp


def _step(block: nn.Module, members: Members, seeds: int = 3) -> dict[str, Tensor]:
    z0 = torch.randn(seeds * 4, 6, generator=torch.Generator().manual_seed(5),
                     dtype=torch.float64)
    with members.in_phase("forward"):
        loss = block(z0).pow(2).sum()
    with members.in_phase("backward"):
        loss.backward()
    return {name: p.grad.clone() for name, p in block.named_parameters()}


def test_the_members_adjoint_takes_no_autograd_graph_and_autograds_gradients(monkeypatch):
    """An ensemble's adjoint solve by hand gives the gradients and backward NFE the same solve
    by autograd gives (a hook on the dynamics sends it back there), with no autograd call."""
    block, members = _stacked_block(HBNODE)
    with torch.no_grad():
        block.family_parameters["omega"].copy_(torch.tensor([-3.0, 0.5, 2.0]))
    hooked, hooked_members = _stacked_block(HBNODE)
    hooked.load_state_dict(block.state_dict())
    hooked.dynamics.register_forward_hook(lambda *args: None)
    assert not hooked.members_solve(None).has_vjp
    expected = _step(hooked, hooked_members)
    monkeypatch.setattr(torch.autograd, "grad",
                        lambda *a, **k: pytest.fail("autograd used in the members' adjoint"))
    got = _step(block, members)
    assert np.array_equal(members.take()["backward"], hooked_members.take()["backward"])
    for name, gradient in expected.items():
        torch.testing.assert_close(got[name], gradient, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("shape", [(4,), (2, 4)], ids=["rows", "batched rows"])
def test_a_stack_of_plain_mlps_differentiates_like_autograd_for_some_members(activation, shape):
    """Members 0 and 2 of three, through the stacked layers' modules and autograd against the
    stacked plain MLP's pullback: values bit for bit, gradients the rows of those members."""
    torch.manual_seed(0)
    nets = [nn.Sequential(nn.Linear(4, 5), activation, nn.Linear(5, 2)).double()
            for _ in range(3)]
    stacked = nn.Sequential(StackedLinear([net[0] for net in nets]), activation,
                            StackedLinear([net[2] for net in nets]))
    members = torch.tensor([0, 2])
    x = torch.randn(2 * 3, *shape, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2 * 3, *shape[:-1], 2, dtype=torch.float64)
    expected = stacked[2](stacked[1](stacked[0](x, members)), members)
    parameters = list(stacked.parameters())
    grads = torch.autograd.grad(expected, (x, *parameters), g)
    plain = PlainMLP.of(Autonomous(stacked))
    assert plain is not None and plain.stacked
    with torch.no_grad():
        value, pullback = plain.vjp(x.detach(), members)
        g_x, by_parameter = pullback(g)
        torch.testing.assert_close(plain(x.detach(), members), expected.detach(), rtol=0, atol=0)
    torch.testing.assert_close(value, expected.detach(), rtol=0, atol=0)
    torch.testing.assert_close(g_x, grads[0])
    for parameter, gradient in zip(parameters, grads[1:]):
        torch.testing.assert_close(by_parameter[parameter], gradient[members])


def test_a_mix_of_stacked_and_plain_layers_is_no_plain_mlp():
    layers = [nn.Linear(2, 2) for _ in range(2)]
    assert PlainMLP.of(Autonomous(nn.Sequential(StackedLinear(layers), nn.Tanh(),
                                                nn.Linear(2, 2)))) is None


@pytest.mark.parametrize("family", [HBNODE, GHBNODE], ids=lambda family: family.name)
def test_a_members_family_parameter_gradient_is_its_solo_runs_bit_for_bit(family):
    """Each member's γ (ξ) gradient from the members' VJP equals the one its solo dynamics'
    VJP sums (``sum_to_size(())`` over its 120 rows at once), to the last bit: summing each
    row first, then the rows, rounds otherwise for most members."""
    seeds, rows = 8, 120
    block, members = _stacked_block(family, seeds)
    solve = block.members_solve(None)
    generator = torch.Generator().manual_seed(3)
    z, a = (torch.randn(seeds * rows, 6, generator=generator, dtype=torch.float64)
            for _ in range(2))
    t = torch.zeros(seeds, dtype=torch.float64)
    with torch.no_grad():
        _, _, grads = solve.field_vjp(t, z, a, Running(np.ones(seeds, dtype=bool)))
        for index in range(seeds):
            func, params = solve.member(index)
            _, _, solo = func.vjp(t[index], z[index * rows:(index + 1) * rows],
                                  a[index * rows:(index + 1) * rows])
            for stacked, own in zip(block.family_parameters.values(), params):
                assert torch.equal(grads[stacked][index], solo[own]), (index, own)
