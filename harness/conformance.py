"""The conformance kit: checks a plugin author runs against their model family.

    import pytest
    from harness.conformance import family_checks
    from my_package import MyFamily

    @pytest.mark.parametrize("check", family_checks(MyFamily), ids=str)
    def test_conformance(check):
        check()

Each check raises AssertionError saying what is wrong, or pytest's Skipped when a task's data
is not on this machine. The checks: the class declares a valid state layout (distinct part
names, a readout part among them, a start for every part, what f reads, an increasing
interval); the initial state is formed as declared (x, zeros and the initial-velocity
network's channels where each part says); derivatives come back one per part, each shaped like h, on vector and image states; NFE is counted in the forward
and the backward (adjoint) phase; adjoint gradients equal direct backprop on a tiny problem;
the fast solver backend takes torchdiffeq's steps and gives its gradients on this family; a
hand-written ``derivatives_vjp``, where the family has one, equals autograd's VJP, and with
``vjp_unsummed`` an ensemble's members' VJP too (each member's family parameters summed over its
rows only); one training epoch on each installed task's tiny variant (``Task.tiny``) ends ok with forward and
backward NFE counted (skipped, with the task's reason, where the task refuses the family:
``Task.refusal``) (a study task with ``epochs: 0`` in its schedule: its measurement, with
evaluation NFE counted).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from harness.contract import Family, hookimpl
from harness.data_root import DataNotFound
from harness.plugins import family_problem, load_registry
from harness.running.runner import execute_run, widths_for
from harness.solvers.backends import SolverBackend
from harness.solvers.fast.backend import FastBackend
from harness.solvers.members import Running
from harness.solvers.settings import SolverConfig
from harness.solvers.torchdiffeq_backend import TORCHDIFFEQ
from harness.suites.loader import suite_from_document
from harness.toolkit.ensemble import Members, NotStackable, stack_models
from harness.toolkit.networks import Autonomous
from harness.toolkit.nfe import NFECounter
from harness.toolkit.ode import Dynamics, ODEBlock

N = 3  # width of a part in the synthetic checks


@dataclass(frozen=True)
class Check:
    """One named check; call it to run it."""

    name: str
    run: Callable[[], None]

    def __call__(self) -> None:
        self.run()

    def __str__(self) -> str:
        return self.name


def family_checks(family: type[Family], tasks: Sequence[str] | None = None) -> list[Check]:
    """The checks for ``family``; ``tasks`` limits the training steps (default: every task
    installed)."""
    checks = [
        Check("state layout", lambda: _layout(family)),
        Check("initial state as declared", lambda: _initial_state(family)),
        Check("derivative shapes", lambda: _shapes(family)),
        Check("NFE counted in both phases", lambda: _nfe_phases(family)),
        Check("adjoint gradients equal backprop", lambda: _adjoint_matches_backprop(family)),
        Check("the fast backend takes torchdiffeq's steps", lambda: _fast_matches_torchdiffeq(family)),
    ]
    if family.has_derivatives_vjp():
        checks.append(Check("hand-written VJP equals autograd's", lambda: _vjp_matches_autograd(family)))
    if family.has_member_vjp():
        checks.append(Check("hand-written VJP serves an ensemble's members",
                            lambda: _member_vjp_matches_autograd(family)))
    if tasks is None:
        tasks = sorted(load_registry().tasks)
    checks += [Check(f"a tiny run on {task}", lambda task=task: _train_step(family, task))
               for task in tasks]
    return checks


def _layout(family: type[Family]) -> None:
    problem = family_problem(family)
    assert problem is None, problem
    family()  # constructible with default options


def _initial_state(family: type[Family]) -> None:
    """From an input x of 2 channels and part width N: x where the family puts it, zeros where
    it says zeros, and the network's output, in order, in every channel it says the network."""
    _layout(family)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(2))
    channels = family.network_channels(N, x.shape[1])
    network = torch.arange(1.0, channels + 1).expand(4, channels)  # channel k holds k + 1
    block = ODEBlock(family(), _vector_field(family.f_input_parts * N), N, SolverConfig(),
                     NFECounter())
    z = block.initial_state(x, (lambda _: network) if family.uses_network() else None)
    assert z.shape == (4, len(family.parts) * N), (
        f"initial state of shape {tuple(z.shape)}; {len(family.parts)} parts of width {N} "
        f"make (4, {len(family.parts) * N})")
    taken = 0
    for name, part in zip(family.parts, z.chunk(len(family.parts), dim=1)):
        first, _, rest = family.initial_state[name].rpartition("+")
        if first:
            assert torch.equal(part[:, :2], x), f"part {name!r} does not start with x"
        tail = part[:, 2:] if first else part
        expected = (torch.zeros_like(tail) if rest == "zeros"
                    else network[:, taken:taken + tail.shape[1]])
        taken += tail.shape[1] if rest == "network" else 0
        assert torch.equal(tail, expected), (
            f"part {name!r} ({family.initial_state[name]!r}) starts as {tail[0].tolist()}, "
            f"expected {expected[0].tolist()}")
    assert taken == channels, f"{channels - taken} of the network's channels unused"
    readout = block.part(z)
    assert torch.equal(readout, z.chunk(len(family.parts), dim=1)[family.parts.index(family.readout)]), (
        f"the block does not read the readout part {family.readout!r}")


