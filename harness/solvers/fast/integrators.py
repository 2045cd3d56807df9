"""The fast backend's integrators on one flat state: torchdiffeq 0.2.5's adaptive Runge–Kutta
solvers (dopri5, bosh3, fehlberg2, adaptive_heun: one integrator, their tableaux as data in
:mod:`harness.solvers.fast.tableaux`) with its step control, euler and rk4 on torchdiffeq's
fixed grid — the same steps, at less cost.

torchdiffeq keeps step sizes, error ratios and stage times in 0-dim tensors; here they are
Python floats (float64, torchdiffeq's time precision) and NumPy scalars of the state's precision
(torchdiffeq's stage times), so every step size and every time f sees is the one torchdiffeq
would compute, without a tensor operation each. Stage derivatives go into one (stages, state)
buffer, and stage sums are torchdiffeq's ``sum(k * coefficients, dim=-1)``, bit for bit, as
a chain of adds in torch's own order (:mod:`harness.solvers.fast.stage_sums`). Only
the last accepted step's interpolant is formed (the solve reads one end point). A bound
integrator (:class:`Adaptive`) keeps what a solve makes before its first step between solves
(:mod:`harness.solvers.fast.workspaces`). Failures raise
the :class:`SolverFailure` text the harness makes of torchdiffeq's.
"""
from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from harness.solvers.fast.stages import StepViews, run_stages, stage_times
from harness.solvers.fast.tableaux import TABLEAUX, Tableau
from harness.solvers.fast.workspaces import Workspace, Workspaces
from harness.solvers.settings import SolverFailure

FlatFunc = Callable[[float, Tensor], Tensor]
"""f(t, y) on the flat state; t is a value of the state's precision."""
Norm = Callable[[Tensor], Tensor]

#: NumPy scalar types doing torchdiffeq's stage-time arithmetic in the state's precision.
_SCALAR = {torch.float32: np.float32, torch.float64: np.float64}



@dataclass(frozen=True)
class StepControl:
    """torchdiffeq's adaptive-step options (``solver.options``) with its defaults."""

    rtol: float
    atol: float
    safety: float = 0.9
    ifactor: float = 10.0
    dfactor: float = 0.2
    min_step: float = 0.0
    max_step: float = math.inf
    first_step: float | None = None
    max_num_steps: int = 2 ** 31 - 1


def rms_norm(x: Tensor) -> Tensor:
    """torchdiffeq's default norm over a whole (flat) state, ``x.abs().pow(2).mean().sqrt()``,
    bit for bit: torch's square is its pow(2), x·x, which the sign does not change."""
    return x.square().mean().sqrt()


def all_finite(y: Tensor) -> bool:
    """Whether every entry of y is finite: a finite sum says so in two cheap calls (a sum of
    finite entries may overflow: then each entry is asked)."""
    return math.isfinite(y.sum().item()) or bool(torch.isfinite(y).all())


def scalar_type(y: Tensor) -> type:
    try:
        return _SCALAR[y.dtype]
    except KeyError:
        raise ValueError(f"the fast solver backend takes float32 or float64 states, not {y.dtype}") from None


