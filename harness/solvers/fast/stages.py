"""The stages of one explicit Runge–Kutta step, shared by the fast backend's solo integrator
(:func:`harness.solvers.fast.integrators.adaptive`) and its members' integrator
(:func:`harness.solvers.fast.members.adaptive_members`): torchdiffeq's ``_runge_kutta_step``
with its stage times and stage sums, bit for bit.

The two differ only in what a time is (a scalar of the state's precision, or an array of one
per member) and in the state's layout (a flat state, or rows of members): stage derivatives
are (stages, …state) with the state's entries last, so ``[..., :live]`` cuts the part f reads
in both. Each step's buffers and the views its stages read are :class:`StepViews`; where no
graph is recorded (the adjoint's solves), :class:`StepBuffers` makes them once per solve
and refills them each step, which saves a dozen small torch calls a step; on a flat state
(the solo integrator) the sums' products go into one buffer too, with the views each sum
reads of it made once (:class:`~harness.solvers.fast.stage_sums.ProductBuffer`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from harness.solvers.fast.stage_sums import ProductBuffer, StageSum, Summer, fixed_sum, summer
from harness.solvers.fast.tableaux import Tableau

StageFunc = Callable[[Any, Tensor], Tensor]
"""f(t, y) for one stage: t a scalar of the state's precision, or an array of one per row."""


def stage_times(alphas: np.ndarray, t: Any, t_next: Any, dt: Any) -> np.ndarray:
    """Row i: stage i + 1's time(s), t + alpha_i·dt in the state's precision (``alphas``, the
    tableau's, in that precision; t, t_next and dt scalars of it, or arrays of one per member),
    or just before t_next where alpha_i is 1 — torchdiffeq takes the stages at the step's end
    there (its ``Perturb.PREV``)."""
    times = np.multiply.outer(alphas, dt) + t
    times[alphas == 1] = np.nextafter(t_next, t_next - 1)
    return times


@dataclass(frozen=True)
class StepViews:
    """One step's stage derivatives k (stages, …state) and coefficients (the tableau's weights
    times the step, (tableau rows, stages, …, 1)) with what a step reads of them: each tableau
    row's coefficients, per stage its sum (and whether over the whole state rather than the
    ``live`` part f reads), the error's, the solution's (None where the solution is the last
    stage's input) and the interpolant's mid-point sum, and k's rows to write (none where a
    graph is recorded: autograd lets only k itself be written then)."""

    k: Tensor
    table: Tensor
    coefficients: tuple[Tensor, ...]
    sums: tuple[tuple[StageSum, bool], ...]
    error: StageSum
    solution: StageSum | None
    mid: StageSum
    rows: tuple[Tensor, ...]
    #: The sum over all stages of products formed by the caller.
    total: Summer


def step_views(tableau: Tableau, k: Tensor, table: Tensor, live: int, rows: bool,
               products: ProductBuffer | None = None) -> StepViews:
    """The views of a step's buffers k and ``table``, the part f reads cut once, k's rows if
    ``rows``, and with a buffer of ``products`` (buffers refilled each step, no graph
    recorded) the views each sum reads of its products there
    (:func:`~harness.solvers.fast.stage_sums.fixed_sum`). The last stage's input is the
    solution where the tableau has no sum of its own for it, so that one is over the whole
    state."""
    coefficients = table.unbind(0)
    k_live = k if live == k.shape[-1] else k[..., :live]
    whole = [i == len(tableau.alpha) - 1 and tableau.solution is None
             for i in range(len(tableau.alpha))]
    sums = tuple((fixed_sum((k if whole[i] else k_live)[:i + 1], coefficients[i][:i + 1],
                            products), whole[i]) for i in range(len(tableau.alpha)))
    solution = (None if tableau.solution is None
                else fixed_sum(k, coefficients[tableau.solution], products))
    return StepViews(k, table, coefficients, sums,
                     fixed_sum(k, coefficients[tableau.error], products), solution,
                     fixed_sum(k, coefficients[tableau.mid], products),
                     k.unbind(0) if rows else (),
                     summer(k.dtype, len(k), k.device.type, torch.get_num_threads()))


class StepBuffers:
    """A solve's step buffers. With ``reuse`` (no graph recorded), two sets made once per
    state shape and taken in turn: a step's k stays the last accepted step's until another
    step is accepted (:meth:`accepted`); its coefficients are not kept (the interpolant's
    are formed again from the step). Without, new ones each step, as autograd keeps what
    each step's sums saved."""

    def __init__(self, tableau: Tableau, weights: Tensor, live: int, reuse: bool) -> None:
        self.tableau, self.weights, self.live, self.reuse = tableau, weights, live, reuse
        self.sets: list[StepViews] = []
        self.current = 0

    def step(self, step: float | Tensor, f: Tensor) -> StepViews:
        """The views of a step of size ``step`` (a float, or a (rows, 1) tensor of one per
        member) from a state whose derivative is f: the coefficients filled in, k[0] = f."""
        shape = (self.tableau.stages, *f.shape)
        if not self.reuse:
            views = step_views(self.tableau, f.new_empty(shape), self.weights * step, self.live,
                               rows=False)
            views.k[0] = f
            return views
        if not self.sets or self.sets[0].k.shape != shape:
            table = self.weights.new_empty(self._table_shape(step))
            # Both sets' sums share one; a flat state's only: the members' rows change as
            # members finish, and the views made anew each time cost more than they save.
            products = ProductBuffer(self.tableau.stages, f) if f.dim() == 1 else None
            self.sets = [step_views(self.tableau, f.new_empty(shape), table, self.live,
                                    rows=True, products=products) for _ in range(2)]
        views = self.sets[self.current]
        torch.mul(self.weights, step, out=views.table)
        views.rows[0].copy_(f)
        return views

    def _table_shape(self, step: float | Tensor) -> tuple[int, ...]:
        """The shape of ``weights * step`` without forming it: a step tensor (a column of one
        step per member) takes the place of the weights' last dimensions, which are ones."""
        if not isinstance(step, Tensor):
            return self.weights.shape
        return (*self.weights.shape[:self.weights.dim() - step.dim()], *step.shape)

    def accepted(self) -> None:
        """A step was accepted: its k is kept (the interpolant's, and the row f is read
        from), so the next step takes the other set."""
        self.current = 1 - self.current


def run_stages(func: StageFunc, times: np.ndarray, tableau: Tableau, views: StepViews,
               y: Tensor, live: int) -> Tensor:
    """The step's solution, with stage derivatives k[1:] of ``views`` filled in (k[0] holds f
    at y); ``times`` from :func:`stage_times`. f reads the first ``live`` entries of each
    state only: the stages that are not the solution hand it just those; each step's
    solution covers the whole state."""
    y_live = y if live == y.shape[-1] else y[..., :live]
    for i, (total, whole) in enumerate(views.sums):
        yi = total().add_(y if whole else y_live)
        if views.rows:
            views.rows[i + 1].copy_(func(times[i], yi))
        else:
            views.k[i + 1] = func(times[i], yi)
    if tableau.solution is not None:
        yi = views.solution().add_(y)
    return yi
