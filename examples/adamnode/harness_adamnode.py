"""AdamNODE (Cho, Hong, Lee and Park, 2022) as a harness model family.

The state (h, m, v) follows the continuous limit of the Adam optimiser, with the task's network
f in the role of the (negative) gradient:

    h' = m / (sqrt(softplus(v)) + eps)
    m' = β1 · (f(h) − m)
    v' = β2 · (f(h)² − v)

β1 = sigmoid(a1) and β2 = sigmoid(a2) are learnable, both starting at −5 (the authors' code
writes m with the opposite sign and starts a2 at 5; with β2 ≈ 1 the adjoint's backward
reconstruction of v diverges inside the plane-vibration ODE-RNN, whose RNN update may make v
negative: measured, v went from −1 to −194 in four backward steps and the run failed, so the
conformance kit's tiny run there failed; with β2 ≈ 0.007 it passes). Three state parts: x and
the initial-velocity network the task builds give h0, the network alone m0 and v0. Widths: a
task that lists none for adamnode gives those of its family of the closest structure (on the
built-in tasks HBNODE's: f reads one part, an initial-velocity network, two parts of three).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from harness import Family, State, VectorField, hookimpl

HARNESS_CONTRACT = 2  # the plugin contract this module was written for


class AdamNODE(Family):
    name = "adamnode"
    parts = ("h", "m", "v")      # any number of parts, each shaped like h
    readout = "h"                # the part tasks read the output from (the default)
    initial_state = {"h": "input+network", "m": "network", "v": "network"}

    def __init__(self, beta1_init: float = -5.0, beta2_init: float = -5.0, eps: float = 1e-8):
        super().__init__()
        self.a1 = nn.Parameter(torch.tensor(beta1_init))
        self.a2 = nn.Parameter(torch.tensor(beta2_init))
        self.eps = eps

    def derivatives(self, t: Tensor, state: State, f: VectorField) -> State:
        h, m, v = state
        force = f(t, h)
        dh = m / (torch.sqrt(F.softplus(v)) + self.eps)
        dm = torch.sigmoid(self.a1) * (force - m)
        dv = torch.sigmoid(self.a2) * (force * force - v)
        return dh, dm, dv


@hookimpl
def harness_model_families() -> list[type[Family]]:
    return [AdamNODE]
