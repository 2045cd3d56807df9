"""The fast backend's integrators for an ensemble: M members' states solved side by side, each
member stepping exactly as it would alone.

The state is (M, N): row m is member m's flat state. Each member has its own time, step size,
accept or reject and error ratio (its own norm over its own row), and fails on its own (step-size
underflow, too many steps, non-finite state): a failed member is frozen and reported, the others
go on. A member that reached t1 is frozen too; the field is still evaluated on every row (one
batched call), but only the members in :attr:`Running.active` count the evaluation. Step sizes
and stage times are the solo integrator's (:mod:`harness.solvers.fast.integrators`) arithmetic,
per member: float64 in NumPy arrays, stage times in the state's precision, the step-size update
and the initial step by the solo functions themselves, so every member takes the steps of its
solo run.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from harness.solvers.fast.integrators import (_ALPHA, _ERROR, _WEIGHTS, StepControl, first_guess,
                                              fixed_grid, interpolate, optimal_step,
                                              scalar_type, second_guess)
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
    """torchdiffeq's default norm of each member's row."""
    return x.abs().pow(2).mean(dim=1).sqrt()


def dopri5_members(func: MemberFunc, y0: Tensor, t0: float, t1: float, control: StepControl,
                   norm: MemberNorm, live: int | None, running: Running) -> Tensor:
    """Each running member's state at t1 by its own dopri5 steps (see
    :func:`harness.solvers.fast.integrators.dopri5`); rows of the others stay y0's. Each step
    computes only the members still stepping (their rows gathered, the field told which)."""
    scalar = scalar_type(y0)
    size, width = y0.shape
    live = width if live is None else live
    weights = _WEIGHTS.to(device=y0.device, dtype=y0.dtype)
    running.rows = np.flatnonzero(running.active)
    index = _index(running.rows, y0)
    f = y0.new_zeros(y0.shape).index_copy(
        0, index, func(np.full(len(index), scalar(t0)), y0[index], running))
    dt = np.full(size, np.nan)
    if control.first_step is not None:
        dt[running.rows] = float(control.first_step)
    else:
        dt[running.rows] = _initial_steps(func, t0, y0[index], f[index], control, norm, scalar,
                                          running)
    t, y = np.full(size, t0), y0
    ends: dict[int, Tensor] = {}  # each member's state at t1, from its last step
    checked, n_steps = np.zeros(size, dtype=bool), np.zeros(size, dtype=np.int64)
    while True:
        running.active &= t1 > t
        _check_steps(running, n_steps, control)
        dt = np.where(np.isfinite(dt), dt, control.min_step)
        dt = np.minimum(np.maximum(dt, control.min_step), control.max_step)
        t_next = t + dt
        for member in np.flatnonzero(running.active & ~(t_next > t)):
            running.fail(int(member), SolverFailure(f"underflow in dt {dt[member]}"))
        unchecked = running.active & ~checked
        if unchecked.any():
            finite = torch.isfinite(y).all(dim=1).cpu().numpy()
            for member in np.flatnonzero(unchecked & ~finite):
                running.fail(int(member), SolverFailure("non-finite values in state `y`"))
            checked |= unchecked
        if not running.active.any():
            break
        rows = running.rows = np.flatnonzero(running.active)
        index = _index(rows, y0)
        y_rows, count = y[index], len(rows)
        dt_s, t_s, t_next_s = (dt[rows].astype(scalar), t[rows].astype(scalar),
                               t_next[rows].astype(scalar))
        step = torch.from_numpy(dt_s).to(device=y0.device, dtype=y0.dtype)
        coefficients = weights * step.view(count, 1, 1)
        k = y.new_empty(count, width, len(_ALPHA) + 1)
        k[:, :, 0] = f[index]
        for i, alpha in enumerate(_ALPHA):
            ti = (np.nextafter(t_next_s, t_next_s - 1) if alpha == 1.0
                  else t_s + scalar(alpha) * dt_s)
            columns = slice(None) if i == len(_ALPHA) - 1 else slice(live)
            yi = y_rows[:, columns] + torch.sum(k[:, columns, :i + 1]
                                                * coefficients[:, i, None, :i + 1], dim=-1)
            k[:, :, i + 1] = func(ti, yi, running)
        with torch.no_grad():
            error = torch.sum(k * coefficients[:, _ERROR, None], dim=-1)
            tolerance = torch.maximum(y_rows.abs(), yi.abs()).mul_(control.rtol).add_(control.atol)
            ratio = norm(error.div_(tolerance)).cpu().numpy().astype(np.float64)
        accept = ratio <= 1
        accept[dt[rows] > control.max_step] = False
        accept[dt[rows] <= control.min_step] = True
        accept &= running.active[rows]
        if accept.any():
            for i in np.flatnonzero(accept & (t_next[rows] >= t1)):  # a member's last step
                ends[int(rows[i])] = interpolate(t1, float(t[rows[i]]), float(t_next[rows[i]]),
                                                 y_rows[i], yi[i], k[i], coefficients[i],
                                                 dt_s[i], scalar)
            taken = _index(np.flatnonzero(accept), y0)
            moved = _index(rows[accept], y0)
            t[rows[accept]] = t_next[rows[accept]]
            y = y.index_copy(0, moved, yi[taken])
            f = f.index_copy(0, moved, k[taken, :, -1])
            checked[rows[accept]] = False
        for i in np.flatnonzero(running.active[rows]):
            member = rows[i]
            dt[member] = min(max(optimal_step(float(dt[member]), float(ratio[i]), control),
                                 control.min_step), control.max_step)
        n_steps += running.active
    return torch.stack([ends.get(member, y0[member]) if member not in running.failures
                        else y[member] for member in range(size)])


def _index(rows: np.ndarray, like: Tensor) -> Tensor:
    return torch.from_numpy(rows).to(like.device)


def _check_steps(running: Running, n_steps: np.ndarray, control: StepControl) -> None:
    for member in np.flatnonzero(running.active & (n_steps >= control.max_num_steps)):
        running.fail(int(member), SolverFailure(
            f"max_num_steps exceeded ({n_steps[member]}>={control.max_num_steps})"))


def _initial_steps(func: MemberFunc, t0: float, y0: Tensor, f0: Tensor, control: StepControl,
                   norm: MemberNorm, scalar: type, running: Running) -> np.ndarray:
    """The initial step of each member in ``running.rows`` (the rows of y0 and f0), by the solo
    integrator's formulas on its own norms."""
    with torch.no_grad():
        scale = y0.abs().mul(control.rtol).add_(control.atol)
        d0 = norm(y0 / scale).cpu().numpy().astype(scalar)
        d1 = norm(f0 / scale).cpu().numpy().astype(scalar)
    h0 = np.array([first_guess(a, b, scalar) for a, b in zip(d0, d1)], dtype=scalar)
    h0_rows = torch.from_numpy(h0.astype(np.float64)).to(device=y0.device, dtype=y0.dtype)
    f1 = func(np.array([scalar(t0 + float(h)) for h in h0], dtype=scalar),
              y0 + h0_rows[:, None] * f0, running)
    with torch.no_grad():
        d2 = norm((f1 - f0) / scale).cpu().numpy().astype(scalar)
    return np.array([second_guess(h, b, abs(c / h), scalar) for h, b, c in zip(h0, d1, d2)])


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
    if method == "dopri5":
        return partial(_adaptive_members, StepControl(rtol=rtol, atol=atol, **options))
    return partial(_fixed_members, method, options.get("step_size"))


# Named, so that a model holding an integrator (its ODE block's bound backend) pickles.
def _adaptive_members(control: StepControl, func: MemberFunc, y0: Tensor, t0: float, t1: float,
                      norm: MemberNorm, live: int | None, running: Running) -> Tensor:
    return dopri5_members(func, y0, t0, t1, control, norm, live, running)


def _fixed_members(method: str, step_size: float | None, func: MemberFunc, y0: Tensor,
                   t0: float, t1: float, norm: MemberNorm, live: int | None,
                   running: Running) -> Tensor:
    return fixed_grid_members(method, func, y0, t0, t1, step_size, running)
