"""The fast backend's integrators for an ensemble: M members' states solved side by side, each
member stepping exactly as it would alone.

The state is (M, N): row m is member m's flat state. Each member has its own time, step size,
accept or reject and error ratio (its own norm over its own row), and fails on its own (step-size
underflow, too many steps, non-finite state): a failed member is frozen and reported, the others
go on. A member that reached t1 is frozen too, and its row is dropped from the rows computed
before the next step: an evaluation computes the members still stepping only, so a solve
computes as many rows as its members' evaluations add up to, not their number times the
slowest member's. The step control is the solo integrator's
(:mod:`harness.solvers.fast.integrators`) arithmetic done for all members at once, with the
method's tableau as data (:mod:`harness.solvers.fast.tableaux`): stage times in the state's
precision and step sizes in float64, in NumPy arrays, the initial step by the solo functions
themselves, so every member takes the steps of its solo run.
"""
from __future__ import annotations

import math
from functools import partial
from itertools import repeat
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from harness.solvers.fast.integrators import StepControl, fixed_grid, quartic, scalar_type
from harness.solvers.fast.stage_sums import stage_sum
from harness.solvers.fast.stages import (StageFunc, StepBuffers, StepViews, run_stages,
                                         stage_times)
from harness.solvers.fast.tableaux import TABLEAUX, Tableau
from harness.solvers.fast.workspaces import integer_factors
from harness.solvers.members import Running
from harness.solvers.settings import SolverFailure


MemberFunc = Callable[[np.ndarray, Tensor, Running], Tensor]
"""f(t, y, running): row i of y (…, live) is member ``running.rows[i]``'s, at time t[i] (the
state's precision)."""
MemberNorm = Callable[[Tensor], Tensor]
"""Each member's error norm over its row: (M, N) → (M,)."""
MemberIntegrate = Callable[[MemberFunc, Tensor, float, float, MemberNorm, "int | None", Running],
                           Tensor]
"""integrate(f, y0, t0, t1, norm, live, running): the members' states at t1."""


def rms_rows(x: Tensor) -> Tensor:
    """torchdiffeq's default norm of each member's row (as
    :func:`~harness.solvers.fast.integrators.rms_norm`, bit for bit)."""
    return x.square().mean(dim=1).sqrt()


