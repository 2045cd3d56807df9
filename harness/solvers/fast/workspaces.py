"""What the fast backend's solo integrator makes before a solve's first step — its step
buffers and views, the tableau in the state's precision, the tolerances as tensors — kept
between solves of the same state layout.

The adjoint's solves are short (plane vibration's ODE-RNN: two steps each, 14 evaluations), so
what a solve makes once costs as much as its steps: making the step buffers and the views each
stage sum reads of them took about a fifth of the integrator's time there. A
:class:`Workspaces` (one per bound integrator) keeps one :class:`Workspace` per (shape, dtype,
device, live part, whether a graph is recorded) and lends it to one solve at a time: a solve
inside another's f (or on another thread) that wants the same layout gets a new one.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from harness.solvers.fast.stages import StepBuffers
from harness.solvers.fast.tableaux import Tableau

#: Layouts a :class:`Workspaces` keeps (the oldest goes first): a run's solves come in a few
#: layouts (the training batch's forward and adjoint states, a last smaller batch, evaluation).
KEPT_LAYOUTS = 8
#: The largest state (entries) whose workspace is kept: a workspace holds about 21 states' worth
#: (dopri5's two sets of seven stages and a product buffer), freed after each solve before; past
#: this size what a solve makes once costs little beside its steps, while keeping it between
#: solves (the forward's beside the adjoint's) would raise a run's peak memory.
KEPT_ENTRIES = 2 ** 18


def integer_factors(dtype: torch.dtype, device: torch.device) -> dict[int, Tensor]:
    """The quartic interpolant's integer coefficients as 0-dim tensors of ``dtype`` (a Python
    number in a torch call is wrapped in a new tensor each call); autograd may keep them, so
    nothing writes to them."""
    return {n: torch.scalar_tensor(n, dtype=dtype, device=device)
            for n in (-4, 2, 3, 5, 8, 11, 14, 16, 18, 32)}


class Workspace:
    """One state layout's step buffers (:class:`~harness.solvers.fast.stages.StepBuffers`,
    refilled each step where no graph is recorded), the tableau's weights (as (rows, stages, 1)
    in the state's dtype) and stage fractions (in its precision, ``scalar``), and rtol and atol
    and the interpolant's integers (:func:`integer_factors`) as 0-dim tensors of the state's
    dtype: a Python number in a torch call costs about 2 µs
    more than a tensor (it is wrapped in one each call), and the same value results, as torch
    casts it to the state's dtype first."""

    def __init__(self, tableau: Tableau, rtol: float, atol: float, like: Tensor, live: int,
                 scalar: type) -> None:
        self.dtype, self.device = like.dtype, like.device
        self.weights = tableau.weights.to(device=like.device, dtype=like.dtype).unsqueeze(-1)
        self.alphas = np.array(tableau.alpha, dtype=scalar)
        self.buffers = StepBuffers(tableau, self.weights, live, reuse=not torch.is_grad_enabled())
        self.rtol, self.atol = self.number(rtol), self.number(atol)
        self.integers = integer_factors(self.dtype, self.device)

    def number(self, value: Any) -> Tensor:
        """``value`` (a float or a scalar of the state's precision) as a 0-dim tensor of the
        state's dtype: a new one, as autograd may keep it."""
        return torch.scalar_tensor(float(value), dtype=self.dtype, device=self.device)


class Workspaces:
    """A bound integrator's :class:`Workspace` per state layout, each lent to one solve at a
    time (:meth:`take`, :meth:`give_back`). Pickled empty."""

    def __init__(self, tableau: Tableau, rtol: float, atol: float) -> None:
        self.tableau, self.rtol, self.atol = tableau, rtol, atol
        self.idle: dict[tuple, Workspace] = {}

    def take(self, y0: Tensor, live: int, scalar: type) -> tuple[tuple, Workspace]:
        """A workspace for a solve from y0 (f reading its first ``live`` entries), and the key
        to give it back under."""
        key = (y0.shape, y0.dtype, y0.device, live, torch.is_grad_enabled())
        work = self.idle.pop(key, None)
        if work is None:
            work = Workspace(self.tableau, self.rtol, self.atol, y0, live, scalar)
        return key, work

    def give_back(self, key: tuple, work: Workspace) -> None:
        if math.prod(key[0]) > KEPT_ENTRIES:
            return
        self.idle[key] = work
        if len(self.idle) > KEPT_LAYOUTS:
            del self.idle[next(iter(self.idle))]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "idle": {}}
