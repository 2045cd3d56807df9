"""The stages of one explicit Runge–Kutta step, shared by the fast backend's solo integrator
(:func:`harness.solvers.fast.integrators.adaptive`) and its members' integrator
(:func:`harness.solvers.fast.members.adaptive_members`): torchdiffeq's ``_runge_kutta_step``
with its stage times and stage sums, bit for bit.

The two differ only in what a time is (a scalar of the state's precision, or an array of one
per member) and in the state's layout (a flat state, or rows of members): stage derivatives
are (stages, …state) with the state's entries last, so ``[..., :live]`` cuts the part f reads
in both.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from torch import Tensor

from harness.solvers.fast.stage_sums import stage_sum
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


def run_stages(func: StageFunc, times: np.ndarray, tableau: Tableau, k: Tensor, y: Tensor,
               coefficients: Sequence[Tensor], live: int) -> Tensor:
    """The step's solution, with stage derivatives k[1:] filled in (k[0] holds f at y).

    k is (stages, …state), ``coefficients`` the tableau's weights times the step, a (stages,
    …, 1) tensor per tableau row (unbound once: cheaper than indexing a tensor twice per
    stage), ``times`` from :func:`stage_times`. f reads the first ``live`` entries of
    each state only: the stages that are not the solution hand it just those (cut once per
    step); each step's solution covers the whole state."""
    k_live, y_live = (k, y) if live == y.shape[-1] else (k[..., :live], y[..., :live])
    last = len(tableau.alpha) - 1
    for i in range(len(tableau.alpha)):
        if i == last and tableau.solution is None:  # the last stage's input is the solution
            yi = stage_sum(k[:i + 1], coefficients[i][:i + 1]).add_(y)
        else:
            yi = stage_sum(k_live[:i + 1], coefficients[i][:i + 1]).add_(y_live)
        k[i + 1] = func(times[i], yi)
    if tableau.solution is not None:
        yi = stage_sum(k, coefficients[tableau.solution]).add_(y)
    return yi
