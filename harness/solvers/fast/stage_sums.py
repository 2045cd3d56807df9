"""torchdiffeq's stage sums, bit for bit, at a fraction of their cost.

torchdiffeq forms each Runge–Kutta sum as ``torch.sum(k * c, dim=-1)`` over a (state, stages)
tensor. Reducing a last dimension of at most seven entries is slow in ATen (about 2 ns an
entry here, several times the products themselves), but what it computes is a sequential sum
of the products in some order of the stages — an order fixed by the CPU kernel torch picked for
the dtype (float32 with AVX2: stages 0, 4, 5, 6, 1, 2, 3). :func:`sum_order` finds that order
by asking torch once per (dtype, count); :func:`stage_sum` then adds the products, stored
stage by stage on a (stages, state) layout, in that order: the same roundings, so the same
values. Where torch's own sum over that layout's first dimension adds the rows in the order
given, from 0, for every state size (:func:`rows_order` asks torch on many sizes: its
kernels add a row's last columns in an order of their own past four rows), that is one call
instead of a chain of adds; else the chain of one add per stage. Where no order reproduces
torch's (a kernel this does not know), it takes torch's own sum.

Where a solve's sums refill the same buffers each step (:func:`fixed_sum` with a
:class:`ProductBuffer`), the views of the products' rows are made once, and there the chain
is the cheaper way for every count of two or more: torch's one sum over the rows only pays
where those views would be made at each sum (docs/performance.md has the measurements).
"""
from __future__ import annotations

import itertools
import math
from functools import cache, partial
from typing import Callable

import torch
from torch import Tensor

#: Rows of the probe; enough that two orders agreeing on all of them by chance is not a risk.
_PROBE_ROWS = 4096


@cache
def sum_order(dtype: torch.dtype, count: int, device: str = "cpu") -> tuple[int, ...] | None:
    """The order in which ``torch.sum(p, dim=-1)`` adds the ``count`` (≥ 2) entries of each
    row of a contiguous ``dtype`` tensor p (starting from 0) on ``device`` (a device type:
    each has its own kernels), found by trying every order on random rows of wildly different
    magnitudes; None if no sequential order matches torch's."""
    generator = torch.Generator().manual_seed(0)
    scales = torch.logspace(-4, 4, count, dtype=torch.float64)
    rows = (torch.randn(_PROBE_ROWS, count, generator=generator, dtype=torch.float64)
            * scales).to(device=device, dtype=dtype)
    expected = torch.sum(rows, dim=-1)
    columns = rows.t().contiguous()
    for order in itertools.permutations(range(count)):
        if torch.equal(_chain(columns.unbind(0), order), expected):
            # The same on a single row and a few (another iteration shape in the kernel).
            if all(torch.equal(_chain(columns[:, :n].unbind(0), order),
                               torch.sum(rows[:n], dim=-1)) for n in (1, 3)):
                return order
    return None


#: The state sizes :func:`rows_order` probes: every size up to 129 (each remainder of the
#: kernels' column blocks, which add the last columns of a row in an order of their own), a
#: few larger ones, and one past torch's grain for a parallel sum.
_PROBE_SIZES = (*range(1, 130), 480, 961, 4095, 4097, 11000, 40000)
#: Random states probed per size: a column's order shows in its sums of a few draws.
_PROBE_DRAWS = 2


@cache
def rows_order(dtype: torch.dtype, count: int, device: str = "cpu",
               threads: int = 1) -> tuple[int, ...] | None:
    """:func:`sum_order` where ``torch.sum(p.index_select(0, order), dim=0)`` of a contiguous
    (count, …) tensor p of products equals the chain of adds in that order for every state
    size probed (:data:`_PROBE_SIZES`, with torch on ``threads`` threads), so that one call
    replaces the chain; None where any size differs (torch's kernel then adds some columns in
    an order of its own, as its float32 and float64 kernels do past four rows here)."""
    order = sum_order(dtype, count, device)
    if order is None:
        return None
    generator = torch.Generator().manual_seed(1)
    scales = torch.logspace(-4, 4, count, dtype=torch.float64)
    index = order_index(order, device)
    for size in _PROBE_SIZES:
        for _ in range(_PROBE_DRAWS):
            rows = (torch.randn(size, count, generator=generator, dtype=torch.float64)
                    * scales).to(device=device, dtype=dtype)
            got = torch.sum(rows.t().contiguous().index_select(0, index), dim=0)
            if not torch.equal(got, torch.sum(rows, dim=-1)):
                return None
    return order


@cache
def order_index(order: tuple[int, ...], device: str) -> Tensor:
    """``order`` as an index tensor on ``device`` (for ``index_select``)."""
    return torch.tensor(order, device=device)