def adaptive(func: FlatFunc, y0: Tensor, t0: float, t1: float, tableau: Tableau,
             control: StepControl, norm: Norm = rms_norm, live: int | None = None,
             work: Workspace | None = None) -> Tensor:
    """The state at t1 (t1 > t0), stepping exactly as torchdiffeq's solver of ``tableau`` (its
    ``RKAdaptiveStepsizeODESolver``) over [t0, t1].

    ``func`` reads only the first ``live`` entries of the state (default: all of it): the
    stages that are not the solution hand it just those, since the rest (an adjoint's parameter
    gradients) is only integrated. Each step's solution, error and interpolant still cover the
    whole state. ``work``: a :class:`~harness.solvers.fast.workspaces.Workspace` of y0's
    layout, ``tableau`` and ``control``'s tolerances, and the grad mode, to use (default: a new
    one).
    """
    scalar = scalar_type(y0)
    live = y0.shape[0] if live is None else live
    if work is None:
        work = Workspace(tableau, control.rtol, control.atol, y0, live, scalar)
    buffers = work.buffers
    # The step control records no graph; where none is recorded anyway, no context (2 µs).
    quiet = torch.no_grad() if torch.is_grad_enabled() else nullcontext()
    f0 = func(scalar(t0), y0)
    if control.first_step is not None:
        dt = float(control.first_step)
    else:
        dt = _initial_step(func, t0, y0, f0, work, norm, scalar, tableau.order, quiet)
    t, y, f = t0, y0, f0
    y_abs = y0.detach().abs()  # |y| for the tolerance: the last accepted step's |y1|
    last: tuple | None = None  # (t0, t1, y0, y1, its views, dt) of the last accepted step
    checked, n_steps = False, 0
    while t1 > t:
        if n_steps >= control.max_num_steps:
            raise SolverFailure(f"max_num_steps exceeded ({n_steps}>={control.max_num_steps})")
        if not math.isfinite(dt):
            dt = control.min_step
        dt = min(max(dt, control.min_step), control.max_step)
        t_next = t + dt
        if not t_next > t:
            raise SolverFailure(f"underflow in dt {dt}")
        if not checked:
            if not all_finite(y):
                raise SolverFailure("non-finite values in state `y`")
            checked = True
        dt_s = scalar(dt)
        views = buffers.step(work.number(dt_s), f)
        times = stage_times(work.alphas, scalar(t), scalar(t_next), dt_s)
        yi = run_stages(func, times, tableau, views, y, live)
        with quiet:
            error = views.error()
            yi_abs = yi.abs()
            tolerance = torch.maximum(y_abs, yi_abs).mul_(work.rtol).add_(work.atol)
            ratio = norm(error.div_(tolerance)).item()
        accept = ratio <= 1
        if dt > control.max_step:
            accept = False
        if dt <= control.min_step:
            accept = True
        if accept:
            last = (t, t_next, y, yi, views, dt_s)
            # torchdiffeq carries the last stage's derivative, the solution's or not.
            t, y, f, y_abs, checked = t_next, yi, views.k[-1], yi_abs, False
            buffers.accepted()
        dt = min(max(optimal_step(dt, ratio, control, tableau.order), control.min_step),
                 control.max_step)
        n_steps += 1
    assert last is not None  # t1 > t0, so some step was accepted
    # The loop ends on an accepted step, so its views' coefficients are still its own.
    return interpolate(t1, *last, work, scalar)


def _initial_step(func: FlatFunc, t0: float, y0: Tensor, f0: Tensor, work: Workspace,
                  norm: Norm, scalar: type, order: int, quiet: AbstractContextManager) -> float:
    """Hairer's initial step (torchdiffeq's ``_select_initial_step``), in the state's precision
    (its norms under ``quiet``, a context recording no graph)."""
    with quiet:
        scale = y0.abs().mul_(work.rtol).add_(work.atol)
        d0 = scalar(norm(y0 / scale).item())
        d1 = scalar(norm(f0 / scale).item())
    h0 = first_guess(d0, d1, scalar)
    f1 = func(scalar(t0 + float(h0)), (f0 * work.number(h0)).add_(y0))  # y0 + h0·f0
    with quiet:
        d2 = abs(scalar(norm((f1 - f0).div_(scale)).item()) / h0)
    return second_guess(h0, d1, d2, scalar, order)


def first_guess(d0: np.floating, d1: np.floating, scalar: type) -> np.floating:
    """The trial step h0 of Hairer's initial step from the norms of y0 and f0 (scaled)."""
    small = scalar(1e-5)
    return scalar(1e-6) if d0 < small or d1 < small else abs(scalar(0.01) * d0 / d1)


def second_guess(h0: np.floating, d1: np.floating, d2: np.floating, scalar: type,
                 order: int) -> float:
    """Hairer's initial step from the trial step h0, the norm d1 of f0 and d2 of (f1 − f0)/h0,
    for a method of ``order``."""
    tiny = scalar(1e-15)
    if d1 <= tiny and d2 <= tiny:
        h1 = _nan_max(scalar(1e-6), h0 * scalar(1e-3))
    else:  # as torch on 0-dim tensors: 0.01 / d is reciprocal(d) * 0.01; the power by torch
        # itself, whose float32 x ** 0.5 (order 2) is not NumPy's (15 % of values differ)
        base = scalar(1) / (d2 if d2 > d1 else d1) * scalar(0.01)
        h1 = abs(scalar(torch.as_tensor(base).pow(1 / order).item()))
    return float(_nan_min(scalar(100) * h0, h1))


