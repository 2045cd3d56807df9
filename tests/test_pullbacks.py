"""Hand-written VJPs: plain MLPs and families differentiate like autograd, the fast backend's
adjoint uses them where both exist and autograd elsewhere, and the kit catches a wrong one."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from harness.conformance import family_checks
from harness.running.failures import NFECapExceeded
from harness.solvers.fast.backend import FastBackend
from harness.solvers.settings import SolverConfig
from harness.toolkit.networks import Autonomous
from harness.toolkit.nfe import NFECounter
from harness.toolkit.ode import Dynamics, ODEBlock
from harness.toolkit.pullbacks import PlainMLP, pointwise
from harness_plugins.models.ghbnode import GHBNODE
from harness_plugins.models.hbnode import HBNODE
from harness_plugins.models.node import NODE

ACTIVATIONS = [nn.ReLU(), nn.ELU(alpha=0.7), nn.Tanh(), nn.Sigmoid(), nn.Softplus(beta=2.0, threshold=3.0),
               nn.Hardtanh(-0.5, 0.5), nn.Identity()]


@pytest.mark.parametrize("activation", [*ACTIVATIONS, None], ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("shape", [(6, 4), (2, 3, 4)], ids=["matrix", "batched"])
def test_a_plain_mlp_differentiates_like_autograd(activation, shape):
    """Every activation between Linear layers; and one bare Linear (Walker2D's f)."""
    torch.manual_seed(0)
    net = (nn.Linear(4, 2) if activation is None else
           nn.Sequential(nn.Linear(4, 5), activation, nn.Linear(5, 5), activation, nn.Linear(5, 2)))
    net = net.double()
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    g = torch.randn(*shape[:-1], 2, dtype=torch.float64)
    expected = net(x)
    grads = torch.autograd.grad(expected, (x, *net.parameters()), g)
    plain = PlainMLP.of(Autonomous(net))
    with torch.no_grad():
        value, pullback = plain.vjp(x.detach())
        g_x, by_parameter = pullback(g)
        torch.testing.assert_close(plain(x.detach()), expected.detach(), rtol=0, atol=0)
    torch.testing.assert_close(value, expected.detach(), rtol=0, atol=0)
    torch.testing.assert_close(g_x, grads[0])
    for parameter, gradient in zip(net.parameters(), grads[1:]):
        torch.testing.assert_close(by_parameter[parameter], gradient)


class Clocked(Autonomous):
    """A subclass of Autonomous whose f reads t: not the plain field its type suggests."""

    def forward(self, t, z):
        return self.net(z) * (1 + t)


def _reused() -> nn.Module:
    layer = nn.Linear(3, 3)
    return Autonomous(nn.Sequential(layer, nn.Tanh(), layer))


@pytest.mark.parametrize("f", [
    Autonomous(nn.Sequential(nn.Linear(2, 3), nn.GELU())),  # an activation without a formula here
    Autonomous(nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Tanh(), nn.Linear(3, 2))),  # two in a row
    Autonomous(nn.Sequential(nn.Conv1d(2, 3, 1))),
    Autonomous(nn.Tanh()),
    Autonomous(nn.Sequential()),
    _reused(),  # its gradients would have to be summed
    Clocked(nn.Sequential(nn.Linear(3, 3))),
    nn.Sequential(nn.Linear(3, 3)),  # not a vector field f(t, z)
], ids=["gelu", "stacked activations", "conv", "activation alone", "empty", "a layer used twice",
        "an Autonomous subclass", "a bare network"])
def test_only_plain_mlps_get_the_hand_path(f):
    assert PlainMLP.of(f) is None


@pytest.mark.parametrize("change", [
    lambda f: f.net[0].register_forward_hook(lambda module, inputs, output: output * 2),
    lambda f: f.register_forward_pre_hook(lambda module, inputs: None),
    lambda f: torch.nn.utils.weight_norm(f.net[2]),  # weight becomes a function of weight_g, weight_v
    lambda f: torch.nn.utils.parametrizations.weight_norm(f.net[2]),
], ids=["a forward hook on a layer", "a pre-hook on f", "weight norm (hook)", "weight norm (parametrization)"])
@pytest.mark.filterwarnings("ignore:`torch.nn.utils.weight_norm` is deprecated:FutureWarning")
def test_hooks_or_reparametrised_weights_send_the_dynamics_back_to_module_calls_and_autograd(change):
    """Added after the dynamics were made: the plain view would skip them, so it steps aside,
    for calls without a graph (every backend's adjoint forward) as for the VJP."""
    torch.manual_seed(0)
    f = Autonomous(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)))
    dynamics = Dynamics(HBNODE(), f, NFECounter())
    assert dynamics.has_vjp
    change(f)
    assert not dynamics.has_vjp
    z, t = torch.randn(2, 6), torch.tensor(0.0)
    through_modules = dynamics(t, z).detach()  # with a graph: always the modules
    with torch.no_grad():
        torch.testing.assert_close(dynamics(t, z), through_modules, rtol=0, atol=0)