def _chain(products: tuple[Tensor, ...], order: tuple[int, ...]) -> Tensor:
    """Σ products in ``order`` (at least two), left to right; a tensor of its own."""
    total = products[order[0]] + products[order[1]]
    for index in order[2:]:
        total.add_(products[index])
    return total


Summer = Callable[[Tensor], Tensor]
"""Σ over the first dimension of products (stages, …state), in torchdiffeq's order."""


@cache
def summer(dtype: torch.dtype, count: int, device: str = "cpu", threads: int = 1) -> Summer:
    """How ``count`` products of ``dtype`` on ``device`` (a device type) are summed, with torch
    on ``threads`` threads: chosen once, so that a step's stages (which know their counts)
    skip the choice."""
    if count == 1:  # torch's 0 + p is p
        return _first
    order = rows_order(dtype, count, device, threads)
    if order is not None:
        if order == tuple(range(count)):
            return _sum_rows
        return partial(_sum_rows_in, order_index(order, device))
    order = sum_order(dtype, count, device)
    if order is None:  # an unknown kernel: torch's own sum, on torchdiffeq's layout
        return _sum_as_torchdiffeq
    return partial(_chain_of, order)


def stage_sum(k: Tensor, coefficients: Tensor) -> Tensor:
    """torchdiffeq's ``torch.sum(k.t() * coefficients.t(), dim=-1)``, bit for bit, for stage
    derivatives k on a (stages, state) layout and ``coefficients`` of shape (stages, 1); a
    new tensor, which the caller may change in place."""
    return summer(k.dtype, k.shape[0], k.device.type, torch.get_num_threads())(k * coefficients)


StageSum = Callable[[], Tensor]
"""Σ over the stages of k · coefficients for views k and coefficients fixed when it was made
(their values change between calls): a new tensor each call, which the caller may change."""


def fixed_sum(k: Tensor, coefficients: Tensor, buffer: ProductBuffer | None) -> StageSum:
    """:func:`stage_sum` of the views k (stages, …state) and ``coefficients`` (stages, …, 1).
    With a ``buffer`` (where no graph is recorded), the products go into it and are added
    by the chain in torch's order on views of its rows made once, not at each call."""
    if buffer is None or k.shape[0] == 1:  # one stage: its product is the sum, a new tensor
        return partial(_summed, summer(k.dtype, k.shape[0], k.device.type,
                                       torch.get_num_threads()), k, coefficients)
    return buffer.sum(k, coefficients)


class ProductBuffer:
    """One flat buffer for the products of a step's sums, which take it one after another
    (a sum's products are spent in it), with the views of each (state layout, stage count)
    and their sum's chain made once."""

    def __init__(self, stages: int, like: Tensor) -> None:
        self.stages, self.flat = stages, like.new_empty(stages * like.numel())
        #: Per (state layout, stage count): the products' view and their sum.
        self.sums: dict[tuple[tuple[int, ...], int], tuple[Tensor, StageSum]] = {}

    def sum(self, k: Tensor, coefficients: Tensor) -> StageSum:
        """The sum of k · coefficients (k at most ``stages`` rows of at most ``like``'s
        size), its products in this buffer."""
        key = tuple(k.shape[1:]), k.shape[0]
        if key not in self.sums:
            self.sums[key] = self._sum(*key, k.dtype, k.device.type)
        return partial(_refilled, k, coefficients, *self.sums[key])

    def _sum(self, layout: tuple[int, ...], count: int, dtype: torch.dtype,
             device: str) -> tuple[Tensor, StageSum]:
        products = self.flat[:count * math.prod(layout)].view(count, *layout)
        order = sum_order(dtype, count, device)
        if order is None:  # an unknown kernel: torch's own sum
            return products, partial(summer(dtype, count, device, torch.get_num_threads()),
                                     products)
        return products, partial(_chain, products.unbind(0), order)


def _summed(way: Summer, k: Tensor, coefficients: Tensor) -> Tensor:
    return way(k * coefficients)


def _refilled(k: Tensor, coefficients: Tensor, products: Tensor, total: StageSum) -> Tensor:
    torch.mul(k, coefficients, out=products)
    return total()


def _first(products: Tensor) -> Tensor:
    return products[0]


def _sum_rows(products: Tensor) -> Tensor:
    return torch.sum(products.contiguous(), dim=0)


def _sum_rows_in(index: Tensor, products: Tensor) -> Tensor:
    return torch.sum(products.index_select(0, index), dim=0)


def _sum_as_torchdiffeq(products: Tensor) -> Tensor:
    return torch.sum(products.flatten(1).t().contiguous(), dim=-1).view_as(products[0])


def _chain_of(order: tuple[int, ...], products: Tensor) -> Tensor:
    return _chain(products.unbind(0), order)