def optimal_step(dt: float, ratio: float, control: StepControl, order: int) -> float:
    """torchdiffeq's ``_optimal_step_size`` for a method of ``order``, in float64 (NaN stays
    NaN)."""
    if ratio == 0:
        return dt * control.ifactor
    if math.isnan(ratio):
        return math.nan
    dfactor = 1.0 if ratio < 1 else control.dfactor
    return dt * min(control.ifactor, max(control.safety / ratio ** (1 / order), dfactor))


def _nan_max(a: float, b: float) -> float:
    return a if math.isnan(a) else b if math.isnan(b) else max(a, b)


def _nan_min(a: float, b: float) -> float:
    return a if math.isnan(a) else b if math.isnan(b) else min(a, b)


def interpolate(t: float, t0: float, t1: float, y0: Tensor, y1: Tensor, views: StepViews,
                step: np.floating, work: Workspace, scalar: type) -> Tensor:
    """torchdiffeq's quartic interpolant of the step [t0, t1] of size ``step`` (its stage
    derivatives and coefficients in ``views``), at t. As torchdiffeq's, it takes the last
    stage's derivative for the one at t1."""
    y_mid = views.mid().add_(y0)
    return quartic(scalar((t - t0) / (t1 - t0)), work.number, work.integers, work.number(step),
                   y0, y1, y_mid, views.k[0], views.k[-1])


def quartic(x: Any, factor: Callable[[Any], Tensor], n: dict[int, Tensor], dt: Tensor, y0: Tensor,
            y1: Tensor, y_mid: Tensor, f0: Tensor, f1: Tensor) -> Tensor:
    """torchdiffeq's quartic polynomial through a step of size dt (its end points y0 and y1,
    their derivatives f0 and f1, its mid-point y_mid), at the fraction x of the step: x and
    its powers in the state's precision, each made a factor of the state by ``factor``, and
    the integer coefficients ``n`` (:func:`~harness.solvers.fast.workspaces.integer_factors`).
    One state: x a scalar, dt and the factors 0-dim tensors; rows of members: x an array, dt
    and the factors columns (:func:`harness.solvers.fast.members.interpolate_rows`).

    torchdiffeq's operations, bit for bit, each on new tensors or in place on this function's
    own: ``p - q`` as ``p.sub_(q)`` and ``q + p`` as ``p.add_(q)`` are the same roundings, and
    ``f1 - 4·f0`` is ``(−4·f0) + f1`` (IEEE's subtraction is the addition of the negation)."""
    y_mid16 = y_mid * n[16]
    # [e, d, c, b, a] = [y0, dt·f0, dt·(f1 − 4·f0) − 11·y0 − 5·y1 + 16·y_mid,
    #   dt·(5·f0 − 3·f1) + 18·y0 + 14·y1 − 32·y_mid, 2·dt·(f1 − f0) − 8·(y1 + y0) + 16·y_mid]
    d = f0 * dt
    c = (f0 * n[-4]).add_(f1).mul_(dt).sub_(y0 * n[11]).sub_(y1 * n[5]).add_(y_mid16)
    b = ((f0 * n[5]).sub_(f1 * n[3]).mul_(dt).add_(y0 * n[18]).add_(y1 * n[14])
         .sub_(y_mid * n[32]))
    a = (f1 - f0).mul_(dt * n[2]).sub_((y1 + y0).mul_(n[8])).add_(y_mid16)
    # e + x·d + x²·c + x³·b + x⁴·a, left to right, the powers x·x, x²·x, x³·x
    total, power = d.mul_(factor(x)).add_(y0), x
    for coefficient in (c, b, a):
        power = power * x
        total.add_(coefficient.mul_(factor(power)))
    return total