def _vector_field(n_in: int, image: bool = False) -> nn.Module:
    layer = nn.Conv2d(n_in, N, 3, padding=1) if image else nn.Linear(n_in, N)
    return Autonomous(nn.Sequential(layer, nn.Tanh()))


def _shapes(family: type[Family]) -> None:
    parts = len(family.parts)
    for shape in ((5, N), (2, N, 4, 4)):
        state = tuple(torch.randn(*shape) for _ in range(parts))
        f = _vector_field(family.f_input_parts * N, image=len(shape) > 2)
        t = torch.tensor(family.interval[0])
        try:
            derivatives = family().derivatives(t, state, f)
        except Exception as error:  # the author needs the layout, not a traceback from inside
            raise AssertionError(
                f"derivatives raised {type(error).__name__}: {error} on a state of "
                f"{parts} parts {family.parts}, each shaped {shape}") from error
        returned = (f"a tuple of {len(derivatives)}" if isinstance(derivatives, tuple)
                    else type(derivatives).__name__)
        assert isinstance(derivatives, tuple) and len(derivatives) == parts, (
            f"derivatives returned {returned}; expected a tuple of {parts}, one per part "
            f"{family.parts}")
        for name, d in zip(family.parts, derivatives):
            assert isinstance(d, torch.Tensor), f"d{name}/dt is a {type(d).__name__}, not a tensor"
            assert d.shape == state[0].shape, f"d{name}/dt has shape {tuple(d.shape)}, h has {shape}"


def _step(family: type[Family], adjoint: bool, backend: SolverBackend = TORCHDIFFEQ
          ) -> tuple[dict[str, int], dict[str, torch.Tensor | None]]:
    """One forward and backward pass of a tiny float64 block: (NFE by phase, gradients)."""
    torch.manual_seed(0)
    solver = SolverConfig(method="dopri5", rtol=1e-8, atol=1e-8, adjoint=adjoint,
                          backend=backend.name)
    counter = NFECounter()
    block = ODEBlock(family(), _vector_field(family.f_input_parts * N), N, solver, counter,
                     backend).double()
    z0 = torch.randn(4, len(family.parts) * N, generator=torch.Generator().manual_seed(1)).double()
    with counter.in_phase("forward"):
        loss = block(z0).pow(2).sum()
    with counter.in_phase("backward"):
        loss.backward()
    return counter.take(), {name: p.grad for name, p in block.named_parameters()}


def _nfe_phases(family: type[Family]) -> None:
    counts, _ = _step(family, adjoint=True)
    assert counts["forward"] > 0, "no dynamics call counted in the forward solve"
    assert counts["backward"] > 0, "no dynamics call counted in the adjoint solve"


def _adjoint_matches_backprop(family: type[Family]) -> None:
    (_, adjoint), (_, direct) = _step(family, adjoint=True), _step(family, adjoint=False)
    for name, expected in direct.items():
        got = adjoint[name]
        assert got is not None and expected is not None, f"{name} got no gradient"
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-7,
                                   msg=lambda m: f"{name}: adjoint gradient != backprop: {m}")