def adaptive_members(func: MemberFunc, y0: Tensor, t0: float, t1: float, tableau: Tableau,
                     control: StepControl, norm: MemberNorm, live: int | None,
                     running: Running) -> Tensor:
    """Each running member's state at t1 by its own steps of ``tableau``'s method (see
    :func:`harness.solvers.fast.integrators.dopri5`); rows of the others stay y0's.

    The step control is array arithmetic over the members stepping: the field, the stage sums,
    the error norms and the finiteness of each step's solution for all of them at once, then
    one transfer of (error ratio, finite) per step to the host, where accept or reject and the
    next step size are NumPy operations on float64 arrays; each member's last step is kept,
    and the interpolants at t1 formed for all at the end. The rows computed are the members
    stepping: a member that finished or failed is dropped from them (a gather of the state;
    the field then reads the remaining members' parameters) before the next step."""
    scalar = scalar_type(y0)
    size, width = y0.shape
    live = width if live is None else live
    weights = tableau.weights.to(device=y0.device, dtype=y0.dtype)[:, :, None, None]
    buffers = StepBuffers(tableau, weights, live, reuse=not torch.is_grad_enabled())
    alphas = np.array(tableau.alpha, dtype=scalar)

    def stage_func(t: np.ndarray, y: Tensor) -> Tensor:
        return func(t, y, running)
    rows = running.rows = np.flatnonzero(running.active)
    y = y0 if len(rows) == size else y0[_index(rows, y0)]
    f = func(np.full(len(rows), scalar(t0)), y, running)
    dt = np.full(size, np.nan)
    if control.first_step is not None:
        dt[rows] = float(control.first_step)
    else:
        dt[rows] = _initial_steps(func, t0, y, f, control, norm, scalar, tableau.order,
                                  running)
    t, out = np.full(size, t0), y0.clone()
    finite = np.ones(size, dtype=bool)
    finite[rows] = torch.isfinite(y).all(dim=1).cpu().numpy()
    n_steps = np.zeros(size, dtype=np.int64)
    y_abs = y.detach().abs()  # |y| for the tolerance: each row's last accepted |y1|
    finished: list[tuple] = []  # the last steps taken: members, t, t_next, dt, y, y1, k, mid
    while True:
        active = running.active
        active &= t1 > t
        dt = np.where(np.isfinite(dt), dt, control.min_step)
        dt = np.minimum(np.maximum(dt, control.min_step), control.max_step)
        t_next = t + dt
        if (active & ((n_steps >= control.max_num_steps) | ~(t_next > t) | ~finite)).any():
            # torchdiffeq's checks in its order (a member's first failure is the one kept)
            _fail(running, active & (n_steps >= control.max_num_steps), lambda m: (
                f"max_num_steps exceeded ({n_steps[m]}>={control.max_num_steps})"))
            _fail(running, active & ~(t_next > t), lambda m: f"underflow in dt {dt[m]}")
            _fail(running, active & ~finite, lambda m: "non-finite values in state `y`")
        if not active.any():
            break
        stepping = active[rows]
        if not stepping.all():
            kept = _index(np.flatnonzero(stepping), y0)
            out = _keep_failed(out, running, rows, y)
            rows = running.rows = rows[stepping]
            y, f, y_abs = y[kept], f[kept], y_abs[kept]
        t_rows, t_next_rows, dt_rows = t[rows], t_next[rows], dt[rows]
        yi, views, dt_s = _step(stage_func, tableau, alphas, buffers, y, f, t_rows,
                                t_next_rows, dt_rows, live, scalar)
        k, coefficients = views.k, views.coefficients
        with torch.no_grad():
            error = views.total(k * coefficients[tableau.error])
            yi_abs = yi.abs()
            tolerance = torch.maximum(y_abs, yi_abs).mul_(control.rtol).add_(control.atol)
            ratio = norm(error.div_(tolerance))
            # A row's finite sum says each entry is finite (an overflowing one: ask each).
            ratio, sums = torch.stack([ratio, yi.sum(dim=1)]).to(torch.float64).cpu().numpy()
            yi_finite = np.isfinite(sums)
            if not yi_finite.all():
                yi_finite = torch.isfinite(yi).all(dim=1).cpu().numpy()
        stepping = running.active[rows]
        accept = (ratio <= 1) & ~(dt_rows > control.max_step) | (dt_rows <= control.min_step)
        accept &= stepping
        if accept.any():
            last = accept & (t_next_rows >= t1)
            if last.any():
                ends = _index(np.flatnonzero(last), y0)
                finished.append((rows[last], t_rows[last], t_next_rows[last], dt_s[last],
                                 y[ends], yi[ends], k[:, ends], coefficients[tableau.mid][:, ends]))
            taken = rows[accept]
            t[taken], finite[taken] = t_next[taken], yi_finite[accept]
            buffers.accepted()  # (f may be k's last row)
            if accept.all():
                y, f, y_abs = yi, views.k[-1], yi_abs
            else:
                mask = torch.from_numpy(accept).to(y0.device)[:, None]
                y, f = torch.where(mask, yi, y), torch.where(mask, k[-1], f)
                y_abs = torch.where(mask, yi_abs, y_abs)
        moved = rows[stepping]
        dt[moved] = np.minimum(np.maximum(
            optimal_steps(dt_rows[stepping], ratio[stepping], control, tableau.order),
            control.min_step), control.max_step)
        n_steps += active
    out = _keep_failed(out, running, rows, y)
    if not finished:
        return out
    parts = list(zip(*finished))
    members, starts, ends, steps = (np.concatenate(part) for part in parts[:4])
    y, y1 = (torch.cat(part) for part in parts[4:6])
    k, mid = (torch.cat(part, dim=1) for part in parts[6:])
    return out.index_copy(0, _index(members, out), interpolate_rows(
        t1, starts, ends, y, y1, k, mid, steps, scalar))


