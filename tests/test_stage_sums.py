"""The fast backend's stage sums are torchdiffeq's ``torch.sum(k * c, dim=-1)``, bit for bit,
whichever way they are computed."""
from __future__ import annotations

import math

import pytest
import torch

from harness.solvers.fast import stage_sums
from harness.solvers.fast.stage_sums import order_index, rows_order, stage_sum, sum_order
from harness.solvers.fast.stages import StepBuffers
from harness.solvers.fast.tableaux import TABLEAUX, Tableau


def _case(dtype: torch.dtype, count: int, rows: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage derivatives of very different sizes on torchdiffeq's (state, stages) layout, and
    dopri5-like coefficients times a step."""
    generator = torch.Generator().manual_seed(count)
    scales = torch.logspace(-3, 3, count, dtype=torch.float64)
    k = torch.randn(rows, count, generator=generator, dtype=torch.float64) * scales
    weights = TABLEAUX["dopri5"].weights[-1, :count]
    return k.to(dtype), (weights * 0.0173).to(dtype)


@pytest.mark.parametrize("device", [
    "cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                         reason="no CUDA device here"))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("count", range(1, 8))
def test_stage_sums_are_torchdiffeqs_bit_for_bit(dtype, count, device):
    """On each device its own kernel's order (probed there), or torch's sum where none is."""
    k, c = (tensor.to(device) for tensor in _case(dtype, count))
    expected = torch.sum(k * c, dim=-1)  # torchdiffeq 0.2.5's _runge_kutta_step
    got = stage_sum(k.t().contiguous(), c.unsqueeze(-1))
    assert torch.equal(got, expected)
    if count > 1 and device == "cpu":
        assert sum_order(dtype, count) is not None  # the fast path, on this CPU


def test_the_order_matters_so_the_probe_is_needed():
    """Adding the stages left to right is not torch's sum (which the probe's order is)."""
    k, c = _case(torch.float32, 7)
    products = (k * c).t()
    left_to_right = products[0].clone()
    for row in products[1:]:
        left_to_right += row
    assert not torch.equal(left_to_right, torch.sum(k * c, dim=-1))


@pytest.fixture
def fresh_summers():
    """Sums chosen afresh (a test changes how orders are found), and again after it."""
    stage_sums.summer.cache_clear()
    yield
    stage_sums.summer.cache_clear()


def test_without_a_known_order_torchs_own_sum_is_taken(monkeypatch, fresh_summers):
    monkeypatch.setattr(stage_sums, "sum_order", lambda dtype, count, device: None)
    monkeypatch.setattr(stage_sums, "rows_order", lambda dtype, count, device, threads: None)
    k, c = _case(torch.float32, 6, rows=21)
    assert torch.equal(stage_sum(k.t().contiguous(), c.unsqueeze(-1)), torch.sum(k * c, dim=-1))
    # the members' (stages, rows, width) layout too
    assert torch.equal(stage_sum(k.t().contiguous().view(6, 3, 7), c.view(6, 1, 1)),
                       torch.sum(k * c, dim=-1).view(3, 7))


def test_a_stage_sum_backpropagates():
    """Without the adjoint, the solve is differentiated through its stage sums (in place on
    a fresh tensor, never on a view autograd forbids changing)."""
    k, c = _case(torch.float64, 5, rows=4)
    k = k.t().contiguous().requires_grad_(True)
    for count in (1, 5):
        total = stage_sum(k[:count], c[:count].unsqueeze(-1)).add_(1.0)
        (gradient,) = torch.autograd.grad(total.sum(), k)
        assert torch.equal(gradient[:count], c[:count].unsqueeze(-1).expand(count, 4))


#: State shapes: flat states of small, odd and large sizes, and members' (rows, width).
SHAPES = [(1,), (3,), (7,), (480,), (11000,), (1, 480), (3, 7), (100, 48), (37, 961)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("count", range(1, 8))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_stage_sums_of_every_shape_are_torchdiffeqs(dtype, count, shape):
    """Whichever way the sum goes (one sum over the stages' rows or the chain of adds), on
    flat states and on the members' (stages, rows, width) layout."""
    k, c = _case(dtype, count, rows=math.prod(shape))
    expected = torch.sum(k * c, dim=-1).view(shape)
    assert torch.equal(stage_sum(k.t().contiguous().view(count, *shape),
                                 c.view(count, *[1] * len(shape))), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_sum_by_rows_is_taken_where_the_probe_finds_it_and_only_there(dtype):
    """Up to four stages torch's sum over the rows adds them in the probed order for every
    size (one call); past four, its kernel adds the last columns of a row in an order of its
    own on some sizes, so the probe refuses and the chain is taken."""
    threads = torch.get_num_threads()
    assert [rows_order(dtype, count, "cpu", threads) is not None for count in (2, 3, 4)] == [True] * 3
    assert rows_order(dtype, 7, "cpu", threads) is None
    order = sum_order(dtype, 7)
    k, c = _case(dtype, 7, rows=11000)
    by_rows = torch.sum((k * c).t().contiguous().index_select(0, order_index(order, "cpu")), dim=0)
    assert not torch.equal(by_rows, torch.sum(k * c, dim=-1))  # why it must fall back there


def test_without_a_sum_by_rows_the_chain_is_taken(monkeypatch, fresh_summers):
    monkeypatch.setattr(stage_sums, "rows_order", lambda dtype, count, device, threads: None)
    for count in (2, 4):
        k, c = _case(torch.float32, count)
        assert torch.equal(stage_sum(k.t().contiguous(), c.unsqueeze(-1)),
                           torch.sum(k * c, dim=-1))


#: Flat state sizes: each remainder of the kernels' blocks up to 129, a few larger ones and one
#: past torch's grain for a parallel sum; and members' (rows, width) states.
STATE_SHAPES = [(size,) for size in (*range(1, 130), 480, 961, 4095, 4097, 11000)] + [
    (1, 480), (3, 7), (100, 48), (37, 961)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", sorted(TABLEAUX))
def test_a_steps_sums_on_reused_buffers_are_torchdiffeqs(method, dtype):
    """Where no graph is recorded, a step's sums go through buffers made once per solve (on
    a flat state the products of all sums in one buffer, the chain's views of its rows made
    once; the members' layouts form new products): each sum of
    every stage count, the error's and the solution's, is torchdiffeq's
    ``torch.sum(k[..., :i + 1] * c, dim=-1)`` on its (state, stages) layout, for every state
    size, for the whole state and for the part f reads, step after step (the buffers
    refilled), and a sum already returned is not changed by the next."""
    _reused_buffers_sum_as_torchdiffeq(TABLEAUX[method], dtype, STATE_SHAPES)


def test_reused_buffers_without_a_known_order_take_torchs_sum(monkeypatch, fresh_summers):
    monkeypatch.setattr(stage_sums, "sum_order", lambda dtype, count, device: None)
    monkeypatch.setattr(stage_sums, "rows_order", lambda dtype, count, device, threads: None)
    _reused_buffers_sum_as_torchdiffeq(TABLEAUX["dopri5"], torch.float32,
                                       [(1,), (7,), (480,), (3, 7)])


def _reused_buffers_sum_as_torchdiffeq(tableau: Tableau, dtype: torch.dtype,
                                       shapes: list[tuple[int, ...]]) -> None:
    generator = torch.Generator().manual_seed(7)
    scales = torch.logspace(-3, 3, tableau.stages, dtype=torch.float64)
    for shape in shapes:
        weights = tableau.weights.to(dtype).view(*tableau.weights.shape, *[1] * len(shape))
        live = max(1, shape[-1] // 2) if shape[-1] in (7, 48, 101) else shape[-1]
        buffers = StepBuffers(tableau, weights, live, reuse=True)
        kept: list[tuple[torch.Tensor, torch.Tensor]] = []
        for draw in range(2):
            f = torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)
            step = 0.0173 * (draw + 1)
            views = buffers.step(step if len(shape) == 1 else
                                 torch.full((shape[0], 1), step, dtype=dtype), f)
            for stage, row in enumerate(views.rows[1:], 1):
                row.copy_(torch.randn(shape, generator=generator, dtype=torch.float64)
                          * scales[stage])
            k = views.k.movedim(0, -1).contiguous()  # torchdiffeq's (…state, stages)
            for i, (total, whole) in enumerate(views.sums):
                expected = torch.sum(
                    k[..., :i + 1] * views.coefficients[i][:i + 1].movedim(0, -1), dim=-1)
                got = total()
                assert torch.equal(got, expected if whole else expected[..., :live]), (
                    shape, draw, i)
                kept.append((got, got.clone()))
            rows = [tableau.error] + ([] if tableau.solution is None else [tableau.solution])
            for row, total in zip(rows, (views.error, views.solution)):
                got = total()
                expected = torch.sum(k * views.coefficients[row].movedim(0, -1), dim=-1)
                assert torch.equal(got, expected), (shape, draw, row)
                kept.append((got, got.clone()))
            buffers.accepted()
        assert all(torch.equal(got, expected) for got, expected in kept)