@pytest.mark.parametrize("adjoint", [False, True], ids=["forward solve", "adjoint"])
def test_a_hook_registered_between_two_solves_reaches_the_second(adjoint):
    """The fast backend binds f's layers once per solve (``bind_field``, ``bind_vjp``), not per
    block: the solve after a hook is registered runs it, as a network computing the hook's
    result does (a forward hook doubling the first layer: its weight and bias doubled, exact)."""
    def block_of(f: nn.Module) -> ODEBlock:
        config = SolverConfig(rtol=1e-5, atol=1e-5, backend="fast", adjoint=adjoint)
        return ODEBlock(HBNODE(), f, 3, config, NFECounter(), FastBackend())

    def solve(block: ODEBlock) -> tuple[torch.Tensor, torch.Tensor]:
        z0 = torch.randn(2, 6, generator=torch.Generator().manual_seed(1), requires_grad=True)
        z = block(z0)
        z.pow(2).sum().backward()
        return z.detach(), z0.grad

    torch.manual_seed(0)
    f = Autonomous(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)))
    doubled = copy.deepcopy(f)
    with torch.no_grad():
        doubled.net[0].weight.mul_(2)
        doubled.net[0].bias.mul_(2)
    block = block_of(f)
    solve(block)  # a first solve, before the hook
    f.net[0].register_forward_hook(lambda module, inputs, output: output * 2)
    z, grad = solve(block)
    z_ref, grad_ref = solve(block_of(doubled))
    assert torch.equal(z, z_ref)
    torch.testing.assert_close(grad, grad_ref)  # autograd after the hook, by hand before


def test_a_hook_on_the_dynamics_runs_in_every_call_of_a_fast_solve():
    """A solve's binding (``bind_field``) goes past the module call: with a hook of its own the
    dynamics are called as a module, so that the hook runs."""
    torch.manual_seed(0)
    counter, calls = NFECounter(), []
    f = Autonomous(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)))
    block = ODEBlock(HBNODE(), f, 3, SolverConfig(rtol=1e-5, atol=1e-5, backend="fast"), counter,
                     FastBackend())
    block.dynamics.register_forward_hook(lambda module, inputs, output: calls.append(output))
    with torch.no_grad():
        block(torch.randn(2, 6))
    assert len(calls) == counter.take()["forward"] > 0


def test_a_family_overriding_derivatives_or_what_they_read_loses_its_parents_vjp():
    class Damped(HBNODE):
        name = "damped"

        def derivatives(self, t, state, f):
            h, m = state
            return m, f(t, h) - 2 * self.gamma * m

    class Steeper(HBNODE):  # the same derivatives, a different γ(ω): HBNODE's VJP would be wrong
        name = "steeper"

        @property
        def gamma(self):
            return torch.sigmoid(2 * self.omega)

    class Declared(HBNODE):  # states that HBNODE's VJP is its own
        name = "declared"
        derivatives_vjp = HBNODE.derivatives_vjp

    assert HBNODE.has_derivatives_vjp() and GHBNODE.has_derivatives_vjp()
    assert not Damped.has_derivatives_vjp() and not Steeper.has_derivatives_vjp()
    assert Declared.has_derivatives_vjp()
    f = Autonomous(nn.Sequential(nn.Linear(3, 3)))
    assert Dynamics(HBNODE(), f, NFECounter()).has_vjp
    assert not Dynamics(Steeper(), f, NFECounter()).has_vjp
    assert not Dynamics(HBNODE(), Autonomous(nn.Sequential(nn.Linear(3, 3), nn.GELU())),
                        NFECounter()).has_vjp


def _vjp_check(family):
    (check,) = [c for c in family_checks(family, tasks=[]) if c.name == "hand-written VJP equals autograd's"]
    return check


class Forgetful(HBNODE):
    """HBNODE whose hand-written VJP leaves out γ's parameter ω."""

    name = "forgetful"

    def derivatives_vjp(self, t, state, cotangent, f):
        derivatives, cotangent, grads = super().derivatives_vjp(t, state, cotangent, f)
        del grads[self.omega]
        return derivatives, cotangent, grads


def test_the_kit_catches_a_missing_parameter_gradient():
    with pytest.raises(AssertionError, match="no gradient for the parameter family.omega"):
        _vjp_check(Forgetful)()


def test_the_kit_catches_a_wrong_state_cotangent():
    class Unsigned(NODE):
        name = "unsigned"

        def derivatives_vjp(self, t, state, cotangent, f):
            derivatives, (a_h,), grads = super().derivatives_vjp(t, state, cotangent, f)
            return derivatives, (-a_h,), grads


    with pytest.raises(AssertionError, match="aᵀ∂F/∂state != autograd's"):
        _vjp_check(Unsigned)()