def _fast_matches_torchdiffeq(family: type[Family]) -> None:
    """The fast backend repeats torchdiffeq's algorithm; on this family it must take the same
    steps (NFE in both phases) and give the same gradients (float64, with the adjoint)."""
    nfe, reference = _step(family, adjoint=True)
    fast_nfe, fast = _step(family, adjoint=True, backend=FastBackend())
    assert fast_nfe == nfe, f"NFE under the fast backend {fast_nfe} != torchdiffeq's {nfe}"
    for name, expected in reference.items():
        torch.testing.assert_close(fast[name], expected, rtol=1e-9, atol=1e-12,
                                   msg=lambda m: f"{name}: fast backend gradient != torchdiffeq's: {m}")


def _vjp_matches_autograd(family: type[Family]) -> None:
    """``derivatives_vjp`` (through the dynamics, on a plain MLP f) against autograd at a random
    point, in float64: the value, the state's cotangent and every parameter's gradient."""
    torch.manual_seed(0)
    dynamics = Dynamics(family(), _network(family), NFECounter()).double()
    assert dynamics.has_vjp, "a plain-MLP f and a derivatives_vjp should give the dynamics a VJP"
    generator = torch.Generator().manual_seed(1)
    # Spread wide enough that saturating pieces (tanh, hardtanh at ±5) are tried on both sides.
    z, a = (4 * torch.randn(8, len(family.parts) * N, generator=generator, dtype=torch.float64)
            for _ in range(2))
    t = torch.tensor(family.interval[0], dtype=torch.float64)
    with torch.no_grad():
        later = dynamics(t + 0.5, z)
    named = {name: p for name, p in dynamics.named_parameters() if p.requires_grad}
    leaf = z.clone().requires_grad_(True)
    value = dynamics(t, leaf)
    expected = torch.autograd.grad(value, (leaf, *named.values()), a, allow_unused=True,
                                   materialize_grads=True)
    with torch.no_grad():
        got = dynamics.vjp(t, z, a)
    assert torch.equal(later, value.detach()), (
        "derivatives read t; a hand-written VJP is only for derivatives that do not (it gives no "
        "time gradient): remove derivatives_vjp")
    _assert_vjp_equals(got, value, expected, list(named.items()), _SOLO)


def _member_vjp_matches_autograd(family: type[Family]) -> None:
    """With ``vjp_unsummed``: the VJP an ensemble's adjoint takes by hand against autograd's
    through the same batched call, in float64 — three members, each with family parameters of
    its own, two of them evaluated, each element's rate scaled. A gradient summed over the
    whole batch instead of each member's rows mixes the members and fails here."""
    import pytest  # a dev extra: only the checks that skip need it

    torch.manual_seed(0)
    solver = SolverConfig(backend=FastBackend.name)
    members = Members(3)
    try:
        block = stack_models([ODEBlock(family(), _network(family), N, solver, NFECounter(),
                                       FastBackend()).double() for _ in range(3)], members)
    except NotStackable as reason:
        pytest.skip(f"no ensembles of {family.name}: {reason}")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # each member its own values of the family's parameters
        for parameter in block.family_parameters.values():
            parameter.copy_(torch.randn(3, generator=generator, dtype=torch.float64))
    scale = torch.rand(3 * 4, 1, generator=generator, dtype=torch.float64) + 0.5
    ode, running = block.members_solve(scale), Running(np.array([True, False, True]))
    assert ode.has_vjp, "a stacked plain-MLP f and vjp_unsummed should give the members a VJP"
    z, a = (4 * torch.randn(2 * 4, len(family.parts) * N, generator=generator,
                            dtype=torch.float64) for _ in range(2))
    t = torch.full((2,), family.interval[0], dtype=torch.float64)
    leaf = z.clone().requires_grad_(True)
    value = ode.field(t, leaf, running)
    expected = torch.autograd.grad(value, (leaf, *ode.params), a, materialize_grads=True)
    with torch.no_grad():
        got = ode.field_vjp(t, z, a, running)
    names = [f"family parameter {name}" for name in block.family_parameters]
    names += [f"f's {name}" for name, p in block.dynamics.f.named_parameters() if p.requires_grad]
    _assert_vjp_equals(got, value, expected, list(zip(names, ode.params)), _MEMBERS,
                       rows=running.rows)


