"""The explicit Runge–Kutta pairs of torchdiffeq 0.2.5 that the fast backend steps adaptively,
as data: dopri5.

Each is torchdiffeq's tableau (``alpha``, ``beta``, ``c_sol``, ``c_error``), its interpolant's
mid-point weights (``c_mid``) and its ``order``, with the same Python float expressions, so the
float64 coefficients are torchdiffeq's bit for bit. torchdiffeq's quirks are kept, because they
decide its steps and NFE:

- the solution is the last stage's input (no extra sum) exactly when ``c_sol[-1] == 0`` and the
  rest of ``c_sol`` is the last ``beta`` row (dopri5, bosh3): :attr:`Tableau.solution` is None;
- the derivative carried to the next step (and into the interpolant) is the last stage's,
  ``k[..., -1]``, even where that stage is not taken at the solution: adaptive Heun's is f at
  the Euler predictor y0 + dt·f0, fehlberg2's at y0 + dt·(f0 + 255·f1)/256, so both cost one
  and two evaluations a step;
- the step-size update uses ``order`` (2 for adaptive Heun and fehlberg2, 3 for bosh3, 5 for
  dopri5), and Hairer's initial step the exponent 1/order.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Tableau:
    """An embedded explicit Runge–Kutta pair laid out for one weighted sum per row.

    ``weights`` is (rows, stages) in float64: row i < len(alpha) makes stage i + 1's input (its
    first i + 1 entries used), then the solution row (when :attr:`solution` is not None), the
    error row and the interpolant's mid-point row. Stage 0 is at the step's start; stage i + 1
    at t + alpha[i]·dt, or just before the step's end when alpha[i] is 1 (torchdiffeq's
    ``Perturb.PREV``)."""

    alpha: tuple[float, ...]
    weights: Tensor
    solution: int | None
    error: int
    mid: int
    order: int

    @property
    def stages(self) -> int:
        return len(self.alpha) + 1


def tableau(alpha: list[float], beta: list[list[float]], c_sol: list[float],
            c_error: list[float], c_mid: list[float], order: int) -> Tableau:
    """A :class:`Tableau` from torchdiffeq's lists, deciding as torchdiffeq does whether the
    solution needs its own sum."""
    stages = len(alpha) + 1
    fsal = c_sol[-1] == 0 and c_sol[:-1] == beta[-1]
    rows = [*beta, *([] if fsal else [c_sol]), c_error, c_mid]
    weights = torch.tensor([row + [0.0] * (stages - len(row)) for row in rows], dtype=torch.float64)
    solution = None if fsal else len(beta)
    return Tableau(tuple(alpha), weights, solution, len(rows) - 2, len(rows) - 1, order)


DOPRI5 = tableau(
    alpha=[1 / 5, 3 / 10, 4 / 5, 8 / 9, 1., 1.],
    beta=[
        [1 / 5],
        [3 / 40, 9 / 40],
        [44 / 45, -56 / 15, 32 / 9],
        [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
        [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
        [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
    ],
    c_sol=[35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0],
    c_error=[35 / 384 - 1951 / 21600, 0, 500 / 1113 - 22642 / 50085, 125 / 192 - 451 / 720,
             -2187 / 6784 - -12231 / 42400, 11 / 84 - 649 / 6300, -1. / 60.],
    c_mid=[6025192743 / 30085553152 / 2, 0, 51252292925 / 65400821598 / 2,
           -2691868925 / 45128329728 / 2, 187940372067 / 1594534317056 / 2,
           -1776094331 / 19743644256 / 2, 11237099 / 235043384 / 2],
    order=5)
