"""Each family's right-hand side against its equation (the paper's §2–3), on a hand-made f."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from harness.conformance import _vjp_matches_autograd
from harness_plugins.models.anode import ANODE
from harness_plugins.models.ghbnode import GHBNODE
from harness_plugins.models.hbnode import HBNODE
from harness_plugins.models.node import NODE
from harness_plugins.models.sonode import SONODE

N = 3
T = torch.tensor(0.7)


def f(t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """A vector field that reads every channel it gets and returns N: sums the parts it sees."""
    parts = z.chunk(z.shape[1] // N, dim=1)
    return sum((i + 2) * p for i, p in enumerate(parts)) + t


@pytest.fixture
def hm() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(4, N), torch.randn(4, N)


@pytest.mark.parametrize("family", [NODE, ANODE])
def test_first_order(family, hm):
    h, _ = hm
    (dh,) = family().derivatives(T, (h,), f)
    torch.testing.assert_close(dh, 2 * h + T)


def test_sonode_f_sees_position_and_velocity(hm):
    h, v = hm
    dh, dv = SONODE().derivatives(T, (h, v), f)
    torch.testing.assert_close(dh, v)
    torch.testing.assert_close(dv, 2 * h + 3 * v + T)


def test_hbnode(hm):
    h, m = hm
    family = HBNODE()
    gamma = 1 / (1 + math.exp(3.0))  # sigmoid(-3): ω starts at −3
    dh, dm = family.derivatives(T, (h, m), f)
    torch.testing.assert_close(dh, m)
    torch.testing.assert_close(dm, -gamma * m + 2 * h + T)
    assert [p.numel() for p in family.parameters()] == [1]


@pytest.mark.parametrize("sigma,expected", [("tanh", torch.tanh), ("identity", lambda m: m),
                                            ("hardtanh", lambda m: m.clamp(-5, 5))])
def test_ghbnode(hm, sigma, expected):
    h, m = hm
    m = m * 4  # some entries beyond ±5 for hardtanh
    family = GHBNODE(sigma=sigma)
    gamma, xi = 1 / (1 + math.exp(3.0)), math.log(2.0)  # sigmoid(-3), softplus(0)
    dh, dm = family.derivatives(T, (h, m), f)
    torch.testing.assert_close(dh, expected(m))
    torch.testing.assert_close(dm, -gamma * m + 2 * h + T - xi * h)
    assert sum(p.numel() for p in family.parameters()) == 2


def test_ghbnode_rejects_unknown_sigma():
    with pytest.raises(ValueError, match="sigma must be one of tanh, hardtanh, identity"):
        GHBNODE(sigma="relu")


def test_family_parameters_are_trained(hm):
    h, m = hm
    family = GHBNODE()
    _, dm = family.derivatives(T, (h, m), f)
    dm.sum().backward()
    assert family.omega.grad is not None and family.chi.grad is not None


def test_hbnode_with_the_authors_xi_term(hm):
    """The authors' plane-vibration HBNODE-RNN: m' also has −ξ·h, ξ = softplus(χ) learnable."""
    h, m = hm
    family = HBNODE(xi_init=0.0)
    gamma, xi = 1 / (1 + math.exp(3.0)), math.log(2.0)
    dh, dm = family.derivatives(T, (h, m), f)
    torch.testing.assert_close(dh, m)
    torch.testing.assert_close(dm, -gamma * m + 2 * h + T - xi * h)
    assert sum(p.numel() for p in family.parameters()) == 2


def test_ghbnode_with_a_fixed_xi(hm):
    """The authors' point-cloud GHBNODE: ξ = 2 fixed (no parameter), σ = identity."""
    h, m = hm
    family = GHBNODE(sigma="identity", xi=2.0)
    gamma = 1 / (1 + math.exp(3.0))
    dh, dm = family.derivatives(T, (h, m), f)
    torch.testing.assert_close(dh, m)
    torch.testing.assert_close(dm, -gamma * m + 2 * h + T - 2.0 * h)
    assert [p.numel() for p in family.parameters()] == [1]


class _HBNODEWithXi(HBNODE):
    derivatives_vjp = HBNODE.derivatives_vjp

    def __init__(self) -> None:
        super().__init__(xi_init=0.3)


class _GHBNODEFixedXi(GHBNODE):
    derivatives_vjp = GHBNODE.derivatives_vjp

    def __init__(self) -> None:
        super().__init__(sigma="tanh", xi=2.0)


@pytest.mark.parametrize("family", [_HBNODEWithXi, _GHBNODEFixedXi])
def test_the_hand_written_vjp_covers_the_xi_options(family):
    _vjp_matches_autograd(family)


MODELS = Path(__file__).resolve().parents[1] / "plugins" / "models"


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.py")), ids=lambda p: p.name)
def test_a_built_in_family_fits_in_forty_lines(path):
    """The contract's promise to a family's author, kept by the built-ins."""
    assert len(path.read_text().splitlines()) <= 40, f"{path.name} is longer than 40 lines"