def fixed_grid(method: str, func: FlatFunc, y0: Tensor, t0: float, t1: float,
               step_size: float | None) -> Tensor:
    """The state at t1 from torchdiffeq's euler or rk4 (its 3/8-rule ``rk4``) on its grid:
    t0, t0 + step, … with the last point moved to t1 (or the single step [t0, t1])."""
    scalar = scalar_type(y0)
    step = {"euler": _euler, "rk4": _rk4}[method]
    t = torch.tensor([t0, t1], dtype=y0.dtype)
    if step_size is None:
        grid = t
    else:
        count = torch.ceil((t[1] - t[0]) / step_size + 1).item()
        grid = torch.arange(0, count, dtype=t.dtype) * step_size + t[0]
        grid[-1] = t[1]
    times = [scalar(value) for value in grid.tolist()]
    end, result, y = scalar(t1), None, y0
    for a, b in zip(times[:-1], times[1:]):
        y_next = y + step(func, a, b - a, b, y)
        if result is None and b >= end:  # torchdiffeq reads t1 off the first step reaching it
            result = y if end == a else y_next if end == b else y + float((end - a) / (b - a)) * (y_next - y)
        y = y_next
    assert result is not None
    return result


def _euler(func: FlatFunc, t0: np.floating, dt: np.floating, t1: np.floating, y0: Tensor) -> Tensor:
    return float(dt) * func(t0, y0)


def _rk4(func: FlatFunc, t0: np.floating, dt: np.floating, t1: np.floating, y0: Tensor) -> Tensor:
    third = 1 / 3
    k1 = func(t0, y0)
    k2 = func(t0 + dt * type(dt)(third), y0 + float(dt) * k1 * third)
    k3 = func(t0 + dt * type(dt)(2 / 3), y0 + float(dt) * (k2 - k1 * third))
    k4 = func(t1, y0 + float(dt) * (k1 - k2 + k3))
    return (k1 + 3 * (k2 + k3) + k4) * float(dt) * 0.125


Integrate = Callable[[FlatFunc, Tensor, float, float, Norm, int | None], Tensor]
"""integrate(f, y0, t0, t1, norm, live): the flat state at t1; the norm serves adaptive methods,
and f reads the first ``live`` entries of the state (None: all; see :func:`adaptive`)."""

_STEP_CONTROL = ("max_num_steps", "first_step", "safety", "ifactor", "dfactor", "min_step", "max_step")

#: The methods the fast backend has, and the ``solver.options`` each takes.
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {
    **{method: _STEP_CONTROL for method in TABLEAUX},
    "euler": ("step_size",),
    "rk4": ("step_size",),
}


def integrator(method: str, rtol: float, atol: float, options: dict) -> Integrate:
    """The integrator for a method and its options; ValueError names what is not supported."""
    if method not in METHOD_OPTIONS:
        raise ValueError(f"the fast solver backend has no method {method!r}; it has "
                         f"{', '.join(METHOD_OPTIONS)} (use backend: torchdiffeq for the others)")
    unknown = sorted(set(options) - set(METHOD_OPTIONS[method]))
    if unknown:
        raise ValueError(f"the fast solver backend's {method} takes no option {', '.join(unknown)}; "
                         f"valid: {', '.join(METHOD_OPTIONS[method])}")
    if method in TABLEAUX:
        return Adaptive(TABLEAUX[method], StepControl(rtol=rtol, atol=atol, **options))
    return partial(_fixed, method, options.get("step_size"))


class Adaptive:
    """:func:`adaptive` for one tableau and step control, as an :data:`Integrate`, keeping
    each state layout's workspace between its solves
    (:class:`~harness.solvers.fast.workspaces.Workspaces`)."""

    def __init__(self, tableau: Tableau, control: StepControl) -> None:
        self.tableau, self.control = tableau, control
        self.workspaces = Workspaces(tableau, control.rtol, control.atol)

    def __call__(self, func: FlatFunc, y0: Tensor, t0: float, t1: float, norm: Norm,
                 live: int | None) -> Tensor:
        scalar = scalar_type(y0)
        live = y0.shape[0] if live is None else live
        key, work = self.workspaces.take(y0, live, scalar)
        end = adaptive(func, y0, t0, t1, self.tableau, self.control, norm, live, work)
        self.workspaces.give_back(key, work)  # not after a failure: its buffers may be odd
        return end


# Named, so that a model holding an integrator (its ODE block's bound backend) pickles.
def _fixed(method: str, step_size: float | None, func: FlatFunc, y0: Tensor, t0: float,
           t1: float, norm: Norm, live: int | None) -> Tensor:
    return fixed_grid(method, func, y0, t0, t1, step_size)