@dataclass(frozen=True)
class _VJPWords:
    """How a failed VJP check names what differs; ``{name}`` is the parameter's name."""

    value: str
    cotangent: str
    missing: str
    gradient: str


_SOLO = _VJPWords(
    value="derivatives_vjp's derivatives != derivatives",
    cotangent="aᵀ∂F/∂state != autograd's",
    missing="derivatives_vjp gave no gradient for the parameter {name}",
    gradient="{name}: aᵀ∂F/∂{name} != autograd's")
_MEMBERS = _VJPWords(
    value="the members' derivatives != derivatives",
    cotangent="the members' aᵀ∂F/∂state != autograd's",
    missing="no gradient for the members' {name}",
    gradient=("{name}: the members' gradients != autograd's (a sum over the whole batch where "
              "vjp_unsummed asks for the terms unsummed?)"))


def _assert_vjp_equals(got: tuple[torch.Tensor, torch.Tensor, dict[torch.Tensor, torch.Tensor]],
                       value: torch.Tensor, expected: Sequence[torch.Tensor],
                       parameters: Sequence[tuple[str, torch.Tensor]], words: _VJPWords,
                       rows: np.ndarray | None = None) -> None:
    """A hand-written VJP's (value, state cotangent, gradients by parameter) against autograd's
    ``value`` and ``expected`` (the state's cotangent, then each of ``parameters``' gradients,
    taken at ``rows`` where only some rows of a stacked parameter were evaluated)."""
    got_value, got_cotangent, grads = got
    torch.testing.assert_close(got_value, value.detach(), msg=lambda m: f"{words.value}: {m}")
    torch.testing.assert_close(got_cotangent, expected[0],
                               msg=lambda m: f"{words.cotangent}: {m}")
    for (name, parameter), gradient in zip(parameters, expected[1:]):
        assert parameter in grads, words.missing.format(name=name)
        torch.testing.assert_close(
            grads[parameter], gradient if rows is None else gradient[rows],
            msg=lambda m: f"{words.gradient.format(name=name)}: {m}")


def _network(family: type[Family]) -> nn.Module:
    """A plain MLP f: Linear, tanh, Linear."""
    return Autonomous(nn.Sequential(nn.Linear(family.f_input_parts * N, 5), nn.Tanh(),
                                    nn.Linear(5, N)))


def _train_step(family: type[Family], task_name: str) -> None:
    import pytest  # a dev extra: only the checks that skip need it

    registry = load_registry()
    if registry.families.get(family.name) is not family:  # not installed (yet): register it
        registry = load_registry([(f"conformance-{family.name}", _Provides(family))])
    task = registry.tasks[task_name]
    study = task.schedule.get("epochs") == 0  # a task that only measures the untrained model
    entry = {"task": task_name, "model": family.name, "epochs": 0 if study else 1,
             "solver": {"method": "dopri5", "tol": 1.0e-3}, **task.tiny}
    (spec,) = suite_from_document({"name": "conformance", "runs": [entry]}, Path("<conformance>"),
                                  registry).runs
    reason = task.refusal(family, widths_for(spec, registry))
    if reason:  # the task says why it cannot run this family: nothing to check there
        pytest.skip(f"{task_name} refuses {family.name}: {reason}")
    record = execute_run(spec, registry, torch.device("cpu"))
    if record["status"] == "failed" and record["error"].startswith(DataNotFound.__name__):
        pytest.skip(f"{task_name}: data not on this machine: {record['error']}")
    assert record["status"] == "ok", f"{task_name}: {record['error']}\n{record.get('traceback', '')}"
    epoch = record["epochs"][-1]
    if study:
        assert epoch["eval_nfe"] > 0, epoch
    else:
        assert epoch["forward_nfe"] > 0 and epoch["backward_nfe"] > 0, epoch


class _Provides:
    """Registers a family that is not installed, for checking it before packaging."""

    def __init__(self, family: type[Family]) -> None:
        self.family = family

    @hookimpl
    def harness_model_families(self) -> list[type[Family]]:
        return [self.family]