def _step(func: StageFunc, tableau: Tableau, alphas: np.ndarray, buffers: StepBuffers,
          y: Tensor, f: Tensor, t: np.ndarray, t_next: np.ndarray, dt: np.ndarray, live: int,
          scalar: type) -> tuple[Tensor, StepViews, np.ndarray]:
    """One step of every row (solution, the step's stage derivatives and coefficients, the
    steps in the state's precision), each row's stage times and sums the solo integrator's.
    The stage derivatives k are (stages, rows, width) and the coefficients (tableau row,
    stage, rows, 1): :func:`~harness.solvers.fast.stage_sums.stage_sum`'s layout."""
    dt_s = dt.astype(scalar)
    step = torch.from_numpy(dt_s).to(device=y.device, dtype=y.dtype).view(-1, 1)
    views = buffers.step(step, f)
    times = stage_times(alphas, t.astype(scalar), t_next.astype(scalar), dt_s)
    return run_stages(func, times, tableau, views, y, live), views, dt_s


def optimal_steps(dt: np.ndarray, ratio: np.ndarray, control: StepControl,
                  order: int) -> np.ndarray:
    """:func:`~harness.solvers.fast.integrators.optimal_step` of each member, bit for bit: the
    root by the C library's ``pow`` (Python's, torchdiffeq's on a 0-dim tensor), the rest
    in float64 arrays."""
    root = np.fromiter(map(math.pow, ratio.tolist(), repeat(1 / order)), np.float64, len(ratio))
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.minimum(control.ifactor, np.maximum(
            control.safety / root, np.where(ratio < 1, 1.0, control.dfactor)))
    steps = np.where(ratio == 0, dt * control.ifactor, dt * factor)
    return np.where(np.isnan(ratio), np.nan, steps)


def interpolate_rows(t: float, t0: np.ndarray, t1: np.ndarray, y0: Tensor, y1: Tensor,
                     k: Tensor, mid: Tensor, step: np.ndarray, scalar: type) -> Tensor:
    """:func:`~harness.solvers.fast.integrators.interpolate` of each row's step [t0, t1] at t,
    all rows at once: the same operations, each row's scalars a column."""
    def column(values: np.ndarray) -> Tensor:
        return torch.from_numpy(values.astype(np.float64)).to(y0).view(-1, 1)
    y_mid = stage_sum(k, mid).add_(y0)
    return quartic(((t - t0) / (t1 - t0)).astype(scalar), column,
                   integer_factors(y0.dtype, y0.device), column(step), y0, y1, y_mid, k[0], k[-1])


def _index(rows: np.ndarray, like: Tensor) -> Tensor:
    return torch.from_numpy(rows).to(like.device)


def _fail(running: Running, members: np.ndarray, reason: Callable[[int], str]) -> None:
    for member in np.flatnonzero(members):
        running.fail(int(member), SolverFailure(reason(int(member))))


def _keep_failed(out: Tensor, running: Running, rows: np.ndarray, y: Tensor) -> Tensor:
    """``out`` with the rows of the members in ``rows`` that failed set to their state ``y``."""
    failed = np.array([member in running.failures for member in rows], dtype=bool)
    if not failed.any():
        return out
    return out.index_copy(0, _index(rows[failed], out), y[_index(np.flatnonzero(failed), y)])