def _hbnode_block(cap: int | None = None) -> tuple[ODEBlock, NFECounter]:
    torch.manual_seed(0)
    counter = NFECounter()
    solver = SolverConfig(rtol=1e-6, atol=1e-6, backend="fast", max_nfe=cap)
    f = Autonomous(nn.Sequential(nn.Linear(3, 8), nn.ELU(), nn.Linear(8, 3)))
    return ODEBlock(HBNODE(), f, 3, solver, counter, FastBackend()), counter


def _forward_backward(block: ODEBlock, counter: NFECounter) -> None:
    z0 = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    with counter.in_phase("forward"):
        loss = block(z0).pow(2).sum()
    with counter.in_phase("backward"):
        loss.backward()


def test_the_nfe_cap_counts_hand_written_vjps():
    block, counter = _hbnode_block()
    _forward_backward(block, counter)
    counts = counter.take()
    assert counts["backward"] > counts["forward"] > 0
    capped, counter = _hbnode_block(cap=counts["forward"])  # enough forwards, too few backwards
    with pytest.raises(NFECapExceeded, match="one backward solve needed more than"):
        _forward_backward(capped, counter)


def test_the_adjoint_takes_no_autograd_graph_with_a_hand_written_vjp(monkeypatch):
    """The fast backend's adjoint calls ``vjp`` when the dynamics have one, and autograd only
    when they do not: the hand path is what runs, not a fallback."""
    calls = []
    monkeypatch.setattr(torch.autograd, "grad",
                        lambda *a, **k: calls.append(1) or pytest.fail("autograd used"))
    block, counter = _hbnode_block()
    _forward_backward(block, counter)
    assert not calls and block.dynamics.f.net[0].weight.grad is not None


@pytest.mark.parametrize("sigma", ["tanh", "hardtanh", "identity"])
def test_ghbnode_differentiates_each_sigma_by_hand(sigma):
    class WithSigma(GHBNODE):
        derivatives_vjp = GHBNODE.derivatives_vjp

        def __init__(self) -> None:
            super().__init__(sigma=sigma)

    _vjp_check(WithSigma)()


def test_dynamics_with_a_hand_written_vjp_pickle_and_copy_with_their_network():
    """Executors may ship models between processes: the plain view must follow the copy."""
    import pickle

    f = Autonomous(nn.Sequential(nn.Linear(3, 4), nn.ELU(), nn.Linear(4, 3)))
    dynamics = Dynamics(HBNODE(), f, NFECounter())
    for duplicate in (pickle.loads(pickle.dumps(dynamics)), copy.deepcopy(dynamics)):
        assert duplicate.has_vjp
        assert duplicate.plain_f.layers[0].linear is duplicate.f.net[0]
        duplicate.f.net[2].register_forward_hook(lambda module, inputs, output: output)
        assert not duplicate.has_vjp and dynamics.has_vjp  # the copy watches its own modules


def test_the_kit_refuses_a_hand_written_vjp_for_time_dependent_derivatives():
    class Driven(NODE):
        name = "driven"

        def derivatives(self, t, state, f):
            (h,) = state
            return (f(t, h) + t,)

        derivatives_vjp = NODE.derivatives_vjp

    with pytest.raises(AssertionError, match="derivatives read t"):
        _vjp_check(Driven)()


def test_a_missing_parameter_gradient_fails_the_backward_solve_clearly():
    """Not a silent zero: the run's record says what is missing."""
    torch.manual_seed(0)
    counter = NFECounter()
    f = Autonomous(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)))
    block = ODEBlock(Forgetful(), f, 3, SolverConfig(rtol=1e-5, atol=1e-5, backend="fast"), counter,
                     FastBackend())
    with pytest.raises(ValueError, match=r"derivatives_vjp gave no gradient for a parameter of shape \(\)"):
        _forward_backward(block, counter)


def test_a_hook_on_the_dynamics_sends_the_adjoint_back_to_autograd():
    """The hand path calls ``vjp``, not the module: a hook on the dynamics would not run."""
    dynamics = Dynamics(HBNODE(), Autonomous(nn.Sequential(nn.Linear(3, 3))), NFECounter())
    assert dynamics.has_vjp
    dynamics.register_forward_hook(lambda module, inputs, output: None)
    assert not dynamics.has_vjp


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=lambda m: type(m).__name__)
def test_pointwise_gives_an_activation_and_autograds_backward_formula(activation):
    forward, backward = pointwise(activation)
    u = torch.randn(50, dtype=torch.float64, requires_grad=True) * 2
    g = torch.randn(50, dtype=torch.float64)
    y = activation(u)
    (expected,) = torch.autograd.grad(y, u, g)
    assert torch.equal(forward(u.detach()), y.detach())
    assert torch.equal(backward(g, u.detach(), y.detach()), expected)


def test_pointwise_refuses_an_activation_it_has_no_formula_for():
    with pytest.raises(ValueError, match="no pullback for GELU"):
        pointwise(nn.GELU())
