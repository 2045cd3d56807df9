"""NesterovNODE (Nguyen, Xia, Mai, Nguyen and Osher, NeurIPS 2022) as a harness model family.

Nesterov's accelerated flow, written as a first-order system the way the authors' code does it,
with k(t) = t^{3/2} e^{−t/2} and the task's network f:

    m  = k'(t) · h + k(t) · v          (the form of d/dt (k · h), v standing in for h')
    h' = m
    v' = −m − f(t, h)

The state is (h, v); m is formed from it at every evaluation. k and k' depend on t, so the
family is not autonomous: it integrates over t in [1, 2] (``interval``), away from t = 0 where
k'(t) ~ t^{1/2} is not differentiable. An adaptive solver steps past the end of its interval
and interpolates back, so the adjoint solve, running from 2 down to 1 with a large last step,
can evaluate the dynamics at t < 0 (seen: t = −0.04), where t^{1/2} is NaN: k and k' are
taken as 0 there (their t clamped at 0); f still gets the solver's t.
"""
from __future__ import annotations

import torch
from torch import Tensor

from harness import Family, State, VectorField, hookimpl

HARNESS_CONTRACT = 2  # the plugin contract this module was written for


class NesterovNODE(Family):
    name = "nesterovnode"
    parts = ("h", "v")
    initial_state = {"h": "input+network", "v": "network"}  # the paper's rule, as HBNODE's
    interval = (1.0, 2.0)        # t0 > 0: k'(t) is not differentiable at t = 0
    widths_like = "hbnode"       # on tasks without widths for it, HBNODE's (as the default
                                 # rule would pick: the family of the closest structure)

    def derivatives(self, t: Tensor, state: State, f: VectorField) -> State:
        h, v = state
        s = t.clamp(min=0.0)
        k = s.pow(1.5) * torch.exp(-s / 2)
        dk = 1.5 * s.sqrt() * torch.exp(-s / 2) - k / 2
        m = dk * h + k * v
        return m, -m - f(t, h)


@hookimpl
def harness_model_families() -> list[type[Family]]:
    return [NesterovNODE]