def _initial_steps(func: MemberFunc, t0: float, y0: Tensor, f0: Tensor, control: StepControl,
                   norm: MemberNorm, scalar: type, order: int, running: Running) -> np.ndarray:
    """The initial step of each member in ``running.rows`` (the rows of y0 and f0), by the solo
    integrator's formulas on its own norms, for a method of ``order``."""
    with torch.no_grad():
        scale = y0.abs().mul(control.rtol).add_(control.atol)
        d0, d1 = torch.stack([norm(y0 / scale), norm(f0 / scale)]).cpu().numpy().astype(scalar)
    h0 = first_guesses(d0, d1, scalar)
    h0_rows = torch.from_numpy(h0.astype(np.float64)).to(device=y0.device, dtype=y0.dtype)
    f1 = func((t0 + h0.astype(np.float64)).astype(scalar), y0 + h0_rows[:, None] * f0, running)
    with torch.no_grad():
        d2 = norm((f1 - f0) / scale).cpu().numpy().astype(scalar)
    with np.errstate(divide="ignore", invalid="ignore"):
        return second_guesses(h0, d1, np.abs(d2 / h0), scalar, order)


def first_guesses(d0: np.ndarray, d1: np.ndarray, scalar: type) -> np.ndarray:
    """:func:`~harness.solvers.fast.integrators.first_guess` of each member, bit for bit: the
    same operations in the state's precision, on arrays."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.where((d0 < scalar(1e-5)) | (d1 < scalar(1e-5)), scalar(1e-6),
                        np.abs(scalar(0.01) * d0 / d1)).astype(scalar)


def second_guesses(h0: np.ndarray, d1: np.ndarray, d2: np.ndarray, scalar: type,
                   order: int) -> np.ndarray:
    """:func:`~harness.solvers.fast.integrators.second_guess` of each member, bit for bit (in
    float64, as it returns them). Its root is torch's on a 0-dim tensor: for a square root
    torch's own kernel, taken so member by member; for any other, the C library's ``pow`` on
    the value widened to float64 (torch's scalar kernel; Python's ``math.pow``), rounded to the
    state's precision."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        base = scalar(1) / np.where(d2 > d1, d2, d1) * scalar(0.01)
        if order == 2:
            roots = np.array([torch.as_tensor(b).pow(0.5).item() for b in base], dtype=scalar)
        else:
            roots = np.fromiter(map(math.pow, base.astype(np.float64).tolist(),
                                    repeat(1 / order)), np.float64, len(base)).astype(scalar)
        flat = (d1 <= scalar(1e-15)) & (d2 <= scalar(1e-15))
        h1 = np.where(flat, np.maximum(scalar(1e-6), h0 * scalar(1e-3)), np.abs(roots))
        return np.minimum(scalar(100) * h0, h1).astype(np.float64)


def fixed_grid_members(method: str, func: MemberFunc, y0: Tensor, t0: float, t1: float,
                       step_size: float | None, running: Running) -> Tensor:
    """euler or rk4 on torchdiffeq's grid: the same steps for every member (rows of the members
    not running are carried along, and not counted)."""
    size = y0.shape[0]
    running.rows = np.arange(size)
    return fixed_grid(method, lambda t, y: func(np.full(size, t), y, running), y0, t0, t1,
                      step_size)


def member_integrator(method: str, rtol: float, atol: float, options: dict) -> MemberIntegrate:
    """The ensemble integrator for a method the fast backend has, with its options."""
    if method in TABLEAUX:
        return partial(_adaptive_members, TABLEAUX[method],
                       StepControl(rtol=rtol, atol=atol, **options))
    return partial(_fixed_members, method, options.get("step_size"))


# Named, so that a model holding an integrator (its ODE block's bound backend) pickles.
def _adaptive_members(tableau: Tableau, control: StepControl, func: MemberFunc, y0: Tensor,
                      t0: float, t1: float, norm: MemberNorm, live: int | None,
                      running: Running) -> Tensor:
    return adaptive_members(func, y0, t0, t1, tableau, control, norm, live, running)


def _fixed_members(method: str, step_size: float | None, func: MemberFunc, y0: Tensor,
                   t0: float, t1: float, norm: MemberNorm, live: int | None,
                   running: Running) -> Tensor:
    return fixed_grid_members(method, func, y0, t0, t1, step_size, running)
