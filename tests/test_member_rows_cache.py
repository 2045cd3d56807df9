"""An ensemble's solve gathers what an evaluation of a set of members reads (their family
parameters row by row, their layers' weights and biases) once per member set: the gathered
values must follow a change of the set and an in-place change of the parameters (an
optimizer's step), or the members would be evaluated with stale parameters."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from harness.solvers.fast.backend import FastBackend
from harness.solvers.members import Running
from harness.solvers.settings import SolverConfig
from harness.toolkit.ensemble import Members, stack_models
from harness.toolkit.networks import Autonomous
from harness.toolkit.nfe import NFECounter
from harness.toolkit.ode import ODEBlock
from harness_plugins.models.hbnode import HBNODE

SIZE, ROWS, WIDTH = 3, 4, 2


def _block() -> nn.Module:
    solver = SolverConfig(backend="fast", rtol=1e-7, atol=1e-7)
    blocks = []
    for seed in range(SIZE):
        torch.manual_seed(seed)
        f = Autonomous(nn.Sequential(nn.Linear(WIDTH, 8), nn.ELU(), nn.Linear(8, WIDTH)))
        family = HBNODE(gamma_init=-3.0 + seed)
        blocks.append(ODEBlock(family, f, WIDTH, solver, NFECounter(), FastBackend()).double())
    return stack_models(blocks, Members(SIZE))


def _state(members: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    z, a = (torch.randn(members * ROWS, 2 * WIDTH, generator=generator, dtype=torch.float64)
            for _ in range(2))
    return torch.zeros(members, dtype=torch.float64), z, a


def _fresh(block: nn.Module, t, z, a, rows: np.ndarray) -> tuple[torch.Tensor, ...]:
    """The field and its VJP by a solve made now, its first evaluation (nothing kept)."""
    ode, running = block.members_solve(None), _running(rows)
    value, cotangent, grads = ode.field_vjp(t, z, a, running)
    return ode.field(t, z, _running(rows)), value, cotangent, *(grads[p] for p in ode.params)


def _running(rows: np.ndarray) -> Running:
    active = np.zeros(SIZE, dtype=bool)
    active[rows] = True
    return Running(active)


def _kept(ode, t, z, a, rows: np.ndarray) -> tuple[torch.Tensor, ...]:
    value, cotangent, grads = ode.field_vjp(t, z, a, _running(rows))
    return ode.field(t, z, _running(rows)), value, cotangent, *(grads[p] for p in ode.params)


def _assert_same(got: tuple, expected: tuple) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert torch.equal(g, e)


@torch.no_grad()
def test_a_kept_gather_follows_a_change_of_the_member_set():
    """All three members, then members 0 and 2, then member 1 alone, in one solve: each
    evaluation equals a fresh solve's of the same members."""
    block = _block()
    ode = block.members_solve(None)
    for seed, rows in enumerate([np.arange(SIZE), np.array([0, 2]), np.array([1])]):
        t, z, a = _state(len(rows), seed)
        _assert_same(_kept(ode, t, z, a, rows), _fresh(block, t, z, a, rows))


def test_a_kept_gather_follows_an_optimizer_step():
    """One solve evaluates members 0 and 2, an optimizer steps every stacked parameter (f's
    and the family's γ), and the same solve evaluates them again: its values and VJP are the
    new parameters', not the gathered old ones."""
    block = _block()
    rows = np.array([0, 2])
    t, z, a = _state(len(rows), 0)
    with torch.no_grad():
        ode = block.members_solve(None)
        before = _kept(ode, t, z, a, rows)
    optimizer = torch.optim.SGD(block.parameters(), lr=0.5)
    for parameter in block.parameters():
        parameter.grad = torch.ones_like(parameter)
    optimizer.step()
    with torch.no_grad():
        after = _kept(ode, t, z, a, rows)
        expected = _fresh(block, t, z, a, rows)
    _assert_same(after, expected)
    assert not torch.equal(after[0], before[0]), "the step should change the field"
